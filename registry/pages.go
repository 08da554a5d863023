package registry

import (
	"cmp"
	"context"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Lists page through sorted sets scored by creation time in ms: one (an endpoint's deliveries
// of one status) or the union of several that never share a member (all of an endpoint's
// deliveries, from its status indexes; a tenant's events, from its type indexes). A union is
// ordered as Redis orders one set: highest score first, and a score's members greatest first.

// scoreRange bounds a sorted set's scores as ZRANGE BYSCORE takes them ("-inf", "(5", ...).
type scoreRange struct{ min, max string }

var everything = scoreRange{"-inf", "+inf"}

// shallowPage is how deep a page of a union may end and still be read from the top of each
// set (topOf); a deeper one is found from its first score (deepPageOf), so that the last page
// of a million members reads about a page's worth of each set, not a million.
const shallowPage = 1000

// pageOf returns one page of the members of the union of sorted sets keys with a score in r,
// and how many there are.
func (s *Store) pageOf(ctx context.Context, keys []string, r scoreRange, pg Page) ([]string, int, error) {
	total, err := s.atOrAbove(ctx, keys, r, r.min)
	if err != nil {
		return nil, 0, err
	}
	start, stop := pg.bounds(total)
	switch {
	case start == stop:
		return nil, total, nil
	case len(keys) == 1:
		ids, err := s.rdb.ZRevRangeByScore(ctx, keys[0], &redis.ZRangeBy{Min: r.min, Max: r.max,
			Offset: int64(start), Count: int64(stop - start)}).Result()
		return ids, total, storeErr("list", err)
	case stop > shallowPage:
		ids, err := s.deepPageOf(ctx, keys, r, start, stop-start)
		return ids, total, err
	}
	all, err := s.topOf(ctx, keys, r, stop)
	if err != nil {
		return nil, 0, err
	}
	return members(all[min(start, len(all)):min(stop, len(all))]), total, nil
}

// topOf reads the n highest-scored members in r of each of keys at one moment (MULTI: a
// member moving between them meanwhile is seen once) and merges them in the union's order.
func (s *Store) topOf(ctx context.Context, keys []string, r scoreRange, n int) ([]redis.Z, error) {
	cmds := make([]*redis.ZSliceCmd, len(keys))
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.ZRevRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: r.min, Max: r.max, Count: int64(n)})
		}
		return nil
	}); err != nil {
		return nil, storeErr("list", err)
	}
	return merged(cmds), nil
}

// deepPageOf reads the n members from rank start of the union of keys in r without reading
// the ranks before them. It bisects the scores (whole numbers, ms) for s, the highest score
// with more than start members at or above it, which is rank start's; then it reads each set's
// members of score s (the ties, of which the page takes those past rank start) and the n
// below them.
func (s *Store) deepPageOf(ctx context.Context, keys []string, r scoreRange, start, n int) ([]string, error) {
	lo, hi, err := s.scoreBounds(ctx, keys, r)
	if err != nil {
		return nil, err
	}
	for lo < hi { // more than start members score lo or more; none above hi
		mid := lo + (hi-lo+1)/2
		c, err := s.atOrAbove(ctx, keys, r, strconv.FormatInt(mid, 10))
		if err != nil {
			return nil, err
		}
		if c > start {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	above, err := s.atOrAbove(ctx, keys, r, "("+strconv.FormatInt(lo, 10))
	if err != nil {
		return nil, err
	}
	at := strconv.FormatInt(lo, 10)
	ties, below := make([]*redis.ZSliceCmd, len(keys)), make([]*redis.ZSliceCmd, len(keys))
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			ties[i] = p.ZRevRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: at, Max: at})
			below[i] = p.ZRevRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: r.min, Max: "(" + at, Count: int64(n)})
		}
		return nil
	}); err != nil {
		return nil, storeErr("list", err)
	}
	tied := merged(ties) // the members written meanwhile may shift the page by as many
	page := slices.Concat(tied[min(max(start-above, 0), len(tied)):], merged(below))
	return members(page[:min(n, len(page))]), nil
}

// scoreBounds returns the lowest and the highest score in r across keys (some member has one).
func (s *Store) scoreBounds(ctx context.Context, keys []string, r scoreRange) (int64, int64, error) {
	low, high := make([]*redis.ZSliceCmd, len(keys)), make([]*redis.ZSliceCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			low[i] = p.ZRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: r.min, Max: r.max, Count: 1})
			high[i] = p.ZRevRangeByScoreWithScores(ctx, k, &redis.ZRangeBy{Min: r.min, Max: r.max, Count: 1})
		}
		return nil
	}); err != nil {
		return 0, 0, storeErr("list", err)
	}
	var scores []float64
	for i := range keys {
		for _, z := range slices.Concat(low[i].Val(), high[i].Val()) {
			scores = append(scores, z.Score)
		}
	}
	if len(scores) == 0 {
		return 0, 0, nil
	}
	return int64(slices.Min(scores)), int64(slices.Max(scores)), nil
}

// atOrAbove counts the members of keys in r that score from (ZCOUNT's min form) upward.
func (s *Store) atOrAbove(ctx context.Context, keys []string, r scoreRange, from string) (int, error) {
	counts := make([]*redis.IntCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			counts[i] = p.ZCount(ctx, k, from, r.max)
		}
		return nil
	}); err != nil {
		return 0, storeErr("count", err)
	}
	n := 0
	for _, c := range counts {
		n += int(c.Val())
	}
	return n, nil
}

// merged is the members the commands read, in the union's order.
func merged(cmds []*redis.ZSliceCmd) []redis.Z {
	var all []redis.Z
	for _, c := range cmds {
		all = append(all, c.Val()...)
	}
	slices.SortFunc(all, func(a, b redis.Z) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(b.Member.(string), a.Member.(string)))
	})
	return all
}

func members(zs []redis.Z) []string {
	out := make([]string, len(zs))
	for i, z := range zs {
		out[i] = z.Member.(string)
	}
	return out
}
