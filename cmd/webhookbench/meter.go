package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every Linux build Go
// supports, and not readable without cgo.
const clockTick = 10 * time.Millisecond

// commandCalls returns INFO commandstats: calls per command. Redis counts the commands a Lua
// script runs as well as the EVALSHA itself, so this is the work Redis does, not round trips.
func commandCalls(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out, nil
}

// usedMemory is INFO memory's used_memory in bytes.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

// procCPU is the user+system CPU time a process used so far ("self" for the bench).
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields are counted after its closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%s/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * clockTick, nil
}

// procMemKB returns VmRSS and VmHWM (peak RSS) of a process in KiB.
func procMemKB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// snapshot is the Redis command counters and CPU clocks at one moment.
type snapshot struct {
	calls map[string]int64
	cpu   map[string]time.Duration // by process: webhookd, redis-server, webhookbench
}

// snap reads the counters; a process the bench does not own (--target, --redis-url) is left out.
func (b *bench) snap(ctx context.Context, w *webhookd) snapshot {
	s := snapshot{cpu: make(map[string]time.Duration)}
	if b.rdb != nil {
		s.calls, _ = commandCalls(ctx, b.rdb)
	}
	pids := map[string]string{"webhookbench": "self"}
	if w != nil {
		pids["webhookd"] = strconv.Itoa(w.pid())
	}
	if b.redis != nil {
		pids["redis-server"] = strconv.Itoa(b.redis.Pid())
	}
	for name, pid := range pids {
		if d, err := procCPU(pid); err == nil {
			s.cpu[name] = d
		}
	}
	return s
}

// snapSelf reads the bench's own CPU clock only: for a scenario no other process works for.
func snapSelf() snapshot {
	s := snapshot{cpu: make(map[string]time.Duration)}
	if d, err := procCPU("self"); err == nil {
		s.cpu["webhookbench"] = d
	}
	return s
}

// addCost adds Redis commands and CPU milliseconds per delivery between two snapshots, and a
// note with the commands that cost most.
func (r *runResult) addCost(before, after snapshot, deliveries int) {
	if deliveries == 0 {
		return
	}
	delta := commandDelta(before, after)
	total := totalCalls(delta)
	if after.calls != nil {
		r.add("redis commands/delivery", "", float64(total)/float64(deliveries))
		r.add("redis EVALSHA/delivery", "", float64(delta["evalsha"]+delta["eval"])/float64(deliveries))
		r.note("redis commands per delivery, most frequent: %s", topCommands(delta, deliveries, 10))
	}
	var all time.Duration
	for _, name := range slices.Sorted(maps.Keys(after.cpu)) {
		if b, ok := before.cpu[name]; ok {
			all += after.cpu[name] - b
			r.add(name+" CPU/delivery", "µs", float64((after.cpu[name]-b).Microseconds())/float64(deliveries))
		}
	}
	r.add("all processes CPU/delivery", "µs", float64(all.Microseconds())/float64(deliveries))
	r.addPhaseFree(before, after)
}

// addPhaseFree adds webhookd's and redis-server's CPU divided by the bench's own, when it ran
// both: the bench's publishers and receivers do the same work whichever webhookd serves them, and
// its CPU per delivery moves with the machine's fast and slow hours as the others' do, so the
// quotient compares two builds measured hours apart, or alternated in a noisy hour.
func (r *runResult) addPhaseFree(before, after snapshot) {
	used := func(name string) time.Duration { return after.cpu[name] - before.cpu[name] }
	_, served := before.cpu["webhookd"]
	_, owned := before.cpu["redis-server"]
	bench := used("webhookbench")
	if !served || !owned || bench <= 0 {
		return
	}
	r.add("webhookd + redis-server CPU ÷ webhookbench's", "", float64(used("webhookd")+used("redis-server"))/float64(bench))
}

// commandDelta is the Redis commands run between two snapshots, by command; the bench's own
// INFO calls are left out.
func commandDelta(before, after snapshot) map[string]int64 {
	delta := make(map[string]int64)
	for name, n := range after.calls {
		if d := n - before.calls[name]; d > 0 && name != "info" {
			delta[name] = d
		}
	}
	return delta
}

// totalCalls is the number of commands in delta.
func totalCalls(delta map[string]int64) int64 {
	var total int64
	for _, d := range delta {
		total += d
	}
	return total
}

func topCommands(delta map[string]int64, deliveries, n int) string {
	names := slices.SortedFunc(maps.Keys(delta), func(a, b string) int {
		return cmp.Or(cmp.Compare(delta[b], delta[a]), cmp.Compare(a, b))
	})
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(delta[name])/float64(deliveries)))
	}
	return strings.Join(parts, ", ")
}

// addRSS adds the webhookd process's resident memory now and at its peak.
func (r *runResult) addRSS(w *webhookd) {
	if w == nil {
		return
	}
	if rss, hwm, err := procMemKB(w.pid()); err == nil {
		r.add("webhookd RSS", "MiB", float64(rss)/1024)
		r.add("webhookd peak RSS (VmHWM)", "MiB", float64(hwm)/1024)
	}
}
