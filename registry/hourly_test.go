package registry_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/google/uuid"
)

// statsHourBytes bounds what one endpoint-hour of stats costs in Redis (MEMORY USAGE of its
// hash: key, fields, values and overhead), as the README states it.
const statsHourBytes = 320

// TestStatsHourMemory measures one endpoint-hour of stats on redis-server after a realistic hour
// (600 attempts, 10 % failed, durations over every bucket) and after a busy one (100,000
// attempts): the hash stays a listpack under statsHourBytes, expires after the longest window
// and an hour, and reads back the counts it was given.
func TestStatsHourMemory(t *testing.T) {
	for _, tc := range []struct {
		name     string
		attempts int
	}{{"realistic hour", 600}, {"busy hour", 100000}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, registrytest.Client(t), registry.Config{})
			tn := e.tenant(t, 0)
			ep := e.endpoint(t, tn.ID)
			ok, failed := e.recordHour(t, tn.ID, ep.ID, tc.attempts)
			key := registry.StatsKeyOf(tn.ID, ep.ID, start.Unix()/3600)
			ctx := t.Context()
			bytes, err := e.rdb.MemoryUsage(ctx, key, 0).Result()
			if err != nil {
				t.Fatal(err)
			}
			enc := e.rdb.ObjectEncoding(ctx, key).Val()
			n := e.rdb.HLen(ctx, key).Val()
			t.Logf("%s: %d attempts, %d fields, encoding %s, MEMORY USAGE %d bytes (key name %d bytes)",
				tc.name, tc.attempts, n, enc, bytes, len(key))
			if bytes > statsHourBytes || (enc != "listpack" && enc != "ziplist") {
				t.Errorf("one endpoint-hour takes %d bytes as a %s, want at most %d as a listpack", bytes, enc, statsHourBytes)
			}
			if ttl := e.rdb.TTL(ctx, key).Val(); ttl <= 7*24*time.Hour || ttl > 7*24*time.Hour+time.Hour {
				t.Errorf("TTL = %s, want the longest window (7 days) and an hour", ttl)
			}
			hours, err := e.store.EndpointStats(ctx, tn.ID, ep.ID, 1)
			if err != nil {
				t.Fatal(err)
			}
			if h := hours[0]; h.Succeeded != ok || h.Failed != failed || h.P50Ms == nil || h.P99Ms == nil {
				t.Errorf("stats = %+v, want %d succeeded and %d failed with percentiles", h, ok, failed)
			}
		})
	}
}

// recordHour records n attempts that end within the injected clock's hour, in batches as a
// drain does: one in ten failed, durations log-uniform from 1 ms to 60 s so every bucket fills.
func (e *env) recordHour(t *testing.T, tid, eid string, n int) (ok, failed int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(16, 1))
	const batch = 500
	for done := 0; done < n; done += batch {
		outs := make([]registry.Outcome, 0, batch)
		for i := done; i < min(done+batch, n); i++ {
			ms := int64(1 << (rnd.IntN(16))) // 1 ms to 32 s
			if rnd.IntN(100) == 0 {
				ms = 60000
			}
			out, status := registry.OutcomeSuccess, registry.DeliverySucceeded
			if i%10 == 9 {
				out, status = registry.OutcomeFailure, registry.DeliveryRetrying
				failed++
			} else {
				ok++
			}
			end := start.Add(time.Duration(i) * time.Hour / time.Duration(n))
			outs = append(outs, registry.Outcome{Item: registry.QueueItem{DeliveryID: uuid.NewString()}, Outcome: out,
				Status: status, NextAttemptAt: end.Add(time.Minute), Attempt: &registry.Attempt{Number: 1,
					StartedAt: end.Add(-time.Duration(ms) * time.Millisecond), DurationMs: ms, StatusCode: 200}})
		}
		if _, err := e.store.Finish(t.Context(), registry.FinishRequest{TenantID: tid, EndpointID: eid, Outcomes: outs,
			MaxConcurrency: testMaxConcurrency, Streak: registry.StreakRule{Threshold: 1 << 30}}); err != nil {
			t.Fatal(err)
		}
	}
	return ok, failed
}
