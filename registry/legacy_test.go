package registry_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// legacyEvent writes an event as the earlier format stored it (id, type, createdAt, body,
// deliveries, lane and requestHash fields; its id alone under its idempotency key), indexed by
// type and scan, and returns its id.
func (e *env) legacyEvent(t *testing.T, tid, scanID, idemKey, hash string, deliveries int) string {
	t.Helper()
	ctx := t.Context()
	id := "evt_" + uuid.NewString()[:8] + "legacy0000000000000000"
	at := strconv.FormatInt(e.clock.Now().UnixMilli(), 10)
	body := fmt.Sprintf(`{"id":%q,"type":"scan.completed","timestamp":"2026-01-01T00:00:00Z","data":{"scanId":%q,"scanType":"zap"}}`,
		id, scanID)
	lane := registry.LaneOf(scanID)
	k := registry.LegacyEventKeyOf(tid, id)
	if err := e.rdb.HSet(ctx, k, "id", id, "type", registry.EventScanCompleted, "createdAt", at, "body", body,
		"deliveries", deliveries, "lane", lane, "requestHash", hash).Err(); err != nil {
		t.Fatal(err)
	}
	e.rdb.ZAdd(ctx, registry.EventsKeyOf(tid, registry.EventScanCompleted), redisZ(at, id))
	e.rdb.ZAdd(ctx, registry.ScanEventsKeyOf(tid, lane), redisZ(at, id))
	e.rdb.Set(ctx, registry.IdempotencyKeyOf(tid, idemKey), id, 0)
	return id
}

// An event an earlier version stored as a string of its own under its UUIDv7 id, or the
// version before as a text field and record of its minute's hash, reads and is taken for
// delivery as one kept compact in its minute's hash; so does one whose id is no UUIDv7, which
// is still stored as a string of its own.
func TestEventOwnStringRecords(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		before := newEventID()
		body := string(eventBody(before, registry.EventScanCompleted))
		at := e.clock.Now().UnixMilli()
		if err := e.rdb.Set(ctx, registry.EventKeyOf(tn.ID, before), fmt.Sprintf("scan.completed|%d|||%s", at, body), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		e.rdb.ZAdd(ctx, registry.EventsKeyOf(tn.ID, registry.EventScanCompleted), redisZ(strconv.FormatInt(at, 10), before))
		inMinute := newEventID() // the version before: a text field and record in the minute's hash
		if err := e.rdb.HSet(ctx, registry.EventMinuteKeyOf(t, tn.ID, inMinute), inMinute,
			fmt.Sprintf("scan.completed|%d|||%s", at, eventBody(inMinute, registry.EventScanCompleted))).Err(); err != nil {
			t.Fatal(err)
		}
		e.rdb.ZAdd(ctx, registry.EventsKeyOf(tn.ID, registry.EventScanCompleted), redisZ(strconv.FormatInt(at, 10), inMinute))
		other := "evt_" + strings.ReplaceAll(uuid.NewString(), "-", "") // a UUIDv4
		st, err := e.store.PublishEvent(ctx, tn.ID, registry.NewEvent{ID: other, Type: registry.EventScanCompleted,
			CreatedAt: e.clock.Now(), Body: eventBody(other, registry.EventScanCompleted)})
		if err != nil {
			t.Fatal(err)
		}
		if n := e.rdb.Exists(ctx, registry.EventKeyOf(tn.ID, other)).Val(); n != 1 {
			t.Errorf("an event whose id is no UUIDv7 has no key of its own")
		}
		for _, id := range []string{before, inMinute, other} {
			if ev, err := e.store.Event(ctx, tn.ID, id); err != nil || ev.ID != id || ev.Type != registry.EventScanCompleted ||
				!bytes.HasPrefix(ev.Body, []byte(`{"id":"`+id)) {
				t.Errorf("Event(%s) = %+v, %v", id, ev, err)
			}
		}
		e.fanout(t, &registry.Event{ID: before, TenantID: tn.ID, Type: registry.EventScanCompleted}, ep.ID)
		e.fanout(t, &registry.Event{ID: inMinute, TenantID: tn.ID, Type: registry.EventScanCompleted}, ep.ID)
		items, _ := e.take(t, tn.ID, ep.ID, st.Drains[0].N, 10)
		if len(items) != 3 || len(items[0].Body) == 0 || len(items[1].Body) == 0 || len(items[2].Body) == 0 {
			t.Errorf("took %d deliveries, %+v; want all three, with their events' bodies", len(items), items)
		}
	})
}

