package registry_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// runRecovery steps a recovery until it is done and returns it.
func (e *env) runRecovery(t *testing.T, tid, eid, rid string) *registry.Recovery {
	t.Helper()
	for range 10000 {
		st, err := e.store.RecoverStep(t.Context(), tid, rid)
		if err != nil {
			t.Fatalf("RecoverStep: %v", err)
		}
		if st.Done {
			break
		}
	}
	r, err := e.store.Recovery(t.Context(), tid, eid, rid)
	if err != nil {
		t.Fatalf("Recovery: %v", err)
	}
	return r
}

func (e *env) startRecovery(t *testing.T, tid, eid string, since time.Time, include ...string) *registry.Recovery {
	t.Helper()
	r, err := e.store.StartRecovery(t.Context(), tid, eid, registry.NewRecovery{Since: since,
		Until: e.clock.Now().Add(time.Second), Include: include})
	if err != nil {
		t.Fatalf("StartRecovery: %v", err)
	}
	return r
}

// A recovery queues again every failed delivery of its window, in batches, once: a second
// recovery and a recovery racing another find nothing left to do. Deliveries that succeeded,
// and events outside the window, are left alone.
func TestRecoverFailed(t *testing.T) {
	eachBackend(t, registry.Config{RecoveryBatch: 7}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		before := e.deliver(t, tn.ID, ep.ID)
		e.attempt(t, tn.ID, before, registry.OutcomeFailure, policy{disableAfter: 1 << 20, maxAttempts: 1})
		since := e.clock.Advance(time.Minute)
		var failed []queued
		for i := range 103 { // many batches, several events a millisecond, one with more than a batch
			if i == 50 {
				e.clock.Advance(time.Millisecond)
			}
			q := e.deliver(t, tn.ID, ep.ID)
			out := registry.OutcomeFailure
			if i%4 == 0 {
				out = registry.OutcomeSuccess
			} else {
				failed = append(failed, q)
			}
			e.attempt(t, tn.ID, q, out, policy{disableAfter: 1 << 20, maxAttempts: 1})
			if i%3 == 0 && (i < 50 || i > 70) {
				e.clock.Advance(time.Millisecond)
			}
		}
		var wg sync.WaitGroup
		rs := make([]*registry.Recovery, 2)
		for i := range rs { // two recoveries of the same window at once
			rs[i] = e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverFailed)
			wg.Go(func() { rs[i] = e.runRecovery(t, tn.ID, ep.ID, rs[i].ID) })
		}
		wg.Wait()
		if got := rs[0].Requeued + rs[1].Requeued; got != len(failed) || rs[0].Status != "done" || rs[1].Status != "done" {
			t.Fatalf("recoveries requeued %d + %d (%s, %s), want %d in all, done", rs[0].Requeued, rs[1].Requeued,
				rs[0].Status, rs[1].Status, len(failed))
		}
		for _, q := range failed {
			if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryPending || d.Generation != 1 || d.RunAttempts != 0 {
				t.Fatalf("recovered delivery = %+v, want pending in a new run with a fresh budget", d)
			}
		}
		if d := e.delivery(t, tn.ID, before); d.Status != registry.DeliveryFailed {
			t.Errorf("a delivery before the window is %s, want still failed", d.Status)
		}
		again := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverFailed).ID)
		if again.Requeued != 0 || again.Created != 0 {
			t.Errorf("a second recovery requeued %d and created %d, want 0", again.Requeued, again.Created)
		}
	})
}

// With missing, an endpoint registered after events were published gets one delivery of each
// event of a type it subscribes to, queued, and no second one.
func TestRecoverMissing(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		since := e.clock.Now()
		var evs []string
		for range 20 {
			evs = append(evs, e.publish(t, tn.ID, registry.EventScanCompleted).ID)
			e.publish(t, tn.ID, registry.EventScanFailed) // not subscribed to
		}
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		r := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverMissing).ID)
		if r.Created != len(evs) || r.Requeued != 0 {
			t.Fatalf("recovery created %d and requeued %d, want %d created", r.Created, r.Requeued, len(evs))
		}
		var want []string
		for _, id := range evs {
			want = append(want, registry.DeliveryID(id, ep.ID))
		}
		got := e.queueOf(t, tn.ID, ep.ID)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("queue = %d deliveries, want the %d missing ones", len(got), len(want))
		}
		if r := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverMissing).ID); r.Created != 0 {
			t.Errorf("a second recovery created %d, want 0", r.Created)
		}
	})
}

