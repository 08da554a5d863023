package main

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// throughputEnv set to 1 runs TestThroughputScaleOut, a measurement, not a check:
//
//	WEBHOOKD_TEST_THROUGHPUT=1 go test -count=1 -v -run TestThroughputScaleOut ./cmd/webhookd/
const throughputEnv = "WEBHOOKD_TEST_THROUGHPUT"

const (
	throughputEvents     = 3000
	throughputPublishers = 16
	throughputRuns       = 3
)

// TestThroughputScaleOut publishes 3,000 events to one endpoint through an API process as fast
// as 16 publishers can and measures delivered/s until the receiver has all of them, with one
// and two worker processes, on one redis-server and on the six-node cluster (both with AOF),
// three runs each; it logs each run's CPU use per process from /proc.
func TestThroughputScaleOut(t *testing.T) {
	if os.Getenv(throughputEnv) != "1" {
		t.Skip("a measurement: runs with " + throughputEnv + "=1")
	}
	env := map[string]string{"WEBHOOKD_LOG_LEVEL": "warn", "WEBHOOKD_CONCURRENCY": "64"}
	type result struct {
		rate float64
		cpu  string
	}
	results := map[string][]result{}
	var order []string
	for _, backend := range []string{"redis-server", "cluster"} {
		var (
			newRun    func(t *testing.T) (*stack, []int)
			single    *registrytest.Server
			cluster   *registrytest.Cluster
			flush     func(t *testing.T)
			redisPids func() []int
		)
		if backend == "cluster" {
			registrytest.TakeClusterTurn(t)
			cluster = registrytest.StartCluster(t)
			flush = func(t *testing.T) {}
			redisPids = cluster.Pids
			newRun = func(t *testing.T) (*stack, []int) { return newClusterStack(t, cluster, env), redisPids() }
		} else {
			single = registrytest.StartServer(t, "--appendonly", "yes")
			flush = func(t *testing.T) {
				c := redis.NewClient(&redis.Options{Addr: single.Addr})
				defer c.Close()
				if err := c.FlushAll(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
			}
			newRun = func(t *testing.T) (*stack, []int) {
				st := &stack{redisURL: single.URL(0), rdb: redis.NewClient(&redis.Options{Addr: single.Addr}),
					asynqOpt: asynq.RedisClientOpt{Addr: single.Addr}}
				t.Cleanup(func() { st.rdb.Close() })
				st.configure(t, map[string]string{"REDIS_URL": st.redisURL}, env)
				return st, []int{single.Pid()}
			}
		}
		for _, workers := range []int{1, 2} {
			name := fmt.Sprintf("%s/%d-worker", backend, workers)
			order = append(order, name)
			for run := range throughputRuns {
				t.Run(fmt.Sprintf("%s/run%d", name, run+1), func(t *testing.T) {
					flush(t)
					st, rpids := newRun(t)
					rate, cpu := measureThroughput(t, st, workers, rpids)
					t.Logf("%s run %d: %.0f delivered/s; CPU %s", name, run+1, rate, cpu)
					results[name] = append(results[name], result{rate, cpu})
				})
			}
		}
	}
	for _, name := range order {
		rs := results[name]
		if len(rs) == 0 {
			continue
		}
		rates := make([]float64, len(rs))
		for i, r := range rs {
			rates[i] = r.rate
		}
		slices.Sort(rates)
		t.Logf("%-22s median %.0f delivered/s (runs: %.0f)", name, rates[len(rates)/2], rates)
	}
}

// measureThroughput runs one API and n worker processes on st, publishes the events and waits
// until the receiver has them; it returns delivered/s and each process's CPU use.
func measureThroughput(t *testing.T, st *stack, n int, redisPids []int) (float64, string) {
	apiProc, api := st.startAPIProcess(t)
	var workers []*process
	for range n {
		workers = append(workers, st.startProcess(t, "serve", "--role", "worker"))
	}
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusNoContent))
	api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)

	procs := map[string]int{"api": apiProc.cmd.Process.Pid, "test(publishers+receiver)": os.Getpid()}
	for i, w := range workers {
		procs[fmt.Sprintf("worker%d", i+1)] = w.cmd.Process.Pid
	}
	for i, p := range redisPids {
		procs[fmt.Sprintf("redis%d", i+1)] = p
	}
	before, machineBefore := cpuTicks(t, procs), machineTicks(t)
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan struct{})
	var failed sync.Once
	for range throughputPublishers {
		wg.Go(func() {
			for range next {
				if status, _, err := publishAttempt(t, api, key, ""); err != nil || status != http.StatusAccepted {
					failed.Do(func() { t.Errorf("publish: %d %v", status, err) })
				}
			}
		})
	}
	for range throughputEvents {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	published := time.Since(start)
	waitFor(t, 5*time.Minute, "every event delivered", func() bool { return rc.Count() >= throughputEvents })
	elapsed := time.Since(start)
	after, machineAfter := cpuTicks(t, procs), machineTicks(t)
	pct := func(ticks int64) float64 { return float64(ticks) / 100 / elapsed.Seconds() * 100 }
	var cpu []string
	var ours int64
	for name := range procs {
		ours += after[name] - before[name]
		cpu = append(cpu, fmt.Sprintf("%s %.0f%%", name, pct(after[name]-before[name])))
	}
	slices.Sort(cpu)
	machine := machineAfter - machineBefore
	return throughputEvents / elapsed.Seconds(), fmt.Sprintf("[published in %s; machine busy %.0f%% of 200%%, "+
		"other processes %.0f%%] %s", published.Round(time.Millisecond), pct(machine), pct(machine-ours),
		strings.Join(cpu, ", "))
}

// machineTicks reads the busy time of all CPUs (clock ticks) from /proc/stat.
func machineTicks(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy int64
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, iowait, or guest (counted in user)
			busy += n
		}
	}
	return busy
}

// cpuTicks reads utime+stime (clock ticks, 100 per second) of each process from /proc.
func cpuTicks(t *testing.T, procs map[string]int) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, pid := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatalf("cpu of %s: %v", name, err)
		}
		// Fields after the command name (which may hold spaces) start after the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[name] = utime + stime
	}
	return out
}
