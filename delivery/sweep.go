package delivery

import (
	"context"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
)

// outboxGrace is how old an outbox entry must be before the sweeper queues it: younger ones
// are normally being queued by the request that wrote them.
const outboxGrace = 30 * time.Second

func (w *Worker) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Sweep(ctx, outboxGrace)
		}
	}
}

// Sweep queues outbox work older than grace (fan-outs and deliveries accepted but never
// queued, e.g. after a crash between the write and the enqueue) and repairs asynq tasks left
// active without a lease. Any number of workers may sweep at once: task ids are deterministic.
func (w *Worker) Sweep(ctx context.Context, grace time.Duration) {
	if n, err := w.RecoverOrphans(ctx); err != nil {
		w.log.WarnContext(ctx, "orphaned task sweep failed", "error", err.Error())
	} else if n > 0 {
		w.log.WarnContext(ctx, "recovered active tasks without a lease", "count", n)
	}
	tids, err := w.cfg.Store.TenantIDs(ctx)
	if err != nil {
		w.log.WarnContext(ctx, "outbox sweep failed", "error", err.Error())
		return
	}
	before := w.cfg.Store.Now().Add(-grace)
	trim := w.sweeps.Add(1)%trimEvery == 1
	for _, tid := range tids {
		if err := w.sweepTenant(ctx, tid, before); err != nil {
			w.log.WarnContext(ctx, "outbox sweep failed", "tenantId", tid, "error", err.Error())
		}
		if !trim {
			continue
		}
		if _, err := w.cfg.Store.TrimIndexes(ctx, tid); err != nil {
			w.log.WarnContext(ctx, "trimming delivery indexes failed", "tenantId", tid, "error", err.Error())
		}
	}
}

// trimEvery is how many sweeps pass between trims of expired delivery index entries.
const trimEvery = 10

func (w *Worker) sweepTenant(ctx context.Context, tid string, before time.Time) error {
	entries, err := w.cfg.Store.DueOutbox(ctx, tid, before, 1000)
	if err != nil || len(entries) == 0 {
		return err
	}
	var qs []registry.Queued
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e, "e:"):
			// The fan-out task clears its own entry once every delivery is queued.
			if err := w.q.fanout(ctx, tid, strings.TrimPrefix(e, "e:"), ""); err != nil {
				return err
			}
		case strings.HasPrefix(e, "d:"):
			if q, ok := registry.ParseQueued(strings.TrimPrefix(e, "d:")); ok {
				qs = append(qs, q)
			}
		}
	}
	w.log.InfoContext(ctx, "outbox sweep queued work", "tenantId", tid, "entries", len(entries))
	done, qerr := w.q.deliverAll(ctx, tid, qs, "")
	if err := w.cfg.Store.OutboxDone(ctx, tid, done...); err != nil {
		return err
	}
	return qerr
}

// orphanScript gives every task in a queue's active list that has no lease an expired one, so
// asynq's recoverer retries it (asynq issues 1144 and 1051: such a task otherwise stays active
// forever). Dequeue adds the lease in the same script that moves a task to active, so a task
// without one is truly orphaned. Key names follow asynq v0.26's layout (asynq:{queue}:...).
var orphanScript = redis.NewScript(`
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local n = 0
for _, id in ipairs(ids) do
  if not redis.call('ZSCORE', KEYS[2], id) then
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    n = n + 1
  end
end
return n`)

// RecoverOrphans repairs active tasks without a lease in webhookd's queues; it returns how many.
func (w *Worker) RecoverOrphans(ctx context.Context) (int, error) {
	total := 0
	expired := w.cfg.Store.Now().Add(-time.Minute).Unix()
	n, err := orphanScript.Run(ctx, w.cfg.RedisClient,
		[]string{"asynq:{" + Queue + "}:active", "asynq:{" + Queue + "}:lease"}, expired).Int()
	return total + n, err
}
