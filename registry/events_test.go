package registry_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func newEvent(e *env, typ, idemKey string, quota int64) registry.NewEvent {
	id := newEventID()
	return registry.NewEvent{ID: id, Type: typ, CreatedAt: e.clock.Now(), Body: eventBody(id, typ),
		IdempotencyKey: idemKey, Quota: quota}
}

func (e *env) usage(t *testing.T, tid string) registry.Usage {
	t.Helper()
	u, err := e.store.Usage(t.Context(), tid)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

// TestPublishEventStoresBodyOnce proves the body is kept exactly once, however many endpoints
// get a delivery, and without its envelope's head (the id and type its record holds).
func TestPublishEventStoresBodyOnce(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		var eps []string
		for range 3 {
			eps = append(eps, e.endpoint(t, tn.ID).ID)
		}
		e.endpoint(t, tn.ID, registry.EventScanFailed) // not subscribed to the type
		n := newEvent(e, registry.EventScanCompleted, "", 0)
		st, err := e.store.PublishEvent(t.Context(), tn.ID, n)
		if err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
		if st.Replayed || st.Deliveries != 3 || st.Event.ID != n.ID || st.Event.TenantID != tn.ID ||
			st.Event.Type != n.Type || !st.Event.CreatedAt.Equal(n.CreatedAt) || !bytes.Equal(st.Event.Body, n.Body) {
			t.Fatalf("PublishEvent = %+v (event %+v), want a new event with 3 deliveries", st, st.Event)
		}
		if qs := e.fanout(t, st.Event, eps...); len(qs) != 3 {
			t.Fatalf("CreateDeliveries queued %d, want 3", len(qs))
		}
		got, err := e.store.Event(t.Context(), tn.ID, n.ID)
		if err != nil {
			t.Fatalf("Event: %v", err)
		}
		if got.ID != n.ID || got.Type != n.Type || !got.CreatedAt.Equal(n.CreatedAt) || !bytes.Equal(got.Body, n.Body) {
			t.Errorf("Event = %+v, want %s with the published body", got, n.ID)
		}
		_, data, _ := bytes.Cut(n.Body, []byte(`"data":`))
		data = bytes.TrimSuffix(data, []byte("}"))
		copies, heads := 0, 0
		for _, vals := range dumpDB(t, e.rdb) {
			for _, v := range vals {
				copies += strings.Count(v, string(data))
				heads += strings.Count(v, `{"id":"`+n.ID)
			}
		}
		if copies != 1 || heads != 0 {
			t.Errorf("the event body is stored %d times, %d of them with its envelope's head; want once, without", copies, heads)
		}
		_, err = e.store.Event(t.Context(), tn.ID, "evt_unknown")
		wantCode(t, err, registry.CodeNotFound)
	})
}

func TestPublishEventIdempotency(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 10)
		e.endpoint(t, tn.ID)
		first, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanCompleted, "order-42", 10))
		if err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
		e.endpoint(t, tn.ID) // a new subscriber must not change the replayed answer
		e.clock.Advance(time.Hour)
		second := newEvent(e, registry.EventScanCompleted, "order-42", 10)
		replay, err := e.store.PublishEvent(ctx, tn.ID, second)
		if err != nil {
			t.Fatalf("PublishEvent(replay): %v", err)
		}
		if !replay.Replayed || replay.Event.ID != first.Event.ID || replay.Deliveries != 1 ||
			!replay.Event.CreatedAt.Equal(first.Event.CreatedAt) || !bytes.Equal(replay.Event.Body, first.Event.Body) {
			t.Errorf("replay = %+v (event %+v), want the first event %s with 1 delivery", replay, replay.Event, first.Event.ID)
		}
		_, err = e.store.Event(ctx, tn.ID, second.ID)
		wantCode(t, err, registry.CodeNotFound)
		if u := e.usage(t, tn.ID); u.EventsPublished != 1 {
			t.Errorf("EventsPublished after a replay = %d, want 1", u.EventsPublished)
		}
		other, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanCompleted, "order-43", 10))
		if err != nil || other.Replayed || other.Event.ID == first.Event.ID {
			t.Errorf("another Idempotency-Key = %+v, %v; want a new event", other, err)
		}
		// The same key in another tenant is another key.
		tn2 := e.tenant(t, 0)
		st, err := e.store.PublishEvent(ctx, tn2.ID, newEvent(e, registry.EventScanCompleted, "order-42", 0))
		if err != nil || st.Replayed {
			t.Errorf("same Idempotency-Key in another tenant = %+v, %v; want a new event", st, err)
		}
	})
}

