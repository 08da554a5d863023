package main

import (
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

const disabledMessage = "Webhook is disabled due to consecutive failures"

// TestAutoDisableHoldsAndReenableRequeues: failures in a row disable the endpoint; while
// disabled, test and retry answer 409 and new events are held, not attempted; re-enabling
// requeues every held delivery (the one in flight when it disabled included) and delivers it.
func TestAutoDisableHoldsAndReenableRequeues(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_DISABLE_AFTER_FAILURES": "3", "WEBHOOKD_DISABLE_MIN_WINDOW": "0"})
	svc := st.start(t)
	_, key := st.tenant(t)
	var healthy atomic.Bool
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	first := svc.publish(t, key, registry.EventScanCompleted, scanData())
	waitFor(t, patience, "the endpoint to be disabled", func() bool {
		return svc.endpoint(t, key, ep.ID).Status == registry.StatusDisabled
	})
	e := svc.endpoint(t, key, ep.ID)
	if e.Enabled || e.DisabledReason == nil || *e.DisabledReason != registry.ReasonConsecutiveFailures ||
		e.ConsecutiveFailures != 3 || e.DisabledAt == nil {
		t.Fatalf("disabled endpoint = %+v, want enabled false, reason consecutive_failures, 3 failures, disabledAt", e)
	}
	d := svc.waitDelivery(t, key, ep.ID, first.ID, registry.DeliveryHeld)
	if got := rc.count(); got != 3 || d.AttemptCount != 3 {
		t.Fatalf("receiver got %d attempts and the delivery counts %d, want 3 before disabling", got, d.AttemptCount)
	}

	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/test", nil).
		wantError(t, http.StatusConflict, "WEBHOOK_DISABLED", disabledMessage)
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/deliveries/"+d.ID+"/retry", nil).
		wantError(t, http.StatusConflict, "WEBHOOK_DISABLED", disabledMessage)

	later := []string{first.ID}
	for range 2 {
		later = append(later, svc.publish(t, key, registry.EventScanCompleted, scanData()).ID)
	}
	for _, evid := range later[1:] {
		svc.waitDelivery(t, key, ep.ID, evid, registry.DeliveryHeld)
	}
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got := rc.count(); got != 3 {
		t.Fatalf("receiver got %d attempts, want still 3 while disabled", got)
	}

	if held := svc.deliveries(t, key, ep.ID, registry.DeliveryHeld); len(held) != len(later) {
		t.Fatalf("%d held deliveries listed, want %d", len(held), len(later))
	}

	healthy.Store(true)
	var en endpointView
	svc.call(t, key, http.MethodPatch, "/api/v1/webhooks/"+ep.ID, map[string]any{"enabled": true}).
		want(t, http.StatusOK, &en)
	if en.RequeuedDeliveries == nil || *en.RequeuedDeliveries != len(later) {
		t.Fatalf("requeuedDeliveries = %v, want %d", en.RequeuedDeliveries, len(later))
	}
	if !en.Enabled || en.Status != registry.StatusActive || en.DisabledReason != nil || en.ConsecutiveFailures != 0 {
		t.Errorf("re-enabled endpoint = %+v, want active, no reason, 0 failures", en)
	}
	for _, evid := range later {
		svc.waitDelivery(t, key, ep.ID, evid, registry.DeliverySucceeded)
	}
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	want := map[string]int{later[0]: 4, later[1]: 1, later[2]: 1}
	if got := rc.idCounts(); !reflect.DeepEqual(got, want) {
		t.Errorf("POSTs by webhook-id = %v, want %v (3 failed + 1 for the first, 1 for each held)", got, want)
	}
	if e := svc.endpoint(t, key, ep.ID); e.ConsecutiveFailures != 0 {
		t.Errorf("consecutiveFailures = %d after successful deliveries, want 0", e.ConsecutiveFailures)
	}
}

// TestGoneDisablesAtOnce: one 410 answer disables the endpoint with reason gone.
func TestGoneDisablesAtOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	rc := newReceiver(t, statusResponder(http.StatusGone))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanStarted}, nil)
	ev := svc.publish(t, key, registry.EventScanStarted, scanData())
	d := svc.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliveryHeld)
	e := svc.endpoint(t, key, ep.ID)
	if e.Status != registry.StatusDisabled || e.DisabledReason == nil || *e.DisabledReason != registry.ReasonGone {
		t.Fatalf("endpoint after 410 = %+v, want disabled with reason gone", e)
	}
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got := rc.count(); got != 1 || d.AttemptCount != 1 {
		t.Errorf("receiver got %d attempts, delivery counts %d; want 1", got, d.AttemptCount)
	}
}

// TestDeletedEndpointStopsRetries: deleting an endpoint while its delivery is retrying stops
// the attempts (one already in flight may still land).
func TestDeletedEndpointStopsRetries(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	rc := newReceiver(t, statusResponder(http.StatusServiceUnavailable))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	svc.publish(t, key, registry.EventScanCompleted, scanData())
	waitFor(t, patience, "two failed attempts", func() bool { return rc.count() >= 2 })
	svc.call(t, key, http.MethodDelete, "/api/v1/webhooks/"+ep.ID, nil).want(t, http.StatusOK, nil)
	atDelete := rc.count()
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got := rc.count(); got > atDelete+1 {
		t.Errorf("receiver got %d attempts after deletion, want at most 1 (in flight)", got-atDelete)
	}
	svc.call(t, key, http.MethodGet, "/api/v1/webhooks/"+ep.ID, nil).
		wantError(t, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
}
