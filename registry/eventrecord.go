package registry

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// An event's record is a string (lua/prelude.lua storeEvent, readEvents):
// "type|at|lane|exclude|body", at its creation in ms, the body as body.go keeps it. An event
// whose id is a UUIDv7 (every published or test event) is kept as a field of the hash of the minute
// its id names (eventMinuteKey), which expires the retention period after that minute: a field
// needs no key and no expiry of its own. Another id, or an event stored by the version before,
// has a string key of its own (eventKey). Events stored by earlier versions
// are hashes under legacyEventKey: type, body, at, lane and exclude, or in the first form id,
// createdAt, deliveries (subscribers when accepted, now kept with the idempotency key) and
// requestHash; they are read alike until they expire.

// eventMinute is the minute (Unix minutes) an event id names: its UUIDv7's time; false for an id
// that is no UUIDv7.
func eventMinute(evid string) (int64, bool) {
	if len(evid) != 36 || !strings.HasPrefix(evid, "evt_") || evid[16] != '7' {
		return 0, false
	}
	ms, err := strconv.ParseInt(evid[4:16], 16, 64)
	if err != nil {
		return 0, false
	}
	return ms / minuteMs, true
}

// parseEvent reads an event's string record; nil when it is not one.
func parseEvent(tid, evid, v string) *Event {
	f := strings.SplitN(v, "|", 5)
	if len(f) != 5 || f[0] == "" {
		return nil
	}
	return &Event{ID: evid, TenantID: tid, Type: f[0], CreatedAt: fromMs(f[1]), Body: readBody(evid, f[0], []byte(f[4]))}
}

// legacyEventFields are the fields a hash record is read with, in both its forms.
var legacyEventFields = []string{"type", "body", "at", "createdAt", "deliveries", "requestHash"}

// legacyEventOf reads an event from the values of legacyEventFields; nil when it has none
// (unknown or expired).
func legacyEventOf(tid, evid string, v []any) *Event {
	str := func(i int) string { s, _ := v[i].(string); return s }
	if str(0) == "" {
		return nil
	}
	at := str(2)
	if at == "" {
		at = str(3)
	}
	cnt, _ := strconv.Atoi(str(4))
	return &Event{ID: evid, TenantID: tid, Type: str(0), CreatedAt: fromMs(at), Body: []byte(str(1)),
		deliveries: cnt, requestHash: str(5)}
}

// Event returns a stored event; an *Error NOT_FOUND when it is unknown or expired.
func (s *Store) Event(ctx context.Context, tid, evid string) (*Event, error) {
	evs, err := s.readEvents(ctx, tid, []string{evid})
	if err != nil {
		return nil, err
	}
	if evs[0] == nil {
		return nil, E(CodeNotFound)
	}
	return evs[0], nil
}

// readEvents reads events, nil for each one unknown or expired: one round trip, and a second
// for those not found in their minute's hash (stored by an earlier version, or gone).
func (s *Store) readEvents(ctx context.Context, tid string, ids []string) ([]*Event, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			if h, ok := eventMinute(id); ok {
				cmds[i] = p.HGet(ctx, eventMinuteKey(tid, h), id)
			} else {
				cmds[i] = p.Get(ctx, eventKey(tid, id))
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("get events", err)
	}
	out := make([]*Event, len(ids))
	var missing []int
	for i, c := range cmds {
		if out[i] = parseEvent(tid, ids[i], c.Val()); out[i] == nil {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	own := make([]*redis.StringCmd, len(missing))
	legacy := make([]*redis.SliceCmd, len(missing))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range missing {
			own[j] = p.Get(ctx, eventKey(tid, ids[i]))
			legacy[j] = p.HMGet(ctx, legacyEventKey(tid, ids[i]), legacyEventFields...)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("get events", err)
	}
	for j, i := range missing {
		if out[i] = parseEvent(tid, ids[i], own[j].Val()); out[i] == nil {
			out[i] = legacyEventOf(tid, ids[i], legacy[j].Val())
		}
	}
	return out, nil
}

// An idempotency key holds its request's hash and the events the request stored, each with
// the endpoints it was accepted for: "hash:evt_a=2,evt_b=0". A key written by an earlier
// version holds one event id alone, the hash and count being in that event's record.

// idemHead is the record's part known before publishing, "hash:"; empty without a key.
func idemHead(b NewBatch) string {
	if b.IdempotencyKey == "" {
		return ""
	}
	return b.RequestHash + ":"
}

// idemRecord is the whole record (as publish.lua writes it) of the events stored; empty for none.
func idemRecord(head string, sts []*Stored) string {
	if head == "" {
		return ""
	}
	parts := make([]string, len(sts))
	for i, st := range sts {
		parts[i] = st.Event.ID + "=" + strconv.Itoa(st.Deliveries)
	}
	return head + strings.Join(parts, ",")
}

// replay answers a publish whose idempotency key is taken: the batch the key names, or
// IDEMPOTENCY_KEY_REUSED when it was stored for another request. The stored hash is
// immutable, so comparing after the script is as safe as comparing in it.
func (s *Store) replay(ctx context.Context, tid, record, hash string) (*StoredBatch, error) {
	stored, list, ok := strings.Cut(record, ":")
	if !ok {
		stored, list = "", record // the earlier format: one event id
	}
	entries := strings.Split(list, ",")
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i], _, _ = strings.Cut(e, "=")
	}
	evs, err := s.readEvents(ctx, tid, ids)
	if err != nil {
		return nil, err
	}
	sb := &StoredBatch{Replayed: true, Events: make([]*Stored, len(evs))}
	for i, ev := range evs {
		if ev == nil {
			return nil, E(CodeNotFound)
		}
		if !ok {
			stored = ev.requestHash
		}
		n := ev.deliveries
		if _, cnt, found := strings.Cut(entries[i], "="); found {
			n, _ = strconv.Atoi(cnt)
		}
		sb.Events[i] = &Stored{Event: ev, Deliveries: n, Replayed: true}
	}
	// Events stored before hashes were kept have none and replay as before.
	if stored != "" && stored != hash {
		return nil, E(CodeIdempotencyKeyReused)
	}
	return sb, nil
}
