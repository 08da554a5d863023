package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// restartSoakEnv selects the long form of TestRedisRestartUnderLoad: minutes of load with
// several restarts per scenario instead of one short restart.
const restartSoakEnv = "WEBHOOKD_RESTART_SOAK"

// restartLogDirEnv names a directory where each scenario leaves, for diagnosis, the full output
// of its webhookd processes, every API call it made and every POST the receivers got.
const restartLogDirEnv = "WEBHOOKD_RESTART_LOGDIR"

// restartScenario is one run: a private redis-server with AOF on, an API and a worker process
// of the real main, continuous publishing to restartEndpoints endpoints, and cycles stops of
// Redis (a SIGKILL crash or a SIGTERM shutdown), each followed by a restart on the same port
// and directory after down.
type restartScenario struct {
	fsync      string // appendfsync: always or everysec
	stop       string // SIGKILL or SIGTERM
	cycles     int
	load       time.Duration // publishing before each stop, and after the last restart
	down       time.Duration // how long Redis stays stopped
	publishers int
	// rate paces the publishers to this many requests a second in all; 0: as fast as they go.
	rate float64
	// maxP99 bounds the 99th percentile of publish-to-receipt latency over every accepted
	// event (0: not checked): how soon work resumes once Redis answers again.
	maxP99 time.Duration
}

func (s restartScenario) name() string {
	if s.rate > 0 {
		return fmt.Sprintf("%s/%s/%d-per-s", s.fsync, s.stop, int(s.rate))
	}
	return s.fsync + "/" + s.stop
}

const (
	restartEndpoints = 3
	// unavailableRetryAfter is the Retry-After (seconds) the API is configured to send with 503.
	unavailableRetryAfter = "5"
	// everysecLossWindow bounds how long before a crash an acknowledged write may be lost with
	// appendfsync everysec: Redis fsyncs every second and, when an fsync is slow, postpones
	// writing the AOF for up to two seconds more.
	everysecLossWindow = 3 * time.Second
	// settleLimit bounds the wait for deliveries after the load: asynq's lease recovery (a
	// task left active by a crash) takes 60-120s, the outbox sweeper's grace 30s.
	settleLimit = 4 * time.Minute
)

// TestRedisRestartUnderLoad restarts the redis-server under webhookd while events are published
// continuously, with AOF persistence in both fsync modes, after a crash (SIGKILL) and a clean
// shutdown (SIGTERM). It proves that
//   - while Redis is down every API request (list, get, publish) answers 503 SERVICE_UNAVAILABLE
//     with the reference message and Retry-After, within seconds (never no answer within the
//     client's 30s, never a 500);
//   - the API and the worker reconnect on their own: the same processes serve and deliver after
//     the restart;
//   - no acknowledged event (202) is lost with appendfsync always or after a clean shutdown, and
//     with everysec a crash loses only events acknowledged in the last moments before it.
//
// A SIGKILL of redis-server is a process crash: what Redis wrote to the AOF is in the kernel's
// page cache and survives, so everysec loses data here only when Redis had postponed a write
// behind a slow fsync. A machine crash (lost page cache) is where the two modes differ most.
//
// Duplicates (the same webhook-id twice at one endpoint) are allowed (at-least-once) and
// reported, as are the outage's figures. WEBHOOKD_RESTART_SOAK=1 runs the long form.
func TestRedisRestartUnderLoad(t *testing.T) {
	if registrytest.OnCluster() {
		t.Skip("runs on a redis-server of its own; the single-node run covers it")
	}
	scenarios := []restartScenario{
		{fsync: "always", stop: "SIGKILL", cycles: 1, load: 2 * time.Second, down: 3 * time.Second, publishers: 3},
		{fsync: "everysec", stop: "SIGKILL", cycles: 1, load: 2 * time.Second, down: 3 * time.Second, publishers: 3},
		{fsync: "everysec", stop: "SIGTERM", cycles: 1, load: 2 * time.Second, down: 3 * time.Second, publishers: 3},
		// Two short crashes under a steady 300 events/s: delivery must resume as soon as Redis
		// answers, not when a lease or a sweep gives up on work in flight.
		{fsync: "everysec", stop: "SIGKILL", cycles: 2, load: 4 * time.Second, down: 2 * time.Second, publishers: 8,
			rate: 300, maxP99: 5 * time.Second},
	}
	if os.Getenv(restartSoakEnv) == "1" {
		scenarios = nil
		for _, fsync := range []string{"always", "everysec"} {
			for _, stop := range []string{"SIGKILL", "SIGTERM"} {
				scenarios = append(scenarios, restartScenario{fsync: fsync, stop: stop, cycles: 3,
					load: 12 * time.Second, down: 3 * time.Second, publishers: 4})
			}
		}
	} else if testing.Short() {
		scenarios = scenarios[:1]
	}
	for _, sc := range scenarios {
		t.Run(sc.name(), func(t *testing.T) { runRestart(t, sc) })
	}
}

