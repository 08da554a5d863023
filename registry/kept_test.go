package registry_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// A delivery that succeeded at its first attempt is kept without a record of its own, and every
// read shows it as a record would: the delivery with its attempt, the endpoint's lists, the
// event's deliveries. A fan-out or a recovery run again finds it there and creates nothing; a
// manual retry gives it its record back and queues it in a new run, its first attempt kept.
func TestKeptDelivery(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		since := e.clock.Now()
		ev := e.publish(t, tn.ID, registry.EventScanCompleted)
		qs := e.fanout(t, ev, ep.ID)
		at := e.clock.Advance(time.Second)
		e.attempt(t, tn.ID, qs[0], registry.OutcomeSuccess, lenient)
		did := qs[0].DeliveryID
		if e.hasRecord(t, tn.ID, did) {
			t.Fatal("the delivery has a record of its own; want it kept")
		}

		d, err := e.store.Delivery(ctx, tn.ID, ep.ID, did, true)
		if err != nil {
			t.Fatalf("Delivery: %v", err)
		}
		if d.Status != registry.DeliverySucceeded || d.WebhookID != ep.ID || d.EventID != ev.ID ||
			d.EventType != ev.Type || d.AttemptCount != 1 || d.RunAttempts != 1 || d.NextAttemptAt != nil ||
			!d.CreatedAt.Equal(ev.CreatedAt) || !d.UpdatedAt.Equal(at) || len(d.Attempts) != 1 ||
			d.Attempts[0].StatusCode != 200 || !d.Attempts[0].StartedAt.Equal(at.Add(-250*time.Millisecond)) {
			t.Errorf("kept delivery read as %+v", d)
		}
		for _, status := range []string{"", registry.DeliverySucceeded} {
			list, total, err := e.store.ListDeliveries(ctx, tn.ID, ep.ID, status, registry.Page{Page: 1, Limit: 10})
			if err != nil || total != 1 || len(list) != 1 || list[0].ID != did || list[0].Status != registry.DeliverySucceeded ||
				list[0].AttemptCount != 1 || !list[0].UpdatedAt.Equal(at) {
				t.Errorf("ListDeliveries(%q) = %+v, %d, %v; want the kept delivery", status, list, total, err)
			}
		}
		if _, eds, err := e.store.EventWithDeliveries(ctx, tn.ID, ev.ID); err != nil || len(eds) != 1 ||
			eds[0].Status != registry.DeliverySucceeded || eds[0].AttemptCount != 1 || eds[0].LastStatusCode != 200 {
			t.Errorf("EventWithDeliveries = %+v, %v; want the kept delivery, succeeded with 200", eds, err)
		}
		_, err = e.store.Delivery(ctx, tn.ID, e.endpoint(t, tn.ID).ID, did, false)
		wantCode(t, err, registry.CodeDeliveryNotFound)

		if again := e.fanout(t, ev, ep.ID); len(again) != 0 {
			t.Errorf("a second fan-out queued %+v; want nothing", again)
		}
		for _, include := range []string{registry.RecoverMissing, registry.RecoverFailed} {
			r := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, include).ID)
			if r.Created != 0 || r.Requeued != 0 {
				t.Errorf("a %s recovery created %d and requeued %d; want nothing", include, r.Created, r.Requeued)
			}
		}

		if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, did); err != nil {
			t.Fatalf("RequeueDelivery: %v", err)
		}
		if !e.hasRecord(t, tn.ID, did) {
			t.Fatal("a retried kept delivery has no record")
		}
		if n := e.rdb.HLen(ctx, registry.KeptKeyOf(tn.ID, ev.CreatedAt)).Val(); n != 0 {
			t.Errorf("a retried delivery is still kept: %d fields", n)
		}
		rq := e.run(t, tn.ID, qs[0])
		if d := e.delivery(t, tn.ID, rq); d.Status != registry.DeliveryPending || d.Generation != 1 || d.AttemptCount != 1 ||
			d.RunAttempts != 0 || !d.CreatedAt.Equal(ev.CreatedAt) || d.EventID != ev.ID {
			t.Errorf("retried delivery = %+v; want pending in run 1, its first attempt counted", d)
		}
		e.clock.Advance(time.Second)
		if r := e.attempt(t, tn.ID, rq, registry.OutcomeSuccess, lenient); r.Status != registry.DeliverySucceeded {
			t.Fatalf("the retry's attempt = %s, want succeeded", r.Status)
		}
		d, err = e.store.Delivery(ctx, tn.ID, ep.ID, did, true)
		if err != nil || d.AttemptCount != 2 || len(d.Attempts) != 2 || d.Attempts[1].Number != 2 ||
			!d.Attempts[0].StartedAt.Equal(at.Add(-250*time.Millisecond)) {
			t.Errorf("after the retry = %+v, %v; want both attempts", d, err)
		}
	})
}