// TestLegacyEventRecords: an event stored in the earlier format reads, lists, replays and
// delivers as one stored now.
func TestLegacyEventRecords(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		scan := uuid.NewString()
		id := e.legacyEvent(t, tn.ID, scan, "old-key", "hash-1", 1)

		ev, err := e.store.Event(ctx, tn.ID, id)
		if err != nil || ev.ID != id || ev.Type != registry.EventScanCompleted || !ev.CreatedAt.Equal(e.clock.Now().Truncate(1e6)) {
			t.Fatalf("Event = %+v, %v; want the legacy event as written", ev, err)
		}
		for _, f := range []registry.EventFilter{{}, {ScanID: scan}, {Type: registry.EventScanCompleted}} {
			evs, total, err := e.store.ListEvents(ctx, tn.ID, f, registry.Page{Page: 1, Limit: 10})
			if err != nil || total != 1 || len(evs) != 1 || evs[0].ID != id || string(evs[0].Data) == "" {
				t.Errorf("ListEvents(%+v) = %v (total %d), %v; want the legacy event with its data", f, evs, total, err)
			}
		}

		t.Run("its idempotency key replays it or refuses another request", func(t *testing.T) {
			n := registry.NewEvent{ID: "evt_new", Type: registry.EventScanCompleted, CreatedAt: e.clock.Now(),
				Body: []byte(`{}`), IdempotencyKey: "old-key", RequestHash: "hash-1"}
			st, err := e.store.PublishEvent(ctx, tn.ID, n)
			if err != nil || !st.Replayed || st.Event.ID != id || st.Deliveries != 1 {
				t.Errorf("same request = %+v, %v; want the legacy event replayed with 1 delivery", st, err)
			}
			n.RequestHash = "hash-2"
			_, err = e.store.PublishEvent(ctx, tn.ID, n)
			wantCode(t, err, registry.CodeIdempotencyKeyReused)
		})

		t.Run("it is delivered and shows its delivery", func(t *testing.T) {
			qs := e.fanout(t, ev, ep.ID)
			if len(qs) != 1 {
				t.Fatalf("fan-out queued %d deliveries, want 1", len(qs))
			}
			items, _ := e.take(t, tn.ID, ep.ID, 1, 10)
			if len(items) != 1 || items[0].EventID != id || string(items[0].Body) == "" {
				t.Fatalf("Take = %+v, want the legacy event's delivery with its body", items)
			}
			want, _ := e.store.Event(ctx, tn.ID, id)
			if string(items[0].Body) != string(want.Body) {
				t.Errorf("body taken = %s, want %s", items[0].Body, want.Body)
			}
			e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess,
				Attempt: e.sentAttempt(200)})
			_, ds, err := e.store.EventWithDeliveries(ctx, tn.ID, id)
			if err != nil || len(ds) != 1 || ds[0].Status != registry.DeliverySucceeded || ds[0].LastStatusCode != 200 {
				t.Errorf("EventWithDeliveries = %+v, %v; want one succeeded delivery (200)", ds, err)
			}
		})
	})
}

// TestLegacyDeliveryRecords: a delivery record of the earlier format (its id in a field, its
// first attempt in JSON) reads as one written now and takes further attempts after it.
func TestLegacyDeliveryRecords(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		q := e.deliver(t, tn.ID, ep.ID)
		e.attempt(t, tn.ID, q, registry.OutcomeFailure, lenient)
		started := e.clock.Now().Add(-time.Second).UTC()
		first := fmt.Sprintf(`{"number":1,"startedAt":%q,"durationMs":9,"statusCode":502,"error":"","responseBody":"bad gateway"}`,
			started.Format(time.RFC3339Nano))
		if err := e.rdb.HSet(ctx, registry.DeliveryKeyOf(tn.ID, q.DeliveryID), "id", q.DeliveryID, "first", first).Err(); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Minute)
		e.attempt(t, tn.ID, e.run(t, tn.ID, q), registry.OutcomeFailure, lenient)
		d, err := e.store.Delivery(ctx, tn.ID, ep.ID, q.DeliveryID, true)
		if err != nil || d.ID != q.DeliveryID || len(d.Attempts) != 2 || d.AttemptCount != 2 {
			t.Fatalf("Delivery = %+v, %v; want it with 2 attempts", d, err)
		}
		a, b := d.Attempts[0], d.Attempts[1]
		if a.Number != 1 || a.StatusCode != 502 || a.ResponseBody != "bad gateway" || !a.StartedAt.Equal(started) ||
			b.Number != 2 || b.StatusCode != 500 || b.DurationMs != 250 {
			t.Errorf("attempts = %+v, want the JSON first (502) and a second (500)", d.Attempts)
		}
		ev, _ := e.store.Delivery(ctx, tn.ID, ep.ID, q.DeliveryID, false)
		_, ds, err := e.store.EventWithDeliveries(ctx, tn.ID, ev.EventID)
		if err != nil || len(ds) != 1 || ds[0].LastStatusCode != 500 {
			t.Errorf("EventWithDeliveries = %+v, %v; want the last attempt's 500", ds, err)
		}
	})
}

