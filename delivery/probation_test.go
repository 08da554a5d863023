package delivery

import (
	"net/http"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// TestProbationFailureHoldsTheRest: an endpoint re-enabled with several held deliveries gets
// one attempt at a time; when that attempt fails the endpoint is disabled again at once
// (probation_failed), and the other deliveries go back to held without an attempt: a disabled
// endpoint gets none.
func TestProbationFailureHoldsTheRest(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{DisableAfter: 100, DisableMinWindow: -1})
	rc, ep := st.receiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}, registry.EventScanCompleted)
	if _, err := st.svc.Disable(t.Context(), st.tid, ep.ID); err != nil {
		t.Fatal(err)
	}
	var events []string
	for range 3 {
		events = append(events, st.publish(t, registry.EventScanCompleted, nil).ID)
	}
	for _, evid := range events {
		st.waitStatus(t, ep.ID, evid, registry.DeliveryHeld)
	}
	if _, _, err := st.svc.Enable(t.Context(), st.tid, ep.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the endpoint to fail its probation", func() bool {
		e := st.endpointNow(t, ep.ID)
		return e.DisabledReason != nil && *e.DisabledReason == registry.ReasonProbationFailed
	})
	st.waitDrained(t)
	attempts := 0
	for _, evid := range events {
		attempts += st.waitStatus(t, ep.ID, evid, registry.DeliveryHeld).AttemptCount
	}
	if got := rc.Count(); got != 1 || attempts != 1 {
		t.Errorf("the receiver got %d attempts and the deliveries count %d, want 1: the failed probation attempt alone",
			got, attempts)
	}
}
