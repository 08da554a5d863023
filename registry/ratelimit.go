package registry

import (
	"context"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// RateResult is one rate-limit decision.
type RateResult struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration
	ResetAfter time.Duration
}

// AllowRequest counts one request against the key's per-minute limit with redis_rate (GCRA
// in one Lua call, so all API processes share the budget).
func (s *Store) AllowRequest(ctx context.Context, keyID string, perMinute int) (RateResult, error) {
	res, err := s.limiter().Allow(ctx, apiKeyRateKey(keyID), redis_rate.PerMinute(perMinute))
	if err != nil {
		return RateResult{}, storeErr("rate limit", err)
	}
	return RateResult{Allowed: res.Allowed > 0, Remaining: res.Remaining, RetryAfter: res.RetryAfter,
		ResetAfter: res.ResetAfter}, nil
}

// AllowAttempts takes up to n of an endpoint's attempts per second, shared by every worker
// (redis_rate's GCRA, a burst of one second's worth); it returns how many it may make now
// and, when none, how long until one.
func (s *Store) AllowAttempts(ctx context.Context, tid, eid string, perSecond, n int) (int, time.Duration, error) {
	res, err := s.limiter().AllowAtMost(ctx, endpointRateKey(tid, eid), redis_rate.PerSecond(perSecond), n)
	if err != nil {
		return 0, 0, storeErr("rate limit", err)
	}
	return res.Allowed, res.RetryAfter, nil
}

func (s *Store) limiter() *redis_rate.Limiter {
	s.limOnce.Do(func() { s.lim = redis_rate.NewLimiter(s.rdb) })
	return s.lim
}