func TestPublishEventQuota(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 2)
		first, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanStarted, "k1", 2))
		if err != nil {
			t.Fatalf("PublishEvent 1: %v", err)
		}
		if _, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanStarted, "", 2)); err != nil {
			t.Fatalf("PublishEvent 2: %v", err)
		}
		third := newEvent(e, registry.EventScanStarted, "k3", 2)
		_, err = e.store.PublishEvent(ctx, tn.ID, third)
		wantCode(t, err, registry.CodeQuotaExceeded)
		_, err = e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanStarted, "", 2))
		wantCode(t, err, registry.CodeQuotaExceeded)
		if _, err := e.store.Event(ctx, tn.ID, third.ID); err == nil {
			t.Error("an event refused for quota was stored")
		}

		u := e.usage(t, tn.ID)
		if u.EventsPublished != 2 || u.MonthlyEventQuota != 2 || u.Remaining == nil || *u.Remaining != 0 {
			t.Errorf("Usage = %+v, want 2 published of 2, 0 remaining", u)
		}
		// A replay of an accepted event still answers once the quota is spent.
		st, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanStarted, "k1", 2))
		if err != nil || !st.Replayed || st.Event.ID != first.Event.ID {
			t.Errorf("replay after the quota is spent = %+v, %v; want the first event", st, err)
		}
		// The refused key was not remembered.
		_, err = e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanStarted, "k3", 2))
		wantCode(t, err, registry.CodeQuotaExceeded)

		// A new UTC month starts a new count.
		e.clock.Set(time.Date(2031, time.April, 1, 0, 0, 0, 0, time.UTC))
		if _, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanStarted, "", 2)); err != nil {
			t.Fatalf("PublishEvent in a new month: %v", err)
		}
		if u := e.usage(t, tn.ID); u.Period != "2031-04" || u.EventsPublished != 1 || *u.Remaining != 1 {
			t.Errorf("Usage in April = %+v, want 1 published, 1 remaining", u)
		}
	})
}

func TestUsage(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		unlimited, quota := e.tenant(t, 0), e.tenant(t, 100)
		for range 3 {
			e.publish(t, unlimited.ID, registry.EventScanCompleted)
		}
		e.publish(t, quota.ID, registry.EventScanCompleted)

		u := e.usage(t, unlimited.ID)
		want := registry.Usage{Period: "2031-03", PeriodStart: time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC),
			PeriodEnd: time.Date(2031, 4, 1, 0, 0, 0, 0, time.UTC), EventsPublished: 3}
		if u.Period != want.Period || !u.PeriodStart.Equal(want.PeriodStart) || !u.PeriodEnd.Equal(want.PeriodEnd) ||
			u.EventsPublished != 3 || u.MonthlyEventQuota != 0 || u.Remaining != nil {
			t.Errorf("Usage(unlimited) = %+v, want %+v with no remaining", u, want)
		}
		if u := e.usage(t, quota.ID); u.EventsPublished != 1 || u.MonthlyEventQuota != 100 || u.Remaining == nil || *u.Remaining != 99 {
			t.Errorf("Usage(quota 100) = %+v, want 1 published, 99 remaining", u)
		}
		_, err := e.store.Usage(t.Context(), "no-such-tenant")
		wantCode(t, err, registry.CodeNotFound)
	})
}

