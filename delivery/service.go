package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// Store is what the delivery engine needs of the registry. Methods return *registry.Error
// with WEBHOOK_NOT_FOUND, DELIVERY_NOT_FOUND, WEBHOOK_DISABLED, QUOTA_EXCEEDED,
// SERVICE_UNAVAILABLE or DATABASE_ERROR.
type Store interface {
	Now() time.Time
	TenantIDs(ctx context.Context) ([]string, error)
	PublishEvent(ctx context.Context, tid string, n registry.NewEvent) (*registry.Stored, error)
	RetractEvent(ctx context.Context, tid string, ev *registry.Event, idemKey string, st *registry.Stored) (bool, error)
	Event(ctx context.Context, tid, evid string) (*registry.Event, error)
	Endpoint(ctx context.Context, tid, eid string) (*registry.Endpoint, error)
	CreateDeliveries(ctx context.Context, ev *registry.Event, endpointIDs []string) ([]registry.Drain, error)
	CreateTestDelivery(ctx context.Context, ev *registry.Event, eid string) (string, []registry.Drain, error)
	RequeueDelivery(ctx context.Context, tid, eid, did string) ([]registry.Drain, error)
	EnableEndpoint(ctx context.Context, tid, eid string) (int, []registry.Drain, error)
	DisableEndpoint(ctx context.Context, tid, eid, reason string) error
	HoldDelivery(ctx context.Context, tid string, q registry.Queued) (string, error)
	LoadAttempt(ctx context.Context, tid string, q registry.Queued, eventID string) (registry.AttemptContext, error)
	RecordAttempt(ctx context.Context, r registry.AttemptRecord) (registry.Recorded, error)
	Take(ctx context.Context, r registry.TakeRequest) ([]registry.QueueItem, *registry.Endpoint, error)
	Finish(ctx context.Context, r registry.FinishRequest) (registry.Finished, error)
	EndDrain(ctx context.Context, tid string, d registry.Drain, handoff bool) (string, *registry.Drain, error)
	Delivery(ctx context.Context, tid, eid, did string, withAttempts bool) (*registry.Delivery, error)
	DueOutbox(ctx context.Context, tid string, before time.Time, limit int64) ([]registry.OutboxEntry, error)
	OutboxDone(ctx context.Context, tid string, entries ...registry.OutboxEntry) error
	TrimIndexes(ctx context.Context, tid string) (int, error)
}

var _ Store = (*registry.Store)(nil)

// ServiceConfig configures the API-facing side of the engine. Zero values mean defaults.
type ServiceConfig struct {
	Store    Store
	Enqueuer Enqueuer
	Policy   RetryPolicy
	// AttemptTimeout bounds one HTTP attempt; default 15s.
	AttemptTimeout time.Duration
	Logger         *slog.Logger
}

// Service publishes events and queues test pings, retries and re-enabled deliveries.
type Service struct {
	store Store
	q     queue
	log   *slog.Logger
}

// NewService validates cfg.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Enqueuer == nil {
		return nil, errors.New("delivery: Store and Enqueuer are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{store: cfg.Store, log: cfg.Logger, q: newQueue(cfg.Enqueuer, cfg.Policy, cfg.AttemptTimeout)}, nil
}

func newQueue(enq Enqueuer, p RetryPolicy, attemptTimeout time.Duration) queue {
	// One more retry than the policy needs: the handler ends a run itself when its budget is
	// spent, so asynq never archives a task the registry still counts as retrying.
	return queue{enq: enq, maxRetry: p.MaxRetry() + 1, taskTimeout: attemptTimeout + 30*time.Second,
		drainTimeout: drainBudget + 2*attemptTimeout + 30*time.Second}
}

// PublishRequest is a validated event from the API.
type PublishRequest struct {
	TenantID       string
	Type           string
	Data           json.RawMessage
	IdempotencyKey string
	Quota          int64
}

// Published is the publish answer.
type Published struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	CreatedAt  time.Time `json:"createdAt"`
	Deliveries int       `json:"deliveries"`
	Replayed   bool      `json:"-"`
}

// NewEventID returns "evt_" and a time-ordered UUIDv7 in hex.
func NewEventID() string {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	return "evt_" + strings.ReplaceAll(id.String(), "-", "")
}

// EventBody is the JSON every receiver gets: {"id","type","timestamp","data"}.
func EventBody(id, typ string, ts time.Time, data json.RawMessage) ([]byte, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{id, typ, ts.UTC().Format(time.RFC3339Nano), compact.Bytes()})
}

