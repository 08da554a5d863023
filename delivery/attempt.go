package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
	"github.com/hibiken/asynq"
)

// handleDeliver makes one attempt of one delivery run. It never sleeps or loops: a failed
// attempt returns a *RetryError and asynq schedules the next one. When Redis cannot be reached
// (reading the delivery, or recording the attempt) it returns an *OutageError: nothing was
// recorded, so the run's attempt budget and the endpoint's failure streak stay as they were,
// and asynq runs the task again shortly without counting a retry.
func (w *Worker) handleDeliver(ctx context.Context, t *asynq.Task) error {
	return asOutage(w.deliver(ctx, t))
}

func (w *Worker) deliver(ctx context.Context, t *asynq.Task) error {
	var p deliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad delivery payload: %w: %w", err, asynq.SkipRetry)
	}
	q := p.queued()
	ac, err := w.cfg.Store.LoadAttempt(ctx, p.TenantID, q, p.EventID)
	if err != nil {
		return err
	}
	d, e := ac.Delivery, ac.Endpoint
	if d == nil || e == nil || d.Generation != q.Generation ||
		(d.Status != registry.DeliveryPending && d.Status != registry.DeliveryRetrying) {
		return nil // gone, deleted endpoint, superseded run or already finished
	}
	if !e.Enabled {
		res, err := w.cfg.Store.HoldDelivery(ctx, p.TenantID, q)
		if err != nil {
			return err
		}
		if res == "active" {
			// Re-enabled between the read and the hold: asynq runs the task again shortly.
			return errors.New("endpoint was re-enabled while its delivery was being held")
		}
		return nil
	}
	ev := ac.Event
	if ev == nil {
		if ev, err = w.cfg.Store.Event(ctx, p.TenantID, d.EventID); err != nil {
			if registry.CodeOf(err) == registry.CodeNotFound {
				w.log.WarnContext(ctx, "event expired before delivery", "deliveryId", d.ID, "eventId", d.EventID)
				return nil
			}
			return err
		}
	}
	release, ok := w.slots.acquire(ctx, e.ID, slotWait)
	if !ok {
		if w.cfg.Observer != nil {
			w.cfg.Observer.Deferred()
		}
		return busyRetry()
	}
	defer release()
	if !w.takeSlot(ctx) {
		return busyRetry()
	}
	defer w.freeSlot()
	return w.attempt(ctx, p.TenantID, q, d, e, ev)
}

// send signs and sends one attempt of an event to an endpoint and classifies the answer.
func (w *Worker) send(ctx context.Context, e *registry.Endpoint, evid string, body []byte) (time.Time, Result, Outcome) {
	started := w.cfg.Store.Now()
	ks, err := keys(e, started)
	if err != nil {
		res := Result{Err: fmt.Errorf("endpoint %s has an unusable signing secret", e.ID)}
		return started, res, Outcome{Kind: Failure}
	}
	h := signing.Headers(ks, evid, started, body)
	for k, v := range e.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", w.cfg.UserAgent)
	res := Send(ctx, w.cfg.Client, Request{URL: e.URL, Header: h, Body: body}, w.cfg.AttemptTimeout)
	return started, res, Classify(res.StatusCode, res.Header, res.Err, w.cfg.Store.Now())
}

func (w *Worker) attempt(ctx context.Context, tid string, q registry.Queued, d *registry.Delivery,
	e *registry.Endpoint, ev *registry.Event) error {
	started, res, out := w.send(ctx, e, ev.ID, ev.Body)
	delay := w.cfg.Policy.Next(d.RunAttempts, out.RetryAfter)
	rec := registry.AttemptRecord{
		TenantID: tid, Queued: q, Outcome: outcomeOf(out.Kind), NextAttemptAt: started.Add(res.Duration + delay),
		DisableAfter: w.cfg.DisableAfter, DisableMinWindow: w.cfg.DisableMinWindow, MaxAttempts: w.cfg.Policy.MaxAttempts,
		Attempt: registry.Attempt{Number: d.AttemptCount + 1, StartedAt: started.UTC(), DurationMs: res.Duration.Milliseconds(),
			StatusCode: res.StatusCode, Error: attemptError(res), ResponseBody: string(res.Body)},
	}
	r, err := w.cfg.Store.RecordAttempt(context.WithoutCancel(ctx), rec)
	w.logAttempt(ctx, tid, e, ev, rec, r, err)
	if err != nil {
		return err
	}
	if r.Status == registry.DeliveryRetrying {
		return &RetryError{Delay: delay, Throttled: out.Kind == Throttled}
	}
	return nil
}

func outcomeOf(k OutcomeKind) registry.AttemptOutcome {
	switch k {
	case Success:
		return registry.OutcomeSuccess
	case Gone:
		return registry.OutcomeGone
	case Throttled:
		return registry.OutcomeThrottled
	}
	return registry.OutcomeFailure
}

func attemptError(res Result) string {
	switch {
	case res.Err != nil:
		return res.Err.Error()
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return fmt.Sprintf("redirect not followed (HTTP %d)", res.StatusCode)
	case res.StatusCode < 200 || res.StatusCode >= 300:
		return fmt.Sprintf("unexpected status HTTP %d", res.StatusCode)
	}
	return ""
}

// logAttempt writes the one line per attempt: ids, number, status, duration; never the URL,
// a header value, a secret or a signature.
func (w *Worker) logAttempt(ctx context.Context, tid string, e *registry.Endpoint, ev *registry.Event,
	rec registry.AttemptRecord, r registry.Recorded, err error) {
	attrs := []any{"tenantId", tid, "endpointId", e.ID, "eventId", ev.ID, "deliveryId", rec.Queued.DeliveryID,
		"attempt", rec.Attempt.Number, "statusCode", rec.Attempt.StatusCode, "outcome", string(rec.Outcome),
		"durationMs", rec.Attempt.DurationMs, "deliveryStatus", r.Status}
	if rec.Attempt.Error != "" {
		attrs = append(attrs, "error", rec.Attempt.Error)
	}
	if err != nil {
		attrs = append(attrs, "recordError", err.Error())
	}
	w.log.InfoContext(ctx, "delivery attempt", attrs...)
	reason := ""
	if r.Disabled {
		reason = registry.ReasonConsecutiveFailures
		if rec.Outcome == registry.OutcomeGone {
			reason = registry.ReasonGone
		}
		w.log.WarnContext(ctx, "endpoint disabled", "tenantId", tid, "endpointId", e.ID, "reason", reason)
	}
	if w.cfg.Observer != nil {
		w.cfg.Observer.Attempt(string(rec.Outcome), time.Duration(rec.Attempt.DurationMs)*time.Millisecond)
		if reason != "" {
			w.cfg.Observer.Disabled(reason)
		}
	}
}
