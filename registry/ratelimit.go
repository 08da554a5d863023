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
	res, err := s.limiter().Allow(ctx, "wh:{k:"+keyID+"}", redis_rate.PerMinute(perMinute))
	if err != nil {
		return RateResult{}, storeErr("rate limit", err)
	}
	return RateResult{Allowed: res.Allowed > 0, Remaining: res.Remaining, RetryAfter: res.RetryAfter,
		ResetAfter: res.ResetAfter}, nil
}

func (s *Store) limiter() *redis_rate.Limiter {
	s.limOnce.Do(func() { s.lim = redis_rate.NewLimiter(s.rdb) })
	return s.lim
}