// newServerStack is a stack on srv's database 0 instead of the shared test server.
func newServerStack(tb testing.TB, srv *registrytest.Server, env map[string]string) *stack {
	tb.Helper()
	st := &stack{redisURL: srv.URL(0), rdb: redis.NewClient(&redis.Options{Addr: srv.Addr}),
		asynqOpt: asynq.RedisClientOpt{Addr: srv.Addr}}
	tb.Cleanup(func() { st.rdb.Close() })
	st.configure(tb, map[string]string{"REDIS_URL": st.redisURL}, env)
	return st
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// apiCall is one request the load made and what it got.
type apiCall struct {
	op         string // publish, list or get
	start, end time.Time
	status     int
	code, msg  string
	retryAfter string
	eventID    string // of an accepted publish
	err        error  // no answer at all
}

func (c apiCall) String() string {
	if c.err != nil {
		return fmt.Sprintf("%s: no answer after %s: %v", c.op, c.end.Sub(c.start), c.err)
	}
	return fmt.Sprintf("%s: %d %s %q (Retry-After %q) in %s %s", c.op, c.status, c.code, c.msg, c.retryAfter,
		c.end.Sub(c.start), c.eventID)
}

// probersPerOp is how many loops read the endpoint list, and one endpoint, during a restart test.
const probersPerOp = 3

// restartClient has a bound far beyond any sane answer: a request that reaches it hung.
var restartClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 30 * time.Second}

// do makes one request and records it; it never fails the test (the checks come later).
func (l *callLog) do(url, key, op, method, path string, body any) apiCall {
	c := apiCall{op: op, start: time.Now()}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url+path, rd)
	if err != nil {
		panic(err)
	}
	req.Header.Set("X-API-Key", key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := restartClient.Do(req)
	if err == nil {
		var raw []byte
		raw, err = io.ReadAll(res.Body)
		res.Body.Close()
		c.status, c.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
		var env struct {
			Data  json.RawMessage `json:"data"`
			Code  string          `json:"code"`
			Error string          `json:"error"`
		}
		if jerr := json.Unmarshal(raw, &env); jerr != nil && err == nil {
			c.code, c.msg = "(not a JSON envelope)", string(raw)
		} else {
			c.code, c.msg = env.Code, env.Error
			var ev struct{ ID string }
			if op == "publish" && c.status == http.StatusAccepted && json.Unmarshal(env.Data, &ev) == nil {
				c.eventID = ev.ID
			}
		}
	}
	c.end, c.err = time.Now(), err
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	return c
}

type callLog struct {
	mu    sync.Mutex
	calls []apiCall
}

func (l *callLog) all() []apiCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// outage is one stop and restart of Redis.
type outage struct {
	stopAt, stopped time.Time // signal sent, process gone
	restartAt, up   time.Time // restart begun, answering PING again
}

