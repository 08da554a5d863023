package delivery

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/cert-ix/webhookd/signing"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { registrytest.MainWithCluster(m) }

// patience bounds every wait for something the engine does on its own.
const patience = 30 * time.Second

// eventually polls cond until it holds, failing the test after a generous wait (patience).
// Tests wait for conditions, never for durations.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, patience, what, cond)
}

// eventuallyWithin is eventually with a longer wait, for conditions known to take long.
func eventuallyWithin(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stack is what the engine's integration tests run on: a real Redis (a database of its own on
// the test binary's redis-server or, with WEBHOOKD_TEST_CLUSTER=1, the shared six-node Redis
// Cluster, one test at a time), the registry store on it, a Service, a tenant, and workers run
// in-process on demand (worker). Receivers are deliverytest.Receivers on loopback.
type stack struct {
	rdb      redis.UniversalClient
	asynqOpt asynq.RedisConnOpt
	store    *registry.Store
	svc      *Service
	tid      string
	// client trusts the certificate every httptest TLS server presents, and loopback.
	client *http.Client
	// newClient makes another client of the stack's Redis, closed at the test's end.
	newClient func() redis.UniversalClient
	// shards is the stack's queue shard count: 4 on one Redis (the binary's default is 1, which
	// its own tests run), 16 on the cluster (as the binary's default there).
	shards int
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := &stack{shards: 4}
	if registrytest.OnCluster() {
		st.shards = 16
		c := registrytest.SharedCluster(t)
		registrytest.TakeClusterTurn(t)
		if err := c.FlushAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		st.newClient = func() redis.UniversalClient { return c.Client(t) }
		st.asynqOpt = asynq.RedisClusterClientOpt{Addrs: c.Addrs()}
	} else {
		opt := registrytest.Options(t)
		st.newClient = func() redis.UniversalClient {
			rdb := redis.NewClient(opt)
			t.Cleanup(func() { rdb.Close() })
			return rdb
		}
		st.asynqOpt = asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB}
	}
	st.rdb = st.newClient()
	// As the binary does: asynq's own clients get the hook that works around its syncer bug.
	st.asynqOpt = AsynqConnOpt(st.asynqOpt)
	st.store = registrytest.Store(t, st.rdb)
	st.setShards(t, st.shards)
	tn, err := st.store.CreateTenant(t.Context(), "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	st.tid = tn.ID
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cert.Close()
	st.client = newTestClient(t, cert, loopback)
	return st
}

// newWorker builds a worker on the stack without running it. A zero field of cfg gets the
// stack's setting: its store, client and Redis client, a fast retry schedule (50ms, doubling, at most
// 400ms), a 2s attempt timeout and a concurrency of 8; the rest are the worker's defaults.
func (st *stack) newWorker(t *testing.T, cfg WorkerConfig) *Worker {
	t.Helper()
	cfg.Redis, cfg.Enqueuer = st.asynqOpt, NewEnqueuer(st.rdb)
	if cfg.RedisClient == nil {
		cfg.RedisClient = st.rdb
	}
	if cfg.Store == nil {
		cfg.Store = st.store
	}
	if cfg.Client == nil {
		cfg.Client = st.client
	}
	p := &cfg.Policy
	p.InitialInterval = cmp.Or(p.InitialInterval, 50*time.Millisecond)
	p.Multiplier = cmp.Or(p.Multiplier, 2)
	p.MaxInterval = cmp.Or(p.MaxInterval, 400*time.Millisecond)
	cfg.AttemptTimeout = cmp.Or(cfg.AttemptTimeout, 2*time.Second)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 8)
	cfg.QueueShards = cmp.Or(cfg.QueueShards, st.shards)
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// worker runs a worker on the stack (see newWorker) until the test ends. stop cancels Run's
// context, as a shutdown does, and returns what Run returned.
func (st *stack) worker(t *testing.T, cfg WorkerConfig) (stop func() error) {
	t.Helper()
	w := st.newWorker(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Worker.Run: %v", err)
		}
	})
	return stop
}

