package registry

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// An event's record is a string (lua/prelude.lua storeEvent, readEvents):
// "type|at|lane|exclude|body", at its creation in ms, the body as body.go keeps it. An event
// whose id is a UUIDv7 (every published or test event) is kept as a field of the hash of the
// minute its id names (eventMinuteKey), which expires the retention period after that minute:
// a field needs no key and no expiry of its own. There the field is the id's 16 bytes
// (eventField) and the record compact: compactMark, its type's code (typeCodes), at after the
// time its id names, then "|lane|exclude|body". Another id, or an event stored by the version
// before, has a string key of its own (eventKey); the version before kept a minute hash's
// fields as the id and the string record, read as well. Events stored by earlier versions are
// hashes under legacyEventKey: type, body, at, lane and exclude, or in the first form id,
// createdAt, deliveries (subscribers when accepted, now kept with the idempotency key) and
// requestHash; they are read alike until they expire.

// compactMark starts an event's compact record.
const compactMark = 0x03

// idBytes is the 16 bytes of a hex event id, "evt_" and 32 lowercase hex digits (every id
// webhookd makes), as compact records keep it (lua/prelude.lua hexId, eventField); false for
// another id. idOfBytes is the other way.
func idBytes(evid string) (string, bool) {
	if !isHexID(evid) {
		return "", false
	}
	var b [16]byte
	hex.Decode(b[:], []byte(evid[4:]))
	return string(b[:]), true
}

// isHexID tells an id idBytes reads: "evt_" and 32 lowercase hex digits.
func isHexID(evid string) bool {
	if len(evid) != 36 || !strings.HasPrefix(evid, "evt_") {
		return false
	}
	for _, c := range []byte(evid[4:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func idOfBytes(b string) string { return "evt_" + hex.EncodeToString([]byte(b)) }

// eventTime is the time (Unix ms) a UUIDv7 hex event id names; false for another id.
func eventTime(evid string) (int64, bool) {
	if !isHexID(evid) || evid[16] != '7' {
		return 0, false
	}
	ms, err := strconv.ParseInt(evid[4:16], 16, 64)
	return ms, err == nil
}

// eventMinute is the minute (Unix minutes) a UUIDv7 event id names; false for another id.
func eventMinute(evid string) (int64, bool) {
	ms, ok := eventTime(evid)
	return ms / minuteMs, ok
}

// eventField is a UUIDv7 event's field in its minute's hash: its id's 16 bytes.
func eventField(evid string) string {
	b, _ := idBytes(evid)
	return b
}

// eventRecord is the record of event evid of type typ created at (ms), with its scan's lane
// and the endpoint it leaves out (empty for none) and its body as body.go keeps it: compact for a
// UUIDv7 id and a type with a code, else as text. The scripts store it as given (storeEvent).
func eventRecord(evid, typ string, at int64, lane, exclude string, body []byte) []byte {
	code, coded := codeOfType(typ)
	idMs, isV7 := eventTime(evid)
	r := make([]byte, 0, len(typ)+len(lane)+len(exclude)+len(body)+24)
	if isV7 && coded {
		r = strconv.AppendInt(append(r, compactMark, code), at-idMs, 10)
	} else {
		r = strconv.AppendInt(append(append(r, typ...), '|'), at, 10)
	}
	r = append(append(append(append(append(r, '|'), lane...), '|'), exclude...), '|')
	return append(r, body...)
}

// parseEvent reads an event's string record of either form; nil when it is not one.
func parseEvent(tid, evid, v string) *Event {
	if len(v) > 2 && v[0] == compactMark {
		return parseCompactEvent(tid, evid, v)
	}
	f := strings.SplitN(v, "|", 5)
	if len(f) != 5 || f[0] == "" {
		return nil
	}
	return &Event{ID: evid, TenantID: tid, Type: f[0], CreatedAt: fromMs(f[1]), Body: readBody(evid, f[0], []byte(f[4]))}
}

// parseCompactEvent reads a compact record: code, at after the id's time, "|lane|exclude|body".
func parseCompactEvent(tid, evid, v string) *Event {
	typ, known := typeOfCode(v[1])
	ms, isV7 := eventTime(evid)
	f := strings.SplitN(v[2:], "|", 4)
	if !known || !isV7 || len(f) != 4 {
		return nil
	}
	delta, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return nil
	}
	return &Event{ID: evid, TenantID: tid, Type: typ, CreatedAt: time.UnixMilli(ms + delta).UTC(),
		Body: readBody(evid, typ, []byte(f[3]))}
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
	cmds := make([]redis.Cmder, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			if h, ok := eventMinute(id); ok {
				cmds[i] = p.HMGet(ctx, eventMinuteKey(tid, h), eventField(id), id)
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
		if out[i] = parseEvent(tid, ids[i], recordOf(c)); out[i] == nil {
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

// recordOf is the record a read of readEvents found: a GET's value, or the first value of an
// HMGET of both forms of a minute hash's field; empty for none.
func recordOf(c redis.Cmder) string {
	switch c := c.(type) {
	case *redis.StringCmd:
		return c.Val()
	case *redis.SliceCmd:
		for _, v := range c.Val() {
			if v, ok := v.(string); ok {
				return v
			}
		}
	}
	return ""
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
