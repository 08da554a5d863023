package registry_test

import (
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

func (e *env) publishStored(t *testing.T, tid, typ string) *registry.Stored {
	t.Helper()
	id := newEventID()
	st, err := e.store.PublishEvent(t.Context(), tid, registry.NewEvent{
		ID: id, Type: typ, CreatedAt: e.clock.Now(), Body: eventBody(id, typ)})
	if err != nil {
		t.Fatalf("PublishEvent: %v", err)
	}
	return st
}

// A small fan-out is created with the event, in the same script: a delivery queued on the
// active endpoint (its id computed in Lua equals registry.DeliveryID) with a drain scheduled
// for it, a held one for the disabled endpoint, nothing for an endpoint of another type.
func TestPublishFansOutInline(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		active, disabled := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		other := e.endpoint(t, tn.ID, registry.EventScanFailed)
		if _, err := e.store.DisableEndpoint(t.Context(), tn.ID, disabled.ID, registry.ReasonManual); err != nil {
			t.Fatal(err)
		}
		st := e.publishStored(t, tn.ID, registry.EventScanCompleted)
		want := queued{DeliveryID: registry.DeliveryID(st.Event.ID, active.ID), EndpointID: active.ID}
		if !st.Inline || st.Deliveries != 2 || len(st.Drains) != 1 || st.Drains[0].EndpointID != active.ID {
			t.Fatalf("PublishEvent = inline %t, %d deliveries, drains %+v; want inline, 2, one drain of %s",
				st.Inline, st.Deliveries, st.Drains, active.ID)
		}
		// A second event finds the drain scheduled and schedules none.
		if again := e.publishStored(t, tn.ID, registry.EventScanCompleted); len(again.Drains) != 0 {
			t.Errorf("second publish scheduled drains %+v, want none while the first holds the lease", again.Drains)
		}
		if d := e.delivery(t, tn.ID, want); d.Status != registry.DeliveryPending || d.EventID != st.Event.ID {
			t.Errorf("active endpoint's delivery = %+v, want pending for the event", d)
		}
		held := queued{DeliveryID: registry.DeliveryID(st.Event.ID, disabled.ID), EndpointID: disabled.ID}
		if d := e.delivery(t, tn.ID, held); d.Status != registry.DeliveryHeld {
			t.Errorf("disabled endpoint's delivery = %s, want held", d.Status)
		}
		if n := e.statusCount(t, tn.ID, other.ID, ""); n != 0 {
			t.Errorf("an endpoint of another type got %d deliveries", n)
		}
		// The fan-out task of a sweep finds them made and leaves the queued one queued.
		if qs := e.fanout(t, st.Event); len(qs) != 1 || qs[0] != want {
			t.Errorf("CreateDeliveries after inline = %+v, want [%+v]", qs, want)
		}
	})
}

// Past InlineFanout subscribers, the event is stored alone and a fan-out task creates the
// deliveries for every subscriber.
func TestPublishLeavesLargeFanOutToTask(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 1}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		a, b := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		st := e.publishStored(t, tn.ID, registry.EventScanCompleted)
		if st.Inline || st.Deliveries != 2 || len(st.Drains) != 0 {
			t.Fatalf("PublishEvent = inline %t, %d, %+v; want a fan-out of 2 left to the task", st.Inline, st.Deliveries, st.Drains)
		}
		for _, ep := range []*registry.Endpoint{a, b} {
			if n := e.statusCount(t, tn.ID, ep.ID, ""); n != 0 {
				t.Fatalf("endpoint has %d deliveries before the fan-out task, want 0", n)
			}
		}
		if qs := e.fanout(t, st.Event); len(qs) != 2 {
			t.Errorf("CreateDeliveries(all subscribers) queued %+v, want both", qs)
		}
	})
}

// Retracting an inline publish removes its deliveries too; a fan-out of a retracted event
// answers NOT_FOUND.
func TestRetractInlinePublish(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		st := e.publishStored(t, tn.ID, registry.EventScanCompleted)
		ok, err := e.retract(t.Context(), tn.ID, "", st)
		if err != nil || !ok {
			t.Fatalf("RetractEvent = %t, %v; want retracted", ok, err)
		}
		if due := e.dueOutbox(t, tn.ID); len(due) != 0 {
			t.Errorf("outbox after retract = %v, want empty (the drain it scheduled is withdrawn)", due)
		}
		_, err = e.store.Delivery(t.Context(), tn.ID, ep.ID, registry.DeliveryID(st.Event.ID, ep.ID), false)
		wantCode(t, err, registry.CodeDeliveryNotFound)
		for _, s := range []string{"", registry.DeliveryPending} {
			if n := e.statusCount(t, tn.ID, ep.ID, s); n != 0 {
				t.Errorf("index %q still lists %d deliveries", s, n)
			}
		}
		if u := e.usage(t, tn.ID); u.EventsPublished != 0 {
			t.Errorf("usage = %d after retract, want 0", u.EventsPublished)
		}
		_, err = e.store.CreateDeliveries(t.Context(), st.Event, nil)
		wantCode(t, err, registry.CodeNotFound)
	})
}
