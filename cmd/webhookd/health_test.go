package main

import (
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// TestHealthDegradedThenDisabledOnce: an endpoint that always fails, worked by two worker
// processes, warns once (webhook.degraded) and is disabled once (webhook.disabled): the tenant's
// other endpoint gets each exactly once, signed, naming the endpoint; the endpoint they are
// about gets neither; the tenant's event log holds one of each.
func TestHealthDegradedThenDisabledOnce(t *testing.T) {
	t.Parallel()
	p := newHealthPair(t, nil)
	p.disable(t)

	v := p.failingView(t)
	if v.DisabledReason == nil || *v.DisabledReason != registry.ReasonConsecutiveFailures ||
		v.ConsecutiveFailures < healthThreshold {
		t.Errorf("disabled endpoint = %+v, want reason consecutive_failures after at least %d failures", v, healthThreshold)
	}
	if got, want := p.api.statuses(t, p.key, p.failing.ID), map[string]int{registry.DeliveryHeld: healthEvents}; !maps.Equal(got, want) {
		t.Errorf("deliveries of the disabled endpoint by status = %v, want %v", got, want)
	}
	p.waitOps(t, map[string]int{registry.EventWebhookDegraded: 1, registry.EventWebhookDisabled: 1})
	for _, ev := range p.onlyOnce(t, registry.EventWebhookDegraded, 1) {
		checkOpEvent(t, ev, p.failing, p.watcher, registry.ReasonConsecutiveFailures, healthThreshold/2, nil)
	}
	for _, ev := range p.onlyOnce(t, registry.EventWebhookDisabled, 1) {
		checkOpEvent(t, ev, p.failing, p.watcher, registry.ReasonConsecutiveFailures, healthThreshold, nil)
	}
	p.onlyOnce(t, registry.EventWebhookEnabled, 0)
	p.onlyOnce(t, registry.EventDeliveryExhausted, 0)
	p.noOpsAbout(t)
	for _, typ := range []string{registry.EventWebhookDegraded, registry.EventWebhookDisabled} {
		if n := p.api.countEvents(t, p.key, typ); n != 1 {
			t.Errorf("the event log holds %d %s events, want 1", n, typ)
		}
	}
}

// TestHealthProbationFailureKeepsHeld: re-enabled while its receiver still fails, the endpoint
// is attempted exactly once and disabled again (probation_failed); every delivery is still held
// (none delivered, none failed), the attempt cost its delivery nothing, and the other endpoint
// gets webhook.enabled and a second webhook.disabled, once each.
func TestHealthProbationFailureKeepsHeld(t *testing.T) {
	t.Parallel()
	p := newHealthPair(t, nil)
	p.disable(t)
	_, before := p.frc.counts()

	p.enable(t)
	p.waitStatus(t, registry.StatusDisabled)
	p.waitDeliveriesAtRest(t)
	v := p.failingView(t)
	if v.DisabledReason == nil || *v.DisabledReason != registry.ReasonProbationFailed || v.Probation {
		t.Errorf("endpoint after a failure on probation = %+v, want disabled with probation_failed", v)
	}
	if _, after := p.frc.counts(); after-before != 1 {
		t.Errorf("the receiver got %d attempts after the re-enable, want exactly 1", after-before)
	}
	if got, want := p.api.statuses(t, p.key, p.failing.ID), map[string]int{registry.DeliveryHeld: healthEvents}; !maps.Equal(got, want) {
		t.Errorf("deliveries by status = %v, want %v (every one still held)", got, want)
	}
	p.budgetsWhole(t)

	p.waitOps(t, map[string]int{registry.EventWebhookEnabled: 1, registry.EventWebhookDisabled: 2})
	for _, ev := range p.onlyOnce(t, registry.EventWebhookEnabled, 1) {
		checkOpEvent(t, ev, p.failing, p.watcher, "manual", 0, nil)
	}
	var probation int
	for _, ev := range p.onlyOnce(t, registry.EventWebhookDisabled, 2) {
		if ev.Data["reason"] == registry.ReasonProbationFailed {
			probation++
			checkOpEvent(t, ev, p.failing, p.watcher, registry.ReasonProbationFailed, 1, nil)
		}
	}
	if probation != 1 {
		t.Errorf("webhook.disabled with reason probation_failed arrived %d times, want 1", probation)
	}
	p.onlyOnce(t, registry.EventWebhookDegraded, 1)
	p.noOpsAbout(t)
}

// TestHealthReenableDeliversHeldOnce: re-enabled once its receiver is healthy, the endpoint
// delivers every held delivery exactly once (the receiver counts 2xx answers per webhook-id),
// leaves probation, and the other endpoint gets webhook.enabled once. The hourly stats count
// every attempt the receiver answered.
func TestHealthReenableDeliversHeldOnce(t *testing.T) {
	t.Parallel()
	p := newHealthPair(t, nil)
	p.disable(t)
	p.frc.healthy.Store(true)

	p.enable(t)
	waitFor(t, patience, "every held delivery to succeed", func() bool {
		return p.api.countDeliveries(t, p.key, p.failing.ID, registry.DeliverySucceeded) == healthEvents
	})
	p.waitDeliveriesAtRest(t)
	ok, failed := p.frc.counts()
	want := map[string]int{}
	for _, evid := range p.events {
		want[evid] = 1
	}
	if !maps.Equal(ok, want) {
		t.Errorf("2xx answers by webhook-id = %v, want each of the %d events once", ok, healthEvents)
	}
	if v := p.failingView(t); v.Status != registry.StatusActive || v.Probation || v.EffectiveConcurrency <= 1 {
		t.Errorf("endpoint after its deliveries succeeded = %+v, want active, off probation, full concurrency", v)
	}
	checkStats(t, p.api, p.key, p.failing.ID, healthEvents, failed)

	p.waitOps(t, map[string]int{registry.EventWebhookEnabled: 1, registry.EventWebhookDisabled: 1})
	for _, ev := range p.onlyOnce(t, registry.EventWebhookEnabled, 1) {
		checkOpEvent(t, ev, p.failing, p.watcher, "manual", 0, nil)
	}
	p.onlyOnce(t, registry.EventWebhookDisabled, 1)
	p.noOpsAbout(t)
}

// checkStats fails unless the endpoint's stats over the last two hours (the test may cross an
// hour) count the succeeded and failed attempts, oldest hour first, with percentiles wherever
// there were attempts.
func checkStats(t *testing.T, api *service, key, eid string, succeeded, failed int) {
	t.Helper()
	var s struct {
		Window string               `json:"window"`
		Hours  []registry.HourStats `json:"hours"`
	}
	before := time.Now().UTC().Truncate(time.Hour)
	api.call(t, key, http.MethodGet, "/api/v1/webhooks/"+eid+"/stats?window=2h", nil).want(t, http.StatusOK, &s)
	after := time.Now().UTC().Truncate(time.Hour)
	if s.Window != "2h" || len(s.Hours) != 2 {
		t.Fatalf("stats = %+v, want window 2h with 2 hours", s)
	}
	gotOK, gotFailed := 0, 0
	for _, h := range s.Hours {
		gotOK += h.Succeeded
		gotFailed += h.Failed
		if (h.Succeeded+h.Failed > 0) != (h.P50Ms != nil && h.P99Ms != nil) {
			t.Errorf("hour %s: %d attempts with p50 %v, p99 %v", h.Hour, h.Succeeded+h.Failed, h.P50Ms, h.P99Ms)
		}
	}
	if gotOK != succeeded || gotFailed != failed {
		t.Errorf("stats count %d succeeded and %d failed attempts, want %d and %d (what the receiver answered)",
			gotOK, gotFailed, succeeded, failed)
	}
	if cur := s.Hours[1].Hour; !s.Hours[0].Hour.Equal(cur.Add(-time.Hour)) || !cur.Equal(before) && !cur.Equal(after) {
		t.Errorf("stats hours = %+v, want the previous hour, then the current one", s.Hours)
	}
}

// TestHealthDeliveryExhausted: every delivery that fails for good (its attempts spent) sends
// one delivery.exhausted to the tenant's other subscribed endpoint, naming the delivery and its
// event; an endpoint short of the degraded mark sends nothing else.
func TestHealthDeliveryExhausted(t *testing.T) {
	t.Parallel()
	p := newHealthPair(t, map[string]string{"WEBHOOKD_MAX_ATTEMPTS": "2", "WEBHOOKD_DISABLE_AFTER_FAILURES": "100"})
	const n = 3
	p.publish(t, n)
	waitFor(t, patience, "every delivery to fail", func() bool {
		return p.api.countDeliveries(t, p.key, p.failing.ID, registry.DeliveryFailed) == n
	})
	p.waitDeliveriesAtRest(t)
	p.waitOps(t, map[string]int{registry.EventDeliveryExhausted: n})
	var got []string
	for _, ev := range p.onlyOnce(t, registry.EventDeliveryExhausted, n) {
		evid, _ := ev.Data["eventId"].(string)
		got = append(got, evid)
		checkOpEvent(t, ev, p.failing, p.watcher, "attempts_exhausted", 1,
			map[string]any{"eventId": evid, "deliveryId": registry.DeliveryID(evid, p.failing.ID)})
	}
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(p.events)); !slices.Equal(got, want) {
		t.Errorf("delivery.exhausted named events %v, want %v", got, want)
	}
	p.onlyOnce(t, registry.EventWebhookDegraded, 0)
	p.onlyOnce(t, registry.EventWebhookDisabled, 0)
	p.noOpsAbout(t)
}