func runRestart(t *testing.T, sc restartScenario) {
	srv := registrytest.StartServer(t, "--appendonly", "yes", "--appendfsync", sc.fsync)
	st := newServerStack(t, srv, map[string]string{
		"WEBHOOKD_ADDR":                    freeAddr(t),
		"WEBHOOKD_SWEEP_INTERVAL":          "1s",
		"WEBHOOKD_CONCURRENCY":             "16",
		"WEBHOOKD_UNAVAILABLE_RETRY_AFTER": unavailableRetryAfter,
	})
	apiProc := st.startProcess(t, "serve", "--role", "api")
	worker := st.startProcess(t, "serve", "--role", "worker")
	api := &service{URL: "http://" + st.env["WEBHOOKD_ADDR"]}
	waitFor(t, patience, "the API process to listen", func() bool {
		res, err := http.Get(api.URL + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	tid, key := st.tenant(t)
	var rcs []*deliverytest.Receiver
	var eps []endpointView
	for range restartEndpoints {
		rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
		rcs = append(rcs, rc)
		eps = append(eps, api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil))
	}

	// The load: publishers without pause, and probers reading the list and an endpoint.
	log := &callLog{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pace := pacer(sc.rate, stop)
	for range sc.publishers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-pace:
				}
				log.do(api.URL, key, "publish", http.MethodPost, "/api/v1/events",
					map[string]any{"type": registry.EventScanCompleted, "data": scanData()})
			}
		})
	}
	// Several probers an operation: while Redis is down an answer can take over a second (the
	// client's retries), and one prober alone may have no request both start and end in the outage.
	for op, path := range map[string]string{"list": "/api/v1/webhooks", "get": "/api/v1/webhooks/" + eps[0].ID} {
		for range probersPerOp {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					log.do(api.URL, key, op, http.MethodGet, path, nil)
				}
			})
		}
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	accepted := func() int {
		n := 0
		for _, c := range log.all() {
			if c.eventID != "" {
				n++
			}
		}
		return n
	}
	// loadFor publishes for d, and at least until a few more events were accepted.
	loadFor := func(d time.Duration) {
		from := accepted()
		end := time.Now().Add(d)
		waitFor(t, patience, "events to be accepted", func() bool { return time.Now().After(end) && accepted() >= from+20 })
	}
	var outages []outage
	for range sc.cycles {
		loadFor(sc.load)
		o := outage{stopAt: time.Now()}
		switch sc.stop {
		case "SIGKILL":
			srv.Stop()
		case "SIGTERM":
			if err := srv.Terminate(); err != nil {
				t.Fatalf("redis-server exited with %v after SIGTERM", err)
			}
		}
		o.stopped = time.Now()
		time.Sleep(sc.down) // the outage itself: its length is the scenario's, not a wait for a condition
		o.restartAt = time.Now()
		srv.Restart(t)
		o.up = time.Now()
		outages = append(outages, o)
	}
	loadFor(sc.load)
	stopLoad()
	for _, p := range []*process{apiProc, worker} {
		select {
		case <-p.waited:
			t.Fatalf("a webhookd process exited during the restarts: %v", p.err)
		default:
		}
	}

	calls := log.all()
	acked := map[string]time.Time{} // event id -> when its 202 arrived
	for _, c := range calls {
		if c.eventID != "" {
			acked[c.eventID] = c.end
		}
	}
	missing := func() map[string][]int { // event id -> endpoints (index) that never got it
		out := map[string][]int{}
		for i, rc := range rcs {
			got := rc.IDCounts()
			for id := range acked {
				if got[id] == 0 {
					out[id] = append(out[id], i)
				}
			}
		}
		return out
	}
	settleStart := time.Now()
	idleSince := time.Time{}
	waitFor(t, settleLimit+time.Minute, "deliveries to settle", func() bool {
		if len(missing()) == 0 {
			return true
		}
		if !restartIdle(t, st, tid) {
			idleSince = time.Time{}
			return time.Since(settleStart) > settleLimit
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		// Idle with nothing in the outbox: nothing is left that would deliver the rest.
		return time.Since(idleSince) > 2*time.Second || time.Since(settleStart) > settleLimit
	})
	settled := time.Since(settleStart)
	if dir := os.Getenv(restartLogDirEnv); dir != "" {
		writeRestartLogs(t, dir, sc, apiProc, worker, log.all(), rcs, outages)
	}

	// Count.
	lost := missing()
	var lostPairs int
	for _, idx := range lost {
		lostPairs += len(idx)
	}
	delivered, dupIDs, dupExtra, unacked := 0, 0, 0, 0
	for _, rc := range rcs {
		for id, n := range rc.IDCounts() {
			delivered++
			if n > 1 {
				dupIDs++
				dupExtra += n - 1
			}
			if _, ok := acked[id]; !ok {
				unacked++
			}
		}
	}
	t.Logf("%s, %d cycle(s): %d events accepted (%d deliveries expected), %d delivered (event, endpoint) pairs, "+
		"%d lost events (%d pairs), %d duplicated pairs (%d extra POSTs), %d pairs of unacknowledged events delivered; settled in %s",
		sc.name(), sc.cycles, len(acked), len(acked)*restartEndpoints, delivered, len(lost), lostPairs, dupIDs, dupExtra,
		unacked, settled.Round(100*time.Millisecond))

	if dupIDs > 0 {
		t.Logf("duplicated pairs by when the first and the last POST came: %s", dupTiming(rcs, outages))
	}
	checkReceiptLatency(t, sc, acked, rcs)

	// The API while Redis was down, and around it.
	checkRestartCalls(t, calls, outages)
	for i, o := range outages {
		reportOutage(t, i+1, o, calls, rcs, acked)
	}

	// Every event published after the last restart was delivered by the same worker process.
	last := outages[len(outages)-1].up
	after := 0
	for id, at := range acked {
		if at.After(last) {
			after++
			if idx, ok := lost[id]; ok {
				t.Errorf("event %s accepted after the last restart never reached endpoints %v", id, idx)
			}
		}
	}
	if after == 0 {
		t.Error("no event was accepted after the last restart")
	}

	// Losses: none with fsync always or a clean shutdown; with everysec, only just before a crash.
	for id, idx := range lost {
		at := acked[id]
		allowed := false
		if sc.fsync == "everysec" && sc.stop == "SIGKILL" {
			for _, o := range outages {
				if !at.Before(o.stopAt.Add(-everysecLossWindow)) && at.Before(o.stopped) {
					allowed = true
				}
			}
		}
		if !allowed {
			t.Errorf("lost: event %s (acknowledged %s) never reached endpoints %v: %s", id, relTo(at, outages), idx,
				describeLost(t, st, tid, id, idx, eps))
		} else {
			t.Logf("lost (everysec crash window): event %s acknowledged %s, endpoints %v: %s", id, relTo(at, outages), idx,
				describeLost(t, st, tid, id, idx, eps))
		}
	}
	if n := archived(t, st); n > 0 {
		t.Errorf("asynq archived %d task(s)", n)
	}
	// Every line both processes wrote through the outage is structured JSON, the Redis
	// client's own complaints included.
	for name, p := range map[string]*process{"api": apiProc, "worker": worker} {
		for _, line := range strings.Split(strings.TrimSpace(p.output.String()), "\n") {
			if line != "" && !json.Valid([]byte(line)) {
				t.Errorf("%s process wrote a line that is not JSON: %q", name, tail(line, 300))
				break
			}
		}
	}
}