// A kept delivery is a 16-byte field and a value under 64 bytes (a compact string in Redis)
// when its event id is "evt_" and hex; one of another event id is kept as text; one kept as
// the version before kept it (its id as text, a text value) reads, lists and is retried alike.
func TestKeptDeliveryForms(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		for _, c := range []struct {
			name, id string
			before   bool
		}{
			{"a UUIDv7 event id", newEventID(), false},
			{"another event id", "evt_other-" + uuid.NewString(), false},
			{"kept by the version before", newEventID(), true},
		} {
			ev, err := e.store.PublishEvent(ctx, tn.ID, registry.NewEvent{ID: c.id, Type: registry.EventScanFailed,
				CreatedAt: e.clock.Now(), Body: eventBody(c.id, registry.EventScanFailed)})
			if err != nil {
				t.Fatal(err)
			}
			ep := e.endpoint(t, tn.ID, registry.EventScanFailed)
			qs := e.fanout(t, ev.Event, ep.ID)
			at := e.clock.Advance(time.Second)
			e.attempt(t, tn.ID, qs[0], registry.OutcomeSuccess, lenient)
			did, key := qs[0].DeliveryID, registry.KeptKeyOf(tn.ID, ev.Event.CreatedAt)
			v := e.rdb.HGet(ctx, key, registry.KeptFieldOf(did)).Val()
			if compact := !strings.HasPrefix(c.id, "evt_other-"); compact && (v == "" || v[0] != 2 || len(v) >= 64) ||
				!compact && !strings.HasPrefix(v, c.id+"|scan.failed|") {
				t.Errorf("%s: kept as %q", c.name, v)
			}
			if c.before {
				d, _ := e.store.Delivery(ctx, tn.ID, ep.ID, did, true)
				old := fmt.Sprintf("%s|%s|%d|1 %d 12 200 0 ", c.id, registry.EventScanFailed, at.UnixMilli(),
					d.Attempts[0].StartedAt.UnixNano())
				e.rdb.HDel(ctx, key, registry.KeptFieldOf(did))
				e.rdb.HSet(ctx, key, did, old)
			}
			d, err := e.store.Delivery(ctx, tn.ID, ep.ID, did, true)
			if err != nil || d.EventID != c.id || d.EventType != registry.EventScanFailed || !d.UpdatedAt.Equal(at) ||
				len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 200 || !d.Attempts[0].StartedAt.Equal(at.Add(-250*time.Millisecond)) {
				t.Errorf("%s: read as %+v, %v", c.name, d, err)
			}
			if list, _, err := e.store.ListDeliveries(ctx, tn.ID, ep.ID, "", registry.Page{Page: 1, Limit: 10}); err != nil ||
				len(list) != 1 || list[0].EventID != c.id || !list[0].UpdatedAt.Equal(at) {
				t.Errorf("%s: listed as %+v, %v", c.name, list, err)
			}
			if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, did); err != nil {
				t.Fatalf("%s: RequeueDelivery: %v", c.name, err)
			}
			if d := e.delivery(t, tn.ID, e.run(t, tn.ID, qs[0])); d.EventID != c.id || d.EventType != registry.EventScanFailed ||
				d.AttemptCount != 1 || !d.CreatedAt.Equal(ev.Event.CreatedAt) {
				t.Errorf("%s: retried as %+v", c.name, d)
			}
			if n := e.rdb.HLen(ctx, key).Val(); n != 0 {
				t.Errorf("%s: a retried delivery is still kept: %d fields", c.name, n)
			}
		}
	})
}

// Every event type has a code in compact records; an event or kept delivery of a type without
// one would be kept as text, larger.
func TestEveryTypeHasACode(t *testing.T) {
	for _, typ := range slices.Concat(registry.EventTypes, registry.OperationalEventTypes, []string{registry.EventWebhookTest}) {
		if !slices.Contains(registry.TypeCodes, typ) {
			t.Errorf("%s has no code among the type codes", typ)
		}
	}
}