// Publish stores the event (answering once it is durable in Redis) and queues its work: for a
// small fan-out the deliveries are queued on their endpoints with the event, and a drain is
// started for each endpoint that has none running; else a fan-out task. When nothing could be
// queued the event is withdrawn and KAFKA_ERROR returned; once anything is queued the event
// stands, and what is left is queued by the outbox sweeper.
func (s *Service) Publish(ctx context.Context, p PublishRequest) (*Published, error) {
	now := s.store.Now().UTC()
	id := NewEventID()
	body, err := EventBody(id, p.Type, now, p.Data)
	if err != nil {
		return nil, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	st, err := s.store.PublishEvent(ctx, p.TenantID, registry.NewEvent{ID: id, Type: p.Type, CreatedAt: now,
		Body: body, IdempotencyKey: p.IdempotencyKey, Quota: p.Quota})
	if err != nil {
		return nil, err
	}
	out := &Published{ID: st.Event.ID, Type: st.Event.Type, CreatedAt: st.Event.CreatedAt,
		Deliveries: st.Deliveries, Replayed: st.Replayed}
	if st.Replayed {
		return out, nil
	}
	if err := s.queueEvent(ctx, p, st); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) queueEvent(ctx context.Context, p PublishRequest, st *registry.Stored) error {
	ev := st.Event
	var first error
	switch {
	case !st.Inline:
		first = s.q.fanout(ctx, p.TenantID, ev.ID, ev.Type)
	case len(st.Drains) > 0:
		first = s.q.drain(ctx, p.TenantID, st.Drains[0])
	}
	if first != nil {
		retracted, rerr := s.store.RetractEvent(context.WithoutCancel(ctx), p.TenantID, ev, p.IdempotencyKey, st)
		s.log.ErrorContext(ctx, "queueing a published event failed", "tenantId", p.TenantID, "eventId", ev.ID,
			"error", first.Error(), "retracted", retracted)
		if rerr != nil {
			return rerr
		}
		if retracted {
			return first
		}
		return nil
	}
	if !st.Inline || len(st.Drains) < 2 {
		return nil // the fan-out task clears its outbox entry; a drain's stays until it ends
	}
	if err := s.q.drainAll(ctx, p.TenantID, st.Drains[1:]); err != nil {
		s.log.WarnContext(ctx, "some drains were not queued; the outbox sweeper will", "tenantId", p.TenantID,
			"eventId", ev.ID, "error", err.Error())
	}
	return nil
}

// SendTest queues a signed webhook.test ping to the endpoint now: WEBHOOK_DISABLED when it is
// disabled.
func (s *Service) SendTest(ctx context.Context, tid, eid string) (*registry.Delivery, error) {
	now := s.store.Now().UTC()
	id := NewEventID()
	data, _ := json.Marshal(map[string]string{"webhookId": eid})
	body, err := EventBody(id, registry.EventWebhookTest, now, data)
	if err != nil {
		return nil, registry.Wrap(registry.CodeInternal, err)
	}
	ev := &registry.Event{ID: id, TenantID: tid, Type: registry.EventWebhookTest, CreatedAt: now, Body: body}
	did, drains, err := s.store.CreateTestDelivery(ctx, ev, eid)
	if err != nil {
		return nil, err
	}
	if err := s.q.drainAll(ctx, tid, drains); err != nil {
		return nil, err
	}
	return s.store.Delivery(ctx, tid, eid, did, false)
}

// Retry queues a delivery again now with a fresh attempt budget: WEBHOOK_DISABLED when its
// endpoint is disabled, DELIVERY_NOT_FOUND when unknown.
func (s *Service) Retry(ctx context.Context, tid, eid, did string) (*registry.Delivery, error) {
	if _, err := s.store.Endpoint(ctx, tid, eid); err != nil {
		return nil, err
	}
	drains, err := s.store.RequeueDelivery(ctx, tid, eid, did)
	if err != nil {
		return nil, err
	}
	if err := s.q.drainAll(ctx, tid, drains); err != nil {
		return nil, err
	}
	return s.store.Delivery(ctx, tid, eid, did, false)
}

// Enable re-enables an endpoint and queues every held delivery; it returns how many.
func (s *Service) Enable(ctx context.Context, tid, eid string) (*registry.Endpoint, int, error) {
	n, drains, err := s.store.EnableEndpoint(ctx, tid, eid)
	if err != nil {
		return nil, 0, err
	}
	if err := s.q.drainAll(ctx, tid, drains); err != nil {
		return nil, 0, err
	}
	e, err := s.store.Endpoint(ctx, tid, eid)
	return e, n, err
}

// Disable disables an endpoint by hand (reason "manual"); its queued deliveries are held.
func (s *Service) Disable(ctx context.Context, tid, eid string) (*registry.Endpoint, error) {
	if err := s.store.DisableEndpoint(ctx, tid, eid, registry.ReasonManual); err != nil {
		return nil, err
	}
	return s.store.Endpoint(ctx, tid, eid)
}
