package delivery

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// jitter is the retry policy's default randomization factor: a delay may come out this much
// shorter than the schedule's nominal value.
const jitter = 0.25

// TestRetryScheduleRecordsAttempts: a receiver failing twice then answering 200 gets three
// attempts with one webhook-id, spaced at least by the growing schedule, and the delivery
// records each attempt with its status, error and the first 4 KiB of the answer.
func TestRetryScheduleRecordsAttempts(t *testing.T) {
	t.Parallel()
	const initial, multiplier = 400 * time.Millisecond, 3
	st := newStack(t)
	st.worker(t, WorkerConfig{Policy: RetryPolicy{InitialInterval: initial, Multiplier: multiplier,
		MaxInterval: 10 * time.Second}})
	big := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 KiB
	rc, ep := st.receiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write(big)
			return
		}
		w.Write([]byte("ok"))
	}, registry.EventScanCompleted)
	ev := st.publish(t, registry.EventScanCompleted, nil)
	d := st.waitStatus(t, ep.ID, ev.ID, registry.DeliverySucceeded)

	if d.AttemptCount != 3 || len(d.Attempts) != 3 {
		t.Fatalf("attemptCount = %d with %d attempts, want 3", d.AttemptCount, len(d.Attempts))
	}
	for i, want := range []struct {
		status int
		body   string
		failed bool
	}{
		{http.StatusInternalServerError, string(big[:4096]), true},
		{http.StatusInternalServerError, string(big[:4096]), true},
		{http.StatusOK, "ok", false},
	} {
		a := d.Attempts[i]
		if a.Number != i+1 || a.StatusCode != want.status {
			t.Errorf("attempt %d: number %d, statusCode %d; want %d, %d", i, a.Number, a.StatusCode, i+1, want.status)
		}
		if a.ResponseBody != want.body {
			t.Errorf("attempt %d: responseBody has %d bytes, want %d (the first 4 KiB)", i+1, len(a.ResponseBody), len(want.body))
		}
		if want.failed != (a.Error != "") || want.failed && !strings.Contains(a.Error, "500") {
			t.Errorf("attempt %d: error = %q, want it set (naming the status) only for a failure", i+1, a.Error)
		}
		if a.DurationMs < 0 || a.StartedAt.IsZero() {
			t.Errorf("attempt %d: durationMs %d, startedAt %s", i+1, a.DurationMs, a.StartedAt)
		}
	}
	// Lower bounds only: attempt n+1 starts no sooner than the n-th delay of the schedule.
	for n := 1; n < 3; n++ {
		gap := d.Attempts[n].StartedAt.Sub(d.Attempts[n-1].StartedAt)
		nominal := initial
		for range n - 1 {
			nominal *= multiplier
		}
		if least := time.Duration(float64(nominal) * (1 - jitter)); gap < least {
			t.Errorf("gap before attempt %d = %s, want at least %s", n+1, gap, least)
		}
	}
	hits := rc.Hits()
	if len(hits) != 3 {
		t.Fatalf("receiver got %d POSTs, want 3", len(hits))
	}
	for i, h := range hits {
		if got := h.Header.Get("webhook-id"); got != ev.ID {
			t.Errorf("attempt %d: webhook-id = %q, want %q", i+1, got, ev.ID)
		}
	}
}

// TestRetryBudgetExhausted: with three attempts allowed and a receiver that always fails, the
// delivery fails after exactly three attempts and nothing is left to run.
func TestRetryBudgetExhausted(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{Policy: RetryPolicy{MaxAttempts: 3}})
	rc, ep := st.receiver(t, deliverytest.Status(http.StatusInternalServerError), registry.EventScanFailed)
	ev := st.publish(t, registry.EventScanFailed, nil)
	st.waitStatus(t, ep.ID, ev.ID, registry.DeliveryFailed)
	st.waitDrained(t)
	if got := rc.Count(); got != 3 {
		t.Errorf("receiver got %d attempts, want 3", got)
	}
	d := st.delivery(t, ep.ID, ev.ID)
	if d.AttemptCount != 3 || len(d.Attempts) != 3 || d.NextAttemptAt != nil {
		t.Errorf("failed delivery: attemptCount %d, %d attempts, nextAttemptAt %v; want 3, 3, null",
			d.AttemptCount, len(d.Attempts), d.NextAttemptAt)
	}
	e := st.endpointNow(t, ep.ID)
	if e.ConsecutiveFailures != 3 || e.Status != registry.StatusActive {
		t.Errorf("endpoint: consecutiveFailures %d, status %s; want 3, active (below the disable threshold)",
			e.ConsecutiveFailures, e.Status)
	}
}

// TestRetryAfterHonoured: 429 with Retry-After delays the next attempt at least that long and
// does not count as an endpoint failure.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	// Retry-After is capped at the longest retry delay, so that must exceed it here. The held
	// second attempt must outlast the test's look at the endpoint, however busy the machine.
	st := newStack(t)
	st.worker(t, WorkerConfig{Policy: RetryPolicy{MaxInterval: 10 * time.Second}, AttemptTimeout: time.Minute})
	checked := make(chan struct{})
	rc, ep := st.receiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		// Hold the second attempt until the test has looked at the endpoint between the two.
		select {
		case <-checked:
		case <-r.Context().Done():
		}
	}, registry.EventScanCompleted)
	ev := st.publish(t, registry.EventScanCompleted, nil)
	eventually(t, "the second attempt", func() bool { return rc.Count() == 2 })
	if e := st.endpointNow(t, ep.ID); e.ConsecutiveFailures != 0 {
		t.Errorf("consecutiveFailures after a 429 with Retry-After = %d, want 0", e.ConsecutiveFailures)
	}
	close(checked)
	d := st.waitStatus(t, ep.ID, ev.ID, registry.DeliverySucceeded)
	if len(d.Attempts) != 2 || d.Attempts[0].StatusCode != http.StatusTooManyRequests {
		t.Fatalf("attempts = %+v, want a 429 then a success", d.Attempts)
	}
	if gap := d.Attempts[1].StartedAt.Sub(d.Attempts[0].StartedAt); gap < 2*time.Second {
		t.Errorf("second attempt started %s after the first, want at least the 2s Retry-After", gap)
	}
	hits := rc.Hits()
	if gap := hits[1].At.Sub(hits[0].At); gap < 2*time.Second {
		t.Errorf("receiver saw the second attempt %s after the first, want at least 2s", gap)
	}
	if e := st.endpointNow(t, ep.ID); e.ConsecutiveFailures != 0 || e.Status != registry.StatusActive {
		t.Errorf("endpoint after success: consecutiveFailures %d, status %s", e.ConsecutiveFailures, e.Status)
	}
}
