package registry_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { registrytest.Main(m) }

// start is the injected clock's first reading: a fixed instant so periods and orderings are known.
var start = time.Date(2031, time.March, 14, 9, 0, 0, 0, time.UTC)

// fakeClock is the store's injected clock; tests move it by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// env is one store on one backend with an injected clock.
type env struct {
	rdb   redis.UniversalClient
	store *registry.Store
	clock *fakeClock
}

func newEnv(tb testing.TB, rdb redis.UniversalClient, cfg registry.Config) *env {
	tb.Helper()
	clk := &fakeClock{now: start}
	cfg.Client, cfg.Now = rdb, clk.Now
	s, err := registry.New(cfg)
	if err != nil {
		tb.Fatalf("registry.New: %v", err)
	}
	return &env{rdb: rdb, store: s, clock: clk}
}

// eachBackend runs test against the real redis-server and the embedded Redis, each with a
// fresh database and a store built from cfg.
// Unless a test asks for it, events are stored without inline fan-out, so that tests create
// deliveries explicitly with CreateDeliveries; inline_test.go covers the inline path.
func eachBackend(t *testing.T, cfg registry.Config, test func(t *testing.T, e *env)) {
	t.Helper()
	if cfg.InlineFanout == 0 {
		cfg.InlineFanout = -1
	}
	for _, b := range registrytest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			test(t, newEnv(t, b.Client(t), cfg))
		})
	}
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, err error, code registry.Code) {
	t.Helper()
	if !errors.Is(err, registry.E(code)) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func (e *env) tenant(t *testing.T, quota int64) *registry.Tenant {
	t.Helper()
	tn, err := e.store.CreateTenant(t.Context(), "Acme "+uuid.NewString()[:8], quota)
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return tn
}

func newSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// endpoint registers an endpoint subscribed to events (scan.completed when none are given).
func (e *env) endpoint(t *testing.T, tid string, events ...string) *registry.Endpoint {
	t.Helper()
	if len(events) == 0 {
		events = []string{registry.EventScanCompleted}
	}
	ep, err := e.store.CreateEndpoint(t.Context(), tid, registry.NewEndpoint{
		URL: "https://hooks.example.test/" + uuid.NewString(), Events: events, Secret: newSecret(t)})
	if err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	return ep
}

func eventBody(id, typ string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"timestamp":"2026-12-07T03:10:00.123456789Z","data":{"scanId":"%s","scanType":"zap"}}`,
		id, typ, uuid.NewString())
}

// publish stores a new event of type typ created now.
func (e *env) publish(t *testing.T, tid, typ string) *registry.Event {
	t.Helper()
	id := newEventID()
	st, err := e.store.PublishEvent(t.Context(), tid, registry.NewEvent{
		ID: id, Type: typ, CreatedAt: e.clock.Now(), Body: eventBody(id, typ)})
	if err != nil {
		t.Fatalf("PublishEvent: %v", err)
	}
	return st.Event
}

// queued names one delivery run in the tests: its id, endpoint and generation.
type queued struct {
	DeliveryID string
	EndpointID string
	Generation int
}

// fanout creates the deliveries of ev to endpoints and returns those now queued.
func (e *env) fanout(t *testing.T, ev *registry.Event, endpointIDs ...string) []queued {
	t.Helper()
	if _, err := e.store.CreateDeliveries(t.Context(), ev, endpointIDs); err != nil {
		t.Fatalf("CreateDeliveries: %v", err)
	}
	if len(endpointIDs) == 0 {
		eps, _, err := e.store.ListEndpoints(t.Context(), ev.TenantID, "", registry.Page{Page: 1, Limit: 100})
		if err != nil {
			t.Fatalf("ListEndpoints: %v", err)
		}
		for _, ep := range eps {
			endpointIDs = append(endpointIDs, ep.ID)
		}
	}
	var qs []queued
	for _, eid := range endpointIDs {
		did := registry.DeliveryID(ev.ID, eid)
		if it, ok, _ := e.store.QueuedItem(t.Context(), ev.TenantID, eid, did); ok {
			qs = append(qs, queued{DeliveryID: did, EndpointID: eid, Generation: it.Generation})
		}
	}
	return qs
}

// deliver publishes one scan.completed event and fans it out to one endpoint.
func (e *env) deliver(t *testing.T, tid, eid string) queued {
	t.Helper()
	qs := e.fanout(t, e.publish(t, tid, registry.EventScanCompleted), eid)
	if len(qs) != 1 {
		t.Fatalf("CreateDeliveries queued %d, want 1", len(qs))
	}
	return qs[0]
}

// policy is the worker configuration an attempt is judged by.
type policy struct {
	disableAfter int
	window       time.Duration
	maxAttempts  int
}

var lenient = policy{disableAfter: 1000, maxAttempts: 1000}

func (p policy) streak() registry.StreakRule {
	return registry.StreakRule{Threshold: p.disableAfter, MinWindow: p.window}
}

// recorded is what recording one attempt did to its delivery and endpoint.
type recorded struct {
	Status   string
	Disabled bool
}

// attemptRec is one finished attempt of a delivery run and the policy that judges it.
type attemptRec struct {
	TenantID      string
	Queued        queued
	Outcome       registry.AttemptOutcome
	Attempt       registry.Attempt
	NextAttemptAt time.Time
	Policy        policy
}

// attempt records an attempt of q that ends at the clock's reading, with the next attempt a
// minute later, as a worker would (recordAttempt).
func (e *env) attempt(t *testing.T, tid string, q queued, out registry.AttemptOutcome, p policy) recorded {
	t.Helper()
	return e.recordAttempt(t, e.record(tid, q, out, p))
}

// recordAttempt records rec as a worker would, failing the test on an error.
func (e *env) recordAttempt(t *testing.T, rec attemptRec) recorded {
	t.Helper()
	r, err := e.tryRecord(t.Context(), rec)
	if err != nil {
		t.Fatalf("record %s: %v", rec.Outcome, err)
	}
	return r
}

// tryRecord records rec as a worker would (registrytest.Record).
func (e *env) tryRecord(ctx context.Context, rec attemptRec) (recorded, error) {
	q := rec.Queued
	st, disabled, err := registrytest.Record(ctx, e.store, registrytest.Attempt{TenantID: rec.TenantID,
		EndpointID: q.EndpointID, DeliveryID: q.DeliveryID, Generation: q.Generation, Outcome: rec.Outcome,
		Attempt: rec.Attempt, NextAttemptAt: rec.NextAttemptAt, MaxAttempts: rec.Policy.maxAttempts,
		Streak: rec.Policy.streak()})
	return recorded{Status: st, Disabled: disabled != ""}, err
}

func (e *env) record(tid string, q queued, out registry.AttemptOutcome, p policy) attemptRec {
	end := e.clock.Now()
	code := map[registry.AttemptOutcome]int{registry.OutcomeSuccess: 200, registry.OutcomeFailure: 500,
		registry.OutcomeGone: 410, registry.OutcomeThrottled: 429}[out]
	return attemptRec{TenantID: tid, Queued: q, Outcome: out, NextAttemptAt: end.Add(time.Minute), Policy: p,
		Attempt: registry.Attempt{StartedAt: end.Add(-250 * time.Millisecond), DurationMs: 250, StatusCode: code}}
}

// run is q's current run: its generation as the delivery's record has it.
func (e *env) run(t *testing.T, tid string, q queued) queued {
	t.Helper()
	q.Generation = e.delivery(t, tid, q).Generation
	return q
}

func (e *env) delivery(t *testing.T, tid string, q queued) *registry.Delivery {
	t.Helper()
	d, err := e.store.Delivery(t.Context(), tid, q.EndpointID, q.DeliveryID, false)
	if err != nil {
		t.Fatalf("Delivery(%s): %v", q.DeliveryID, err)
	}
	return d
}

func (e *env) getEndpoint(t *testing.T, tid, eid string) *registry.Endpoint {
	t.Helper()
	ep, err := e.store.Endpoint(t.Context(), tid, eid)
	if err != nil {
		t.Fatalf("Endpoint(%s): %v", eid, err)
	}
	return ep
}

// dumpDB reads every key of the database with its type's contents (registrytest.Dump).
func dumpDB(t *testing.T, rdb redis.UniversalClient) map[string][]string {
	t.Helper()
	return registrytest.Dump(t, rdb)
}

func ids(qs []queued) map[string]queued {
	m := make(map[string]queued, len(qs))
	for _, q := range qs {
		m[q.DeliveryID] = q
	}
	return m
}

// retract withdraws one published event as a failed enqueue does (Store.RetractEvents).
func (e *env) retract(ctx context.Context, tid, idemKey string, st *registry.Stored) (bool, error) {
	return e.store.RetractEvents(ctx, tid, idemKey, &registry.StoredBatch{Events: []*registry.Stored{st}, Drains: st.Drains})
}

// newEventID is an event id as webhookd makes them: "evt_" and a UUIDv7 in hex.
func newEventID() string {
	return "evt_" + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}
