package registry_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// autoDisabled returns an endpoint disabled by 3 failures of the first of its 3 deliveries.
func (e *env) autoDisabled(t *testing.T, tid string) (*registry.Endpoint, []queued) {
	t.Helper()
	ep := e.endpoint(t, tid)
	qs := e.deliveries(t, tid, ep.ID, 3)
	for range 3 {
		e.clock.Advance(time.Minute)
		e.attempt(t, tid, qs[0], registry.OutcomeFailure, policy{disableAfter: 3, maxAttempts: 10})
	}
	if got := e.getEndpoint(t, tid, ep.ID); got.Enabled {
		t.Fatal("endpoint was not auto-disabled")
	}
	return ep, qs
}

func TestEnableEndpoint(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep, qs := e.autoDisabled(t, tn.ID)
		before := map[string]int{}
		for _, q := range qs {
			before[q.DeliveryID] = e.delivery(t, tn.ID, q).Generation
		}
		now := e.clock.Advance(time.Hour)
		en, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID)
		n, drains := en.Requeued, en.Drains
		if err != nil {
			t.Fatalf("EnableEndpoint: %v", err)
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if !got.Enabled || got.Status != registry.StatusActive || got.ConsecutiveFailures != 0 || got.DisabledReason != nil ||
			got.DisabledAt != nil || !got.FailureStreakStart.IsZero() || !got.UpdatedAt.Equal(now) {
			t.Errorf("enabled endpoint = %+v, want active with a reset streak", got)
		}
		// The drain scheduled when the deliveries were first queued still holds the lease, so
		// none is scheduled now; its outbox entry stands until it ends.
		if n != len(qs) || len(drains) != 0 {
			t.Fatalf("EnableEndpoint queued %d deliveries with drains %+v, want %d and none", n, drains, len(qs))
		}
		if outbox := e.dueOutbox(t, tn.ID); !slices.ContainsFunc(outbox, func(s registry.OutboxEntry) bool {
			w, _ := registry.ParseWork(s)
			return w.Drain != nil && w.Drain.EndpointID == ep.ID
		}) {
			t.Errorf("outbox %v has no drain of %s", outbox, ep.ID)
		}
		for _, q := range qs {
			q = e.run(t, tn.ID, q)
			d := e.delivery(t, tn.ID, q)
			if d.Status != registry.DeliveryPending || d.Generation != q.Generation || q.Generation <= before[q.DeliveryID] ||
				d.RunAttempts != 0 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now) || q.EndpointID != ep.ID {
				t.Errorf("requeued %+v: delivery %+v; want pending with a new generation (was %d)", q, d, before[q.DeliveryID])
			}
			if it, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID); !ok || it.Generation != q.Generation {
				t.Errorf("requeued %+v is not on the endpoint's queue (%+v)", q, it)
			}
		}
		if n := e.statusCount(t, tn.ID, ep.ID, registry.DeliveryHeld); n != 0 {
			t.Errorf("%d deliveries still held after enable", n)
		}
		if en, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID); err != nil || en.Requeued != 0 || len(en.Drains) != 0 {
			t.Errorf("enabling an active endpoint queued %d (%v), %v; want nothing", en.Requeued, en.Drains, err)
		}
		_, err = e.store.EnableEndpoint(ctx, tn.ID, "no-such-endpoint")
		wantCode(t, err, registry.CodeWebhookNotFound)
		// The old runs are stale now: an attempt of one changes nothing.
		old := qs[1]
		old.Generation = before[old.DeliveryID]
		if r := e.attempt(t, tn.ID, old, registry.OutcomeSuccess, lenient); r.Status != "stale" {
			t.Errorf("attempt of a pre-enable run recorded as %q, want stale", r.Status)
		}
	})
}

func TestDisableEndpoint(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 2)
		e.attempt(t, tn.ID, qs[1], registry.OutcomeFailure, lenient) // retrying
		done := e.deliver(t, tn.ID, ep.ID)
		e.attempt(t, tn.ID, done, registry.OutcomeSuccess, lenient)
		now := e.clock.Advance(time.Minute)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint: %v", err)
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if got.Enabled || got.DisabledReason == nil || *got.DisabledReason != registry.ReasonManual ||
			got.DisabledAt == nil || !got.DisabledAt.Equal(now) {
			t.Errorf("manually disabled endpoint = %+v", got)
		}
		for _, q := range qs {
			if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryHeld {
				t.Errorf("queued delivery after disable = %s, want held", d.Status)
			}
		}
		if d := e.delivery(t, tn.ID, done); d.Status != registry.DeliverySucceeded {
			t.Errorf("finished delivery after disable = %s, want succeeded", d.Status)
		}

		// An endpoint disabled for another reason keeps it.
		auto, _ := e.autoDisabled(t, tn.ID)
		e.clock.Advance(time.Minute)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, auto.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint(already disabled): %v", err)
		}
		if got := e.getEndpoint(t, tn.ID, auto.ID); *got.DisabledReason != registry.ReasonConsecutiveFailures {
			t.Errorf("reason after a manual disable of a disabled endpoint = %s, want %s",
				*got.DisabledReason, registry.ReasonConsecutiveFailures)
		}
		_, err := e.store.DisableEndpoint(ctx, tn.ID, "no-such-endpoint", registry.ReasonManual)
		wantCode(t, err, registry.CodeWebhookNotFound)
	})
}

