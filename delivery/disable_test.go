package delivery

import (
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// TestAutoDisableHoldsAndReenableRequeues: failures in a row disable the endpoint; while
// disabled, a test ping and a manual retry are refused with WEBHOOK_DISABLED and new events are
// held, not attempted; re-enabling requeues every held delivery (the one in flight when it
// disabled included) and delivers it.
func TestAutoDisableHoldsAndReenableRequeues(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{DisableAfter: 3, DisableMinWindow: -1})
	var healthy atomic.Bool
	rc, ep := st.receiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}, registry.EventScanCompleted)
	first := st.publish(t, registry.EventScanCompleted, nil)
	eventually(t, "the endpoint to be disabled", func() bool {
		return st.endpointNow(t, ep.ID).Status == registry.StatusDisabled
	})
	e := st.endpointNow(t, ep.ID)
	if e.Enabled || e.DisabledReason == nil || *e.DisabledReason != registry.ReasonConsecutiveFailures ||
		e.ConsecutiveFailures != 3 || e.DisabledAt == nil {
		t.Fatalf("disabled endpoint = %+v, want enabled false, reason consecutive_failures, 3 failures, disabledAt", e)
	}
	d := st.waitStatus(t, ep.ID, first.ID, registry.DeliveryHeld)
	if got := rc.Count(); got != 3 || d.AttemptCount != 3 {
		t.Fatalf("receiver got %d attempts and the delivery counts %d, want 3 before disabling", got, d.AttemptCount)
	}

	if _, err := st.svc.SendTest(t.Context(), st.tid, ep.ID); registry.CodeOf(err) != registry.CodeWebhookDisabled {
		t.Fatalf("SendTest on a disabled endpoint = %v, want %s", err, registry.CodeWebhookDisabled)
	}
	if _, err := st.svc.Retry(t.Context(), st.tid, ep.ID, d.ID); registry.CodeOf(err) != registry.CodeWebhookDisabled {
		t.Fatalf("Retry on a disabled endpoint = %v, want %s", err, registry.CodeWebhookDisabled)
	}

	later := []string{first.ID}
	for range 2 {
		later = append(later, st.publish(t, registry.EventScanCompleted, nil).ID)
	}
	for _, evid := range later[1:] {
		st.waitStatus(t, ep.ID, evid, registry.DeliveryHeld)
	}
	st.waitDrained(t)
	if got := rc.Count(); got != 3 {
		t.Fatalf("receiver got %d attempts, want still 3 while disabled", got)
	}
	held, _, err := st.store.ListDeliveries(t.Context(), st.tid, ep.ID, registry.DeliveryHeld,
		registry.Page{Page: 1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != len(later) {
		t.Fatalf("%d held deliveries listed, want %d", len(held), len(later))
	}

	healthy.Store(true)
	en, n, err := st.svc.Enable(t.Context(), st.tid, ep.ID)
	if err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if n != len(later) {
		t.Fatalf("requeued deliveries = %d, want %d", n, len(later))
	}
	if !en.Enabled || en.Status != registry.StatusActive || en.DisabledReason != nil || en.ConsecutiveFailures != 0 {
		t.Errorf("re-enabled endpoint = %+v, want active, no reason, 0 failures", en)
	}
	for _, evid := range later {
		st.waitStatus(t, ep.ID, evid, registry.DeliverySucceeded)
	}
	st.waitDrained(t)
	want := map[string]int{later[0]: 4, later[1]: 1, later[2]: 1}
	if got := rc.IDCounts(); !reflect.DeepEqual(got, want) {
		t.Errorf("POSTs by webhook-id = %v, want %v (3 failed + 1 for the first, 1 for each held)", got, want)
	}
	if e := st.endpointNow(t, ep.ID); e.ConsecutiveFailures != 0 {
		t.Errorf("consecutiveFailures = %d after successful deliveries, want 0", e.ConsecutiveFailures)
	}
}

// TestGoneDisablesAtOnce: one 410 answer disables the endpoint with reason gone.
func TestGoneDisablesAtOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{})
	rc, ep := st.receiver(t, deliverytest.Status(http.StatusGone), registry.EventScanStarted)
	ev := st.publish(t, registry.EventScanStarted, nil)
	d := st.waitStatus(t, ep.ID, ev.ID, registry.DeliveryHeld)
	e := st.endpointNow(t, ep.ID)
	if e.Status != registry.StatusDisabled || e.DisabledReason == nil || *e.DisabledReason != registry.ReasonGone {
		t.Fatalf("endpoint after 410 = %+v, want disabled with reason gone", e)
	}
	st.waitDrained(t)
	if got := rc.Count(); got != 1 || d.AttemptCount != 1 {
		t.Errorf("receiver got %d attempts, delivery counts %d; want 1", got, d.AttemptCount)
	}
}

// TestDeletedEndpointStopsRetries: deleting an endpoint while its delivery is retrying stops
// the attempts (one already in flight may still land).
func TestDeletedEndpointStopsRetries(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{})
	rc, ep := st.receiver(t, deliverytest.Status(http.StatusServiceUnavailable), registry.EventScanCompleted)
	st.publish(t, registry.EventScanCompleted, nil)
	eventually(t, "two failed attempts", func() bool { return rc.Count() >= 2 })
	if err := st.store.DeleteEndpoint(t.Context(), st.tid, ep.ID); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	atDelete := rc.Count()
	st.waitDrained(t)
	if got := rc.Count(); got > atDelete+1 {
		t.Errorf("receiver got %d attempts after deletion, want at most 1 (in flight)", got-atDelete)
	}
	if _, err := st.store.Endpoint(t.Context(), st.tid, ep.ID); registry.CodeOf(err) != registry.CodeWebhookNotFound {
		t.Errorf("Endpoint after deletion = %v, want %s", err, registry.CodeWebhookNotFound)
	}
}
