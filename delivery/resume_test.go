package delivery

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// pingFault fails PING while down is set, as Redis does while it is stopped or loading, and
// counts the PINGs it failed.
type pingFault struct {
	down   *atomic.Bool
	failed *atomic.Int32
}

func (pingFault) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f pingFault) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.down.Load() && strings.EqualFold(cmd.Name(), "ping") {
			f.failed.Add(1)
			cmd.SetErr(redis.ErrClosed)
			return redis.ErrClosed
		}
		return next(ctx, cmd)
	}
}

func (pingFault) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// When Redis answers again after an outage, a worker sweeps the outbox at once: a drain whose
// task was lost with the last second of an AOF (its entry survived) runs again without waiting
// for the next sweep, however far away that is.
func TestSweepWhenRedisAnswersAgain(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	rc, ep := st.receiver(t, deliverytest.Status(200), registry.EventScanCompleted)
	var ids []string
	for range 3 {
		ids = append(ids, st.publish(t, registry.EventScanCompleted, scanData()).ID)
	}
	ins := asynq.NewInspectorFromRedisClient(st.rdb)
	tasks, err := ins.ListPendingTasks(st.queue(ep.ID))
	if err != nil || len(tasks) != 1 || tasks[0].Type != TypeDrain {
		t.Fatalf("pending tasks = %v, %v; want the endpoint's drain", tasks, err)
	}
	if err := ins.DeleteTask(st.queue(ep.ID), tasks[0].ID); err != nil { // the enqueue Redis forgot
		t.Fatal(err)
	}

	var down atomic.Bool
	var failed atomic.Int32
	down.Store(true)
	probed := st.newClient()
	probed.AddHook(pingFault{down: &down, failed: &failed})
	st.worker(t, WorkerConfig{RedisClient: probed, SweepInterval: time.Hour})
	for failed.Load() == 0 { // until the worker has seen Redis down: an outage, from its point of view
		time.Sleep(10 * time.Millisecond)
	}
	down.Store(false)
	// Neither the hourly sweep nor its 30s grace could deliver within the stack's patience; only
	// the sweep at the outage's end can.
	st.deliveredOnce(t, rc, ep.ID, ids...)
}
