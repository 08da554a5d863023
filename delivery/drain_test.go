package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/cert-ix/webhookd/signing"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// drainEnv is a real Redis, registry and service, one endpoint on a TLS receiver that answers
// 200 after delay, and workers started on demand.
type drainEnv struct {
	store *registry.Store
	rdb   *redis.Client
	addr  string
	svc   *Service
	srv   *httptest.Server
	tid   string
	eid   string
	mu    sync.Mutex
	got   map[string]int // POSTs by webhook-id
}

func newDrainEnv(t *testing.T, delay time.Duration) *drainEnv {
	t.Helper()
	e := &drainEnv{got: map[string]int{}}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		e.mu.Lock()
		e.got[r.Header.Get("webhook-id")]++
		e.mu.Unlock()
	}))
	t.Cleanup(e.srv.Close)
	rsrv := registrytest.StartServer(t)
	e.addr = rsrv.Addr
	e.rdb = redis.NewClient(&redis.Options{Addr: rsrv.Addr})
	t.Cleanup(func() { e.rdb.Close() })
	e.store = registrytest.Store(t, e.rdb)
	ctx := t.Context()
	tn, err := e.store.CreateTenant(ctx, "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := e.store.CreateEndpoint(ctx, tn.ID, registry.NewEndpoint{URL: e.srv.URL + "/hook",
		Events: []string{registry.EventScanCompleted}, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e.tid, e.eid = tn.ID, ep.ID
	e.svc, err = NewService(ServiceConfig{Store: e.store, Enqueuer: asynq.NewClientFromRedisClient(e.rdb),
		Policy: RetryPolicy{MaxAttempts: 3, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// worker starts a worker with cfg's Concurrency and DrainBudget; stop cancels it and waits
// for Run to return.
func (e *drainEnv) worker(t *testing.T, cfg WorkerConfig) (stop func()) {
	t.Helper()
	cfg.Redis, cfg.RedisClient, cfg.Store = asynq.RedisClientOpt{Addr: e.addr}, e.rdb, e.store
	cfg.Enqueuer, cfg.Client = asynq.NewClientFromRedisClient(e.rdb), newTestClient(t, e.srv, loopback)
	cfg.Policy = RetryPolicy{MaxAttempts: 3, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (e *drainEnv) publish(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		p, err := e.svc.Publish(t.Context(), PublishRequest{TenantID: e.tid, Type: registry.EventScanCompleted,
			Data: json.RawMessage(fmt.Sprintf(`{"scanId":"s-%d","scanType":"zap"}`, i))})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = p.ID
	}
	return ids
}

// drains is how many drains the endpoint has had (the number of the last one).
func (e *drainEnv) drains(t *testing.T) int {
	t.Helper()
	n, err := e.rdb.Get(t.Context(), "wh:{t:"+e.tid+"}:ep:"+e.eid+":drain:n").Int()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// deliveredOnce waits until every event reached the receiver and was recorded as succeeded,
// then checks that none was sent twice.
func (e *drainEnv) deliveredOnce(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, id := range ids {
		for {
			d, err := e.store.Delivery(t.Context(), e.tid, e.eid, registry.DeliveryID(id, e.eid), false)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status == registry.DeliverySucceeded {
				if d.AttemptCount != 1 {
					t.Errorf("delivery of %s has %d attempts, want 1", id, d.AttemptCount)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery of %s still %s after a minute", id, d.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		if e.got[id] != 1 {
			t.Errorf("event %s reached the receiver %d times, want once", id, e.got[id])
		}
	}
}

// A drain that outlasts its budget hands the queue to a successor task: the endpoint's
// deliveries are worked by several drains in turn, each once.
func TestDrainHandsOffAfterBudget(t *testing.T) {
	t.Parallel()
	e := newDrainEnv(t, 20*time.Millisecond)
	ids := e.publish(t, 60) // 60 × 20 ms over 2 at a time: about 600 ms of work
	e.worker(t, WorkerConfig{Concurrency: 4, EndpointConcurrency: 2, DrainBudget: 100 * time.Millisecond})
	e.deliveredOnce(t, ids)
	if n := e.drains(t); n < 3 {
		t.Errorf("the queue was worked by %d drain(s), want a handoff every 100 ms", n)
	}
}

// A worker that stops in the middle of a queue finishes and records what it sent, then hands
// the rest to a successor task, which another worker runs: nothing lost, nothing sent twice.
func TestDrainHandsOffOnShutdown(t *testing.T) {
	t.Parallel()
	e := newDrainEnv(t, 20*time.Millisecond)
	ids := e.publish(t, 60)
	stop := e.worker(t, WorkerConfig{Concurrency: 2})
	deadline := time.Now().Add(time.Minute)
	for {
		e.mu.Lock()
		n := len(e.got)
		e.mu.Unlock()
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first worker delivered nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	e.mu.Lock()
	sent := len(e.got)
	e.mu.Unlock()
	if sent == len(ids) {
		t.Fatalf("the stopping worker sent all %d deliveries; want it to stop taking them", sent)
	}
	before := e.drains(t)
	e.worker(t, WorkerConfig{Concurrency: 2})
	e.deliveredOnce(t, ids)
	if after := e.drains(t); after != before {
		t.Errorf("drains: %d at shutdown, %d at the end; want the successor queued at shutdown to finish", before, after)
	}
}
