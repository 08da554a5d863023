package registry

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A scan's events are found through a per-day index of the tenant's scans (scanIndexKey): one
// hash per UTC day, a field per scan lane listing that day's events of the scan. It costs one
// hash field per scan and day instead of a sorted set (and a key with a TTL) per scan, and each
// day's hash expires once its last event has: publishing writes no expiry (it would cost a
// command per event), TrimIndexes sets it on every day within the retention period.
// An event whose id is "evt_" and 32 lowercase hex digits (every id webhookd makes) is listed
// compactly: the field is the lane's 10 bytes, the value the ids' 16 bytes each, one after
// another (lua/prelude.lua scanField). Another id is listed as text, under the lane as text, the
// ids separated by spaces: the form the version before wrote for every event, read as well.
// Events stored before this index are in their scan's sorted set, read as well until it expires.

const secondsPerDay = 24 * 60 * 60

// maxScanEvents bounds the events one scan is read with; a scan has a handful.
const maxScanEvents = 1000

// unixDay is the UTC day of t, counted from the Unix epoch.
func unixDay(t time.Time) int64 { return t.Unix() / secondsPerDay }

// expireScanIndexes makes each day scan index within the retention period (and tomorrow's, for
// another process's clock) expire when the last event it can name does: retention after the
// day's end. Setting it again is harmless, and an index past its time is deleted at once.
func (s *Store) expireScanIndexes(ctx context.Context, tid string) error {
	now := s.now()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for day := unixDay(now.Add(-s.retention)) - 1; day <= unixDay(now)+1; day++ {
			p.ExpireAt(ctx, scanIndexKey(tid, day), time.Unix((day+1)*secondsPerDay+s.retentionSec(), 0))
		}
		return nil
	})
	return storeErr("expire scan indexes", err)
}

// scanEvents pages one scan's events of f's type and window, newest first.
func (s *Store) scanEvents(ctx context.Context, tid string, f EventFilter, pg Page) ([]*Event, int, error) {
	ids, err := s.scanEventIDs(ctx, tid, LaneOf(f.ScanID), f)
	if err != nil {
		return nil, 0, err
	}
	evs, err := s.eventsByID(ctx, tid, ids)
	if err != nil {
		return nil, 0, err
	}
	evs = slices.DeleteFunc(evs, func(e *Event) bool {
		return f.Type != "" && e.Type != f.Type || !f.Since.IsZero() && e.CreatedAt.Before(f.Since) ||
			!f.Until.IsZero() && !e.CreatedAt.Before(f.Until)
	})
	slices.SortFunc(evs, func(a, b *Event) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	start, stop := pg.bounds(len(evs))
	return evs[start:stop], len(evs), nil
}

// scanEventIDs reads the ids of a scan's events from every day index its window reaches within
// the retention period (and a day past today, for another process's clock), and from the
// sorted set of the scan's events stored before the index; at most maxScanEvents.
func (s *Store) scanEventIDs(ctx context.Context, tid, lane string, f EventFilter) ([]string, error) {
	now := s.now()
	from, to := unixDay(now.Add(-s.retention)), unixDay(now)+1
	if !f.Since.IsZero() {
		from = max(from, unixDay(f.Since))
	}
	if !f.Until.IsZero() {
		to = min(to, unixDay(f.Until))
	}
	var days []*redis.SliceCmd
	var legacy *redis.StringSliceCmd
	r := f.scores()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for d := from; d <= to; d++ {
			days = append(days, p.HMGet(ctx, scanIndexKey(tid, d), laneField(lane), lane))
		}
		legacy = p.ZRevRangeByScore(ctx, scanEventsKey(tid, lane), &redis.ZRangeBy{Min: r.min, Max: r.max, Count: maxScanEvents})
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("list scan events", err)
	}
	ids := legacy.Val()
	for _, c := range days {
		compact, _ := c.Val()[0].(string)
		text, _ := c.Val()[1].(string)
		if laneField(lane) != lane {
			ids = append(ids, compactIDs(compact)...)
		}
		ids = append(ids, strings.Fields(text)...)
	}
	// Newest first (event ids grow with time), each once, the newest maxScanEvents.
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(b, a) })
	ids = slices.Compact(ids)
	return ids[:min(len(ids), maxScanEvents)], nil
}

// laneField is a lane's compact field in a day's scan index: its 10 bytes.
func laneField(lane string) string {
	b, err := hex.DecodeString(lane)
	if err != nil || len(b) != 10 {
		return lane
	}
	return string(b)
}

// compactIDs reads the event ids of a compact scan index entry, 16 bytes each.
func compactIDs(v string) []string {
	ids := make([]string, 0, len(v)/16)
	for i := 0; i+16 <= len(v); i += 16 {
		ids = append(ids, idOfBytes(v[i:i+16]))
	}
	return ids
}
