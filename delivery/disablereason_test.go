package delivery

import (
	"bytes"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// disabledSpy is an Observer that notes every endpoint it is told was disabled.
type disabledSpy struct {
	mu      sync.Mutex
	reasons []string
}

func (s *disabledSpy) Attempt(string, time.Duration) {}
func (s *disabledSpy) Recovered(int, int)            {}
func (s *disabledSpy) Concurrency(string, int, int)  {}

func (s *disabledSpy) Disabled(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reasons = append(s.reasons, reason)
}

func (s *disabledSpy) disabled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reasons...)
}

// expiredScan is the scan id of the events the tests' faultStore hands out as expired.
const expiredScan = "scan-that-expired"

func isExpiredScan(body []byte) bool { return bytes.Contains(body, []byte(`"`+expiredScan+`"`)) }

// expiredScanData is the data of an event that expires while queued (see isExpiredScan).
func expiredScanData() map[string]any {
	return map[string]any{"scanId": expiredScan, "scanType": "zap"}
}

// TestDisableReportedOnceWithItsReason: when one batch of outcomes disables an endpoint, the
// worker says so once (one "endpoint disabled" log line, one Observer.Disabled) with the reason
// the registry recorded and the delivery whose attempt did it, whatever else is in the batch.
//
// The batch is built on a real worker: the record of a first delivery is held back while the
// batch's deliveries are attempted one at a time (EndpointConcurrency 1), so their outcomes
// gather, in order, into the drain's next record; a last delivery reaching the receiver shows
// that the batch's last outcome has been collected.
func TestDisableReportedOnceWithItsReason(t *testing.T) {
	const expired = 0 // an answer: the event expires while queued and is never sent
	tests := []struct {
		name         string
		disableAfter int
		batch        []int // the receiver's answer to each attempt of the batch, in order
		wantReason   string
		wantBy       int // the delivery of the batch whose attempt disabled the endpoint
	}{
		// A 410 disables at once; the failure after it in the same batch is not the cause.
		{"gone then failure", 0, []int{http.StatusGone, http.StatusInternalServerError}, registry.ReasonGone, 0},
		// The failure that reaches the threshold disables it although the batch ends with an
		// event that expired.
		{"failure at the threshold then expired", 1, []int{http.StatusInternalServerError, expired},
			registry.ReasonConsecutiveFailures, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStack(t)
			store := &faultStore{Store: st.store, expire: isExpiredScan}
			store.holdFirstFinish(t)
			// The receiver answers the first delivery 200, then the batch, then holds the last
			// attempt until the batch is recorded.
			answers := []int{http.StatusOK}
			for _, a := range tt.batch {
				if a != expired {
					answers = append(answers, a)
				}
			}
			lastDone := make(chan struct{})
			rc := deliverytest.NewReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n <= len(answers) {
					w.WriteHeader(answers[n-1])
					return
				}
				select {
				case <-lastDone:
				case <-r.Context().Done():
				}
			})
			ep := st.endpoint(t, rc.URL, registry.EventScanCompleted)
			spy, logs := &disabledSpy{}, &logBuffer{}
			st.worker(t, WorkerConfig{Store: store, EndpointConcurrency: 1, DisableAfter: tt.disableAfter,
				DisableMinWindow: -1, Observer: spy, Logger: slog.New(slog.NewJSONHandler(logs, nil))})

			first := st.publish(t, registry.EventScanCompleted, nil)
			eventually(t, "the first record to be held", func() bool { return isClosed(store.finishing) })
			var batch []string
			for _, a := range tt.batch {
				data := scanData()
				if a == expired {
					data = expiredScanData()
				}
				ev := st.publish(t, registry.EventScanCompleted, data)
				batch = append(batch, registry.DeliveryID(ev.ID, ep.ID))
				eventually(t, "the batch's next delivery to be taken", func() bool {
					return len(rc.HitsFor(ev.ID)) == 1 || a == expired && store.expired.Load() == 1
				})
			}
			last := st.publish(t, registry.EventScanCompleted, nil)
			eventually(t, "the last delivery to reach the receiver", func() bool { return len(rc.HitsFor(last.ID)) == 1 })
			store.release()
			eventually(t, "the endpoint to be disabled", func() bool {
				return st.endpointNow(t, ep.ID).Status == registry.StatusDisabled
			})
			close(lastDone)
			st.waitDrained(t)

			rec := store.recorded()
			if want := [][]string{{registry.DeliveryID(first.ID, ep.ID)}, batch}; len(rec) < 2 ||
				!reflect.DeepEqual(rec[:2], want) {
				t.Fatalf("recorded batches = %v, want %v first: the test did not build its batch", rec, want)
			}
			if e := st.endpointNow(t, ep.ID); e.DisabledReason == nil || *e.DisabledReason != tt.wantReason {
				t.Errorf("endpoint disabled with reason %v, want %s", e.DisabledReason, tt.wantReason)
			}
			if got := spy.disabled(); !reflect.DeepEqual(got, []string{tt.wantReason}) {
				t.Errorf("Observer.Disabled got %q, want [%s] once", got, tt.wantReason)
			}
			lines := logs.lines(t, "endpoint disabled")
			if len(lines) != 1 || lines[0]["reason"] != tt.wantReason || lines[0]["deliveryId"] != batch[tt.wantBy] {
				t.Errorf(`"endpoint disabled" log lines = %v, want one with reason %s and deliveryId %s`, lines,
					tt.wantReason, batch[tt.wantBy])
			}
		})
	}
}

// isClosed reports whether c is closed.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestExpiredEventTakesNoAttemptPlace: an event that expired while queued is recorded as failed
// without an attempt, and keeps none of the worker's places for attempts: with a concurrency of
// one, an event published after it is still delivered.
func TestExpiredEventTakesNoAttemptPlace(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	store := &faultStore{Store: st.store, expire: isExpiredScan}
	rc, ep := st.receiver(t, deliverytest.Status(http.StatusOK), registry.EventScanCompleted)
	st.worker(t, WorkerConfig{Store: store, Concurrency: 1})
	gone := st.publish(t, registry.EventScanCompleted, expiredScanData())
	if d := st.waitStatus(t, ep.ID, gone.ID, registry.DeliveryFailed); d.AttemptCount != 0 {
		t.Errorf("the expired event's delivery has %d attempts, want 0", d.AttemptCount)
	}
	next := st.publish(t, registry.EventScanCompleted, nil)
	st.deliveredOnce(t, rc, ep.ID, next.ID)
}
