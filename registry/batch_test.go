package registry_test

import (
	"fmt"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// newBatch is n scan.completed events of scans of their own, created now.
func (e *env) newBatch(n int, idemKey string) registry.NewBatch {
	b := registry.NewBatch{IdempotencyKey: idemKey, RequestHash: "h"}
	for i := range n {
		id := fmt.Sprintf("evt_batch%023d", i)
		b.Events = append(b.Events, registry.NewEvent{ID: id, Type: registry.EventScanCompleted, CreatedAt: e.clock.Now(),
			Body: eventBody(id, registry.EventScanCompleted), ScanID: fmt.Sprintf("scan-%d", i)})
	}
	return b
}

func (e *env) used(t *testing.T, tid string) int64 {
	t.Helper()
	u, err := e.store.Usage(t.Context(), tid)
	if err != nil {
		t.Fatal(err)
	}
	return u.EventsPublished
}

// stored counts the events of b that can be read.
func (e *env) stored(t *testing.T, tid string, b registry.NewBatch) int {
	t.Helper()
	n := 0
	for _, ev := range b.Events {
		if _, err := e.store.Event(t.Context(), tid, ev.ID); err == nil {
			n++
		}
	}
	return n
}

// TestPublishEventsAllOrNone: a batch that would pass the quota stores and counts nothing; one
// within it stores and counts every event.
func TestPublishEventsAllOrNone(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 5)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(6, "")
		b.Quota = 5
		_, err := e.store.PublishEvents(t.Context(), tn.ID, b)
		wantCode(t, err, registry.CodeQuotaExceeded)
		if n, used := e.stored(t, tn.ID, b), e.used(t, tn.ID); n != 0 || used != 0 {
			t.Errorf("after a refused batch: %d events stored, %d counted; want none", n, used)
		}
		b.Events = b.Events[:5]
		sb, err := e.store.PublishEvents(t.Context(), tn.ID, b)
		if err != nil || len(sb.Events) != 5 || len(sb.Drains) != 1 {
			t.Fatalf("PublishEvents = %+v, %v; want 5 events and the one drain of their endpoint", sb, err)
		}
		for _, st := range sb.Events {
			if !st.Inline || st.Deliveries != 1 {
				t.Errorf("event %s: inline %v, %d deliveries; want its delivery queued with it", st.Event.ID, st.Inline, st.Deliveries)
			}
		}
		if items, _ := e.take(t, tn.ID, ep.ID, sb.Drains[0].N, 10); len(items) != 5 {
			t.Errorf("endpoint queue holds %d deliveries, want 5", len(items))
		}
		if used := e.used(t, tn.ID); used != 5 {
			t.Errorf("%d events counted, want 5", used)
		}
	})
}

// TestRetractEvents: a batch none of whose work was queued is withdrawn whole; once any of its
// work may be under way, nothing is.
func TestRetractEvents(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(3, "retract-me")
		sb, err := e.store.PublishEvents(t.Context(), tn.ID, b)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := e.store.RetractEvents(t.Context(), tn.ID, b.IdempotencyKey, sb)
		if !ok || err != nil {
			t.Fatalf("RetractEvents = %v, %v; want retracted", ok, err)
		}
		if n, used := e.stored(t, tn.ID, b), e.used(t, tn.ID); n != 0 || used != 0 {
			t.Errorf("after retracting: %d events stored, %d counted; want none", n, used)
		}
		if ds, total, _ := e.store.ListDeliveries(t.Context(), tn.ID, ep.ID, "", registry.Page{Page: 1, Limit: 10}); total != 0 {
			t.Errorf("after retracting: %d deliveries listed (%v), want none", total, ds)
		}
		// The key is free again: the same batch is stored anew.
		if again, err := e.store.PublishEvents(t.Context(), tn.ID, b); err != nil || again.Replayed {
			t.Errorf("publish after retracting = %+v, %v; want stored, not replayed", again, err)
		}
	})
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(2, "")
		sb, err := e.store.PublishEvents(t.Context(), tn.ID, b) // fan-out tasks: nothing inline
		if err != nil {
			t.Fatal(err)
		}
		// A sweep queued the second event's fan-out: the batch stands.
		if err := e.store.OutboxDone(t.Context(), tn.ID, registry.FanoutEntry(b.Events[1].ID)); err != nil {
			t.Fatal(err)
		}
		if ok, err := e.store.RetractEvents(t.Context(), tn.ID, "", sb); ok || err != nil {
			t.Errorf("RetractEvents = %v, %v; want refused once any fan-out was taken", ok, err)
		}
		if n := e.stored(t, tn.ID, b); n != 2 {
			t.Errorf("%d events stored, want both", n)
		}
	})
}
