package registry_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func TestDeliveryWithAttempts(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		want := []registry.Attempt{
			{Number: 1, StartedAt: start.Add(time.Minute), DurationMs: 15000, Error: "timeout after 15s"},
			{Number: 2, StartedAt: start.Add(2 * time.Minute), DurationMs: 40, StatusCode: 500, ResponseBody: `{"error":"boom"}`},
			{Number: 3, StartedAt: start.Add(3 * time.Minute), DurationMs: 12, StatusCode: 204},
		}
		outcomes := []registry.AttemptOutcome{registry.OutcomeFailure, registry.OutcomeFailure, registry.OutcomeSuccess}
		for i, a := range want {
			rec := e.record(tn.ID, q, outcomes[i], lenient)
			rec.Attempt = a
			e.recordAttempt(t, rec)
		}
		d, err := e.store.Delivery(ctx, tn.ID, ep.ID, q.DeliveryID, true)
		if err != nil {
			t.Fatalf("Delivery: %v", err)
		}
		if d.AttemptCount != 3 || d.Status != registry.DeliverySucceeded || len(d.Attempts) != len(want) {
			t.Fatalf("Delivery = %+v, want succeeded with 3 attempts", d)
		}
		for i, got := range d.Attempts {
			w := want[i]
			if got.Number != w.Number || !got.StartedAt.Equal(w.StartedAt) || got.DurationMs != w.DurationMs ||
				got.StatusCode != w.StatusCode || got.Error != w.Error || got.ResponseBody != w.ResponseBody {
				t.Errorf("attempt %d = %+v, want %+v", i+1, got, w)
			}
		}
		// The status change is dated by the attempt's end.
		if end := want[2].StartedAt.Add(12 * time.Millisecond); !d.UpdatedAt.Equal(end) {
			t.Errorf("UpdatedAt = %v, want %v", d.UpdatedAt, end)
		}
		if d, err := e.store.Delivery(ctx, tn.ID, ep.ID, q.DeliveryID, false); err != nil || d.Attempts != nil {
			t.Errorf("Delivery without attempts = %+v, %v; want no attempts", d, err)
		}
	})
}

func TestDeliveryNotFound(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep, other := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		cases := []struct{ name, tid, eid, did string }{
			{"unknown id", tn.ID, ep.ID, "no-such-delivery"},
			{"another endpoint's", tn.ID, other.ID, q.DeliveryID},
			{"another tenant's", e.tenant(t, 0).ID, ep.ID, q.DeliveryID},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				for _, with := range []bool{false, true} {
					d, err := e.store.Delivery(t.Context(), c.tid, c.eid, c.did, with)
					if d != nil {
						t.Errorf("Delivery returned %+v", d)
					}
					wantCode(t, err, registry.CodeDeliveryNotFound)
				}
			})
		}
	})
}

func deliveryIDs(ds []*registry.Delivery) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestListDeliveries(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep, other := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 5) // oldest first
		e.deliver(t, tn.ID, other.ID)
		e.attempt(t, tn.ID, qs[0], registry.OutcomeSuccess, lenient)
		e.attempt(t, tn.ID, qs[2], registry.OutcomeSuccess, lenient)
		e.attempt(t, tn.ID, qs[3], registry.OutcomeFailure, lenient)
		id := func(i int) string { return qs[i].DeliveryID }
		cases := []struct {
			name      string
			status    string
			page      registry.Page
			want      []string
			wantTotal int
		}{
			{"all newest first", "", registry.Page{Page: 1, Limit: 20}, []string{id(4), id(3), id(2), id(1), id(0)}, 5},
			{"first page", "", registry.Page{Page: 1, Limit: 2}, []string{id(4), id(3)}, 5},
			{"middle page", "", registry.Page{Page: 2, Limit: 2}, []string{id(2), id(1)}, 5},
			{"last page", "", registry.Page{Page: 3, Limit: 2}, []string{id(0)}, 5},
			{"past the end", "", registry.Page{Page: 4, Limit: 2}, nil, 5},
			{"largest page", "", registry.Page{Page: math.MaxInt, Limit: 100}, nil, 5},
			{"succeeded", registry.DeliverySucceeded, registry.Page{Page: 1, Limit: 20}, []string{id(2), id(0)}, 2},
			{"succeeded second page", registry.DeliverySucceeded, registry.Page{Page: 2, Limit: 1}, []string{id(0)}, 2},
			{"pending", registry.DeliveryPending, registry.Page{Page: 1, Limit: 20}, []string{id(4), id(1)}, 2},
			{"retrying", registry.DeliveryRetrying, registry.Page{Page: 1, Limit: 20}, []string{id(3)}, 1},
			{"failed", registry.DeliveryFailed, registry.Page{Page: 1, Limit: 20}, nil, 0},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ds, total, err := e.store.ListDeliveries(ctx, tn.ID, ep.ID, c.status, c.page)
				if err != nil {
					t.Fatalf("ListDeliveries: %v", err)
				}
				if got := deliveryIDs(ds); !slices.Equal(got, c.want) || total != c.wantTotal {
					t.Errorf("ListDeliveries = %v (total %d), want %v (total %d)", got, total, c.want, c.wantTotal)
				}
				for _, d := range ds {
					if d.WebhookID != ep.ID || (c.status != "" && d.Status != c.status) {
						t.Errorf("listed %+v", d)
					}
				}
			})
		}
	})
}

// TestRetention proves events, deliveries and attempts expire with Config.Retention.
func TestRetention(t *testing.T) {
	eachBackend(t, registry.Config{Retention: time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		ev := e.publish(t, tn.ID, registry.EventScanCompleted)
		q := e.fanout(t, ev, ep.ID)[0]
		e.attempt(t, tn.ID, q, registry.OutcomeFailure, lenient)
		if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID); err != nil {
			t.Fatalf("RequeueDelivery: %v", err)
		}
		testID, _, err := e.store.CreateTestDelivery(ctx, &registry.Event{ID: "evt_ping", TenantID: tn.ID,
			Type: registry.EventWebhookTest, CreatedAt: e.clock.Now(), Body: []byte(`{}`)}, ep.ID)
		if err != nil {
			t.Fatalf("CreateTestDelivery: %v", err)
		}
		checked := 0
		for key := range dumpDB(t, e.rdb) {
			if !strings.Contains(key, ev.ID) && !strings.Contains(key, q.DeliveryID) &&
				!strings.Contains(key, "evt_ping") && !strings.Contains(key, testID) {
				continue
			}
			checked++
			ttl, err := e.rdb.TTL(ctx, key).Result()
			if err != nil {
				t.Fatalf("TTL %s: %v", key, err)
			}
			if ttl <= 0 || ttl > time.Hour {
				t.Errorf("TTL of %s = %v, want in (0, 1h]", key, ttl)
			}
		}
		// the delivery of the event (its first attempt is kept in the delivery); event and
		// delivery of the ping (an id that is no UUIDv7 has a key of its own)
		if checked != 3 {
			t.Errorf("checked %d event and delivery keys, want 3", checked)
		}
		// The event is a field of its minute's hash, kept the retention period after that minute.
		hk := registry.EventMinuteKeyOf(t, tn.ID, ev.ID)
		if ttl, err := e.rdb.TTL(ctx, hk).Result(); err != nil || ttl < time.Hour-time.Minute || ttl > 2*time.Hour {
			t.Errorf("TTL of %s = %v, %v; want the retention period after the minute", hk, ttl, err)
		}
	})
}
