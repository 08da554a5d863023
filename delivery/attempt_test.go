package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/cert-ix/webhookd/signing"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// faultStore is the real registry with injected outages: the next loadFaults calls that read
// an attempt's delivery (LoadAttempt of a retry task, Take of a drain) and recordFaults calls
// that record attempts (RecordAttempt, Finish) answer SERVICE_UNAVAILABLE, as the registry
// does when Redis cannot be reached, without touching Redis.
type faultStore struct {
	*registry.Store
	loadFaults, recordFaults atomic.Int32
	injected                 atomic.Int32
}

func outage(op string) error {
	return registry.Wrap(registry.CodeServiceUnavailable, errors.Join(errors.New(op), syscall.ECONNREFUSED))
}

func (s *faultStore) LoadAttempt(ctx context.Context, tid string, q registry.Queued, evid string) (registry.AttemptContext, error) {
	if s.loadFaults.Add(-1) >= 0 {
		s.injected.Add(1)
		return registry.AttemptContext{}, outage("load attempt")
	}
	return s.Store.LoadAttempt(ctx, tid, q, evid)
}

func (s *faultStore) Take(ctx context.Context, r registry.TakeRequest) ([]registry.QueueItem, *registry.Endpoint, error) {
	if r.Limit > 0 && s.loadFaults.Add(-1) >= 0 {
		s.injected.Add(1)
		return nil, nil, outage("take")
	}
	return s.Store.Take(ctx, r)
}

func (s *faultStore) Finish(ctx context.Context, r registry.FinishRequest) (registry.Finished, error) {
	if s.recordFaults.Add(-1) >= 0 {
		s.injected.Add(1)
		return registry.Finished{}, outage("finish")
	}
	return s.Store.Finish(ctx, r)
}

func (s *faultStore) RecordAttempt(ctx context.Context, r registry.AttemptRecord) (registry.Recorded, error) {
	if s.recordFaults.Add(-1) >= 0 {
		s.injected.Add(1)
		return registry.Recorded{}, outage("record attempt")
	}
	return s.Store.RecordAttempt(ctx, r)
}

// TestOutageDoesNotSpendAttempts runs a real worker on a real Redis whose registry calls fail
// as in an outage, with a budget of one attempt per delivery and endpoints disabled after one
// failure: the outage must neither end the run (asynq archiving the task with the delivery
// still retrying) nor count as a failed attempt, so the delivery succeeds once Redis answers.
func TestOutageDoesNotSpendAttempts(t *testing.T) {
	tests := []struct {
		name                    string
		loadFaults, recordFault int32
		wantPOSTs               int
	}{
		{"loading the attempt", 2, 0, 1},
		// The drain keeps the outcome and records it once Redis answers: the POST is not
		// made again.
		{"recording the attempt", 0, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var ids []string
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ids = append(ids, r.Header.Get("webhook-id"))
				mu.Unlock()
			}))
			t.Cleanup(srv.Close)

			rsrv := registrytest.StartServer(t)
			c := redis.NewClient(&redis.Options{Addr: rsrv.Addr})
			t.Cleanup(func() { c.Close() })
			store := &faultStore{Store: registrytest.Store(t, c)}
			store.loadFaults.Store(tt.loadFaults)
			store.recordFaults.Store(tt.recordFault)
			ctx := t.Context()
			tn, err := store.CreateTenant(ctx, "acme", 0)
			if err != nil {
				t.Fatal(err)
			}
			secret, err := signing.NewSecret()
			if err != nil {
				t.Fatal(err)
			}
			ep, err := store.CreateEndpoint(ctx, tn.ID, registry.NewEndpoint{URL: srv.URL + "/hook",
				Events: []string{registry.EventScanCompleted}, Secret: secret})
			if err != nil {
				t.Fatal(err)
			}

			enq := asynq.NewClientFromRedisClient(c)
			policy := RetryPolicy{MaxAttempts: 1, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
			svc, err := NewService(ServiceConfig{Store: store, Enqueuer: enq, Policy: policy})
			if err != nil {
				t.Fatal(err)
			}
			w, err := NewWorker(WorkerConfig{Redis: asynq.RedisClientOpt{Addr: rsrv.Addr}, RedisClient: c,
				Store: store, Enqueuer: enq, Client: newTestClient(t, srv, loopback), Policy: policy,
				DisableAfter: 1, DisableMinWindow: -1, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			wctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(wctx) }()
			t.Cleanup(func() { stop(); <-done })

			pub, err := svc.Publish(ctx, PublishRequest{TenantID: tn.ID, Type: registry.EventScanCompleted,
				Data: json.RawMessage(`{"scanId":"s-1","scanType":"zap"}`)})
			if err != nil {
				t.Fatal(err)
			}
			did := registry.DeliveryID(pub.ID, ep.ID)
			ins := asynq.NewInspectorFromRedisClient(c)
			deadline := time.Now().Add(time.Minute)
			for {
				d, err := store.Store.Delivery(ctx, tn.ID, ep.ID, did, true)
				if err != nil {
					t.Fatal(err)
				}
				if d.Status == registry.DeliverySucceeded {
					if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusOK {
						t.Errorf("attempts = %+v, want the one successful attempt", d.Attempts)
					}
					break
				}
				if d.Status == registry.DeliveryFailed {
					t.Fatalf("delivery failed after the outage: %+v", d.Attempts)
				}
				if info, err := ins.GetQueueInfo(Queue); err == nil && info.Archived > 0 {
					t.Fatalf("asynq archived the task during the outage; the delivery is left %s", d.Status)
				}
				if time.Now().After(deadline) {
					t.Fatalf("delivery still %s a minute after the outage", d.Status)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got, want := store.injected.Load(), tt.loadFaults+tt.recordFault; got != want {
				t.Errorf("%d outage errors injected, want %d: the test did not exercise the outage", got, want)
			}
			mu.Lock()
			got := append([]string(nil), ids...)
			mu.Unlock()
			if len(got) != tt.wantPOSTs {
				t.Errorf("receiver got %d POSTs, want %d", len(got), tt.wantPOSTs)
			}
			for _, id := range got {
				if id != pub.ID {
					t.Errorf("webhook-id %q, want the event id %q", id, pub.ID)
				}
			}
			e, err := store.Endpoint(ctx, tn.ID, ep.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !e.Enabled || e.ConsecutiveFailures != 0 {
				t.Errorf("endpoint enabled=%t consecutiveFailures=%d after the outage, want enabled with 0",
					e.Enabled, e.ConsecutiveFailures)
			}
		})
	}
}
