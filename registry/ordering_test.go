package registry_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// orderedEndpoint registers an endpoint ordered by scan, subscribed to every scan event.
func (e *env) orderedEndpoint(t *testing.T, tid string) *registry.Endpoint {
	t.Helper()
	ep, err := e.store.CreateEndpoint(t.Context(), tid, registry.NewEndpoint{URL: "https://hooks.example.test/" +
		uuid.NewString(), Events: registry.EventTypes, Secret: newSecret(t), Ordering: registry.OrderingScan})
	if err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	return ep
}

// publishScan publishes an event of scan scanID and fans it out to eid; it returns the delivery's id.
func (e *env) publishScan(t *testing.T, tid, eid, typ, scanID string) string {
	t.Helper()
	id := newEventID()
	st, err := e.store.PublishEvent(t.Context(), tid, registry.NewEvent{ID: id, Type: typ, CreatedAt: e.clock.Now(),
		Body: eventBody(id, typ), ScanID: scanID})
	if err != nil {
		t.Fatalf("PublishEvent: %v", err)
	}
	if _, err := e.store.CreateDeliveries(t.Context(), st.Event, []string{eid}); err != nil {
		t.Fatalf("CreateDeliveries: %v", err)
	}
	e.clock.Advance(1e6) // a millisecond: creation times order the lane
	return registry.DeliveryID(id, eid)
}

// queueOf lists the ids on the endpoint's queue (its pending index), oldest first.
func (e *env) queueOf(t *testing.T, tid, eid string) []string {
	t.Helper()
	items, _, err := e.store.Take(t.Context(), registry.TakeRequest{TenantID: tid, EndpointID: eid,
		N: e.leaseOf(t, tid, eid), Limit: 100})
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	return itemIDs(items)
}

func (e *env) waitingFor(t *testing.T, tid, eid, did string) string {
	t.Helper()
	d, err := e.store.Delivery(t.Context(), tid, eid, did, false)
	if err != nil {
		t.Fatalf("Delivery(%s): %v", did, err)
	}
	if d.WaitingFor == nil {
		return ""
	}
	if d.Status != registry.DeliveryPending {
		t.Errorf("delivery %s waits for %s but is %s, want pending", did, *d.WaitingFor, d.Status)
	}
	if d.NextAttemptAt != nil {
		t.Errorf("delivery %s waits for %s but names its next attempt at %v, want none until its turn",
			did, *d.WaitingFor, *d.NextAttemptAt)
	}
	return *d.WaitingFor
}

