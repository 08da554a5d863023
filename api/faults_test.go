package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// goErrorText is what no response body may contain: Go error strings and stack traces.
var goErrorText = []string{"redis:", "dial tcp", "panic", ".go:", "goroutine", "boom", "runtime", "connection refused",
	"WRONGTYPE", "asynq", "enqueue"}

func assertNoGoText(t *testing.T, r *response) {
	t.Helper()
	for _, s := range goErrorText {
		if strings.Contains(strings.ToLower(string(r.body)), strings.ToLower(s)) {
			t.Errorf("response body contains %q: %s", s, r.body)
		}
	}
}

// faultyRegistry is the real store with ListEndpoints failing with err, as a broken Redis
// command would; with err nil it passes through.
type faultyRegistry struct {
	*registry.Store
	err error
}

func (f *faultyRegistry) ListEndpoints(ctx context.Context, tid, status string, pg registry.Page) ([]*registry.Endpoint, int, error) {
	if f.err == nil {
		return f.Store.ListEndpoints(ctx, tid, status, pg)
	}
	return nil, 0, f.err
}

var _ api.Registry = (*faultyRegistry)(nil)

// failingEnqueuer is the real asynq client, failing with a driver-like error while fail is set.
type failingEnqueuer struct {
	next delivery.Enqueuer
	fail atomic.Bool
}

func (f *failingEnqueuer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if f.fail.Load() {
		return nil, errors.New("redis: dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	return f.next.EnqueueContext(ctx, t, opts...)
}

// panicRoute mounts GET /boom, which panics with a Go-looking message.
func panicRoute(e *echo.Echo) {
	e.GET("/boom", func(echo.Context) error { panic("boom: runtime error at handler.go:42") })
}

func TestInternalErrorFromPanic(t *testing.T) {
	e := newEnv(t, withConfig(func(c *api.Config) { c.Extra = panicRoute }))
	r := e.do(t, http.MethodGet, "/boom", "", nil, "X-Request-ID", "req-p1")
	assertError(t, r, http.StatusInternalServerError, "INTERNAL_ERROR", "An internal server error occurred")
	assertNoGoText(t, r)
	logs := e.logs.String()
	if !strings.Contains(logs, "req-p1") || !strings.Contains(logs, "boom: runtime error") {
		t.Errorf("the panic is not logged in full with its request id:\n%s", logs)
	}
	// The server survives: the next request is served.
	data(t, e.do(t, http.MethodGet, "/healthz", "", nil), http.StatusOK)
}

func TestUnknownErrorIsInternal(t *testing.T) {
	cause := errors.New("redis: WRONGTYPE Operation against a key holding the wrong kind of value (boom)")
	e := newEnv(t, withRegistry(func(s *registry.Store) api.Registry { return &faultyRegistry{Store: s, err: cause} }))
	key, _ := e.newKey(t)
	r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil)
	assertError(t, r, http.StatusInternalServerError, "INTERNAL_ERROR", "An internal server error occurred")
	assertNoGoText(t, r)
	if !strings.Contains(e.logs.String(), "WRONGTYPE") {
		t.Errorf("the unknown error is not logged:\n%s", e.logs.String())
	}
}

func TestDatabaseError(t *testing.T) {
	e := newEnv(t, withRegistry(func(s *registry.Store) api.Registry {
		return &faultyRegistry{Store: s, err: registry.Wrap(registry.CodeDatabase, errors.New("boom"))}
	}))
	key, _ := e.newKey(t)
	r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil, "X-Request-ID", "db-req-1")
	assertError(t, r, http.StatusInternalServerError, "DATABASE_ERROR", "Database operation failed")
	assertNoGoText(t, r)
	assertRateHeaders(t, r)
	if logs := e.logs.String(); !strings.Contains(logs, "boom") || !strings.Contains(logs, "db-req-1") {
		t.Errorf("the cause is not logged with the request id:\n%s", logs)
	}
	// Other operations of the same store still work.
	data(t, e.do(t, http.MethodGet, "/api/v1/usage", key, nil), http.StatusOK)
}

func TestServiceUnavailable(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: deliverytest.ClosedAddr(t), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { down.Close() })
	closed := registrytest.Client(t)
	tests := []struct {
		name   string
		client redis.UniversalClient
	}{
		{"redis on a closed port", down},
		{"closed client", closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withRedis(tt.client), withConfig(func(c *api.Config) { c.UnavailableRetryAfter = 7 }))
			key := registry.KeyPrefix + strings.Repeat("a", 48)
			if tt.client == closed {
				key, _ = e.newKey(t)
				closed.Close()
			}
			for _, req := range []struct{ method, path, key string }{
				{"GET", "/api/v1/webhooks", key},
				{"POST", "/api/v1/events", key},
				{"GET", "/readyz", ""},
			} {
				r := e.do(t, req.method, req.path, req.key, map[string]any{})
				assertError(t, r, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "Service temporarily unavailable")
				if got := r.header.Get("Retry-After"); got != "7" {
					t.Errorf("%s %s: Retry-After = %q, want 7", req.method, req.path, got)
				}
				assertNoGoText(t, r)
			}
			data(t, e.do(t, http.MethodGet, "/healthz", "", nil), http.StatusOK)
		})
	}
}

func TestQueueError(t *testing.T) {
	var enq *failingEnqueuer
	e := newEnv(t, withEnqueuer(func(next delivery.Enqueuer) delivery.Enqueuer {
		enq = &failingEnqueuer{next: next}
		return enq
	}))
	key, _ := e.newKey(t)
	e.createWebhook(t, key)
	enq.fail.Store(true)
	r := e.publish(t, key, "scan.completed", "Idempotency-Key", "retry-me")
	assertError(t, r, http.StatusServiceUnavailable, "KAFKA_ERROR", "Message queue operation failed")
	assertNoGoText(t, r)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 KAFKA_ERROR has no Retry-After")
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0: the event was retracted", u["eventsPublished"])
	}
	enq.fail.Store(false)
	first := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "retry-me"), http.StatusAccepted)
	again := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "retry-me"), http.StatusOK)
	if again["id"] != first["id"] {
		t.Errorf("replay id = %v, want %v", again["id"], first["id"])
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(1) {
		t.Errorf("eventsPublished = %v, want 1", u["eventsPublished"])
	}
}