// With missing, an operational event about the endpoint itself (published excluding it) is not
// missing: the recovery creates no delivery of it and does not count one.
func TestRecoverMissingSkipsEventsAboutTheEndpoint(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		since := e.clock.Now()
		ep := e.endpoint(t, tn.ID, registry.EventWebhookDisabled)
		id := newEventID()
		if _, err := e.store.PublishEvent(t.Context(), tn.ID, registry.NewEvent{ID: id, Type: registry.EventWebhookDisabled,
			CreatedAt: e.clock.Now(), Body: eventBody(id, registry.EventWebhookDisabled), Exclude: ep.ID}); err != nil {
			t.Fatal(err)
		}
		r := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverMissing).ID)
		if q := e.queueOf(t, tn.ID, ep.ID); r.Created != 0 || len(q) != 0 {
			t.Errorf("recovery created %d, queue holds %d; want 0 and 0: the event is about the endpoint", r.Created, len(q))
		}
	})
}

// A disabled endpoint cannot be recovered; one disabled while it runs stops its recovery.
func TestRecoverDisabled(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		r := e.startRecovery(t, tn.ID, ep.ID, e.clock.Now().Add(-time.Hour), registry.RecoverFailed)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatal(err)
		}
		if got := e.runRecovery(t, tn.ID, ep.ID, r.ID); got.Status != "done" || got.FinishedAt == nil {
			t.Errorf("recovery of an endpoint disabled meanwhile = %+v, want done", got)
		}
		_, err := e.store.StartRecovery(ctx, tn.ID, ep.ID, registry.NewRecovery{Since: e.clock.Now().Add(-time.Hour),
			Until: e.clock.Now(), Include: []string{registry.RecoverFailed}})
		wantCode(t, err, registry.CodeWebhookDisabled)
		_, err = e.store.Recovery(ctx, tn.ID, e.endpoint(t, tn.ID).ID, r.ID)
		wantCode(t, err, registry.CodeRecoveryNotFound)
	})
}

// Events are listed newest first, by type, by scan (from the scan's own index) and by window.
func TestListEvents(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.orderedEndpoint(t, tn.ID)
		a1 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanStarted, "scan-a")
		mid := e.clock.Now()
		e.publishScan(t, tn.ID, ep.ID, registry.EventScanStarted, "scan-b")
		a2 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanCompleted, "scan-a")
		list := func(f registry.EventFilter) (ids []string, total int) {
			evs, total, err := e.store.ListEvents(ctx, tn.ID, f, registry.Page{Page: 1, Limit: 10})
			if err != nil {
				t.Fatalf("ListEvents(%+v): %v", f, err)
			}
			for _, ev := range evs {
				if len(ev.Data) == 0 {
					t.Errorf("event %s listed without its data", ev.ID)
				}
				ids = append(ids, registry.DeliveryID(ev.ID, ep.ID))
			}
			return ids, total
		}
		if ids, total := list(registry.EventFilter{ScanID: "scan-a"}); total != 2 || !slices.Equal(ids, []string{a2, a1}) {
			t.Errorf("scan-a's events = %v (total %d), want %v", ids, total, []string{a2, a1})
		}
		if _, total := list(registry.EventFilter{Type: registry.EventScanStarted}); total != 2 {
			t.Errorf("scan.started events: total %d, want 2", total)
		}
		if ids, total := list(registry.EventFilter{Until: mid}); total != 1 || ids[0] != a1 {
			t.Errorf("events before %v = %v (total %d), want only the first", mid, ids, total)
		}
		if _, total := list(registry.EventFilter{Since: mid}); total != 2 {
			t.Errorf("events since %v: total %d, want 2", mid, total)
		}
		ev, ds, err := e.store.EventWithDeliveries(ctx, tn.ID, ev0(t, e, tn.ID, a1, ep.ID))
		if err != nil || len(ds) != 1 || ds[0].Status != registry.DeliveryPending || ds[0].WebhookID != ep.ID {
			t.Errorf("EventWithDeliveries = %+v, %+v, %v; want its one pending delivery", ev, ds, err)
		}
	})
}

// ev0 finds the event id of a delivery of eid.
func ev0(t *testing.T, e *env, tid, did, eid string) string {
	t.Helper()
	d, err := e.store.Delivery(t.Context(), tid, eid, did, false)
	if err != nil {
		t.Fatal(err)
	}
	return d.EventID
}
