package registry_test

import (
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// deliveries creates n deliveries of new events to endpoint eid.
func (e *env) deliveries(t *testing.T, tid, eid string, n int) []queued {
	t.Helper()
	var qs []queued
	for range n {
		e.clock.Advance(time.Second)
		qs = append(qs, e.deliver(t, tid, eid))
	}
	return qs
}

func (e *env) statusCount(t *testing.T, tid, eid, status string) int {
	t.Helper()
	_, total, err := e.store.ListDeliveries(t.Context(), tid, eid, status, registry.Page{Page: 1, Limit: 100})
	if err != nil {
		t.Fatalf("ListDeliveries: %v", err)
	}
	return total
}

func TestAutoDisableAfterConsecutiveFailures(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep, bystander := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 3)
		other := e.deliver(t, tn.ID, bystander.ID)
		p := policy{disableAfter: 3, maxAttempts: 10}

		disabled := 0
		var disabledAt time.Time
		for i := range 3 {
			now := e.clock.Advance(time.Minute)
			r := e.attempt(t, tn.ID, qs[0], registry.OutcomeFailure, p)
			if r.Disabled {
				disabled++
				disabledAt = now
				if i != 2 || r.Status != registry.DeliveryHeld {
					t.Errorf("failure %d disabled the endpoint (recorded %+v), want the 3rd, held", i+1, r)
				}
			}
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if disabled != 1 || got.Enabled || got.Status != registry.StatusDisabled || got.ConsecutiveFailures != 3 ||
			got.DisabledReason == nil || *got.DisabledReason != registry.ReasonConsecutiveFailures ||
			got.DisabledAt == nil || !got.DisabledAt.Equal(disabledAt) {
			t.Fatalf("after 3 failures (%d disabling): endpoint %+v, want disabled for consecutive_failures at %v",
				disabled, got, disabledAt)
		}
		for _, q := range qs {
			if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryHeld || d.NextAttemptAt != nil {
				t.Errorf("delivery %s = %s (next %v), want held with no next attempt", q.DeliveryID, d.Status, d.NextAttemptAt)
			}
		}
		if n := e.statusCount(t, tn.ID, ep.ID, registry.DeliveryHeld); n != 3 {
			t.Errorf("held index holds %d, want 3", n)
		}
		for _, st := range []string{registry.DeliveryPending, registry.DeliveryRetrying} {
			if n := e.statusCount(t, tn.ID, ep.ID, st); n != 0 {
				t.Errorf("%s index holds %d after disable, want 0", st, n)
			}
		}
		if d := e.delivery(t, tn.ID, other); d.Status != registry.DeliveryPending {
			t.Errorf("another endpoint's delivery = %s, want pending", d.Status)
		}

		// In-flight attempts of the now superseded runs still count, but disable nothing again.
		e.clock.Advance(time.Minute)
		for _, q := range qs[1:] {
			if r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p); r.Disabled || r.Status != "stale" {
				t.Errorf("late failure recorded as %+v, want stale without disabling", r)
			}
		}
		got = e.getEndpoint(t, tn.ID, ep.ID)
		if got.ConsecutiveFailures != 5 || !got.DisabledAt.Equal(disabledAt) {
			t.Errorf("after late failures: consecutiveFailures %d, disabledAt %v; want 5, %v",
				got.ConsecutiveFailures, got.DisabledAt, disabledAt)
		}
	})
}

func TestAutoDisableMinWindow(t *testing.T) {
	p := policy{disableAfter: 3, window: time.Hour, maxAttempts: 100}
	cases := []struct {
		name     string
		fourthAt time.Duration // after the first failure
		disables bool
	}{
		{"61 minutes after the first", 61 * time.Minute, true},
		{"exactly the window", time.Hour, true},
		{"59 minutes after the first", 59 * time.Minute, false},
	}
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tn := e.tenant(t, 0)
				ep := e.endpoint(t, tn.ID)
				q := e.deliver(t, tn.ID, ep.ID)
				first := e.clock.Advance(time.Minute)
				for _, at := range []time.Duration{0, 5 * time.Minute, 10 * time.Minute} {
					e.clock.Set(first.Add(at))
					if r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p); r.Disabled {
						t.Fatalf("failure at +%v disabled before the window passed", at)
					}
				}
				if got := e.getEndpoint(t, tn.ID, ep.ID); !got.Enabled || got.ConsecutiveFailures != 3 {
					t.Fatalf("after 3 failures in 10 minutes: enabled %v, consecutiveFailures %d; want enabled, 3",
						got.Enabled, got.ConsecutiveFailures)
				}
				e.clock.Set(first.Add(c.fourthAt))
				r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
				got := e.getEndpoint(t, tn.ID, ep.ID)
				if r.Disabled != c.disables || got.Enabled == c.disables {
					t.Errorf("4th failure at +%v: Disabled %v, endpoint enabled %v; want disabled %v",
						c.fourthAt, r.Disabled, got.Enabled, c.disables)
				}
			})
		}
	})
}

