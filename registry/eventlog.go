package registry

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventFilter selects a tenant's events: of one Type (empty: every scan event type), of one
// ScanID, created in [Since, Until) (zero: unbounded).
type EventFilter struct {
	Type, ScanID string
	Since, Until time.Time
}

func (f EventFilter) scores() scoreRange {
	r := everything
	if !f.Since.IsZero() {
		r.min = strconv.FormatInt(ms(f.Since), 10)
	}
	if !f.Until.IsZero() {
		r.max = "(" + strconv.FormatInt(ms(f.Until), 10)
	}
	return r
}

// ListEvents returns one page of the tenant's events, newest first, with their data, and how
// many match. A scan's events come from its own index, never from the tenant's whole history.
func (s *Store) ListEvents(ctx context.Context, tid string, f EventFilter, pg Page) ([]*Event, int, error) {
	if f.ScanID != "" {
		return s.scanEvents(ctx, tid, f, pg)
	}
	types := slices.Concat(EventTypes, OperationalEventTypes)
	if f.Type != "" {
		types = []string{f.Type}
	}
	keys := make([]string, len(types))
	for i, t := range types {
		keys[i] = eventsKey(tid, t)
	}
	members, total, err := s.pageOf(ctx, keys, f.scores(), pg)
	if err != nil {
		return nil, 0, err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = eventIDOf(m)
	}
	evs, err := s.eventsByID(ctx, tid, ids)
	return evs, total, err
}

// A tenant's events of one type are indexed by creation time (eventsKey). An event id that is
// "evt_" and 32 lowercase hex digits (every id webhookd makes) is the member's 16 bytes
// (lua/prelude.lua eventMember), any other the id as text, the form the version before wrote
// for every event. No text id is 16 bytes without beginning "evt_".

// eventIDOf is the event id of a member of a type's index, in either form.
func eventIDOf(m string) string {
	if len(m) == 16 && !strings.HasPrefix(m, "evt_") {
		return idOfBytes(m)
	}
	return m
}

// eventsByID reads events with their data; expired ones are left out.
func (s *Store) eventsByID(ctx context.Context, tid string, ids []string) ([]*Event, error) {
	evs, err := s.readEvents(ctx, tid, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*Event, 0, len(ids))
	for _, ev := range evs {
		if ev != nil {
			out = append(out, withData(ev))
		}
	}
	return out, nil
}

// withData fills an event's Data from the body receivers get.
func withData(e *Event) *Event {
	var b struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(e.Body, &b) == nil {
		e.Data = b.Data
	}
	return e
}

// EventDelivery is one delivery of an event, as its event shows it.
type EventDelivery struct {
	ID             string `json:"id"`
	WebhookID      string `json:"webhookId"`
	Status         string `json:"status"`
	AttemptCount   int    `json:"attemptCount"`
	LastStatusCode int    `json:"lastStatusCode"`
}

// EventWithDeliveries returns an event with its data and its delivery to each of the tenant's
// endpoints that has one; NOT_FOUND when the event is unknown or expired.
func (s *Store) EventWithDeliveries(ctx context.Context, tid, evid string) (*Event, []EventDelivery, error) {
	ev, err := s.Event(ctx, tid, evid)
	if err != nil {
		return nil, nil, err
	}
	eids, err := s.rdb.ZRange(ctx, endpointsKey(tid), 0, -1).Result()
	if err != nil {
		return nil, nil, storeErr("list endpoints", err)
	}
	rs := make([]deliveryReads, len(eids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, eid := range eids {
			did := DeliveryID(evid, eid)
			rs[i] = deliveryReads{p.HMGet(ctx, deliveryKey(tid, did), "status", "attemptCount", "first"),
				p.LIndex(ctx, attemptsKey(tid, did), -1), p.HGet(ctx, endpointQueueKey(tid, eid), did)}
		}
		return nil
	}); err != nil && err != redis.Nil {
		return nil, nil, storeErr("get event deliveries", err)
	}
	recs, err := s.withKept(ctx, tid, evid, eids, rs)
	if err != nil {
		return nil, nil, err
	}
	out := []EventDelivery{}
	for i, eid := range eids {
		if d, ok := eventDelivery(DeliveryID(evid, eid), eid, recs[i], rs[i].last.Val(), rs[i].entry.Val()); ok {
			out = append(out, d)
		}
	}
	return withData(ev), out, nil
}

// deliveryReads are what EventWithDeliveries reads of its delivery to one endpoint: its record's
// status, attemptCount and first attempt, its last logged attempt and its queue entry.
type deliveryReads struct {
	rec   *redis.SliceCmd
	last  *redis.StringCmd
	entry *redis.StringCmd
}

// withKept is each delivery's status, attemptCount and first attempt, from its record or, for
// one that has neither a record nor a queue entry, as kept (kept.go).
func (s *Store) withKept(ctx context.Context, tid, evid string, eids []string, rs []deliveryReads) ([][]any, error) {
	recs := make([][]any, len(rs))
	var refs []keptRef
	var at []int
	for i, r := range rs {
		recs[i] = r.rec.Val()
		if st, _ := recs[i][0].(string); st == "" && r.entry.Val() == "" {
			refs, at = append(refs, keptRef{eids[i], DeliveryID(evid, eids[i])}), append(at, i)
		}
	}
	kept, err := s.readKept(ctx, tid, refs)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		if m := kept[j]; m != nil {
			recs[i] = []any{m["status"], m["attemptCount"], m["first"]}
		}
	}
	return recs, nil
}

// eventDelivery reads one delivery from its record's fields (status, attemptCount, first
// attempt), its last logged attempt and its queue entry.
func eventDelivery(did, eid string, rec []any, last, entry string) (EventDelivery, bool) {
	d := EventDelivery{ID: did, WebhookID: eid}
	st, _ := rec[0].(string)
	switch {
	case st != "":
		d.Status = st
		n, _ := rec[1].(string)
		d.AttemptCount, _ = strconv.Atoi(n)
	case entry != "":
		d.Status = DeliveryPending
	default:
		return d, false
	}
	a := last
	if a == "" {
		a, _ = rec[2].(string)
	}
	if at, ok := decodeAttempt(a); ok {
		d.LastStatusCode = at.StatusCode
	}
	return d, true
}
