package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
)

// attempt makes the one attempt every delivery attempt goes through (first try, retry, manual
// retry, re-enable, test ping), in three phases: prepare (sign), send, judge (classify and
// decide what follows). Its result is recorded with the rest of its drain's batch by
// registry.Store.Finish.
func (w *Worker) attempt(ctx context.Context, e *registry.Endpoint, it registry.QueueItem) registry.Outcome {
	if len(it.Body) == 0 {
		return judged(it, nil, Outcome{Kind: Expired}, w.cfg.Policy.Decide(it.Run+1, Outcome{Kind: Expired}, w.cfg.Store.Now()))
	}
	started := w.cfg.Store.Now()
	req, err := w.prepare(e, it, started)
	res := Result{Err: err}
	if err == nil {
		res = Send(ctx, w.cfg.Client, req, w.cfg.AttemptTimeout)
	}
	return w.judge(it, started, res, w.cfg.Store.Now())
}

// prepare builds the signed request of one attempt made at now.
func (w *Worker) prepare(e *registry.Endpoint, it registry.QueueItem, now time.Time) (Request, error) {
	ks, err := keys(e, now)
	if err != nil {
		return Request{}, fmt.Errorf("endpoint %s has an unusable signing secret", e.ID)
	}
	h := signing.Headers(ks, it.EventID, now, it.Body)
	for k, v := range e.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", w.cfg.UserAgent)
	return Request{URL: e.URL, Header: h, Body: it.Body}, nil
}

// judge classifies the result of an attempt started at started (now is the clock for a
// Retry-After date) and decides what follows for its delivery.
func (w *Worker) judge(it registry.QueueItem, started time.Time, res Result, now time.Time) registry.Outcome {
	o := Classify(res.StatusCode, res.Header, res.Err, now)
	// Number 1 is right for a delivery's first attempt; Finish numbers later ones in its log.
	att := &registry.Attempt{Number: 1, StartedAt: started.UTC(), DurationMs: res.Duration.Milliseconds(),
		StatusCode: res.StatusCode, Error: attemptError(res), ResponseBody: string(res.Body)}
	out := judged(it, att, o, w.cfg.Policy.Decide(it.Run+1, o, started.Add(res.Duration)))
	out.Backoff = res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable
	return out
}

func judged(it registry.QueueItem, att *registry.Attempt, o Outcome, st Step) registry.Outcome {
	return registry.Outcome{Item: it, Outcome: registry.AttemptOutcome(o.Kind.String()), Attempt: att,
		Status: st.Status, NextAttemptAt: st.NextAttemptAt, Disable: st.Disable}
}

// keys parses the endpoint's signing secrets valid now.
func keys(e *registry.Endpoint, now time.Time) ([]signing.Key, error) {
	secrets := e.SigningSecrets(now)
	out := make([]signing.Key, 0, len(secrets))
	for _, s := range secrets {
		k, err := signing.ParseSecret(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
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

// report writes the one log line per attempt (ids, number, status, duration; never the URL, a
// header value, a secret or a signature; built only when the level logs it) and tells the
// observer. The disable line and metric come from what Finish did, never from a guess.
func (w *Worker) report(ctx context.Context, tid, eid string, outs []registry.Outcome, fin registry.Finished, err error) {
	logAttempts := w.log.Enabled(ctx, slog.LevelInfo)
	for i, o := range outs {
		if o.Attempt == nil {
			w.log.WarnContext(ctx, "event expired before delivery", "tenantId", tid, "endpointId", eid,
				"deliveryId", o.Item.DeliveryID, "eventId", o.Item.EventID)
			continue
		}
		if w.cfg.Observer != nil {
			w.cfg.Observer.Attempt(string(o.Outcome), time.Duration(o.Attempt.DurationMs)*time.Millisecond)
		}
		if !logAttempts {
			continue
		}
		attrs := []any{"tenantId", tid, "endpointId", eid, "eventId", o.Item.EventID, "deliveryId", o.Item.DeliveryID,
			"attempt", o.Item.Run + 1, "statusCode", o.Attempt.StatusCode, "outcome", string(o.Outcome),
			"durationMs", o.Attempt.DurationMs}
		if err == nil {
			attrs = append(attrs, "deliveryStatus", fin.Statuses[i])
		} else {
			attrs = append(attrs, "recordError", err.Error())
		}
		if o.Attempt.Error != "" {
			attrs = append(attrs, "error", o.Attempt.Error)
		}
		w.log.InfoContext(ctx, "delivery attempt", attrs...)
	}
	if err == nil && w.cfg.Observer != nil {
		w.cfg.Observer.Concurrency(eid, fin.Concurrency, w.cfg.EndpointConcurrency)
	}
	if fin.DisabledReason == "" {
		return
	}
	w.log.WarnContext(ctx, "endpoint disabled", "tenantId", tid, "endpointId", eid, "reason", fin.DisabledReason,
		"deliveryId", fin.DisabledBy)
	if w.cfg.Observer != nil {
		w.cfg.Observer.Disabled(fin.DisabledReason)
	}
}
