package registry_test

import (
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func TestCreateDeliveries(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		a, b, off := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, off.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint: %v", err)
		}
		ev := e.publish(t, tn.ID, registry.EventScanCompleted)
		e.clock.Advance(time.Second)
		qs := e.fanout(t, ev, a.ID, b.ID, off.ID, "no-such-endpoint")

		want := map[string]queued{}
		for _, eid := range []string{a.ID, b.ID} {
			q := queued{DeliveryID: registry.DeliveryID(ev.ID, eid), EndpointID: eid}
			want[q.DeliveryID] = q
		}
		got := ids(qs)
		if len(qs) != len(want) || len(got) != len(want) || got[qs[0].DeliveryID] != want[qs[0].DeliveryID] || got[qs[1].DeliveryID] != want[qs[1].DeliveryID] {
			t.Fatalf("CreateDeliveries queued %+v, want %+v", qs, want)
		}
		for _, q := range qs {
			d := e.delivery(t, tn.ID, q)
			if d.ID != q.DeliveryID || d.WebhookID != q.EndpointID || d.EventID != ev.ID || d.EventType != ev.Type ||
				d.Status != registry.DeliveryPending || d.AttemptCount != 0 || d.Generation != 0 || d.RunAttempts != 0 ||
				!d.CreatedAt.Equal(e.clock.Now()) || d.NextAttemptAt == nil {
				t.Errorf("new delivery = %+v", d)
			}
		}
		held := e.delivery(t, tn.ID, queued{DeliveryID: registry.DeliveryID(ev.ID, off.ID), EndpointID: off.ID})
		if held.Status != registry.DeliveryHeld || held.NextAttemptAt != nil {
			t.Errorf("delivery to a disabled endpoint = %+v, want held", held)
		}
		_, err := e.store.Delivery(ctx, tn.ID, "no-such-endpoint", registry.DeliveryID(ev.ID, "no-such-endpoint"), false)
		wantCode(t, err, registry.CodeDeliveryNotFound)

		// Running the fan-out again creates nothing and queues the still-pending deliveries.
		if r := e.attempt(t, tn.ID, qs[0], registry.OutcomeSuccess, lenient); r.Status != registry.DeliverySucceeded {
			t.Fatalf("success recorded as %q", r.Status)
		}
		again := e.fanout(t, ev, a.ID, b.ID, off.ID)
		if !slices.Equal(again, qs[1:]) {
			t.Errorf("second CreateDeliveries queued %+v, want only the pending %+v", again, qs[1:])
		}
		for _, eid := range []string{a.ID, b.ID, off.ID} {
			list, total, err := e.store.ListDeliveries(ctx, tn.ID, eid, "", registry.Page{Page: 1, Limit: 10})
			if err != nil || total != 1 || len(list) != 1 {
				t.Errorf("endpoint %s has %d deliveries (total %d), %v; want 1", eid, len(list), total, err)
			}
		}
		if got := e.delivery(t, tn.ID, qs[0]); got.Status != registry.DeliverySucceeded {
			t.Errorf("a second fan-out changed a succeeded delivery to %s", got.Status)
		}
	})
}

func TestDeliveryIDDeterministic(t *testing.T) {
	a, b := registry.DeliveryID("evt_1", "ep_1"), registry.DeliveryID("evt_1", "ep_1")
	if a != b {
		t.Errorf("DeliveryID is not deterministic: %s, %s", a, b)
	}
	for _, other := range []string{registry.DeliveryID("evt_1", "ep_2"), registry.DeliveryID("evt_2", "ep_1")} {
		if other == a {
			t.Errorf("DeliveryID collides: %s", a)
		}
	}
}

func TestRecordAttemptSuccess(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		for range 2 {
			e.clock.Advance(time.Minute)
			if r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, lenient); r.Status != registry.DeliveryRetrying || r.Disabled {
				t.Fatalf("failure recorded as %+v, want retrying", r)
			}
		}
		if got := e.getEndpoint(t, tn.ID, ep.ID); got.ConsecutiveFailures != 2 || got.FailureStreakStart.IsZero() {
			t.Fatalf("after 2 failures: consecutiveFailures %d, streak start %v", got.ConsecutiveFailures, got.FailureStreakStart)
		}
		at := e.clock.Advance(time.Minute)
		r := e.attempt(t, tn.ID, q, registry.OutcomeSuccess, lenient)
		if r.Status != registry.DeliverySucceeded || r.Disabled {
			t.Errorf("success recorded as %+v, want succeeded", r)
		}
		d := e.delivery(t, tn.ID, q)
		if d.Status != registry.DeliverySucceeded || d.AttemptCount != 3 || d.RunAttempts != 3 || d.NextAttemptAt != nil ||
			!d.UpdatedAt.Equal(at) {
			t.Errorf("delivery after success = %+v", d)
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if got.ConsecutiveFailures != 0 || !got.FailureStreakStart.IsZero() || !got.Enabled {
			t.Errorf("endpoint after success: consecutiveFailures %d, streak start %v, enabled %v",
				got.ConsecutiveFailures, got.FailureStreakStart, got.Enabled)
		}
	})
}

