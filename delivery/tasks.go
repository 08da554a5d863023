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

// Task types and the queue. Fan-outs, drains (an endpoint's queue of first attempts) and
// retries (one delivery each) share one queue: each extra queue costs a dequeue round trip on
// every poll.
const (
	TypeFanout  = "webhookd:fanout"
	TypeDeliver = "webhookd:deliver"
	TypeDrain   = "webhookd:drain"

	Queue = "webhookd"
)

// fanoutPayload names an accepted event to fan out.
type fanoutPayload struct {
	TenantID string `json:"t"`
	EventID  string `json:"v"`
	Type     string `json:"y"`
}

// deliverPayload names one run (generation) of one delivery. EventID is optional: when known it
// lets the worker read everything in one round trip.
type deliverPayload struct {
	TenantID   string `json:"t"`
	DeliveryID string `json:"d"`
	EndpointID string `json:"e"`
	EventID    string `json:"v,omitempty"`
	Generation int    `json:"g"`
}

// drainPayload names one drain of an endpoint's queue.
type drainPayload struct {
	TenantID   string `json:"t"`
	EndpointID string `json:"e"`
	N          int64  `json:"n"`
}

func (p deliverPayload) queued() registry.Queued {
	return registry.Queued{DeliveryID: p.DeliveryID, EndpointID: p.EndpointID, Generation: p.Generation}
}

// Enqueuer puts tasks on the queue; *asynq.Client implements it. It returns
// asynq.ErrTaskIDConflict when a task with the same id is already queued.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

var _ Enqueuer = (*asynq.Client)(nil)

// queue enqueues with deterministic task ids, so a repeated enqueue (a retried fan-out, an
// outbox sweep) finds the first one and adds nothing.
type queue struct {
	enq          Enqueuer
	maxRetry     int
	taskTimeout  time.Duration
	drainTimeout time.Duration
}

// drainMaxRetry is a drain task's retry budget: a drain fails only while Redis is out of
// reach (it is then retried without counting), so it is never archived with work queued.
const drainMaxRetry = 1000

// FanoutTaskID is the asynq task id of an event's fan-out (event ids are unique).
func FanoutTaskID(evid string) string { return "f:" + evid }

// DeliveryTaskID is the asynq task id of one run of a delivery (delivery ids are unique).
func DeliveryTaskID(d registry.Queued) string {
	return "d:" + d.DeliveryID + ":" + strconv.Itoa(d.Generation)
}

// DrainTaskID is the asynq task id of one drain of an endpoint's queue.
func DrainTaskID(d registry.Drain) string { return d.OutboxEntry() }

func (q queue) drain(ctx context.Context, tid string, d registry.Drain) error {
	b, _ := json.Marshal(drainPayload{TenantID: tid, EndpointID: d.EndpointID, N: d.N})
	t := asynq.NewTask(TypeDrain, b, asynq.TaskID(DrainTaskID(d)), asynq.Queue(Queue),
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
	t := asynq.NewTask(TypeFanout, b, asynq.TaskID(FanoutTaskID(evid)), asynq.Queue(Queue),
		asynq.MaxRetry(25), asynq.Timeout(2*time.Minute))
	return q.put(ctx, t)
}

// deliver queues a retry run of a delivery, to start at at (now when zero).
func (q queue) deliver(ctx context.Context, tid string, d registry.Queued, evid string, at time.Time) error {
	b, _ := json.Marshal(deliverPayload{TenantID: tid, DeliveryID: d.DeliveryID, EndpointID: d.EndpointID,
		EventID: evid, Generation: d.Generation})
	opts := []asynq.Option{asynq.TaskID(DeliveryTaskID(d)), asynq.Queue(Queue), asynq.MaxRetry(q.maxRetry),
		asynq.Timeout(q.taskTimeout)}
	if !at.IsZero() {
		opts = append(opts, asynq.ProcessAt(at))
	}
	return q.put(ctx, asynq.NewTask(TypeDeliver, b, opts...))
}

func (q queue) put(ctx context.Context, t *asynq.Task) error {
	_, err := q.enq.EnqueueContext(ctx, t)
	if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	return registry.Wrap(registry.CodeQueue, fmt.Errorf("enqueue %s: %w", t.Type(), err))
}

// deliverAll queues every delivery, a few at a time; it returns the outbox entries it queued
// and the first error.
func (q queue) deliverAll(ctx context.Context, tid string, ds []registry.Queued, evid string) ([]string, error) {
	const parallel = 16
	type result struct {
		entry string
		err   error
	}
	sem := make(chan struct{}, parallel)
	results := make(chan result, len(ds))
	for _, d := range ds {
		sem <- struct{}{}
		go func(d registry.Queued) {
			defer func() { <-sem }()
			results <- result{entry: d.OutboxEntry(), err: q.deliver(ctx, tid, d, evid, time.Time{})}
		}(d)
	}
	var done []string
	var first error
	for range ds {
		r := <-results
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			continue
		}
		done = append(done, r.entry)
	}
	return done, first
}
