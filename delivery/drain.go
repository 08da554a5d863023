package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
)

// A delivery's first attempt is made by its endpoint's drain: one asynq task per endpoint at a
// time (it holds a lease on the endpoint's queue) that takes the queued deliveries a batch at a
// time, sends up to EndpointConcurrency of them at once and records each batch of outcomes in
// one step. A failed first attempt becomes a retry task of its own (handleDeliver), so retries
// keep their per-delivery backoff while the hot path costs one task per endpoint, not one per
// delivery.
const (
	// drainBudget is how long one drain task runs by default before it hands the queue to a
	// successor task, so that a busy endpoint takes its turn on the task queue like any other.
	drainBudget = 10 * time.Second
	// drainRenew is how often a drain renews its lease (registry.DrainLease).
	drainRenew = time.Second
	// drainBatch is how many free places a busy drain waits for before it takes more, and how
	// many outcomes it collects (for at most finishWait) before it records them.
	drainBatch = 8
	finishWait = 2 * time.Millisecond
	// A batch whose recording meets a Redis outage is tried again every recordRetry for up to
	// recordPatience; past that the drain fails and its unrecorded deliveries are sent again.
	recordRetry    = 250 * time.Millisecond
	recordPatience = 30 * time.Second
)

// sent is what one send of a drain ended with; skipped means nothing was sent (the endpoint's
// slot did not come free) and the delivery stays queued. A sent attempt keeps its worker slot
// until its outcome is recorded, so that a worker never has more attempts made but not
// recorded (what a crash repeats) than its concurrency.
type sent struct {
	registry.Sent
	skipped bool
}

func (w *Worker) handleDrain(ctx context.Context, t *asynq.Task) error {
	var p drainPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad drain payload: %w: %w", err, asynq.SkipRetry)
	}
	return asOutage(w.drain(ctx, p.TenantID, registry.Drain{EndpointID: p.EndpointID, N: p.N}))
}

