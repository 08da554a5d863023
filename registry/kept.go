package registry

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A delivery that succeeded at its first attempt has no record of its own: finish.lua keeps it
// as one field of its creation minute's hash (keptKey), "eventId|eventType|updatedAt|first
// attempt", and the endpoint's succeeded index gives its creation time (lua/prelude.lua,
// keepSuccess). Everything else a record holds is known for it. A manual retry gives it a
// record again (unkeep) before changing it. Kept so, a delivered event's delivery takes about
// 200 bytes of Redis memory, against about 550 for a record with a key, fields and an expiry.

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
	vals := make([]*redis.StringCmd, len(refs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			if created, err := scores[i].Result(); err == nil {
				vals[i] = p.HGet(ctx, keptKey(tid, int64(created)/minuteMs), r.did)
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("read kept deliveries", err)
	}
	for i, r := range refs {
		if vals[i] == nil || vals[i].Val() == "" {
			continue
		}
		out[i] = keptFields(r.eid, int64(scores[i].Val()), vals[i].Val())
	}
	return out, nil
}

const minuteMs = 60 * 1000

// keptFields is a kept delivery's record: the fields it keeps and the ones known for it.
func keptFields(eid string, created int64, v string) map[string]string {
	p := strings.SplitN(v, "|", 4)
	if len(p) != 4 {
		return nil
	}
	return map[string]string{"webhookId": eid, "eventId": p[0], "eventType": p[1], "status": DeliverySucceeded,
		"attemptCount": "1", "runAttempts": "1", "generation": "0", "createdAt": strconv.FormatInt(created, 10),
		"updatedAt": p[2], "nextAttemptAt": "", "first": p[3]}
}