func TestRecordAttemptFailureRetriesThenFails(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		p := policy{disableAfter: 100, maxAttempts: 3}
		for i := 1; i <= 2; i++ {
			now := e.clock.Advance(time.Minute)
			r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
			d := e.delivery(t, tn.ID, q)
			if r.Status != registry.DeliveryRetrying || d.Status != registry.DeliveryRetrying || d.RunAttempts != i ||
				d.AttemptCount != i || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now.Add(time.Minute)) {
				t.Fatalf("failure %d: recorded %+v, delivery %+v; want retrying at %v", i, r, d, now.Add(time.Minute))
			}
			if got := e.getEndpoint(t, tn.ID, ep.ID); got.ConsecutiveFailures != i {
				t.Fatalf("failure %d: consecutiveFailures = %d", i, got.ConsecutiveFailures)
			}
		}
		e.clock.Advance(time.Minute)
		r := e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
		d := e.delivery(t, tn.ID, q)
		if r.Status != registry.DeliveryFailed || d.Status != registry.DeliveryFailed || d.NextAttemptAt != nil || d.AttemptCount != 3 {
			t.Errorf("failure 3 of 3: recorded %+v, delivery %+v; want failed", r, d)
		}
		// A late duplicate attempt of the same run leaves a finished delivery alone.
		if r := e.attempt(t, tn.ID, q, registry.OutcomeSuccess, p); r.Status != "stale" {
			t.Errorf("attempt on a failed delivery recorded as %q, want stale", r.Status)
		}
		if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryFailed {
			t.Errorf("delivery after a late attempt = %s, want failed", d.Status)
		}
	})
}

func TestRecordAttemptStaleGeneration(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		old := e.deliver(t, tn.ID, ep.ID)
		e.attempt(t, tn.ID, old, registry.OutcomeFailure, lenient)
		if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, old.DeliveryID); err != nil {
			t.Fatalf("RequeueDelivery: %v", err)
		}
		cur := old
		cur.Generation = e.delivery(t, tn.ID, old).Generation
		e.clock.Advance(time.Minute)
		r := e.attempt(t, tn.ID, old, registry.OutcomeSuccess, lenient)
		if r.Status != "stale" || r.Disabled {
			t.Errorf("attempt of a superseded run recorded as %+v, want stale", r)
		}
		d, err := e.store.Delivery(ctx, tn.ID, ep.ID, old.DeliveryID, true)
		if err != nil {
			t.Fatalf("Delivery: %v", err)
		}
		if d.Status != registry.DeliveryPending || d.Generation != cur.Generation || d.RunAttempts != 0 ||
			d.AttemptCount != 2 || len(d.Attempts) != 2 {
			t.Errorf("after a stale attempt: %+v with %d attempts; want pending, generation %d, run 0, 2 attempts logged",
				d, len(d.Attempts), cur.Generation)
		}
		if r := e.attempt(t, tn.ID, cur, registry.OutcomeSuccess, lenient); r.Status != registry.DeliverySucceeded {
			t.Errorf("attempt of the current run recorded as %q, want succeeded", r.Status)
		}
	})
}

func TestRecordAttemptThrottled(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		p := policy{disableAfter: 2, maxAttempts: 3}
		e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
		for i := 2; i <= 3; i++ {
			now := e.clock.Advance(time.Minute)
			r := e.attempt(t, tn.ID, q, registry.OutcomeThrottled, p)
			d := e.delivery(t, tn.ID, q)
			got := e.getEndpoint(t, tn.ID, ep.ID)
			wantStatus := registry.DeliveryRetrying
			if i == 3 {
				wantStatus = registry.DeliveryFailed // throttled attempts count against the run's budget
			}
			if r.Status != wantStatus || r.Disabled || d.RunAttempts != i {
				t.Errorf("throttled attempt %d recorded as %+v (run attempts %d), want %s", i, r, d.RunAttempts, wantStatus)
			}
			if i == 2 && (d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now.Add(time.Minute))) {
				t.Errorf("throttled retry at %v, want %v", d.NextAttemptAt, now.Add(time.Minute))
			}
			if got.ConsecutiveFailures != 1 || !got.Enabled {
				t.Errorf("after throttled attempt %d: consecutiveFailures %d, enabled %v; want 1, true",
					i, got.ConsecutiveFailures, got.Enabled)
			}
		}
	})
}

// An endpoint's deliveries are listed from its status indexes merged, newest first, each once,
// across pages.
func TestListDeliveriesMergesStatuses(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		var qs []queued
		for range 5 {
			e.clock.Advance(time.Second)
			qs = append(qs, e.deliver(t, tn.ID, ep.ID))
		}
		e.attempt(t, tn.ID, qs[0], registry.OutcomeSuccess, lenient)
		e.attempt(t, tn.ID, qs[3], registry.OutcomeFailure, lenient)
		wantStatus := []string{registry.DeliveryPending, registry.DeliveryRetrying, registry.DeliveryPending,
			registry.DeliveryPending, registry.DeliverySucceeded} // newest first
		var got, statuses []string
		for page := 1; page <= 3; page++ {
			list, total, err := e.store.ListDeliveries(ctx, tn.ID, ep.ID, "", registry.Page{Page: page, Limit: 2})
			if err != nil || total != 5 {
				t.Fatalf("page %d: total %d, %v; want 5", page, total, err)
			}
			for _, d := range list {
				got, statuses = append(got, d.ID), append(statuses, d.Status)
			}
		}
		var want []string
		for i := len(qs) - 1; i >= 0; i-- {
			want = append(want, qs[i].DeliveryID)
		}
		if !slices.Equal(got, want) || !slices.Equal(statuses, wantStatus) {
			t.Errorf("listed %v %v, want %v %v", got, statuses, want, wantStatus)
		}
	})
}
