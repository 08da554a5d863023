package registry

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// StatsBuckets are the upper bounds, in milliseconds, of the duration histogram an endpoint's
// hourly stats keep (lua/health.lua's BUCKETS); a last, open bucket holds longer attempts.
var StatsBuckets = []int64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}

// HourStats is one hour of an endpoint's attempts: how many succeeded and failed, and the
// 50th and 99th percentile durations, as the upper bound of the histogram bucket holding them
// (the last bucket's lower bound, 30 s, for an attempt longer than that); nil without attempts.
type HourStats struct {
	Hour      time.Time `json:"hour"`
	Succeeded int       `json:"succeeded"`
	Failed    int       `json:"failed"`
	P50Ms     *int64    `json:"p50Ms"`
	P99Ms     *int64    `json:"p99Ms"`
}

// EndpointStats returns an endpoint's attempts hour by hour, oldest first, for the hours
// hours up to and including the current one.
func (s *Store) EndpointStats(ctx context.Context, tid, eid string, hours int) ([]HourStats, error) {
	now := s.now().Unix() / 3600
	cmds := make([]*redis.MapStringStringCmd, hours)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range hours {
			cmds[i] = p.HGetAll(ctx, statsKey(tid, eid, now-int64(hours-1-i)))
		}
		return nil
	}); err != nil {
		return nil, storeErr("read stats", err)
	}
	out := make([]HourStats, hours)
	for i, c := range cmds {
		out[i] = hourStats(time.Unix((now-int64(hours-1-i))*3600, 0).UTC(), c.Val())
	}
	return out, nil
}

func hourStats(hour time.Time, m map[string]string) HourStats {
	h := HourStats{Hour: hour}
	h.Succeeded, _ = strconv.Atoi(m["s"])
	h.Failed, _ = strconv.Atoi(m["f"])
	counts := make([]int, len(StatsBuckets)+1)
	total := 0
	for i := range counts {
		counts[i], _ = strconv.Atoi(m["b"+strconv.Itoa(i+1)])
		total += counts[i]
	}
	h.P50Ms, h.P99Ms = percentile(counts, total, 0.5), percentile(counts, total, 0.99)
	return h
}

// percentile is the bucket bound holding the q-th of total attempts; nil for none.
func percentile(counts []int, total int, q float64) *int64 {
	if total == 0 {
		return nil
	}
	rank, seen := int(q*float64(total)+0.999999), 0
	for i, n := range counts {
		if seen += n; seen >= max(rank, 1) {
			v := StatsBuckets[min(i, len(StatsBuckets)-1)]
			return &v
		}
	}
	return nil
}