func TestRequeueDelivery(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep, other := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		p := policy{disableAfter: 100, maxAttempts: 2}
		e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
		e.attempt(t, tn.ID, q, registry.OutcomeFailure, p)
		if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryFailed {
			t.Fatalf("delivery = %s, want failed", d.Status)
		}
		now := e.clock.Advance(time.Hour)
		if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID); err != nil {
			t.Fatalf("RequeueDelivery: %v", err)
		}
		rq := e.run(t, tn.ID, q)
		d := e.delivery(t, tn.ID, rq)
		if rq.DeliveryID != q.DeliveryID || rq.EndpointID != ep.ID || rq.Generation != q.Generation+1 ||
			d.Generation != rq.Generation || d.Status != registry.DeliveryPending || d.RunAttempts != 0 ||
			d.AttemptCount != 2 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(now) {
			t.Errorf("requeued %+v: delivery %+v; want pending, generation %d, run attempts 0", rq, d, q.Generation+1)
		}
		if it, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID); !ok || it.Generation != rq.Generation {
			t.Errorf("requeued %+v is not on the endpoint's queue (%+v)", rq, it)
		}
		// The new run has a fresh budget: one failure retries again.
		if r := e.attempt(t, tn.ID, rq, registry.OutcomeFailure, p); r.Status != registry.DeliveryRetrying {
			t.Errorf("first failure of the new run = %s, want retrying", r.Status)
		}

		otherQ := e.deliver(t, tn.ID, other.ID)
		cases := []struct {
			name    string
			tid     string
			eid     string
			did     string
			wantErr registry.Code
		}{
			{"another endpoint's delivery", tn.ID, ep.ID, otherQ.DeliveryID, registry.CodeDeliveryNotFound},
			{"unknown delivery", tn.ID, ep.ID, "no-such-delivery", registry.CodeDeliveryNotFound},
			{"unknown endpoint", tn.ID, "no-such-endpoint", q.DeliveryID, registry.CodeWebhookNotFound},
			{"another tenant", e.tenant(t, 0).ID, ep.ID, q.DeliveryID, registry.CodeWebhookNotFound},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := e.store.RequeueDelivery(ctx, c.tid, c.eid, c.did)
				wantCode(t, err, c.wantErr)
			})
		}
		if d := e.delivery(t, tn.ID, otherQ); d.Generation != 0 || d.Status != registry.DeliveryPending {
			t.Errorf("another endpoint's delivery changed: %+v", d)
		}

		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint: %v", err)
		}
		_, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID)
		wantCode(t, err, registry.CodeWebhookDisabled)
		if err := e.store.DeleteEndpoint(ctx, tn.ID, ep.ID); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		_, err = e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID)
		wantCode(t, err, registry.CodeWebhookNotFound)
	})
}

func TestRetryDue(t *testing.T) {
	// A one-hour retention with a clock two hours on lets TrimIndexes leave a retrying
	// delivery outside the retrying index, so disabling the endpoint misses it, as a retry
	// racing a disable would: its timer, when it fires, is what holds it.
	eachBackend(t, registry.Config{Retention: time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		missed := e.deliver(t, tn.ID, ep.ID)
		if r := e.attempt(t, tn.ID, missed, registry.OutcomeFailure, lenient); r.Status != registry.DeliveryRetrying {
			t.Fatalf("setup: first attempt recorded as %+v, want retrying", r)
		}
		timer := registry.Retry{DeliveryID: missed.DeliveryID, EndpointID: ep.ID, Generation: missed.Generation, Run: 1}
		e.clock.Advance(2 * time.Hour)
		if n, err := e.store.TrimIndexes(ctx, tn.ID); err != nil || n == 0 {
			t.Fatalf("TrimIndexes = %d, %v; want the old entries trimmed", n, err)
		}
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint: %v", err)
		}
		if d := e.delivery(t, tn.ID, missed); d.Status != registry.DeliveryRetrying {
			t.Fatalf("setup: the trimmed delivery is %s, want still retrying", d.Status)
		}
		for _, stale := range []registry.Retry{{DeliveryID: timer.DeliveryID, EndpointID: ep.ID, Generation: 7, Run: 1},
			{DeliveryID: timer.DeliveryID, EndpointID: ep.ID, Generation: timer.Generation, Run: 5}} {
			if drains, err := e.store.Due(ctx, tn.ID, stale); err != nil || len(drains) != 0 ||
				e.delivery(t, tn.ID, missed).Status != registry.DeliveryRetrying {
				t.Errorf("Due(%+v) = %v, %v; want a stale timer to change nothing", stale, drains, err)
			}
		}
		drains, err := e.store.Due(ctx, tn.ID, timer)
		d := e.delivery(t, tn.ID, missed)
		if err != nil || len(drains) != 0 || d.Status != registry.DeliveryHeld || d.Generation != missed.Generation+1 ||
			d.NextAttemptAt != nil {
			t.Errorf("Due on a disabled endpoint = %v, %v; delivery %+v; want held with a new generation", drains, err, d)
		}
		if slices.Contains(e.dueOutbox(t, tn.ID), timer.OutboxEntry()) {
			t.Errorf("the fired timer's outbox entry %s is still there", timer.OutboxEntry())
		}
		en, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID)
		n := en.Requeued
		if d := e.delivery(t, tn.ID, missed); err != nil || n != 1 || d.Status != registry.DeliveryPending {
			t.Errorf("EnableEndpoint queued %d, %v; delivery %s; want the held delivery pending again", n, err, d.Status)
		}
	})
}

