package registry_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/google/uuid"
)

// Benchmarks of the registry's hot paths, on the real redis-server only: each request
// authenticates (LookupAPIKey), each publish runs one script (PublishEvent), and each delivery
// attempt reads once (LoadAttempt) and writes once (RecordAttempt).

type benchEnv struct {
	store *registry.Store
	tid   string
	eid   string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	s := registrytest.Store(b, registrytest.Client(b))
	tn, err := s.CreateTenant(b.Context(), "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	ep, err := s.CreateEndpoint(b.Context(), tn.ID, registry.NewEndpoint{URL: "https://hooks.example.test/bench",
		Events: []string{registry.EventScanCompleted}, Secret: newSecret(b)})
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{store: s, tid: tn.ID, eid: ep.ID}
}

// delivery publishes one event and fans it out to the endpoint.
func (be *benchEnv) delivery(b *testing.B) (registry.Queued, string) {
	b.Helper()
	id := "evt_bench_" + uuid.NewString()
	st, err := be.store.PublishEvent(b.Context(), be.tid, registry.NewEvent{ID: id, Type: registry.EventScanCompleted,
		CreatedAt: time.Now(), Body: eventBody(id, registry.EventScanCompleted)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := be.store.CreateDeliveries(b.Context(), st.Event, []string{be.eid}); err != nil {
		b.Fatalf("CreateDeliveries: %v", err)
	}
	return registry.Queued{DeliveryID: registry.DeliveryID(id, be.eid), EndpointID: be.eid}, id
}

func BenchmarkLookupAPIKey(b *testing.B) {
	be := newBenchEnv(b)
	_, plain, err := be.store.CreateAPIKey(b.Context(), registry.NewKeyParams{TenantID: be.tid, Scopes: registry.Scopes})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := be.store.LookupAPIKey(b.Context(), plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishEvent(b *testing.B) {
	be := newBenchEnv(b)
	body := eventBody("evt_bench", registry.EventScanCompleted)
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		_, err := be.store.PublishEvent(b.Context(), be.tid, registry.NewEvent{ID: "evt_bench_" + strconv.Itoa(i),
			Type: registry.EventScanCompleted, CreatedAt: now, Body: body, IdempotencyKey: "idem-" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordAttempt(b *testing.B) {
	be := newBenchEnv(b)
	q, _ := be.delivery(b)
	now := time.Now()
	rec := registry.AttemptRecord{TenantID: be.tid, Queued: q, Outcome: registry.OutcomeFailure,
		NextAttemptAt: now.Add(time.Minute), DisableAfter: 1 << 30, MaxAttempts: 1 << 30,
		Attempt: registry.Attempt{Number: 1, StartedAt: now, DurationMs: 42, StatusCode: 500, ResponseBody: "busy"}}
	for b.Loop() {
		if _, err := be.store.RecordAttempt(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadAttempt(b *testing.B) {
	be := newBenchEnv(b)
	q, evid := be.delivery(b)
	for b.Loop() {
		ac, err := be.store.LoadAttempt(b.Context(), be.tid, q, evid)
		if err != nil || ac.Delivery == nil || ac.Endpoint == nil || ac.Event == nil {
			b.Fatalf("LoadAttempt = %+v, %v", ac, err)
		}
	}
}