// pacer yields a tick rate times a second until stop closes; with no rate it is always ready.
func pacer(rate float64, stop <-chan struct{}) <-chan struct{} {
	c := make(chan struct{})
	if rate <= 0 {
		close(c)
		return c
	}
	go func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				select {
				case c <- struct{}{}:
				case <-stop:
					return
				default: // every publisher is busy: the tick is dropped, not queued up
				}
			}
		}
	}()
	return c
}

// checkReceiptLatency logs the publish-to-receipt latency of every accepted event at every
// endpoint (from its 202 to the first POST) and checks its 99th percentile against the scenario's bound.
func checkReceiptLatency(t *testing.T, sc restartScenario, acked map[string]time.Time, rcs []*deliverytest.Receiver) {
	t.Helper()
	var lat []time.Duration
	for _, rc := range rcs {
		first := map[string]time.Time{}
		for _, h := range rc.Hits() {
			id := h.Header.Get("webhook-id")
			if _, ok := first[id]; !ok {
				first[id] = h.At
			}
		}
		for id, at := range acked {
			if got, ok := first[id]; ok {
				lat = append(lat, max(got.Sub(at), 0))
			}
		}
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	t.Logf("publish-to-receipt over %d deliveries: p50 %s, p90 %s, p99 %s, max %s", len(lat), q(0.5), q(0.9), q(0.99),
		lat[len(lat)-1].Round(time.Millisecond))
	if sc.maxP99 > 0 && q(0.99) > sc.maxP99 {
		t.Errorf("publish-to-receipt p99 %s, want at most %s: work waited for something other than Redis", q(0.99), sc.maxP99)
	}
}

// describeLost says what Redis holds for a lost event: the event record and each missing
// delivery's status.
func describeLost(t *testing.T, st *stack, tid, evid string, idx []int, eps []endpointView) string {
	var b strings.Builder
	if _, err := st.store.Event(t.Context(), tid, evid); err != nil {
		fmt.Fprintf(&b, "event record: %s", registry.CodeOf(err))
	} else {
		b.WriteString("event record present")
	}
	for _, i := range idx {
		d, err := st.store.Delivery(t.Context(), tid, eps[i].ID, registry.DeliveryID(evid, eps[i].ID), true)
		if err != nil {
			fmt.Fprintf(&b, "; endpoint %d: delivery %s", i, registry.CodeOf(err))
			continue
		}
		fmt.Fprintf(&b, "; endpoint %d: delivery %s after %d attempt(s)", i, d.Status, d.AttemptCount)
	}
	return b.String()
}

func writeRestartLogs(t *testing.T, dir string, sc restartScenario, apiProc, worker *process, calls []apiCall,
	rcs []*deliverytest.Receiver, outages []outage) {
	name := filepath.Join(dir, strings.ReplaceAll(sc.name(), "/", "-"))
	var b strings.Builder
	for i, o := range outages {
		fmt.Fprintf(&b, "outage %d: stop %s, gone %s, restart %s, up %s\n", i+1, o.stopAt.Format(time.RFC3339Nano),
			o.stopped.Format(time.RFC3339Nano), o.restartAt.Format(time.RFC3339Nano), o.up.Format(time.RFC3339Nano))
	}
	for _, c := range calls {
		fmt.Fprintf(&b, "%s %s\n", c.start.Format(time.RFC3339Nano), c)
	}
	for i, rc := range rcs {
		for _, h := range rc.Hits() {
			fmt.Fprintf(&b, "%s POST to endpoint %d: %s\n", h.At.Format(time.RFC3339Nano), i, h.Header.Get("webhook-id"))
		}
	}
	for file, text := range map[string]string{"-api.log": apiProc.output.String(), "-worker.log": worker.output.String(),
		"-load.log": b.String()} {
		if err := os.WriteFile(name+file, []byte(text), 0o600); err != nil {
			t.Errorf("write %s: %v", name+file, err)
		}
	}
}

// restartIdle reports whether the queue has nothing to run and the tenant's outbox is empty.
func restartIdle(t *testing.T, st *stack, tid string) bool {
	info, err := delivery.Backlog(st.rdb)
	if err != nil {
		return false // Redis still loading
	}
	if info.Pending+info.Active+info.Scheduled+info.Retry > 0 {
		return false
	}
	due, err := st.store.DueOutbox(t.Context(), tid, time.Now().Add(time.Hour), 1)
	return err == nil && len(due) == 0
}

func archived(t *testing.T, st *stack) int {
	info, err := delivery.Backlog(st.rdb)
	if err != nil {
		t.Errorf("queue info: %v", err)
		return 0
	}
	return info.Archived
}

// checkRestartCalls checks every answer: requests made while Redis was down (from the moment
// its process was gone to the moment it was started again) answer exactly 503 SERVICE_UNAVAILABLE with
// Retry-After; around the outage a publish may also answer 503 KAFKA_ERROR (stored, then the
// enqueue failed); otherwise 200/202. Never another 5xx, never no answer.
func checkRestartCalls(t *testing.T, calls []apiCall, outages []outage) {
	t.Helper()
	const unavailable = "Service temporarily unavailable"
	downOps := map[string]int{}
	bad := 0
	for _, c := range calls {
		down := false
		for _, o := range outages {
			if !c.start.Before(o.stopped) && c.end.Before(o.restartAt) {
				down = true
			}
		}
		ok := true
		switch {
		case c.err != nil:
			ok = false
		case down:
			downOps[c.op]++
			ok = c.status == http.StatusServiceUnavailable && c.code == string(registry.CodeServiceUnavailable) &&
				c.msg == unavailable && c.retryAfter == unavailableRetryAfter
		case c.status == http.StatusServiceUnavailable:
			ok = c.retryAfter == unavailableRetryAfter &&
				(c.code == string(registry.CodeServiceUnavailable) && c.msg == unavailable ||
					c.op == "publish" && c.code == string(registry.CodeQueue) && c.msg == "Message queue operation failed")
		case c.op == "publish":
			ok = c.status == http.StatusAccepted && c.eventID != ""
		default:
			ok = c.status == http.StatusOK
		}
		if !ok {
			if bad++; bad <= 10 {
				t.Errorf("unexpected answer (down=%t): %s", down, c)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d unexpected answers in all", bad)
	}
	for _, op := range []string{"publish", "list", "get"} {
		if downOps[op] == 0 {
			t.Errorf("no %s request was made while Redis was down: the outage went unprobed", op)
		}
	}
}

// reportOutage logs one outage's figures: how long Redis was down, the API's answers and
// slowest answer while it was, and how soon publishing and delivery resumed.
func reportOutage(t *testing.T, n int, o outage, calls []apiCall, rcs []*deliverytest.Receiver, acked map[string]time.Time) {
	t.Helper()
	var maxLat time.Duration
	statuses := map[string]int{}
	firstPublish := time.Duration(-1)
	publishStart := map[string]time.Time{}
	for _, c := range calls {
		if c.eventID != "" {
			publishStart[c.eventID] = c.start
		}
		if !c.start.Before(o.stopped) && c.start.Before(o.up) {
			maxLat = max(maxLat, c.end.Sub(c.start))
			statuses[fmt.Sprintf("%s/%d/%s", c.op, c.status, c.code)]++
		}
		if c.eventID != "" && !c.start.Before(o.up) {
			if d := c.end.Sub(o.up); firstPublish < 0 || d < firstPublish {
				firstPublish = d
			}
		}
	}
	firstPOST, firstDelivery := time.Duration(-1), time.Duration(-1)
	for _, rc := range rcs {
		for _, h := range rc.Hits() {
			if d := h.At.Sub(o.up); d >= 0 && (firstPOST < 0 || d < firstPOST) {
				firstPOST = d
			}
			if s, ok := publishStart[h.Header.Get("webhook-id")]; ok && !s.Before(o.up) {
				if d := h.At.Sub(o.up); firstDelivery < 0 || d < firstDelivery {
					firstDelivery = d
				}
			}
		}
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("outage %d: stop took %s, down %s (stop signal to PING); while down max API latency %s, answers %s; "+
		"after the restart: first accepted publish %s, first POST of any event %s, first POST of an event published "+
		"after the restart %s (behind the queue's backlog)",
		n, r(o.stopped.Sub(o.stopAt)), r(o.up.Sub(o.stopAt)), r(maxLat), sortedCounts(statuses), r(firstPublish), r(firstPOST), r(firstDelivery))
}

// dupTiming sorts the duplicated (event, endpoint) pairs by where their first and last POST fall
// relative to the outages, e.g. "before stop 1 / after restart 1:2".
func dupTiming(rcs []*deliverytest.Receiver, outages []outage) string {
	phase := func(at time.Time) string {
		for i := len(outages) - 1; i >= 0; i-- {
			switch o := outages[i]; {
			case !at.Before(o.up):
				return fmt.Sprintf("after restart %d", i+1)
			case !at.Before(o.stopAt):
				return fmt.Sprintf("during outage %d", i+1)
			}
		}
		return "before stop 1"
	}
	counts := map[string]int{}
	for _, rc := range rcs {
		first, last := map[string]time.Time{}, map[string]time.Time{}
		n := map[string]int{}
		for _, h := range rc.Hits() {
			id := h.Header.Get("webhook-id")
			if n[id]++; n[id] == 1 {
				first[id] = h.At
			}
			last[id] = h.At
		}
		for id, c := range n {
			if c > 1 {
				counts[phase(first[id])+" / "+phase(last[id])]++
			}
		}
	}
	return sortedCounts(counts)
}

// relTo places t relative to the outages, e.g. "1.2s before stop 1".
func relTo(at time.Time, outages []outage) string {
	best := ""
	bestD := time.Duration(1 << 62)
	for i, o := range outages {
		d := o.stopAt.Sub(at)
		if d.Abs() < bestD {
			bestD = d.Abs()
			if d >= 0 {
				best = fmt.Sprintf("%s before stop %d", d.Round(time.Millisecond), i+1)
			} else {
				best = fmt.Sprintf("%s after stop %d", (-d).Round(time.Millisecond), i+1)
			}
		}
	}
	return best
}