// A retry timer that fires puts its delivery back on the queue in the same run, with its
// attempts so far, and wakes a drain when none holds the lease.
func TestRetryDueQueues(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		e.attempt(t, tn.ID, q, registry.OutcomeFailure, lenient)
		e.endLease(t, tn.ID, ep.ID)
		timer := registry.Retry{DeliveryID: q.DeliveryID, EndpointID: ep.ID, Generation: q.Generation, Run: 1}
		drains, err := e.store.Due(ctx, tn.ID, timer)
		if err != nil || len(drains) != 1 || drains[0].EndpointID != ep.ID {
			t.Fatalf("Due = %v, %v; want one drain of %s", drains, err, ep.ID)
		}
		it, ok, err := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID)
		if err != nil || !ok || it.Generation != q.Generation || it.Run != 1 || !it.HasRecord {
			t.Errorf("queued = %+v, %t, %v; want run 1 of generation %d with its record", it, ok, err, q.Generation)
		}
		if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryPending || d.AttemptCount != 1 || d.RunAttempts != 1 {
			t.Errorf("delivery = %+v, want pending after 1 attempt", d)
		}
		if again, err := e.store.Due(ctx, tn.ID, timer); err != nil || len(again) != 0 {
			t.Errorf("Due again = %v, %v; want nothing", again, err)
		}
	})
}

func TestCreateTestDelivery(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		testEvent := func(id string) *registry.Event {
			return &registry.Event{ID: id, TenantID: tn.ID, Type: registry.EventWebhookTest, CreatedAt: e.clock.Now(),
				Body: []byte(`{"id":"` + id + `","type":"webhook.test","data":{"webhookId":"` + ep.ID + `"}}`)}
		}
		ev := testEvent("evt_test1")
		did, drains, err := e.store.CreateTestDelivery(ctx, ev, ep.ID)
		if err != nil {
			t.Fatalf("CreateTestDelivery: %v", err)
		}
		if did != registry.DeliveryID(ev.ID, ep.ID) || len(drains) != 1 || drains[0].EndpointID != ep.ID {
			t.Errorf("CreateTestDelivery = %s, %+v", did, drains)
		}
		q := queued{DeliveryID: did, EndpointID: ep.ID}
		d := e.delivery(t, tn.ID, q)
		if d.EventID != ev.ID || d.EventType != registry.EventWebhookTest || d.Status != registry.DeliveryPending {
			t.Errorf("test delivery = %+v", d)
		}
		stored, err := e.store.Event(ctx, tn.ID, ev.ID)
		if err != nil || stored.Type != registry.EventWebhookTest || !bytes.Equal(stored.Body, ev.Body) {
			t.Errorf("test event = %+v, %v", stored, err)
		}
		if outbox := e.dueOutbox(t, tn.ID); !slices.Contains(outbox, drains[0].OutboxEntry()) {
			t.Errorf("outbox %v lacks %s", outbox, drains[0].OutboxEntry())
		}
		if u := e.usage(t, tn.ID); u.EventsPublished != 0 {
			t.Errorf("a test ping counted against the quota: %d", u.EventsPublished)
		}

		_, _, err = e.store.CreateTestDelivery(ctx, testEvent("evt_test2"), "no-such-endpoint")
		wantCode(t, err, registry.CodeWebhookNotFound)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint: %v", err)
		}
		_, _, err = e.store.CreateTestDelivery(ctx, testEvent("evt_test3"), ep.ID)
		wantCode(t, err, registry.CodeWebhookDisabled)
		if _, err := e.store.Event(ctx, tn.ID, "evt_test3"); err == nil {
			t.Error("a refused test ping left its event behind")
		}
	})
}
