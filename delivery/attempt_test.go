package delivery

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

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
		{"taking the delivery", 2, 0, 1},
		// The drain keeps the outcome and records it once Redis answers: the POST is not
		// made again.
		{"recording the attempt", 0, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStack(t)
			rc, ep := st.receiver(t, deliverytest.Status(http.StatusOK), registry.EventScanCompleted)
			store := &faultStore{Store: st.store}
			store.loadFaults.Store(tt.loadFaults)
			store.recordFaults.Store(tt.recordFault)
			st.worker(t, WorkerConfig{Store: store, Policy: RetryPolicy{MaxAttempts: 1}, DisableAfter: 1,
				DisableMinWindow: -1, Concurrency: 2})

			pub := st.publish(t, registry.EventScanCompleted, nil)
			var d *registry.Delivery
			eventually(t, "the delivery to succeed after the outage", func() bool {
				d = st.delivery(t, ep.ID, pub.ID)
				if d != nil && d.Status == registry.DeliveryFailed {
					t.Fatalf("delivery failed after the outage: %+v", d.Attempts)
				}
				if info, err := Backlog(st.rdb); err == nil && info.Archived > 0 {
					t.Fatalf("asynq archived the task during the outage; the delivery is left %+v", d)
				}
				return d != nil && d.Status == registry.DeliverySucceeded
			})
			if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusOK {
				t.Errorf("attempts = %+v, want the one successful attempt", d.Attempts)
			}
			if got, want := store.injected.Load(), tt.loadFaults+tt.recordFault; got != want {
				t.Errorf("%d outage errors injected, want %d: the test did not exercise the outage", got, want)
			}
			hits := rc.Hits()
			if len(hits) != tt.wantPOSTs {
				t.Errorf("receiver got %d POSTs, want %d", len(hits), tt.wantPOSTs)
			}
			for _, h := range hits {
				if id := h.Header.Get("webhook-id"); id != pub.ID {
					t.Errorf("webhook-id %q, want the event id %q", id, pub.ID)
				}
			}
			if e := st.endpointNow(t, ep.ID); !e.Enabled || e.ConsecutiveFailures != 0 {
				t.Errorf("endpoint enabled=%t consecutiveFailures=%d after the outage, want enabled with 0",
					e.Enabled, e.ConsecutiveFailures)
			}
		})
	}
}

// patiently tries an operation again while Redis is out of reach, and only then.
func TestPatiently(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantErr   error
	}{
		{"answers at once", nil, 1, nil},
		{"outage, then answers", []error{outage("a"), outage("b")}, 3, nil},
		{"another error is final", []error{boom, outage("a")}, 1, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := patiently(t.Context(), func() (int, error) {
				calls++
				if calls <= len(tt.errs) {
					return 0, tt.errs[calls-1]
				}
				return 42, nil
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (err == nil && got != 42) {
				t.Errorf("patiently = %d, %v after %d calls; want %v after %d", got, err, calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := patiently(ctx, func() (int, error) { return 0, outage("down") }); !IsOutage(err) {
		t.Errorf("patiently with its context ended = %v, want the outage", err)
	}
}
