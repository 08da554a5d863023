package registry

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// A delivery that succeeded at its first attempt has no record of its own: finish.lua keeps it
// as one field of its creation minute's hash (keptKey), with the field and value Finish encodes
// (keptField, keptValue), and the endpoint's succeeded index gives its creation time
// (lua/prelude.lua, keepSuccess). Everything else a record holds is known for it. A manual
// retry gives it a record again (unkeep) before changing it.
//
// The field is the delivery id's 16 bytes; the value is keptMark, the event id's 16 bytes, its
// type's code (typeCodes), the attempt's end in ms after the delivery's creation, "|" and the
// first attempt as attempt.go encodes it but for its start (keptAttempt). An event id that is
// not "evt_" and 32 lowercase hex digits, or a type without a code, is kept as text instead,
// "eventId|eventType|updatedAt|first attempt": the form the version before wrote (its field
// the delivery id as text), read as well. Kept so, a delivered event's delivery takes about
// 120 bytes of Redis memory, against about 550 for a record with a key, fields and an expiry.

// keptMark starts a kept delivery's compact value.
const keptMark = 0x02

// keptField is a kept delivery's field: the 16 bytes of its id (a UUID), or the id itself
// when it is none.
func keptField(did string) string {
	u, err := uuid.Parse(did)
	if err != nil {
		return did
	}
	return string(u[:])
}

// keptValue is the value that keeps a delivery of event evid of type typ, created at created
// (ms), whose first attempt att (as attempt.go encodes it) ended at end (ms): compact when the
// event id, the type and the attempt allow, else as text.
func keptValue(evid, typ string, created, end int64, att string) string {
	f := strings.SplitN(att, " ", 3)
	code, coded := codeOfType(typ)
	b, hexID := idBytes(evid)
	if !hexID || !coded || len(f) != 3 || len(f[1]) != 19 {
		return evid + "|" + typ + "|" + strconv.FormatInt(end, 10) + "|" + att
	}
	startMs, _ := strconv.ParseInt(f[1][:13], 10, 64)
	return string(rune(keptMark)) + b + string(rune(code)) + strconv.FormatInt(end-created, 10) + "|" +
		f[0] + " " + strconv.FormatInt(startMs-created, 10) + ":" + f[1][13:] + " " + f[2]
}

// keptRef names a delivery to look for among the kept ones: its endpoint and id.
type keptRef struct{ eid, did string }

// readKept reads kept deliveries as the fields of a record (as HGETALL would answer for one
// with a record); nil for each one not kept. Two round trips: the creation times from the
// succeeded indexes, then the minutes' fields.
func (s *Store) readKept(ctx context.Context, tid string, refs []keptRef) ([]map[string]string, error) {
	out := make([]map[string]string, len(refs))
	if len(refs) == 0 {
		return out, nil
	}
	scores := make([]*redis.FloatCmd, len(refs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			scores[i] = p.ZScore(ctx, endpointStatusKey(tid, r.eid, DeliverySucceeded), r.did)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("read kept deliveries", err)
	}
	vals := make([]*redis.SliceCmd, len(refs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			if created, err := scores[i].Result(); err == nil {
				vals[i] = p.HMGet(ctx, keptKey(tid, int64(created)/minuteMs), keptField(r.did), r.did)
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("read kept deliveries", err)
	}
	for i, r := range refs {
		if vals[i] == nil {
			continue
		}
		for _, v := range vals[i].Val() {
			if v, ok := v.(string); ok && v != "" {
				out[i] = keptFields(r.eid, int64(scores[i].Val()), v)
				break
			}
		}
	}
	return out, nil
}

const minuteMs = 60 * 1000

// keptFields is a kept delivery's record: the fields it keeps and the ones known for it; nil
// when v is no kept value.
func keptFields(eid string, created int64, v string) map[string]string {
	evid, typ, updated, first, ok := keptParts(created, v)
	if !ok {
		return nil
	}
	return map[string]string{"webhookId": eid, "eventId": evid, "eventType": typ, "status": DeliverySucceeded,
		"attemptCount": "1", "runAttempts": "1", "generation": "0", "createdAt": strconv.FormatInt(created, 10),
		"updatedAt": updated, "nextAttemptAt": "", "first": first}
}

// keptParts reads a kept value of either form: the event id and type, the attempt's end (ms)
// and the attempt as attempt.go encodes it.
func keptParts(created int64, v string) (evid, typ, updated, first string, ok bool) {
	if len(v) > 18 && v[0] == keptMark {
		typ, known := typeOfCode(v[17])
		delta, att, found := strings.Cut(v[18:], "|")
		d, err := strconv.ParseInt(delta, 10, 64)
		first, started := keptAttempt(created, att)
		if !known || !found || err != nil || !started {
			return "", "", "", "", false
		}
		return idOfBytes(v[1:17]), typ, strconv.FormatInt(created+d, 10), first, true
	}
	p := strings.SplitN(v, "|", 4)
	if len(p) != 4 {
		return "", "", "", "", false
	}
	return p[0], p[1], p[2], p[3], true
}

// keptAttempt is a compact value's attempt as attempt.go encodes it: its start is kept as ms
// after the delivery's creation, ':' and the last 6 digits of its ns.
func keptAttempt(created int64, att string) (string, bool) {
	f := strings.SplitN(att, " ", 3)
	if len(f) != 3 {
		return "", false
	}
	ms, sub, found := strings.Cut(f[1], ":")
	d, err := strconv.ParseInt(ms, 10, 64)
	if !found || err != nil || len(sub) != 6 {
		return "", false
	}
	return f[0] + " " + strconv.FormatInt(created+d, 10) + sub + " " + f[2], true
}