func TestRetractEvent(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 5)
		n := newEvent(e, registry.EventScanCompleted, "retry-me", 5)
		st, err := e.store.PublishEvent(ctx, tn.ID, n)
		if err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
		ok, err := e.retract(ctx, tn.ID, n.IdempotencyKey, st)
		if err != nil || !ok {
			t.Fatalf("RetractEvent = %v, %v; want true", ok, err)
		}
		_, err = e.store.Event(ctx, tn.ID, n.ID)
		wantCode(t, err, registry.CodeNotFound)
		if u := e.usage(t, tn.ID); u.EventsPublished != 0 {
			t.Errorf("EventsPublished after retract = %d, want 0", u.EventsPublished)
		}
		if due := e.dueOutbox(t, tn.ID); len(due) != 0 {
			t.Errorf("outbox after retract = %v, want empty", due)
		}
		again, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanCompleted, "retry-me", 5))
		if err != nil || again.Replayed {
			t.Fatalf("publish with the retracted Idempotency-Key = %+v, %v; want a new event", again, err)
		}

		// Once a fan-out is queued (outbox entry done), the event stays. (Stored{} has Inline
		// false: the retract of a fan-out.)
		if err := e.store.OutboxDone(ctx, tn.ID, registry.FanoutEntry(again.Event.ID)); err != nil {
			t.Fatalf("OutboxDone: %v", err)
		}
		ok, err = e.retract(ctx, tn.ID, "retry-me", &registry.Stored{Event: again.Event})
		if err != nil || ok {
			t.Fatalf("RetractEvent after OutboxDone = %v, %v; want false", ok, err)
		}
		if _, err := e.store.Event(ctx, tn.ID, again.Event.ID); err != nil {
			t.Errorf("Event after a refused retract: %v", err)
		}
		if u := e.usage(t, tn.ID); u.EventsPublished != 1 {
			t.Errorf("EventsPublished after a refused retract = %d, want 1", u.EventsPublished)
		}
		replay, err := e.store.PublishEvent(ctx, tn.ID, newEvent(e, registry.EventScanCompleted, "retry-me", 5))
		if err != nil || !replay.Replayed || replay.Event.ID != again.Event.ID {
			t.Errorf("Idempotency-Key after a refused retract = %+v, %v; want a replay", replay, err)
		}
	})
}

// dueOutbox reads every outbox entry up to a day from now.
func (e *env) dueOutbox(t *testing.T, tid string) []registry.OutboxEntry {
	t.Helper()
	due, err := e.store.DueOutbox(t.Context(), tid, e.clock.Now().Add(24*time.Hour), 1000)
	if err != nil {
		t.Fatalf("DueOutbox: %v", err)
	}
	return entries(due)
}

func entries(ws []registry.Work) []registry.OutboxEntry {
	var out []registry.OutboxEntry
	for _, w := range ws {
		out = append(out, w.Entry)
	}
	return out
}

func TestDueOutbox(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		var evs []registry.OutboxEntry
		for range 3 {
			evs = append(evs, registry.FanoutEntry(e.publish(t, tn.ID, registry.EventScanCompleted).ID))
			e.clock.Advance(time.Minute)
		}
		e.publish(t, e.tenant(t, 0).ID, registry.EventScanCompleted) // another tenant's outbox
		cases := []struct {
			name   string
			before time.Time
			limit  int64
			want   []registry.OutboxEntry
		}{
			{"before everything", start.Add(-time.Second), 10, nil},
			{"first two", start.Add(90 * time.Second), 10, evs[:2]},
			{"limit", start.Add(time.Hour), 1, evs[:1]},
			{"all", start.Add(time.Hour), 10, evs},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := e.store.DueOutbox(ctx, tn.ID, c.before, c.limit)
				if err != nil {
					t.Fatalf("DueOutbox: %v", err)
				}
				if !slices.Equal(entries(got), c.want) {
					t.Errorf("DueOutbox(%v, %d) = %v, want %v", c.before, c.limit, got, c.want)
				}
			})
		}
		if err := e.store.OutboxDone(ctx, tn.ID, evs[0], evs[2]); err != nil {
			t.Fatalf("OutboxDone: %v", err)
		}
		if err := e.store.OutboxDone(ctx, tn.ID); err != nil {
			t.Fatalf("OutboxDone(): %v", err)
		}
		if got := e.dueOutbox(t, tn.ID); !slices.Equal(got, evs[1:2]) {
			t.Errorf("DueOutbox after OutboxDone = %v, want %v", got, evs[1:2])
		}
	})
}
