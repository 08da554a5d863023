package main

import (
	"context"
	"time"
)

// idleWindow is how long the idle scenario measures.
const idleWindow = 10 * time.Second

// idle measures what webhookd costs with nothing to do: one endpoint, one event delivered to
// it, then idleWindow without traffic, over which it reports webhookd's and redis-server's CPU
// (as a share of one core) and the Redis commands a second.
func (b *bench) idle(ctx context.Context) (*runResult, error) {
	e, _, err := b.oneEndpoint(ctx, "idle")
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	ls := []string{"idle"}
	id, err := e.publisher()(ctx, time.Now(), 0)
	if err != nil {
		return nil, err
	}
	r := &runResult{}
	if !e.await(ctx, 1) {
		r.problem("gave up waiting for the one event's delivery")
	}
	t := e.settle(ctx, []string{id}, ls)
	sleepCtx(ctx, time.Second)
	before, start := b.snap(ctx, e.wd), time.Now()
	sleepCtx(ctx, idleWindow)
	after, took := b.snap(ctx, e.wd), time.Since(start)
	r.addIdle(before, after, took)
	r.addTally("", t)
	e.checkAlive(r)
	r.addRSS(e.wd)
	return r, nil
}

// addIdle adds each process's CPU as a share of one core, and Redis's commands a second,
// between two snapshots d apart.
func (r *runResult) addIdle(before, after snapshot, d time.Duration) {
	for _, name := range []string{"webhookd", "redis-server"} {
		if _, ok := before.cpu[name]; ok {
			r.add(name+" CPU, idle", "%", 100*float64(after.cpu[name]-before.cpu[name])/float64(d))
		}
	}
	if after.calls == nil {
		return
	}
	delta := commandDelta(before, after)
	r.add("redis commands/s, idle", "/s", float64(totalCalls(delta))/d.Seconds())
	r.add("redis EVALSHA/s, idle", "/s", float64(delta["evalsha"]+delta["eval"])/d.Seconds())
	r.note("redis commands a second, most frequent: %s", topCommands(delta, int(d.Seconds()), 6))
}
