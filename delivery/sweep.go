package delivery

import (
	"context"
	"strconv"
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
	dead := time.NewTicker(min(w.cfg.SweepInterval, deadCheckInterval))
	defer dead.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Sweep(ctx, outboxGrace)
		case <-dead.C:
			if n, err := w.RecoverDeadWorkers(ctx); err != nil {
				w.log.WarnContext(ctx, "dead worker sweep failed", "error", err.Error())
			} else if n > 0 {
				w.log.WarnContext(ctx, "requeued tasks of dead workers", "count", n)
			}
		}
	}
}

// Sweep queues outbox work older than grace (fan-outs, drains and retries accepted but never
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
		case strings.HasPrefix(e, "q:"):
			// A drain's entry stays until the drain ends; queueing a running one adds nothing.
			if d, ok := registry.ParseDrain(strings.TrimPrefix(e, "q:")); ok {
				if err := w.q.drain(ctx, tid, d); err != nil {
					return err
				}
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

// A live asynq server extends the lease of every task it runs to 30s ahead every 5s
// (asynq's heartbeat), and lists the tasks in a worker hash whose TTL is 10s. A task whose
// lease has not been extended for leaseStale and that no live server lists belongs to a
// server that died (SIGKILL, OOM, power loss). asynq itself retries such a task only after its
// lease has been expired for 30s and its recoverer (every minute) runs: 60-120s after the death.
// RecoverDeadWorkers requeues it within leaseStale plus one deadCheckInterval.
const (
	leaseDuration     = 30 * time.Second // asynq v0.26's rdb.LeaseDuration
	leaseStale        = 15 * time.Second // three missed heartbeats
	deadCheckInterval = 5 * time.Second
)

// requeueDeadScript moves each listed task from the active list back to the head of the
// pending list, as asynq does when a server shuts down with tasks unfinished, but only if its
// lease is still at or below the stale bound (a heartbeat since the read would have raised it)
// and it is still active. The retry count is unchanged: the task did not fail.
// KEYS: active, lease, pending; ARGV: stale bound, task key prefix, task ids.
var requeueDeadScript = redis.NewScript(`
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local lease = redis.call('ZSCORE', KEYS[2], id)
  if lease and tonumber(lease) <= tonumber(ARGV[1]) and redis.call('LREM', KEYS[1], 0, id) > 0 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('RPUSH', KEYS[3], id)
    redis.call('HSET', ARGV[2] .. id, 'state', 'pending')
    n = n + 1
  end
end
return n`)

// asynq's registry of worker hashes (a sorted set of keys) and of live servers' tasks.
const asynqWorkers = "asynq:workers"

// RecoverDeadWorkers requeues the tasks of asynq servers that died in the middle of them; it
// returns how many. A task is requeued only when both hold: its lease has not been extended for
// leaseStale (its server missed three heartbeats), and no live server lists it among its running
// tasks (read from the worker hashes, which expire 10s after their server's last heartbeat).
// Any read error leaves every task where it is. A live server that stalled for more than
// leaseStale (which asynq itself gives up on at 30s) may lose the race for its task and the
// task is then run twice: a duplicate delivery with the same webhook-id, never a lost one.
func (w *Worker) RecoverDeadWorkers(ctx context.Context) (int, error) {
	prefix := "asynq:{" + Queue + "}:"
	// Leases are in asynq's clock: the local one, not the store's.
	bound := time.Now().Add(leaseDuration - leaseStale).Unix()
	stale, err := w.cfg.RedisClient.ZRangeByScore(ctx, prefix+"lease",
		&redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(bound, 10)}).Result()
	if err != nil || len(stale) == 0 {
		return 0, err
	}
	owned, err := w.liveTasks(ctx)
	if err != nil {
		return 0, err
	}
	args := []any{bound, prefix + "t:"}
	for _, id := range stale {
		if !owned[id] {
			args = append(args, id)
		}
	}
	if len(args) == 2 {
		return 0, nil
	}
	return requeueDeadScript.Run(ctx, w.cfg.RedisClient,
		[]string{prefix + "active", prefix + "lease", prefix + "pending"}, args...).Int()
}

// liveTasks returns the ids of the tasks that live asynq servers list as running. Hashes of
// dead servers have expired (the sorted set keeps their names until asynq trims it).
func (w *Worker) liveTasks(ctx context.Context) (map[string]bool, error) {
	keys, err := w.cfg.RedisClient.ZRange(ctx, asynqWorkers, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	pipe := w.cfg.RedisClient.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HKeys(ctx, k)
	}
	if len(keys) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	owned := map[string]bool{}
	for _, c := range cmds {
		for _, id := range c.Val() {
			owned[id] = true
		}
	}
	return owned, nil
}
