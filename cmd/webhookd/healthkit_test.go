package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// healthThreshold is WEBHOOKD_DISABLE_AFTER_FAILURES in the health tests: degraded at 3
// failures, disabled at 6, with no minimum window.
const healthThreshold = 6

// healthEvents is how many scan events the failing endpoint gets before it is disabled.
const healthEvents = 8

// healthStack is an API process and two worker processes on one Redis, with a small disable
// threshold and a budget of attempts no delivery spends before its endpoint is disabled. The
// outbox sweeper, which publishes an operational event only when the process that recorded it
// died before publishing it (after a 30 s grace), does not run during a test: without a crash
// every event must come from the process that made the change.
func healthStack(t *testing.T, env map[string]string) (*stack, *service, string, string) {
	t.Helper()
	settings := map[string]string{"WEBHOOKD_DISABLE_AFTER_FAILURES": strconv.Itoa(healthThreshold),
		"WEBHOOKD_DISABLE_MIN_WINDOW": "0s", "WEBHOOKD_MAX_ATTEMPTS": "50", "WEBHOOKD_SWEEP_INTERVAL": "1h"}
	maps.Copy(settings, env)
	st := newStack(t, settings)
	api := st.start(t, "--role", "api")
	st.startProcess(t, "serve", "--role", "worker")
	st.startProcess(t, "serve", "--role", "worker")
	tid, key := st.tenant(t)
	return st, api, tid, key
}

// flakyReceiver answers 500 until it is made healthy, then 200; it counts the 2xx answers it
// gave per webhook-id (a receiver deduplicating by webhook-id) and the failures.
type flakyReceiver struct {
	*deliverytest.Receiver
	healthy atomic.Bool
	mu      sync.Mutex
	ok      map[string]int
	failed  int
}

func newFlakyReceiver(t *testing.T) *flakyReceiver {
	f := &flakyReceiver{ok: map[string]int{}}
	f.Receiver = deliverytest.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.healthy.Load() {
			f.failed++
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		f.ok[r.Header.Get("webhook-id")]++
	})
	return f
}

func (f *flakyReceiver) counts() (ok map[string]int, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.ok), f.failed
}

// opEvent is an operational event as a receiver got it.
type opEvent struct {
	ID   string         `json:"id"`
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
	hit  deliverytest.Hit
}

// opEvents returns the POSTs of type typ a receiver got, in arrival order.
func opEvents(t *testing.T, rc *deliverytest.Receiver, typ string) []opEvent {
	t.Helper()
	var out []opEvent
	for _, h := range rc.Hits() {
		var ev opEvent
		if err := json.Unmarshal(h.Body, &ev); err != nil {
			t.Fatalf("receiver got a body that is not JSON: %v: %s", err, h.Body)
		}
		if ev.Type == typ {
			ev.hit = h
			out = append(out, ev)
		}
	}
	return out
}

// healthPair is the tenant's two endpoints: failing (A, subscribed to scan.completed and to
// every operational type, so that it would get events about itself if they leaked) and
// watcher (B, subscribed to the operational types only).
type healthPair struct {
	st               *stack
	api              *service
	tid, key         string
	failing, watcher endpointView
	frc              *flakyReceiver
	wrc              *deliverytest.Receiver
	events           []string // the scan events published to A
}

func newHealthPair(t *testing.T, env map[string]string) *healthPair {
	t.Helper()
	p := &healthPair{frc: newFlakyReceiver(t), wrc: deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))}
	p.st, p.api, p.tid, p.key = healthStack(t, env)
	p.watcher = p.api.createEndpoint(t, p.key, p.wrc.URL, registry.OperationalEventTypes, nil)
	p.failing = p.api.createEndpoint(t, p.key, p.frc.URL,
		append([]string{registry.EventScanCompleted}, registry.OperationalEventTypes...), nil)
	return p
}

