package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// memory measures Redis memory per pending delivery. webhookd runs with --role api and no
// worker: a fan-out of up to 32 endpoints is made at publish, so every delivery is created and
// queued, and stays pending.
//
// The event's own share (its payload, stored once and shared by all its deliveries) is
// measured with a control tenant that has no endpoints: its events, once fanned out, are
// exactly the shared part. So: per event = control delta ÷ M, and per pending delivery =
// (delta of the tenant with K endpoints − M × per event) ÷ (M × K).
//
// Then it measures what a delivered event keeps for the retention window (retained.go).
func (b *bench) memory(ctx context.Context) (*runResult, error) {
	if b.opt.Target != "" || b.rdb == nil {
		return nil, errSkipped
	}
	if b.opt.MemEndpoints > inlineFanout {
		return nil, fmt.Errorf("--mem-endpoints must be at most %d: larger fan-outs need a worker", inlineFanout)
	}
	r := &runResult{}
	if err := b.pending(ctx, r); err != nil {
		return nil, err
	}
	if err := b.retained(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// pending measures Redis memory per pending delivery and per event (see memory).
func (b *bench) pending(ctx context.Context, r *runResult) error {
	e, err := b.setup(ctx, "api", nil)
	if err != nil {
		return err
	}
	defer e.close(ctx)
	m := b.opt.MemEvents
	// A first, unmeasured phase grows webhookd's Redis connection pool (each connection has
	// buffers counted in used_memory) and creates the shared keys.
	if _, err := e.memoryPhase(ctx, nil, 0, 8*b.opt.Publishers); err != nil {
		return err
	}
	control, err := e.memoryPhase(ctx, r, 0, m)
	if err != nil {
		return err
	}
	perEvent := float64(control) / float64(m)
	withEndpoints, err := e.memoryPhase(ctx, r, b.opt.MemEndpoints, m)
	if err != nil {
		return err
	}
	n := m * b.opt.MemEndpoints
	r.add("event with payload, fanned out: Redis memory/event", "B", perEvent)
	r.add("pending delivery beyond the event: Redis memory/delivery", "B", (float64(withEndpoints)-float64(m)*perEvent)/float64(n))
	if err := e.memoryBreakdown(ctx, r, n, "pending deliveries (both tenants)"); err != nil {
		r.note("key breakdown failed: %v", err)
	}
	return nil
}

// memoryPhase publishes m events to a new tenant with k endpoints, waits until their
// deliveries are queued, and returns the growth of used_memory.
func (e *env) memoryPhase(ctx context.Context, r *runResult, k, m int) (int64, error) {
	b := e.b
	tid, key, err := b.newTenantKey(ctx)
	if err != nil {
		return 0, err
	}
	api := newAPIClient(e.wd.base, key, b.opt.Publishers)
	defer api.close()
	sub := &env{b: b, api: api, rec: e.rec}
	rcv, err := e.receiver(receiverConfig{})
	if err != nil {
		return 0, err
	}
	eids, err := sub.register(ctx, rcv, labels(fmt.Sprintf("m%d-", k), k), 200)
	if err != nil {
		return 0, err
	}
	m0, err := usedMemory(ctx, b.rdb)
	if err != nil {
		return 0, err
	}
	load := publishClosed(ctx, m, b.opt.Publishers, sub.publisher())
	if load.rejected > 0 {
		return 0, fmt.Errorf("%d publishes rejected; first: %s", load.rejected, load.firstErr)
	}
	if err := sub.queued(ctx, eids, len(load.ids)); err != nil {
		return 0, fmt.Errorf("tenant %s: %w", tid, err)
	}
	m2, err := usedMemory(ctx, b.rdb)
	return m2 - m0, err
}

// inlineFanout is webhookd's default largest fan-out made at publish.
const inlineFanout = 32

// queued waits until each endpoint lists at least pending deliveries as pending (no worker
// runs, so they stay queued).
func (e *env) queued(ctx context.Context, eids []string, pending int) error {
	return poll(ctx, 2*time.Minute, func() (bool, error) {
		for _, id := range eids {
			if n, err := e.api.countDeliveries(ctx, id, "pending"); err != nil || n < pending {
				return false, nil
			}
		}
		return true, nil
	})
}

// idPattern matches the ids in key names, so keys group by kind.
var idPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|evt_[0-9a-f]{32}|:scan:[0-9a-f]{20}$|:[0-9]+$`)

// keyKind replaces the ids in a key name by "*" (a scan's lane too) and a trailing number by ":N".
func keyKind(key string) string {
	return idPattern.ReplaceAllStringFunc(key, func(s string) string {
		switch {
		case strings.HasPrefix(s, ":scan:"):
			return ":scan:*"
		case strings.HasPrefix(s, ":"):
			return ":N"
		}
		return "*"
	})
}

// memoryBreakdown notes MEMORY USAGE summed by kind of key, per what (n of them): where the
// bytes are. It reads every key, so it runs once, after the measurement.
func (e *env) memoryBreakdown(ctx context.Context, r *runResult, n int, what string) error {
	sums := make(map[string]int64)
	var cursor uint64
	for range 100000 {
		keys, next, err := e.b.rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return err
		}
		pipe := e.b.rdb.Pipeline()
		for _, k := range keys {
			pipe.MemoryUsage(ctx, k, 0)
		}
		cmds, _ := pipe.Exec(ctx)
		for i, c := range cmds {
			if n, err := c.(interface{ Result() (int64, error) }).Result(); err == nil {
				sums[keyKind(keys[i])] += n
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	kinds := slices.SortedFunc(maps.Keys(sums), func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
	var parts []string
	for _, k := range kinds[:min(8, len(kinds))] {
		parts = append(parts, fmt.Sprintf("%s %.0f B", k, float64(sums[k])/float64(n)))
	}
	r.note("MEMORY USAGE of all keys by kind, divided by the %s: %s", what, strings.Join(parts, "; "))
	return nil
}