func redisZ(score, member string) redis.Z {
	f, _ := strconv.ParseFloat(score, 64)
	return redis.Z{Score: f, Member: member}
}

// A delivered delivery is kept compact: no key of its own, one short field of its minute's hash
// (what a receiver answers is kept with it, up to its limit).
func TestDeliveredDeliveryIsKeptCompact(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		q := e.deliver(t, tn.ID, ep.ID)
		items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 1)
		e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess,
			Attempt: &registry.Attempt{Number: 1, StartedAt: e.clock.Now(), DurationMs: 12, StatusCode: 200,
				ResponseBody: `{"received":true}`}})
		if e.hasRecord(t, tn.ID, q.DeliveryID) {
			t.Errorf("the delivered delivery has a record of its own")
		}
		v := e.rdb.HGet(t.Context(), registry.KeptKeyOf(tn.ID, items[0].CreatedAt), registry.KeptFieldOf(q.DeliveryID)).Val()
		if v == "" || len(v) > 128 {
			t.Errorf("the delivered delivery is kept as %d bytes, want 1 to 128: %q", len(v), v)
		}
	})
}

// A large event's body is kept compressed and read back as published, by event reads and by a
// drain's Take alike.
func TestLargeBodyKeptCompressed(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(1, "")
		findings := strings.Repeat(`{"cve":"CVE-2026-0001","severity":"high","host":"10.0.0.7"},`, 60)
		b.Events[0].Body = []byte(`{"type":"scan.completed","data":{"findings":[` + strings.TrimSuffix(findings, ",") + `]}}`)
		if _, err := e.store.PublishEvents(ctx, tn.ID, b); err != nil {
			t.Fatal(err)
		}
		id, body := b.Events[0].ID, string(b.Events[0].Body)
		if kept := e.rdb.HStrLen(ctx, registry.EventMinuteKeyOf(t, tn.ID, id), registry.EventFieldOf(id)).Val(); kept == 0 || kept > int64(len(body))/2 {
			t.Errorf("a %d-byte body is kept in a %d-byte record, want under half", len(body), kept)
		}
		if ev, err := e.store.Event(ctx, tn.ID, id); err != nil || string(ev.Body) != body {
			t.Errorf("Event = %v; body read back differs from the one published", err)
		}
		items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 1)
		if len(items) != 1 || string(items[0].Body) != body {
			t.Errorf("Take = %d items; body taken differs from the one published", len(items))
		}
	})
}

// An id that only looks like a UUIDv7 (an operational event's is a hash of its content) names
// a minute far from now: its event is kept and read there all the same, for the retention
// period and not longer.
func TestEventIDOfAFarMinute(t *testing.T) {
	eachBackend(t, registry.Config{Retention: time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		id := "evt_fffffffffff07" + strings.Repeat("a", 19)
		if _, err := e.store.PublishEvent(ctx, tn.ID, registry.NewEvent{ID: id, Type: registry.EventScanCompleted,
			CreatedAt: e.clock.Now(), Body: eventBody(id, registry.EventScanCompleted)}); err != nil {
			t.Fatal(err)
		}
		if ev, err := e.store.Event(ctx, tn.ID, id); err != nil || ev.ID != id {
			t.Errorf("Event = %+v, %v; want it read back", ev, err)
		}
		k := registry.EventMinuteKeyOf(t, tn.ID, id)
		if ttl, err := e.rdb.TTL(ctx, k).Result(); err != nil || ttl <= 0 || ttl > time.Hour+time.Minute {
			t.Errorf("TTL of %s = %v, %v; want at most the retention period and a minute", k, ttl, err)
		}
	})
}