// A scan's deliveries to an ordered endpoint go one at a time in publish order: the next goes
// on the queue only when the one ahead succeeded or failed for good (a retry keeps it
// waiting); other scans are not held up.
func TestScanLane(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.orderedEndpoint(t, tn.ID)
		a1 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanStarted, "scan-a")
		b1 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanStarted, "scan-b")
		a2 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanCompleted, "scan-a")
		a3 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanCancelled, "scan-a")
		if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, []string{a1, b1}) {
			t.Fatalf("queue = %v, want the two scans' first deliveries %v", got, []string{a1, b1})
		}
		if w2, w3 := e.waitingFor(t, tn.ID, ep.ID, a2), e.waitingFor(t, tn.ID, ep.ID, a3); w2 != a1 || w3 != a2 {
			t.Errorf("waitingFor = %q, %q; want %q, %q", w2, w3, a1, a2)
		}
		if ds, total, err := e.store.ListDeliveries(t.Context(), tn.ID, ep.ID, registry.DeliveryPending,
			registry.Page{Page: 1, Limit: 10}); err != nil || total != 4 || len(ds) != 4 || ds[0].ID != a3 {
			t.Errorf("pending list = %d of %d, %v; want all 4 newest first", len(ds), total, err)
		}

		p := policy{disableAfter: 100, maxAttempts: 2}
		ra1 := queued{DeliveryID: a1, EndpointID: ep.ID}
		if r := e.attempt(t, tn.ID, ra1, registry.OutcomeFailure, p); r.Status != registry.DeliveryRetrying {
			t.Fatalf("a1's first attempt = %+v, want retrying", r)
		}
		if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, []string{b1}) {
			t.Errorf("queue while a1 retries = %v, want only %v", got, []string{b1})
		}
		if r := e.attempt(t, tn.ID, ra1, registry.OutcomeFailure, p); r.Status != registry.DeliveryFailed {
			t.Fatalf("a1's last attempt = %+v, want failed", r)
		}
		if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, []string{b1, a2}) {
			t.Errorf("queue after a1 failed for good = %v, want %v (in creation order)", got, []string{b1, a2})
		}
		if w2, w3 := e.waitingFor(t, tn.ID, ep.ID, a2), e.waitingFor(t, tn.ID, ep.ID, a3); w2 != "" || w3 != a2 {
			t.Errorf("waitingFor = %q, %q; want none for the head and %q", w2, w3, a2)
		}
		e.attempt(t, tn.ID, queued{DeliveryID: a2, EndpointID: ep.ID}, registry.OutcomeSuccess, p)
		e.attempt(t, tn.ID, queued{DeliveryID: a3, EndpointID: ep.ID}, registry.OutcomeSuccess, p)
		e.attempt(t, tn.ID, queued{DeliveryID: b1, EndpointID: ep.ID}, registry.OutcomeSuccess, p)
		if got := e.queueOf(t, tn.ID, ep.ID); len(got) != 0 {
			t.Errorf("queue at the end = %v, want empty", got)
		}
		if db := dumpDB(t, e.rdb); slices.ContainsFunc(keysOf(db), func(k string) bool {
			return strings.Contains(k, ":lane")
		}) {
			t.Errorf("lanes left after every scan finished: %v", keysOf(db))
		}
	})
}

// Disabling holds a lane's deliveries; re-enabling forms the lane again in creation order.
// Ending the ordering puts every waiting delivery on the queue at once.
func TestScanLaneHeldAndUnordered(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.orderedEndpoint(t, tn.ID)
		var ids []string
		for _, typ := range []string{registry.EventScanStarted, registry.EventScanCompleted, registry.EventScanFailed} {
			ids = append(ids, e.publishScan(t, tn.ID, ep.ID, typ, "scan-x"))
		}
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if d := e.delivery(t, tn.ID, queued{DeliveryID: id, EndpointID: ep.ID}); d.Status != registry.DeliveryHeld {
				t.Errorf("delivery %s is %s after disabling, want held", id, d.Status)
			}
		}
		if en, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID); err != nil || en.Requeued != 3 {
			t.Fatalf("EnableEndpoint = %d, %v; want 3 requeued", en.Requeued, err)
		}
		if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, ids[:1]) {
			t.Errorf("queue after re-enabling = %v, want only the first %v", got, ids[:1])
		}
		if w := e.waitingFor(t, tn.ID, ep.ID, ids[2]); w != ids[1] {
			t.Errorf("third waits for %q, want %q", w, ids[1])
		}
		none := registry.OrderingNone
		up, drains, err := e.store.UpdateEndpoint(ctx, tn.ID, ep.ID, registry.EndpointPatch{Ordering: &none})
		if err != nil || up.Ordering != registry.OrderingNone {
			t.Fatalf("UpdateEndpoint(ordering none) = %+v, %v", up, err)
		}
		_ = drains // the lease of the drain woken at re-enabling still holds
		if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, ids) {
			t.Errorf("queue after ending the ordering = %v, want all %v", got, ids)
		}
		for _, id := range ids {
			if w := e.waitingFor(t, tn.ID, ep.ID, id); w != "" {
				t.Errorf("%s still waits for %s", id, w)
			}
		}
	})
}

func keysOf(db map[string][]string) []string {
	var out []string
	for k := range db {
		out = append(out, k)
	}
	return out
}
