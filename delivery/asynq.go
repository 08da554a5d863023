package delivery

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// This file is the one place that touches asynq's private parts: the key names and task
// states of its Redis layout, its lease and heartbeat timings, a bug in its syncer, and the
// scripts by which its servers dequeue and forward (which wake.go's idler watches). It was
// written against asynqVersion; TestAsynqVersionPinned fails on any other, so an upgrade
// starts by checking every assumption here against the new version's internal/rdb and
// internal/base.
const asynqVersion = "v0.26.0"

// asynqKey is the key of one of a queue's asynq structures (asynq's base.QueueKeyPrefix).
func asynqKey(queue, name string) string { return "asynq:{" + queue + "}:" + name }

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
	for _, q := range w.served() {
		n, err := orphanScript.Run(ctx, w.cfg.RedisClient,
			[]string{asynqKey(q, "active"), asynqKey(q, "lease")}, expired).Int()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
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
	total := 0
	for _, q := range w.served() {
		n, err := w.recoverDeadIn(ctx, q)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// recoverDeadIn requeues the tasks of dead asynq servers in one queue.
func (w *Worker) recoverDeadIn(ctx context.Context, q string) (int, error) {
	// Leases are in asynq's clock: the local one, not the store's.
	bound := time.Now().Add(leaseDuration - leaseStale).Unix()
	stale, err := w.cfg.RedisClient.ZRangeByScore(ctx, asynqKey(q, "lease"),
		&redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(bound, 10)}).Result()
	if err != nil || len(stale) == 0 {
		return 0, err
	}
	owned, err := w.liveTasks(ctx)
	if err != nil {
		return 0, err
	}
	args := []any{bound, asynqKey(q, "t:")}
	for _, id := range stale {
		if !owned[id] {
			args = append(args, id)
		}
	}
	if len(args) == 2 {
		return 0, nil
	}
	n, err := requeueDeadScript.Run(ctx, w.cfg.RedisClient,
		[]string{asynqKey(q, "active"), asynqKey(q, "lease"), asynqKey(q, "pending")}, args...).Int()
	if is := w.idlers.Load(); n > 0 && is != nil {
		is.wake(q)
	}
	return n, err
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

// AsynqConnOpt gives the Redis client of an asynq server or client built from opt the
// uncancel hook below.
func AsynqConnOpt(opt asynq.RedisConnOpt) asynq.RedisConnOpt { return uncancelConnOpt{opt} }

type uncancelConnOpt struct{ asynq.RedisConnOpt }

func (o uncancelConnOpt) MakeRedisClient() any {
	c := o.RedisConnOpt.MakeRedisClient()
	if u, ok := c.(redis.UniversalClient); ok {
		u.AddHook(uncancelHook{})
	}
	return c
}

// uncancelHook works around asynq v0.26 (since hibiken/asynq#926): when marking a task done or
// scheduling its retry fails (Redis restarting, a cluster failover), asynq's syncer retries the
// write every 5s, but with the context of the first try, which asynq has already cancelled.
// Every retry then fails at once, and the task waits for lease recovery (60-120s) although
// Redis came back in seconds. The asynq server passes no other cancelled context, so a command
// whose context is cancelled gets a fresh one with a short timeout instead; the syncer itself
// drops a retry once the task's lease has passed.
type uncancelHook struct{}

const uncancelTimeout = 5 * time.Second

func uncancel(ctx context.Context) (context.Context, context.CancelFunc) {
	if errors.Is(ctx.Err(), context.Canceled) {
		return context.WithTimeout(context.WithoutCancel(ctx), uncancelTimeout)
	}
	return ctx, func() {}
}

func (uncancelHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (uncancelHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, cancel := uncancel(ctx)
		defer cancel()
		return next(ctx, cmd)
	}
}

func (uncancelHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, cancel := uncancel(ctx)
		defer cancel()
		return next(ctx, cmds)
	}
}

// asynqScript names the scripts of asynq's that the idler watches (wake.go). The idler also
// counts on asynq v0.26's processor: one goroutine per server dequeues, a round at a time (one
// call per queue, stopping at the first task), and sleeps TaskCheckInterval after an empty one.
type asynqScript int

const (
	asynqOther asynqScript = iota
	// asynqDequeue is asynq v0.26's dequeueCmd (rdb.Dequeue, one call per queue in a round):
	// KEYS pending, paused, active, lease; it answers nil for an empty (or paused) queue.
	asynqDequeue
	// asynqForward is its forwardCmd (rdb.forward): KEYS a scheduled or retry set, then the
	// queue's pending list; it answers how many tasks it moved to the pending list.
	asynqForward
)

// asynqScriptOf tells which of them cmd runs, and on which queue, by the keys of its EVALSHA
// (or EVAL, after a NOSCRIPT): go-redis sends them as name, script, number of keys, keys...,
// arguments....
func asynqScriptOf(cmd redis.Cmder) (asynqScript, string) {
	args := cmd.Args()
	if len(args) < 5 || (cmd.Name() != "evalsha" && cmd.Name() != "eval") {
		return asynqOther, ""
	}
	n, _ := args[2].(int)
	key := func(i int) string {
		s, _ := args[3+i].(string)
		return s
	}
	switch {
	case n == 4 && len(args) >= 7 && strings.HasSuffix(key(1), "}:paused"):
		if q, ok := asynqQueueOf(key(0), "pending"); ok {
			return asynqDequeue, q
		}
	case n == 2 && (strings.HasSuffix(key(0), "}:scheduled") || strings.HasSuffix(key(0), "}:retry")):
		if q, ok := asynqQueueOf(key(1), "pending"); ok {
			return asynqForward, q
		}
	}
	return asynqOther, ""
}

// asynqQueueOf is the queue of key, one of its asynqKey(queue, name).
func asynqQueueOf(key, name string) (string, bool) {
	q, ok := strings.CutPrefix(key, "asynq:{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(q, "}:"+name)
}