// An event's member in its type's index is its id's 16 bytes; one the version before indexed
// by its id as text lists and is recovered alike, newest first, and a retraction takes the
// member out.
func TestEventIndexMemberForms(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		since := e.clock.Now()
		before := newEventID()
		at := e.clock.Now().UnixMilli()
		e.rdb.HSet(ctx, registry.EventMinuteKeyOf(t, tn.ID, before), before,
			fmt.Sprintf("scan.completed|%d|||%s", at, eventBody(before, registry.EventScanCompleted)))
		index := registry.EventsKeyOf(tn.ID, registry.EventScanCompleted)
		e.rdb.ZAdd(ctx, index, redisZ(strconv.FormatInt(at, 10), before))
		e.clock.Advance(time.Second)
		sb, err := e.store.PublishEvents(ctx, tn.ID, e.newBatch(1, ""))
		if err != nil {
			t.Fatal(err)
		}
		now := sb.Events[0].Event.ID
		if m := e.rdb.ZRange(ctx, index, -1, -1).Val(); len(m) != 1 || m[0] != registry.EventFieldOf(now) {
			t.Errorf("the event is indexed as %q, want its id's 16 bytes", m)
		}
		for _, f := range []registry.EventFilter{{}, {Type: registry.EventScanCompleted}} {
			evs, total, err := e.store.ListEvents(ctx, tn.ID, f, registry.Page{Page: 1, Limit: 10})
			if err != nil || total != 2 || len(evs) != 2 || evs[0].ID != now || evs[1].ID != before {
				t.Errorf("ListEvents(%+v) = %v (total %d), %v; want both, newest first", f, evs, total, err)
			}
		}
		ep := e.endpoint(t, tn.ID)
		if r := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverMissing).ID); r.Created != 2 {
			t.Errorf("a recovery created %d deliveries, want both events'", r.Created)
		}
		if ok, err := e.store.RetractEvents(ctx, tn.ID, "", sb); !ok || err != nil {
			t.Fatalf("RetractEvents = %v, %v", ok, err)
		}
		if m := e.rdb.ZRange(ctx, index, 0, -1).Val(); len(m) != 1 || m[0] != before {
			t.Errorf("after the retraction the index holds %q, want the text member alone", m)
		}
	})
}

// TestEarlierQueueEntries: a delivery queued by an earlier version, whose queue entry ends after
// hasRecord (five fields) or run (six), is taken with its event and recorded as one queued now.
func TestEarlierQueueEntries(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		var n int64
		for _, fields := range []int{5, 6} {
			id := newEventID()
			body := eventBody(id, registry.EventScanCompleted)
			st, err := e.store.PublishEvent(ctx, tn.ID, registry.NewEvent{ID: id, Type: registry.EventScanCompleted,
				CreatedAt: e.clock.Now(), Body: body})
			wantNoErr(t, err)
			if len(st.Drains) == 1 {
				n = st.Drains[0].N
			}
			did, k := registry.DeliveryID(id, ep.ID), registry.QueueKeyOf(tn.ID, ep.ID)
			cur, err := e.rdb.HGet(ctx, k, did).Result()
			wantNoErr(t, err)
			parts := strings.Split(cur, "|")
			if len(parts) != 8 {
				t.Fatalf("queue entry %q has %d fields, want 8", cur, len(parts))
			}
			wantNoErr(t, e.rdb.HSet(ctx, k, did, strings.Join(parts[:fields], "|")).Err())
			items, _, err := e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n, Limit: 10})
			wantNoErr(t, err)
			if len(items) != 1 || items[0].DeliveryID != did || !bytes.Equal(items[0].Body, body) {
				t.Fatalf("Take of a %d-field entry = %+v, want delivery %s with its event's body", fields, items, did)
			}
			fin, err := e.store.Finish(ctx, registry.FinishRequest{TenantID: tn.ID, EndpointID: ep.ID,
				Streak: lenient.streak(), Outcomes: []registry.Outcome{{Item: items[0], Outcome: registry.OutcomeSuccess,
					Status: registry.DeliverySucceeded, Attempt: e.sentAttempt(200)}}})
			wantNoErr(t, err)
			d, err := e.store.Delivery(ctx, tn.ID, ep.ID, did, false)
			wantNoErr(t, err)
			if fin.Statuses[0] != registry.DeliverySucceeded || d.Status != registry.DeliverySucceeded || d.EventID != id {
				t.Errorf("a %d-field entry finished %v, delivery %+v; want succeeded", fields, fin.Statuses, d)
			}
		}
	})
}