// drain works an endpoint's queue until it is empty (the drain then ends), the budget is spent
// or the worker stops (the queue then passes to a successor task), or the lease is lost. When
// Redis fails it returns the error and asynq runs the drain again: deliveries whose outcome
// was not recorded stay queued and are sent again.
//
// Sending and recording overlap: while one batch of outcomes is being recorded, the drain
// keeps taking and sending. A delivery stays in the drain's skip set from the moment it is
// taken until its outcome is recorded (it is still at the head of the queue until then).
func (w *Worker) drain(ctx context.Context, tid string, d registry.Drain) error {
	st := w.cfg.Store
	window := w.cfg.EndpointConcurrency
	held := make(map[string]bool, 2*window) // taken and not yet recorded: sending or recording
	sending := 0
	results := make(chan sent, window)
	recorded := make(chan error, 1)
	var batch []sent
	var recording []sent // the batch being recorded, nil when none is
	var flush <-chan time.Time
	deadline := time.Now().Add(w.cfg.DrainBudget)
	renewAt := time.Now()
	taking, lost, handoff := true, false, false
	// A busy drain takes when minTake places are free, so that one take serves several; a
	// place left free longer (its neighbours hang) is filled at the next tick.
	minTake := max(1, min(drainBatch, window/2))
	tick := false
	var failed error
	stopping := w.stopping
	renewTick := time.NewTicker(drainRenew / 4) // also the tick that fills lingering free places
	defer renewTick.Stop()
	stop := func(err error) {
		taking = false
		if err != nil && failed == nil {
			failed = err
		}
	}
	for {
		if taking && time.Now().After(deadline) {
			taking, handoff = false, true
		}
		free := window - sending
		if taking && (len(held) == 0 || free >= minTake || (free > 0 && tick)) {
			tick = false
			renew := !time.Now().Before(renewAt)
			items, ep, err := st.Take(ctx, registry.TakeRequest{TenantID: tid, EndpointID: d.EndpointID, N: d.N,
				Limit: free, Skip: keysOf(held), Renew: renew, EndIfEmpty: len(held) == 0})
			switch {
			case errors.Is(err, registry.ErrDrainEnded):
				return nil
			case errors.Is(err, registry.ErrDrainLost):
				stop(nil)
				lost = true
			case err != nil:
				stop(err)
			case ep == nil && len(items) > 0:
				stop(nil) // deleted
			case len(items) > 0 && !ep.Enabled:
				// Disabling holds the queue in the same step, so this is a race with a re-enable.
				stop(errors.New("endpoint is disabled but has deliveries queued"))
			default:
				if renew {
					renewAt = time.Now().Add(drainRenew)
				}
				for _, it := range items {
					held[it.DeliveryID] = true
					sending++
					go w.sendQueued(ctx, tid, ep, it, results)
				}
			}
		}
		if len(held) == 0 {
			if taking {
				continue
			}
			break
		}
		// Record the batch when it is full, when its wait is over, or when nothing else will
		// come soon; one batch at a time.
		if recording == nil && len(batch) > 0 && (len(batch) >= drainBatch || sending == 0 || !taking || flush == nil) {
			if flush == nil && len(batch) < drainBatch && sending > 0 && taking {
				flush = time.After(finishWait)
			} else {
				recording, batch, flush = batch, nil, nil
				go func(b []sent) { recorded <- w.finish(ctx, tid, d.EndpointID, b) }(recording)
			}
		}
		select {
		case r := <-results:
			sending--
			if r.skipped {
				delete(held, r.Item.DeliveryID)
			} else {
				batch = append(batch, r)
			}
		case err := <-recorded:
			for _, r := range recording {
				delete(held, r.Item.DeliveryID)
			}
			recording = nil
			if err != nil {
				stop(err)
			}
		case <-flush:
			flush = nil
			if recording == nil && len(batch) > 0 {
				recording, batch = batch, nil
				go func(b []sent) { recorded <- w.finish(ctx, tid, d.EndpointID, b) }(recording)
			}
		case <-renewTick.C:
			tick = true
			if time.Now().Before(renewAt) {
				continue
			}
			if _, _, err := st.Take(ctx, registry.TakeRequest{TenantID: tid, EndpointID: d.EndpointID, N: d.N,
				Renew: true}); errors.Is(err, registry.ErrDrainLost) {
				stop(nil)
				lost = true
			} else if err != nil {
				stop(err)
			}
			renewAt = time.Now().Add(drainRenew)
		case <-stopping:
			stopping = nil
			if taking {
				taking, handoff = false, true
			}
		}
	}
	if failed != nil {
		return failed
	}
	if lost || !handoff {
		// Ends the drain, or (lost) clears its outbox entry: whoever holds the lease now works
		// the queue. Something queued meanwhile ("more") goes to a successor.
		res, _, err := st.EndDrain(ctx, tid, d, false)
		if errors.Is(err, registry.ErrDrainLost) || (err == nil && res == "ended") {
			return nil
		}
		if err != nil {
			return err
		}
	}
	_, next, err := st.EndDrain(context.WithoutCancel(ctx), tid, d, true)
	if errors.Is(err, registry.ErrDrainLost) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := w.q.drain(context.WithoutCancel(ctx), tid, *next); err != nil {
		w.log.WarnContext(ctx, "queueing the next drain failed; the outbox sweeper will", "tenantId", tid,
			"endpointId", d.EndpointID, "error", err.Error())
	}
	return nil
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sendQueued makes the attempt of one queued delivery, within the endpoint's cap and the
// worker's concurrency, and reports how it ended.
func (w *Worker) sendQueued(ctx context.Context, tid string, e *registry.Endpoint, it registry.QueueItem, out chan<- sent) {
	if len(it.Body) == 0 {
		out <- sent{Sent: registry.Sent{Item: it, Outcome: registry.OutcomeExpired}}
		return
	}
	release, ok := w.slots.acquire(ctx, e.ID, w.cfg.AttemptTimeout)
	if !ok {
		out <- sent{Sent: registry.Sent{Item: it}, skipped: true}
		return
	}
	defer release()
	if !w.takeSlot(ctx) {
		out <- sent{Sent: registry.Sent{Item: it}, skipped: true}
		return
	}
	started, res, o := w.send(ctx, e, it.EventID, it.Body)
	delay := w.cfg.Policy.Next(0, o.RetryAfter)
	next := started.Add(res.Duration + delay)
	next = next.Add(toWholeSecond(next, 0))
	out <- sent{Sent: registry.Sent{Item: it, Outcome: outcomeOf(o.Kind), NextAttemptAt: next,
		Attempt: &registry.Attempt{Number: 1, StartedAt: started.UTC(), DurationMs: res.Duration.Milliseconds(),
			StatusCode: res.StatusCode, Error: attemptError(res), ResponseBody: string(res.Body)}}}
}

// recordBatch records a batch, and while Redis is out of reach keeps trying for up to
// recordPatience: attempts already made are recorded late rather than made again.
func (w *Worker) recordBatch(ctx context.Context, req registry.FinishRequest) (registry.Finished, error) {
	give := time.Now().Add(recordPatience)
	for {
		fin, err := w.cfg.Store.Finish(context.WithoutCancel(ctx), req)
		if err == nil || !IsOutage(err) || time.Now().After(give) {
			return fin, err
		}
		select {
		case <-time.After(recordRetry):
		case <-ctx.Done():
			return fin, err
		}
	}
}

// finish records a batch of outcomes, then queues the retry task of each delivery that has
// retries left (recorded in the outbox until queued).
func (w *Worker) finish(ctx context.Context, tid, eid string, batch []sent) error {
	req := registry.FinishRequest{TenantID: tid, EndpointID: eid, DisableAfter: w.cfg.DisableAfter,
		DisableMinWindow: w.cfg.DisableMinWindow, MaxAttempts: w.cfg.Policy.MaxAttempts}
	for _, s := range batch {
		req.Sent = append(req.Sent, s.Sent)
	}
	fin, err := w.recordBatch(ctx, req)
	for _, s := range batch {
		if s.Attempt != nil {
			w.freeSlot()
		}
	}
	e := &registry.Endpoint{ID: eid}
	for i, s := range batch {
		if s.Attempt == nil {
			w.log.WarnContext(ctx, "event expired before delivery", "deliveryId", s.Item.DeliveryID, "eventId", s.Item.EventID)
			continue
		}
		rec := registry.AttemptRecord{TenantID: tid, Outcome: s.Outcome, Attempt: *s.Attempt,
			Queued: registry.Queued{DeliveryID: s.Item.DeliveryID, EndpointID: eid, Generation: s.Item.Generation}}
		var r registry.Recorded
		if err == nil {
			r.Status = fin.Statuses[i]
			r.Disabled = fin.Disabled && i == len(batch)-1
		}
		w.logAttempt(ctx, tid, e, &registry.Event{ID: s.Item.EventID}, rec, r, err)
	}
	if err != nil {
		return err
	}
	var retries []string
	for i, s := range batch {
		if fin.Statuses[i] != registry.DeliveryRetrying {
			continue
		}
		q := registry.Queued{DeliveryID: s.Item.DeliveryID, EndpointID: eid, Generation: s.Item.Generation}
		if err := w.q.deliver(ctx, tid, q, s.Item.EventID, s.NextAttemptAt); err != nil {
			w.log.WarnContext(ctx, "queueing a retry failed; the outbox sweeper will", "tenantId", tid,
				"deliveryId", q.DeliveryID, "error", err.Error())
			continue
		}
		retries = append(retries, q.OutboxEntry())
	}
	if err := w.cfg.Store.OutboxDone(ctx, tid, retries...); err != nil {
		w.log.WarnContext(ctx, "clearing outbox failed; the sweeper will retry", "tenantId", tid, "error", err.Error())
	}
	return nil
}
