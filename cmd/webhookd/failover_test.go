package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
)

// The load during which a master dies: events published to three endpoints.
const (
	failoverEvents     = 300
	failoverEndpoints  = 3
	failoverKillAfter  = 100 // accepted events before the master dies
	failoverPublishers = 4
)

// publishAttempt publishes one event with data of its own (and an Idempotency-Key unless
// empty); it returns the status and the event id of a 200/202 answer.
func publishAttempt(t *testing.T, svc *service, key, idem string) (int, string, error) {
	return publishBody(t, svc, key, idem, scanData())
}

// publishBody publishes a scan.completed event with data, as publishAttempt does. A client
// retrying with its Idempotency-Key sends the same data again: other data is another request,
// which the key refuses (409) once the first was stored.
func publishBody(t *testing.T, svc *service, key, idem string, data map[string]any) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"type": registry.EventScanCompleted, "data": data})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, svc.URL+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idem)
	res, err := apiClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var env struct {
		Data struct{ ID string } `json:"data"`
	}
	_ = json.Unmarshal(b, &env)
	return res.StatusCode, env.Data.ID, nil
}

// TestClusterFailoverUnderLoad SIGKILLs the cluster master that serves both the queue and the
// tenant's records while 300 events are published to three endpoints (an API and two worker
// processes); publishers retry errors with the same Idempotency-Key. Once the replica is
// promoted, every accepted event must reach every endpoint.
//
// Redis replication is asynchronous: a write the dying master acknowledged but had not yet
// streamed to its replica is gone after the promotion. The test measures the replica's lag at
// the kill and sorts every pair not delivered within 45s by what Redis holds for it: "late"
// (asynq's lease recovery or retry, or the outbox sweeper, still owes the attempt: delivered
// 60-120s after the kill), "lost write" (the promoted replica never got the endpoint, event or
// delivery record) or "stuck" (the records are there and nothing will deliver them). Stuck
// pairs fail the test; so do lost writes when the replica had no lag. The rest is reported.
func TestClusterFailoverUnderLoad(t *testing.T) {
	requireCluster(t)
	if testing.Short() {
		t.Skip("kills a Redis Cluster master under load (about 10-40 s)")
	}
	registrytest.TakeClusterTurn(t)
	c := registrytest.StartCluster(t)
	// Redis errors count against a task's retries, so the retry schedule must outlast the
	// failover (the suite's 50ms schedule spends 10 retries in 3s).
	st := newClusterStack(t, c, map[string]string{"WEBHOOKD_SWEEP_INTERVAL": "1s", "WEBHOOKD_CONCURRENCY": "16",
		"WEBHOOKD_RETRY_INITIAL_INTERVAL": "1s", "WEBHOOKD_RETRY_MAX_INTERVAL": "5s"})
	api := st.start(t, "--role", "api")
	var workers []*process
	for range 2 {
		workers = append(workers, st.startProcess(t, "serve", "--role", "worker"))
	}
	victim := c.MasterOf(t, "asynq:{"+delivery.NewShards(clusterQueueShards).Names()[0]+"}:pending")
	tid, key := st.tenant(t)
	for i := 0; c.MasterOf(t, "wh:{t:"+tid+"}") != victim; i++ {
		if i == 50 {
			t.Fatal("no tenant on the queue's master after 50 tries")
		}
		tid, key = st.tenant(t)
	}
	replica := replicaOf(t, c, victim)
	t.Logf("killing node %d, master of the queue and of tenant %s; node %d is its replica\n%s",
		victim, tid, replica, c.Describe(t.Context()))
	var rcs []*deliverytest.Receiver
	var eps []string
	for range failoverEndpoints {
		rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
		eps = append(eps, api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil).ID)
		rcs = append(rcs, rc)
	}

	var (
		mu       sync.Mutex
		accepted = map[string]int{} // event id -> status of the answer that accepted it
		failures = map[string]int{} // failed publish attempts by status ("error" without one)
		accN     atomic.Int64
		next     atomic.Int64
		lag      int64
		killed   = make(chan time.Time, 1)
		healed   = make(chan time.Time, 1)
	)
	start := time.Now()
	go func() {
		for accN.Load() < failoverKillAfter && next.Load() <= failoverEvents {
			time.Sleep(5 * time.Millisecond)
		}
		lag = replicationLag(t, c, victim, replica)
		c.Kill(victim)
		killed <- time.Now()
		if err := c.AwaitHealthy(); err != nil {
			t.Error(err)
		}
		healed <- time.Now()
	}()
	var wg sync.WaitGroup
	for range failoverPublishers {
		wg.Go(func() {
			for i := next.Add(1); i <= failoverEvents; i = next.Add(1) {
				idem, data := fmt.Sprintf("failover-%d", i), scanData()
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
					status, id, err := publishBody(t, api, key, idem, data)
					ok := err == nil && (status == http.StatusAccepted || status == http.StatusOK)
					mu.Lock()
					switch {
					case ok:
						accepted[id] = status
						accN.Store(int64(len(accepted)))
					case err != nil:
						failures["error"]++
					default:
						failures[strconv.Itoa(status)]++
					}
					mu.Unlock()
					if ok || time.Now().After(deadline) {
						break // accepted, or never: then nothing is owed
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	published := time.Now()
	killedAt, healedAt := <-killed, <-healed

	// Every accepted event at every endpoint; an event whose work was not all queued waits in
	// the outbox for the sweeper's 30s grace, so allow for that.
	undelivered := func() [][2]string {
		var out [][2]string
		for i, rc := range rcs {
			counts := rc.IDCounts()
			for id := range accepted {
				if counts[id] == 0 {
					out = append(out, [2]string{id, eps[i]})
				}
			}
		}
		return out
	}
	for end := time.Now().Add(45 * time.Second); len(undelivered()) > 0 && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	done := time.Now()
	missing := undelivered()
	idle := waitIdle(t, st, 10*time.Second) // redeliveries after a lost acknowledgement
	dups, dupPairs, unacked := 0, 0, 0
	for _, rc := range rcs {
		for id, n := range rc.IDCounts() {
			if _, ok := accepted[id]; !ok {
				unacked++ // its publish answered an error, but it was stored and delivered
			} else if n > 1 {
				dups, dupPairs = dups+n-1, dupPairs+1
			}
		}
	}
	replays := 0
	for _, s := range accepted {
		if s == http.StatusOK {
			replays++
		}
	}
	kinds := classifyUndelivered(t, st, tid, missing)
	t.Logf("failover: master killed %s after start, %d events accepted, its replica at most %d bytes behind; "+
		"cluster healthy %s later; publishing ended %s after the kill", killedAt.Sub(start).Round(time.Millisecond),
		failoverKillAfter, lag, healedAt.Sub(killedAt).Round(time.Millisecond), published.Sub(killedAt).Round(time.Millisecond))
	t.Logf("failover: accepted %d of %d events (%d as 200 replays of an earlier attempt); failed attempts %s",
		len(accepted), failoverEvents, replays, sortedCounts(failures))
	t.Logf("failover: %d of %d pairs delivered %s after the kill; not delivered: late %d, lost write %d, stuck %d; "+
		"duplicated %d POSTs over %d pairs; %d POSTs of events never acknowledged; queues idle afterwards: %s",
		len(accepted)*failoverEndpoints-len(missing), len(accepted)*failoverEndpoints, done.Sub(killedAt).Round(time.Millisecond),
		kinds["late"], kinds["lost write"], kinds["stuck"], dups, dupPairs, unacked, idle)
	if len(accepted) != failoverEvents {
		t.Errorf("%d events were never accepted within 30s of retrying", failoverEvents-len(accepted))
	}
	if kinds["stuck"] > 0 || (kinds["lost write"] > 0 && lag <= 0) {
		t.Errorf("%d pairs have no way to delivery and %d records were lost with the replica at most %d bytes behind",
			kinds["stuck"], kinds["lost write"], lag)
	}
	if len(missing) > 0 {
		for i, w := range workers {
			t.Logf("worker %d, asynq sync failures:\n%s", i+1, grepLines(w.output.String(), "Could not", "recoverer"))
		}
		t.Logf("log of the killed master (node %d):\n%s", victim, c.Log(victim, 3000))
		t.Logf("log of its replica (node %d):\n%s", replica, c.Log(replica, 3000))
	}
}

// classifyUndelivered sorts the undelivered (event, endpoint) pairs into "late", "lost write"
// and "stuck" (see TestClusterFailoverUnderLoad), logging one example of each cause.
func classifyUndelivered(t *testing.T, st *stack, tid string, pairs [][2]string) map[string]int {
	t.Helper()
	ctx := t.Context()
	ins := asynq.NewInspectorFromRedisClient(st.rdb)
	outbox, err := st.store.DueOutbox(ctx, tid, time.Now().Add(time.Hour), 100000)
	if err != nil {
		t.Fatal(err)
	}
	owedFanout, owedDrain, owedRetry := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, w := range outbox {
		switch {
		case w.Fanout != "":
			owedFanout[w.Fanout] = true
		case w.Drain != nil:
			owedDrain[w.Drain.EndpointID] = true
		case w.Retry != nil:
			owedRetry[w.Retry.DeliveryID] = true
		}
	}
	kinds, causes, example := map[string]int{}, map[string]int{}, map[string]string{}
	for _, p := range pairs {
		evid, eid := p[0], p[1]
		did := registry.DeliveryID(evid, eid)
		kind, cause := "lost write", ""
		if _, err := st.store.Endpoint(ctx, tid, eid); err != nil {
			cause = "endpoint record gone"
		} else if _, err := st.store.Event(ctx, tid, evid); err != nil {
			cause = "event record gone"
		} else if d, err := st.store.Delivery(ctx, tid, eid, did, false); err != nil {
			cause = "delivery record gone"
			if owedFanout[evid] {
				kind, cause = "late", "no delivery yet, the event is in the outbox"
			}
		} else if _, queued, _ := st.store.QueuedItem(ctx, tid, eid, did); queued {
			// A drain's outbox entry stays until the drain ends, and it ends only on an empty
			// queue: a queued delivery without one for its endpoint is stuck.
			kind, cause = "stuck", "queued, no drain of its endpoint in the outbox"
			if owedDrain[eid] {
				kind, cause = "late", "queued, its endpoint's drain in the outbox"
			}
		} else {
			r := registry.Retry{DeliveryID: did, EndpointID: eid, Generation: d.Generation, Run: d.RunAttempts}
			info, err := ins.GetTaskInfo(delivery.NewShards(clusterQueueShards).Of(eid), delivery.RetryTaskID(r))
			switch {
			case err == nil:
				kind, cause = "late", fmt.Sprintf("delivery %s, its retry timer %s", d.Status, info.State)
			case owedFanout[evid] || owedRetry[did]:
				kind, cause = "late", fmt.Sprintf("delivery %s, no task, in the outbox", d.Status)
			default:
				kind, cause = "stuck", fmt.Sprintf("delivery %s, no task, not in the outbox", d.Status)
			}
		}
		kinds[kind]++
		causes[kind+": "+cause]++
		example[kind+": "+cause] = "event " + evid + ", delivery " + did
	}
	for cause, n := range causes {
		t.Logf("undelivered: %d pairs, %s (e.g. %s)", n, cause, example[cause])
	}
	return kinds
}

// replicaOf returns the index of master's replica, -1 if it has none.
func replicaOf(t *testing.T, c *registrytest.Cluster, master int) int {
	t.Helper()
	port := strings.Split(c.Addrs()[master], ":")[1]
	for i := range c.Addrs() {
		info, err := c.Node(i).Info(t.Context(), "replication").Result()
		if i != master && err == nil && strings.Contains(info, "master_port:"+port+"\r") {
			return i
		}
	}
	return -1
}

// replicationLag returns how many bytes of master's replication stream its replica had not
// processed (-1: unknown). The replica's offset is read first, then the master's: an upper bound.
func replicationLag(t *testing.T, c *registrytest.Cluster, master, replica int) int64 {
	t.Helper()
	offset := func(i int, field string) int64 {
		info, err := c.Node(i).Info(t.Context(), "replication").Result()
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return -1
	}
	if replica < 0 {
		return -1
	}
	r := offset(replica, "slave_repl_offset")
	m := offset(master, "master_repl_offset")
	if r < 0 || m < 0 {
		return -1
	}
	return m - r
}

// waitIdle waits up to timeout for the queue to have nothing pending, active, scheduled or
// retrying; it reports what is left (archived tasks included) instead of failing.
func waitIdle(t *testing.T, st *stack, timeout time.Duration) string {
	t.Helper()
	for end := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		info, err := delivery.Backlog(st.rdb)
		if err != nil {
			return err.Error()
		}
		busy := info.Pending+info.Active+info.Scheduled+info.Retry > 0
		if !busy || time.Now().After(end) {
			return fmt.Sprintf("%v (pending %d, active %d, scheduled %d, retry %d, archived %d)", !busy,
				info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived)
		}
	}
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%d ", k, m[k])
	}
	return b.String()
}

// grepLines returns the lines of log that contain any of the strings.
func grepLines(log string, any ...string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		for _, s := range any {
			if strings.Contains(line, s) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
