package registry

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateResult is one rate-limit decision.
type RateResult struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration
	ResetAfter time.Duration
}

// The rate limits are GCRA on Redis time (lua/gcra.lua), so every process shares one budget:
// a key's per-minute limit, counted by authenticate.lua as it reads the key (Authenticate) or
// alone for a portal session (AllowRequest), and an endpoint's attempts per second
// (AllowAttempts).
var (
	allowScript       = keyScript("return allowEach(KEYS[1], ARGV[1], ARGV[1], ARGV[2], 1)[1]")
	allowAtMostScript = keyScript("return allowAtMost(KEYS[1], ARGV[1], ARGV[1], ARGV[2], tonumber(ARGV[3]))")
)

// keyScript is body after what it uses of lua/token.lua and lua/gcra.lua: a script in one
// key's slot (an API key's, a portal session's, an endpoint's rate limit) that needs none of
// the delivery scripts' preamble.
func keyScript(body string) *redis.Script { return redis.NewScript(withLibrary(keyLibrary, body)) }

var keyLibrary = splitDefs(mustRead("token") + "\n" + mustRead("gcra"))

// AllowRequest counts one request against bucket's per-minute limit (a burst of a minute's
// worth).
func (s *Store) AllowRequest(ctx context.Context, bucket string, perMinute int) (RateResult, error) {
	v, err := allowScript.Run(ctx, s.rdb, []string{apiKeyRateKey(bucket)}, perMinute, 60).Slice()
	if err != nil {
		return RateResult{}, storeErr("rate limit", err)
	}
	_, r, err := rateResult(v)
	return r, err
}

// AllowAttempts takes up to n of an endpoint's attempts per second, shared by every worker
// (a burst of one second's worth); it returns how many it may make now and, when none, how
// long until one.
func (s *Store) AllowAttempts(ctx context.Context, tid, eid string, perSecond, n int) (int, time.Duration, error) {
	v, err := allowAtMostScript.Run(ctx, s.rdb, []string{endpointRateKey(tid, eid)}, perSecond, 1, n).Slice()
	if err != nil {
		return 0, 0, storeErr("rate limit", err)
	}
	taken, r, err := rateResult(v)
	return taken, r.RetryAfter, err
}

// rateResult reads gcra.lua's answer: how many it took, and the decision.
func rateResult(v []any) (int, RateResult, error) {
	if len(v) != 4 {
		return 0, RateResult{}, storeErr("rate limit", fmt.Errorf("answer of %d values", len(v)))
	}
	taken, _ := v[0].(int64)
	remaining, _ := v[1].(int64)
	retry, err := secondsOf(v[2])
	if err != nil {
		return 0, RateResult{}, err
	}
	reset, err := secondsOf(v[3])
	if err != nil {
		return 0, RateResult{}, err
	}
	return int(taken), RateResult{Allowed: taken > 0, Remaining: int(remaining), RetryAfter: retry,
		ResetAfter: reset}, nil
}

// secondsOf reads a duration in seconds, as gcra.lua writes it; -1 stays -1 (none).
func secondsOf(v any) (time.Duration, error) {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, storeErr("rate limit", fmt.Errorf("duration %q", s))
	}
	if f == -1 {
		return -1, nil
	}
	return time.Duration(f * float64(time.Second)), nil
}
