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

// delivery publishes one event, fans it out to the endpoint and fails its first attempt.
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
	// A failed first attempt, as the endpoint's drain records it, leaves it retrying: what a
	// retry task reads and records.
	q := registry.Queued{DeliveryID: registry.DeliveryID(id, be.eid), EndpointID: be.eid}
	r, err := be.store.RecordAny(b.Context(), registry.AttemptRecord{TenantID: be.tid, Queued: q,
		Outcome: registry.OutcomeFailure, NextAttemptAt: time.Now().Add(time.Minute), DisableAfter: 1 << 30,
		MaxAttempts: 1 << 30, Attempt: registry.Attempt{Number: 1, StartedAt: time.Now(), StatusCode: 500}})
	if err != nil || r.Status != registry.DeliveryRetrying {
		b.Fatalf("first attempt = %+v, %v; want retrying", r, err)
	}
	return q, id
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

// BenchmarkDrainBatch is a drain's Redis work for a batch of 8 queued deliveries: one Take
// (with the event bodies and the endpoint) and one Finish recording 8 successes. One op is 8
// deliveries.
func BenchmarkDrainBatch(b *testing.B) {
	be := newBenchEnv(b)
	const batch = 8
	now := time.Now()
	body := eventBody("evt_bench", registry.EventScanCompleted)
	var n int64 = -1
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range batch {
			st, err := be.store.PublishEvent(b.Context(), be.tid, registry.NewEvent{
				ID: "evt_bench_" + strconv.Itoa(i) + "_" + strconv.Itoa(j), Type: registry.EventScanCompleted,
				CreatedAt: now, Body: body})
			if err != nil {
				b.Fatal(err)
			}
			if n < 0 && len(st.Drains) == 1 {
				n = st.Drains[0].N
			}
		}
		b.StartTimer()
		items, _, err := be.store.Take(b.Context(), registry.TakeRequest{TenantID: be.tid, EndpointID: be.eid, N: n,
			Limit: batch})
		if err != nil || len(items) != batch {
			b.Fatalf("Take = %d items, %v", len(items), err)
		}
		req := registry.FinishRequest{TenantID: be.tid, EndpointID: be.eid, DisableAfter: 1 << 30, MaxAttempts: 10}
		for _, it := range items {
			req.Sent = append(req.Sent, registry.Sent{Item: it, Outcome: registry.OutcomeSuccess,
				Attempt: &registry.Attempt{Number: 1, StartedAt: now, DurationMs: 3, StatusCode: 200}})
		}
		if _, err := be.store.Finish(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