// publish publishes n scan events to the failing endpoint.
func (p *healthPair) publish(t *testing.T, n int) {
	t.Helper()
	for range n {
		p.events = append(p.events, p.api.publish(t, p.key, registry.EventScanCompleted, scanData()).ID)
	}
}

// disable publishes healthEvents scan events to the failing endpoint and waits until it is
// disabled, every event is held and the deliveries are at rest.
func (p *healthPair) disable(t *testing.T) {
	t.Helper()
	p.publish(t, healthEvents)
	p.waitStatus(t, registry.StatusDisabled)
	waitFor(t, patience, "every delivery to be held", func() bool {
		return p.api.countDeliveries(t, p.key, p.failing.ID, registry.DeliveryHeld) == healthEvents
	})
	p.waitDeliveriesAtRest(t)
}

func (p *healthPair) waitStatus(t *testing.T, status string) {
	t.Helper()
	waitFor(t, patience, "the failing endpoint to be "+status, func() bool {
		return p.api.endpoint(t, p.key, p.failing.ID).Status == status
	})
}

// quiet reports whether the task queue is idle and the tenant's outbox holds no work but, when
// ops is false, operational events not yet published.
func (p *healthPair) quiet(t *testing.T, ops bool) bool {
	t.Helper()
	due, err := p.st.store.DueOutbox(t.Context(), p.tid, time.Now().Add(24*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range due {
		if ops || w.Operational == "" {
			return false
		}
	}
	return p.st.drained(t)
}

// waitDeliveriesAtRest waits until no delivery work is left: no task, drain or retry timer
// (operational events not yet published aside: waitOps judges those).
func (p *healthPair) waitDeliveriesAtRest(t *testing.T) {
	t.Helper()
	waitFor(t, patience, "the queue and the outbox to empty", func() bool { return p.quiet(t, false) })
}

// waitOps waits until the watcher has at least want[type] events of each type and nothing is
// left to publish or deliver; it reports a failure (and returns) when that does not happen.
func (p *healthPair) waitOps(t *testing.T, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		arrived := true
		for typ, n := range want {
			arrived = arrived && len(opEvents(t, p.wrc, typ)) >= n
		}
		if arrived && p.quiet(t, true) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s the watcher has not got %v, or operational events are left unpublished", patience, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countDeliveries is the total of an endpoint's deliveries with status, from the list's pagination.
func (s *service) countDeliveries(tb testing.TB, key, eid, status string) int {
	tb.Helper()
	return s.total(tb, key, "/api/v1/webhooks/"+eid+"/deliveries?limit=1&status="+status)
}

// countEvents is the total of the tenant's events of typ in its event log.
func (s *service) countEvents(tb testing.TB, key, typ string) int {
	tb.Helper()
	return s.total(tb, key, "/api/v1/events?limit=1&type="+typ)
}

func (s *service) total(tb testing.TB, key, path string) int {
	tb.Helper()
	r := s.call(tb, key, http.MethodGet, path, nil)
	r.want(tb, http.StatusOK, nil)
	var env struct {
		Pagination struct {
			Total int `json:"total"`
		} `json:"pagination"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil {
		tb.Fatal(err)
	}
	return env.Pagination.Total
}

// statuses counts an endpoint's deliveries by every status.
func (s *service) statuses(tb testing.TB, key, eid string) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for _, st := range registry.DeliveryStatuses {
		if n := s.countDeliveries(tb, key, eid, st); n > 0 {
			out[st] = n
		}
	}
	return out
}

// checkOpEvent checks one operational event: signed with the watcher's secret, the contract's
// body, and data naming the endpoint it is about by id and URL host, with reason and the
// failure count (at least minFailures); extra are the fields delivery.exhausted adds.
func checkOpEvent(t *testing.T, ev opEvent, about, watcher endpointView, reason string, minFailures int,
	extra map[string]any) {
	t.Helper()
	deliverytest.CheckSigned(t, ev.hit, ev.ID, watcher.Secret)
	u, _ := url.Parse(about.URL)
	want := map[string]any{"webhookId": about.ID, "url": u.Hostname(), "reason": reason}
	maps.Copy(want, extra)
	got := maps.Clone(ev.Data)
	n, _ := got["consecutiveFailures"].(float64)
	delete(got, "consecutiveFailures")
	if int(n) < minFailures {
		t.Errorf("%s: consecutiveFailures = %v, want at least %d", ev.Type, n, minFailures)
	}
	if len(got) != len(want) {
		t.Errorf("%s data = %v, want exactly %v and consecutiveFailures", ev.Type, ev.Data, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s data.%s = %v, want %v", ev.Type, k, got[k], v)
		}
	}
	deliverytest.CheckBody(t, ev.hit.Body, ev.ID, ev.Type, ev.Data)
}

// onlyOnce fails unless the watcher got exactly want events of typ, each once (distinct
// webhook-ids), and returns them.
func (p *healthPair) onlyOnce(t *testing.T, typ string, want int) []opEvent {
	t.Helper()
	evs := opEvents(t, p.wrc, typ)
	ids := map[string]int{}
	for _, ev := range evs {
		ids[ev.ID]++
	}
	if len(evs) != want || len(ids) != want {
		t.Errorf("watcher got %d %s POSTs with %d distinct ids (%v), want %d, each once", len(evs), typ, len(ids), ids, want)
	}
	return evs
}

// noOpsAbout fails if the failing endpoint got any operational event (they are about it).
func (p *healthPair) noOpsAbout(t *testing.T) {
	t.Helper()
	for _, typ := range registry.OperationalEventTypes {
		if evs := opEvents(t, p.frc.Receiver, typ); len(evs) > 0 {
			t.Errorf("the endpoint the events are about got %d %s", len(evs), typ)
		}
	}
}

// probationView is the part of an endpoint the probation tests read.
type probationView struct {
	Status               string  `json:"status"`
	DisabledReason       *string `json:"disabledReason"`
	ConsecutiveFailures  int     `json:"consecutiveFailures"`
	Probation            bool    `json:"probation"`
	EffectiveConcurrency int     `json:"effectiveConcurrency"`
	RequeuedDeliveries   *int    `json:"requeuedDeliveries"`
}

func (p *healthPair) failingView(t *testing.T) probationView {
	t.Helper()
	var v probationView
	p.api.call(t, p.key, http.MethodGet, "/api/v1/webhooks/"+p.failing.ID, nil).want(t, http.StatusOK, &v)
	return v
}

// enable re-enables the failing endpoint and checks the answer: every held delivery requeued,
// active, on probation, one attempt at a time.
func (p *healthPair) enable(t *testing.T) {
	t.Helper()
	var v probationView
	p.api.call(t, p.key, http.MethodPatch, "/api/v1/webhooks/"+p.failing.ID, map[string]any{"enabled": true}).
		want(t, http.StatusOK, &v)
	if v.RequeuedDeliveries == nil || *v.RequeuedDeliveries != healthEvents || v.Status != registry.StatusActive ||
		!v.Probation || v.EffectiveConcurrency != 1 {
		t.Fatalf("re-enable answered %+v, want active, on probation, effectiveConcurrency 1, %d requeued", v, healthEvents)
	}
}

// budgetsWhole fails unless every held delivery's current run has spent no attempt: the one
// attempt made on probation cost its delivery nothing.
func (p *healthPair) budgetsWhole(t *testing.T) {
	t.Helper()
	for _, evid := range p.events {
		d, err := p.st.store.Delivery(t.Context(), p.tid, p.failing.ID, registry.DeliveryID(evid, p.failing.ID), false)
		if err != nil {
			t.Fatal(err)
		}
		if d.RunAttempts != 0 {
			t.Errorf("delivery %s has spent %d attempts of its run since the re-enable, want 0", d.ID, d.RunAttempts)
		}
	}
}