// receiver starts a receiver that answers with respond and registers it for events.
func (st *stack) receiver(t *testing.T, respond deliverytest.Responder, events ...string) (*deliverytest.Receiver, *registry.Endpoint) {
	t.Helper()
	rc := deliverytest.NewReceiver(t, respond)
	return rc, st.endpoint(t, rc.URL, events...)
}

// slowOK answers 200 after delay (or gives up when the request ends): each attempt keeps its
// place in its drain that long.
func slowOK(delay time.Duration) deliverytest.Responder {
	return func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
}

// endpoint registers url for events, with a real signing secret.
func (st *stack) endpoint(t *testing.T, url string, events ...string) *registry.Endpoint {
	t.Helper()
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := st.store.CreateEndpoint(t.Context(), st.tid, registry.NewEndpoint{URL: url, Events: events,
		Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// scanData is a valid event payload with a fresh scan id.
func scanData() map[string]any {
	return map[string]any{"scanId": uuid.NewString(), "scanType": "zap"}
}

// publish publishes an event of type typ with data (fresh scan data when nil).
func (st *stack) publish(t *testing.T, typ string, data map[string]any) *Published {
	t.Helper()
	if data == nil {
		data = scanData()
	}
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.svc.Publish(t.Context(), PublishRequest{TenantID: st.tid, Type: typ, Data: raw})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return p
}

// endpointNow reads endpoint eid.
func (st *stack) endpointNow(t *testing.T, eid string) *registry.Endpoint {
	t.Helper()
	e, err := st.store.Endpoint(t.Context(), st.tid, eid)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// delivery reads the delivery of event evid to endpoint eid with its attempts; nil when it
// does not exist (yet).
func (st *stack) delivery(t *testing.T, eid, evid string) *registry.Delivery {
	t.Helper()
	d, err := st.store.Delivery(t.Context(), st.tid, eid, registry.DeliveryID(evid, eid), true)
	if registry.CodeOf(err) == registry.CodeDeliveryNotFound {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitStatus waits until the delivery of event evid to endpoint eid has status, and returns it.
func (st *stack) waitStatus(t *testing.T, eid, evid, status string) *registry.Delivery {
	t.Helper()
	var d *registry.Delivery
	eventually(t, "delivery of "+evid+" to be "+status, func() bool {
		d = st.delivery(t, eid, evid)
		return d != nil && d.Status == status
	})
	return d
}

// drained reports whether the task queue has nothing left to run: no pending, active,
// scheduled or retry task (and none archived, which webhookd never does on purpose).
func (st *stack) drained(t *testing.T) bool {
	t.Helper()
	info, err := Backlog(st.rdb)
	if err != nil {
		t.Fatalf("queue info: %v", err)
	}
	if info.Archived > 0 {
		t.Fatalf("asynq archived %d task(s)", info.Archived)
	}
	return info.Pending+info.Active+info.Scheduled+info.Retry == 0
}

// queue is the queue of the tasks keyed by key (an endpoint id for its drains and retries).
func (st *stack) queue(key string) string { return NewShards(st.shards).Of(key) }

func (st *stack) waitDrained(t *testing.T) {
	t.Helper()
	eventually(t, "the queues to drain", func() bool { return st.drained(t) })
}

// deliveredOnce waits until every event reached endpoint eid (served by rc) and was recorded
// as succeeded after one attempt, and the queues are idle; then checks that the receiver got
// each exactly once and nothing else.
func (st *stack) deliveredOnce(t *testing.T, rc *deliverytest.Receiver, eid string, evids ...string) {
	t.Helper()
	want := map[string]int{}
	for _, id := range evids {
		want[id] = 1
		if d := st.waitStatus(t, eid, id, registry.DeliverySucceeded); d.AttemptCount != 1 {
			t.Errorf("delivery of %s has %d attempts, want 1", id, d.AttemptCount)
		}
	}
	st.waitDrained(t)
	got := rc.IDCounts()
	for id, n := range got {
		if want[id] != n {
			t.Errorf("event %s reached the receiver %d times, want %d", id, n, want[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("the receiver got %d distinct events, want %d", len(got), len(want))
	}
}

// logBuffer collects a worker's JSON log lines (slog.NewJSONHandler), for tests that read it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the log lines with message msg, decoded.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %s: %v", sc.Bytes(), err)
		}
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}
