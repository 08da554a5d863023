package registry

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Operational event types: webhookd's own events about a tenant's endpoints, subscribed to
// like scan events and delivered to the tenant's other endpoints. They cannot be published.
const (
	EventWebhookDegraded   = "webhook.degraded"
	EventWebhookDisabled   = "webhook.disabled"
	EventWebhookEnabled    = "webhook.enabled"
	EventDeliveryExhausted = "delivery.exhausted"
)

// OperationalEventTypes lists the operational event types.
var OperationalEventTypes = []string{EventWebhookDegraded, EventWebhookDisabled, EventWebhookEnabled,
	EventDeliveryExhausted}

// IsSubscribable reports whether an endpoint may subscribe to t: a scan event or an
// operational one.
func IsSubscribable(t string) bool {
	return IsEventType(t) || slices.Contains(OperationalEventTypes, t)
}

// Op is an operational event recorded by the script that made its change (emit), waiting to
// be published: its type, the endpoint it is about, when, and why.
type Op struct {
	ID                  string
	Type                string
	WebhookID           string
	At                  time.Time
	Reason              string
	ConsecutiveFailures int
	// DeliveryID and EventID name the delivery of delivery.exhausted.
	DeliveryID, EventID string
}

// OutboxEntry is the entry of an op, kept until it is published.
func (o Op) OutboxEntry() OutboxEntry { return OutboxEntry("o:" + o.ID) }

// Op reads an op waiting to be published; NOT_FOUND when it was published (or expired).
func (s *Store) Op(ctx context.Context, tid, opid string) (*Op, error) {
	m, err := s.rdb.HGetAll(ctx, opKey(tid, opid)).Result()
	if err != nil {
		return nil, storeErr("read operational event", err)
	}
	if len(m) == 0 {
		return nil, E(CodeNotFound)
	}
	o := &Op{ID: opid, Type: m["type"], WebhookID: m["webhookId"], At: fromMs(m["at"]), Reason: m["reason"],
		DeliveryID: m["deliveryId"], EventID: m["eventId"]}
	o.ConsecutiveFailures, _ = strconv.Atoi(m["consecutiveFailures"])
	return o, nil
}

// OpDone forgets an op once its event is published.
func (s *Store) OpDone(ctx context.Context, tid, opid string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, opKey(tid, opid))
		p.ZRem(ctx, outboxKey(tid), string(Op{ID: opid}.OutboxEntry()))
		return nil
	})
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return storeErr("forget operational event", err)
}