func TestAutoDisableSuccessResetsStreak(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		failing, ok := e.deliver(t, tn.ID, ep.ID), e.deliver(t, tn.ID, ep.ID)
		p := policy{disableAfter: 3, maxAttempts: 100}
		steps := []struct {
			q       queued
			out     registry.AttemptOutcome
			wantCF  int
			disable bool
		}{
			{failing, registry.OutcomeFailure, 1, false},
			{failing, registry.OutcomeFailure, 2, false},
			{ok, registry.OutcomeSuccess, 0, false},
			{failing, registry.OutcomeFailure, 1, false},
			{failing, registry.OutcomeFailure, 2, false},
			{failing, registry.OutcomeFailure, 3, true},
		}
		for i, s := range steps {
			e.clock.Advance(time.Minute)
			r := e.attempt(t, tn.ID, s.q, s.out, p)
			got := e.getEndpoint(t, tn.ID, ep.ID)
			if r.Disabled != s.disable || got.ConsecutiveFailures != s.wantCF || got.Enabled == s.disable {
				t.Fatalf("step %d (%s): Disabled %v, consecutiveFailures %d, enabled %v; want disabled %v, %d",
					i+1, s.out, r.Disabled, got.ConsecutiveFailures, got.Enabled, s.disable, s.wantCF)
			}
		}
	})
}

func TestAutoDisableWindowRestartsAfterSuccess(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		p := policy{disableAfter: 3, window: time.Hour, maxAttempts: 100}
		first := e.clock.Advance(time.Minute)
		e.attempt(t, tn.ID, e.deliver(t, tn.ID, ep.ID), registry.OutcomeFailure, p)
		e.clock.Set(first.Add(time.Minute))
		e.attempt(t, tn.ID, e.deliver(t, tn.ID, ep.ID), registry.OutcomeSuccess, p)
		q := e.deliver(t, tn.ID, ep.ID)
		for _, at := range []time.Duration{70 * time.Minute, 71 * time.Minute, 72 * time.Minute} {
			e.clock.Set(first.Add(at))
			if r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p); r.Disabled {
				t.Fatalf("failure at +%v disabled: the streak began at +70m, not at the failure before the success", at)
			}
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if !got.FailureStreakStart.Equal(first.Add(70 * time.Minute)) {
			t.Errorf("FailureStreakStart = %v, want %v", got.FailureStreakStart, first.Add(70*time.Minute))
		}
	})
}

func TestAutoDisableGone(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 2)
		now := e.clock.Advance(time.Minute)
		r := e.attempt(t, tn.ID, qs[0], registry.OutcomeGone, policy{disableAfter: 15, window: time.Hour, maxAttempts: 10})
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if !r.Disabled || r.Status != registry.DeliveryHeld || got.Enabled || got.DisabledReason == nil ||
			*got.DisabledReason != registry.ReasonGone || got.DisabledAt == nil || !got.DisabledAt.Equal(now) {
			t.Fatalf("410: recorded %+v, endpoint %+v; want disabled at once for gone", r, got)
		}
		for _, q := range qs {
			if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryHeld {
				t.Errorf("delivery %s = %s, want held", q.DeliveryID, d.Status)
			}
		}
	})
}

// TestAutoDisableConcurrent records 20 failures at once: exactly one of them disables.
func TestAutoDisableConcurrent(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 20)
		p := policy{disableAfter: 10, maxAttempts: 10}
		e.clock.Advance(time.Minute)
		results := make([]recorded, len(qs))
		errs := make([]error, len(qs))
		var wg sync.WaitGroup
		ready := make(chan struct{})
		for i, q := range qs {
			wg.Go(func() {
				<-ready
				results[i], errs[i] = e.tryRecord(t.Context(), e.record(tn.ID, q, registry.OutcomeFailure, p))
			})
		}
		close(ready)
		wg.Wait()
		disabled := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("record %d: %v", i, errs[i])
			}
			if r.Disabled {
				disabled++
			}
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if disabled != 1 || got.ConsecutiveFailures != 20 || got.Enabled {
			t.Errorf("20 concurrent failures: %d disabling, consecutiveFailures %d, enabled %v; want 1, 20, false",
				disabled, got.ConsecutiveFailures, got.Enabled)
		}
		if n := e.statusCount(t, tn.ID, ep.ID, registry.DeliveryHeld); n != 20 {
			t.Errorf("%d deliveries held, want all 20", n)
		}
	})
}

// The attempt that disables the endpoint may also be its run's last: the delivery is held, not
// failed, so that re-enabling the endpoint still delivers it.
func TestAutoDisableOnLastAttemptHolds(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		p := policy{disableAfter: 2, maxAttempts: 2}
		e.clock.Advance(time.Minute)
		if r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p); r.Status != registry.DeliveryRetrying {
			t.Fatalf("first failure recorded as %+v, want retrying", r)
		}
		e.clock.Advance(time.Minute)
		r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
		if !r.Disabled || r.Status != registry.DeliveryHeld {
			t.Fatalf("last attempt, which disabled the endpoint, recorded as %+v, want held and disabled", r)
		}
		if en, err := e.store.EnableEndpoint(t.Context(), tn.ID, ep.ID); err != nil || en.Requeued != 1 {
			t.Fatalf("EnableEndpoint = %d, %v; want the held delivery queued again", en.Requeued, err)
		}
		if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryPending {
			t.Errorf("after EnableEndpoint the delivery is %q, want pending", d.Status)
		}
	})
}
