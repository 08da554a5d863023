package delivery

import (
	"context"
	"strconv"
	"time"
)

// outboxGrace is how old an outbox entry must be before the sweeper queues it: younger ones
// are normally being queued by the request that wrote them.
const outboxGrace = 30 * time.Second

// redisProbe is how often a worker checks that Redis answers. When it answers again after an
// outage, the worker sweeps the outbox at once, without the grace: a restart from an AOF that
// lost its last second, or a failover to a replica that lagged, may have lost the enqueue of
// work whose outbox entry survived (a drain's successor, say), and that work would otherwise
// wait for the next sweep.
const redisProbe = 500 * time.Millisecond

func (w *Worker) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	dead := time.NewTicker(min(w.cfg.SweepInterval, deadCheckInterval))
	defer dead.Stop()
	probe := time.NewTicker(redisProbe)
	defer probe.Stop()
	down := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Sweep(ctx, outboxGrace)
		case <-probe.C:
			err := w.cfg.RedisClient.Ping(ctx).Err()
			if err == nil && down {
				w.log.InfoContext(ctx, "redis answers again: sweeping the outbox now")
				w.Sweep(ctx, 0)
			}
			down = err != nil
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
	work, err := w.cfg.Store.DueOutbox(ctx, tid, before, 1000)
	if err != nil || len(work) == 0 {
		return err
	}
	for _, wk := range work {
		// Each entry stays until its work is done (a fan-out clears its own once every
		// delivery is queued, a drain when it ends, a retry timer when it fires, a recovery
		// when it is done), and task ids
		// are deterministic: queueing one already queued adds nothing.
		switch {
		case wk.Fanout != "":
			err = w.q.fanout(ctx, tid, wk.Fanout, "")
		case wk.Drain != nil:
			err = w.q.drain(ctx, tid, *wk.Drain)
		case wk.Retry != nil:
			err = w.q.retry(ctx, tid, *wk.Retry, time.Time{})
		case wk.Operational != "":
			err = w.ops.publish(ctx, tid, wk.Operational)
		case wk.Recovery != nil:
			// A running recovery refreshes its entry at every step: this one stalled.
			err = w.q.recover(ctx, tid, wk.Recovery.ID, "s"+strconv.FormatInt(time.Now().Unix(), 10))
		}
		if err != nil {
			return err
		}
	}
	w.log.InfoContext(ctx, "outbox sweep queued work", "tenantId", tid, "entries", len(work))
	return nil
}
