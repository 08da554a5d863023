package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
)

// Task types and the queue. Fan-outs, drains (an endpoint's queue of attempts), retry timers
// and recovery steps share one queue, or its shards (shards.go): each extra queue costs a
// dequeue round trip on every poll.
const (
	TypeFanout = "webhookd:fanout"
	TypeDrain  = "webhookd:drain"
	TypeRetry  = "webhookd:retry"
	// TypeRecover runs one step of a recovery, then queues the next.
	TypeRecover = "webhookd:recover"
	// typeLegacyDeliver is the retry task of earlier versions (which made the attempt itself);
	// one still queued at an upgrade is run as a retry timer.
	typeLegacyDeliver = "webhookd:deliver"

	// Queue is the queue when there is one shard, and the prefix of the shards' names.
	Queue = "webhookd"
)

// fanoutPayload names an accepted event to fan out.
type fanoutPayload struct {
	TenantID string `json:"t"`
	EventID  string `json:"v"`
	Type     string `json:"y"`
}

// drainPayload names one drain of an endpoint's queue.
type drainPayload struct {
	TenantID   string `json:"t"`
	EndpointID string `json:"e"`
	N          int64  `json:"n"`
}

// retryPayload names one retry timer (registry.Retry); Run is 0 in a task of an earlier
// version, which did not record it.
type retryPayload struct {
	TenantID   string `json:"t"`
	DeliveryID string `json:"d"`
	EndpointID string `json:"e"`
	Generation int    `json:"g"`
	Run        int    `json:"r,omitempty"`
}

// recoverPayload names a recovery to step.
type recoverPayload struct {
	TenantID   string `json:"t"`
	RecoveryID string `json:"r"`
}

func (p retryPayload) retry() registry.Retry {
	r := registry.Retry{DeliveryID: p.DeliveryID, EndpointID: p.EndpointID, Generation: p.Generation, Run: p.Run}
	if r.Run == 0 {
		r.Run = -1
	}
	return r
}

// Enqueuer puts tasks on the queue; *asynq.Client implements it. It returns
// asynq.ErrTaskIDConflict when a task with the same id is already queued.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

var _ Enqueuer = (*asynq.Client)(nil)

// queue enqueues with deterministic task ids, so a repeated enqueue (a retried fan-out, an
// outbox sweep) finds the first one and adds nothing.
// Each task goes to the shard of what it is about: an endpoint's drains and retry timers to
// the endpoint's, a fan-out to its event's, a recovery's steps to the recovery's.
type queue struct {
	enq          Enqueuer
	shards       Shards
	drainTimeout time.Duration
}

func newQueue(enq Enqueuer, shards Shards, attemptTimeout time.Duration) queue {
	return queue{enq: enq, shards: shards, drainTimeout: drainBudget + 2*attemptTimeout + 30*time.Second}
}

// maxRetry is the retry budget of fan-out and retry tasks, which fail only when the registry
// does; drainMaxRetry is a drain's: it fails only while Redis is out of reach (retried without
// counting), so it is never archived with work queued.
const (
	maxRetry      = 25
	drainMaxRetry = 1000
)

// FanoutTaskID is the asynq task id of an event's fan-out (event ids are unique).
func FanoutTaskID(evid string) string { return "f:" + evid }

// DrainTaskID is the asynq task id of one drain of an endpoint's queue.
func DrainTaskID(d registry.Drain) string { return "q:" + d.String() }

// RetryTaskID is the asynq task id of one retry timer.
func RetryTaskID(r registry.Retry) string {
	return "r:" + r.DeliveryID + ":" + strconv.Itoa(r.Generation) + ":" + strconv.Itoa(r.Run)
}

func (q queue) drain(ctx context.Context, tid string, d registry.Drain) error {
	b, _ := json.Marshal(drainPayload{TenantID: tid, EndpointID: d.EndpointID, N: d.N})
	t := asynq.NewTask(TypeDrain, b, asynq.TaskID(DrainTaskID(d)), asynq.Queue(q.shards.Of(d.EndpointID)),
		asynq.MaxRetry(drainMaxRetry), asynq.Timeout(q.drainTimeout))
	return q.put(ctx, t)
}

// drainAll queues drains; it returns the first error. A drain's outbox entry stays until the
// drain ends, so one that fails to queue is queued by the sweeper.
func (q queue) drainAll(ctx context.Context, tid string, ds []registry.Drain) error {
	var first error
	for _, d := range ds {
		if err := q.drain(ctx, tid, d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (q queue) fanout(ctx context.Context, tid, evid, typ string) error {
	b, _ := json.Marshal(fanoutPayload{TenantID: tid, EventID: evid, Type: typ})
	t := asynq.NewTask(TypeFanout, b, asynq.TaskID(FanoutTaskID(evid)), asynq.Queue(q.shards.Of(evid)),
		asynq.MaxRetry(maxRetry), asynq.Timeout(2*time.Minute))
	return q.put(ctx, t)
}

// retry queues a retry timer to fire at at (now when zero). Its outbox entry stays until it fires, so one that
// fails to queue is queued by the sweeper.
func (q queue) retry(ctx context.Context, tid string, r registry.Retry, at time.Time) error {
	b, _ := json.Marshal(retryPayload{TenantID: tid, DeliveryID: r.DeliveryID, EndpointID: r.EndpointID,
		Generation: r.Generation, Run: max(r.Run, 0)})
	opts := []asynq.Option{asynq.TaskID(RetryTaskID(r)), asynq.Queue(q.shards.Of(r.EndpointID)), asynq.MaxRetry(maxRetry),
		asynq.Timeout(30 * time.Second)}
	if !at.IsZero() {
		opts = append(opts, asynq.ProcessAt(at))
	}
	return q.put(ctx, asynq.NewTask(TypeRetry, b, opts...))
}

// recover queues a step of a recovery. Steps are numbered (the id of a sweep's is its time):
// two chains of steps after a lost task run each step once.
func (q queue) recover(ctx context.Context, tid, rid, step string) error {
	b, _ := json.Marshal(recoverPayload{TenantID: tid, RecoveryID: rid})
	t := asynq.NewTask(TypeRecover, b, asynq.TaskID("v:"+rid+":"+step), asynq.Queue(q.shards.Of(rid)),
		asynq.MaxRetry(maxRetry), asynq.Timeout(time.Minute))
	return q.put(ctx, t)
}

func (q queue) put(ctx context.Context, t *asynq.Task) error {
	_, err := q.enq.EnqueueContext(ctx, t)
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	return registry.Wrap(registry.CodeQueue, fmt.Errorf("enqueue %s: %w", t.Type(), err))
}
