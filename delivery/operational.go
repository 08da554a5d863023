package delivery

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"

	"github.com/cert-ix/webhookd/registry"
)

// publisher publishes the operational events the registry's scripts record when they change an
// endpoint's state (webhook.degraded, webhook.disabled, webhook.enabled, delivery.exhausted),
// as events of the endpoint's tenant delivered to its other subscribed endpoints. An op is
// recorded once, by the script that made the change; publishing it is idempotent (its event id
// and idempotency key derive from it), so the worker that recorded it, the API, and the outbox
// sweeper after a crash may all try: one event results.
type publisher struct {
	store Store
	q     queue
	log   *slog.Logger
}

// publishAll publishes ops, logging what fails: each op's outbox entry stays until it is
// published, so the sweeper tries again.
func (p publisher) publishAll(ctx context.Context, tid string, ops []string) {
	for _, opid := range ops {
		if err := p.publish(ctx, tid, opid); err != nil {
			p.log.WarnContext(ctx, "publishing an operational event failed; the outbox sweeper will", "tenantId", tid,
				"opId", opid, "error", err.Error())
		}
	}
}

func (p publisher) publish(ctx context.Context, tid, opid string) error {
	op, err := p.store.Op(ctx, tid, opid)
	if registry.CodeOf(err) == registry.CodeNotFound {
		return p.store.OpDone(ctx, tid, opid) // published already
	}
	if err != nil {
		return err
	}
	body, err := EventBody("evt_"+opid, op.Type, op.At, p.data(ctx, tid, op))
	if err != nil {
		return err
	}
	st, err := p.store.PublishEvent(ctx, tid, registry.NewEvent{ID: "evt_" + opid, Type: op.Type, CreatedAt: op.At,
		Body: body, IdempotencyKey: "op:" + opid, Exclude: op.WebhookID, Internal: true})
	if err != nil {
		return err
	}
	if !st.Replayed {
		// Drains and a large fan-out keep outbox entries of their own until queued.
		if st.Inline {
			err = p.q.drainAll(ctx, tid, st.Drains)
		} else {
			err = p.q.fanout(ctx, tid, st.Event.ID, st.Event.Type)
		}
		if err != nil {
			p.log.WarnContext(ctx, "queueing an operational event failed; the outbox sweeper will", "tenantId", tid,
				"eventId", st.Event.ID, "error", err.Error())
		}
	}
	return p.store.OpDone(ctx, tid, opid)
}

// opData is an operational event's data: the endpoint (its URL's host only), why, and for
// delivery.exhausted the delivery and its event.
type opData struct {
	WebhookID           string `json:"webhookId"`
	URL                 string `json:"url"`
	Reason              string `json:"reason"`
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	DeliveryID          string `json:"deliveryId,omitempty"`
	EventID             string `json:"eventId,omitempty"`
}

func (p publisher) data(ctx context.Context, tid string, op *registry.Op) json.RawMessage {
	d := opData{WebhookID: op.WebhookID, Reason: op.Reason, ConsecutiveFailures: op.ConsecutiveFailures,
		DeliveryID: op.DeliveryID, EventID: op.EventID}
	if e, err := p.store.Endpoint(ctx, tid, op.WebhookID); err == nil {
		if u, err := url.Parse(e.URL); err == nil {
			d.URL = u.Hostname()
		}
	}
	b, _ := json.Marshal(d)
	return b
}
