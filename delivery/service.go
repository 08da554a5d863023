package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// Store is what the delivery engine needs of the registry. Methods return *registry.Error
// with WEBHOOK_NOT_FOUND, DELIVERY_NOT_FOUND, WEBHOOK_DISABLED, QUOTA_EXCEEDED,
// SERVICE_UNAVAILABLE or DATABASE_ERROR.
type Store interface {
	Now() time.Time
	TenantIDs(ctx context.Context) ([]string, error)
	PublishEvents(ctx context.Context, tid string, b registry.NewBatch) (*registry.StoredBatch, error)
	PublishEvent(ctx context.Context, tid string, n registry.NewEvent) (*registry.Stored, error)
	RetractEvents(ctx context.Context, tid, idemKey string, sb *registry.StoredBatch) (bool, error)
	Event(ctx context.Context, tid, evid string) (*registry.Event, error)
	Endpoint(ctx context.Context, tid, eid string) (*registry.Endpoint, error)
	CreateDeliveries(ctx context.Context, ev *registry.Event, endpointIDs []string) ([]registry.Drain, error)
	CreateTestDelivery(ctx context.Context, ev *registry.Event, eid string) (string, []registry.Drain, error)
	RequeueDelivery(ctx context.Context, tid, eid, did string) ([]registry.Drain, error)
	EnableEndpoint(ctx context.Context, tid, eid string) (registry.Enabled, error)
	DisableEndpoint(ctx context.Context, tid, eid, reason string) ([]string, error)
	Op(ctx context.Context, tid, opid string) (*registry.Op, error)
	OpDone(ctx context.Context, tid, opid string) error
	AllowAttempts(ctx context.Context, tid, eid string, perSecond, n int) (int, time.Duration, error)
	UpdateEndpoint(ctx context.Context, tid, eid string, p registry.EndpointPatch) (*registry.Endpoint, []registry.Drain, error)
	Take(ctx context.Context, r registry.TakeRequest) ([]registry.QueueItem, *registry.Endpoint, error)
	Finish(ctx context.Context, r registry.FinishRequest) (registry.Finished, error)
	EndDrain(ctx context.Context, tid string, d registry.Drain, handoff bool) (string, *registry.Drain, error)
	Due(ctx context.Context, tid string, r registry.Retry) ([]registry.Drain, error)
	Delivery(ctx context.Context, tid, eid, did string, withAttempts bool) (*registry.Delivery, error)
	DueOutbox(ctx context.Context, tid string, before time.Time, limit int64) ([]registry.Work, error)
	StartRecovery(ctx context.Context, tid, eid string, n registry.NewRecovery) (*registry.Recovery, error)
	RecoverStep(ctx context.Context, tid, rid string) (registry.RecoveryStep, error)
	ReportRecovery(ctx context.Context, tid, rid string) (bool, error)
	OutboxDone(ctx context.Context, tid string, entries ...registry.OutboxEntry) error
	TrimIndexes(ctx context.Context, tid string) (int, error)
}

var _ Store = (*registry.Store)(nil)

// ServiceConfig configures the API-facing side of the engine. Zero values mean defaults.
type ServiceConfig struct {
	Store    Store
	Enqueuer Enqueuer
	// AttemptTimeout bounds one HTTP attempt; default 15s.
	AttemptTimeout time.Duration
	// QueueShards is how many queues tasks are spread over: the workers' number.
	QueueShards int
	Logger      *slog.Logger
}

// Service publishes events and queues test pings, retries and re-enabled deliveries.
type Service struct {
	store Store
	q     queue
	log   *slog.Logger
	ops   publisher
}

// NewService validates cfg.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil || cfg.Enqueuer == nil {
		return nil, errors.New("delivery: Store and Enqueuer are required")
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := newQueue(cfg.Enqueuer, NewShards(cfg.QueueShards), cfg.AttemptTimeout)
	return &Service{store: cfg.Store, log: cfg.Logger, q: q, ops: publisher{store: cfg.Store, q: q, log: cfg.Logger}}, nil
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
	return s.queued(ctx, tid, eid, did, drains)
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
	return s.queued(ctx, tid, eid, did, drains)
}

// queued queues the drains that will attempt a delivery just made pending and returns the
// delivery as it is before they can: an answer says "queued", never an outcome that raced it.
func (s *Service) queued(ctx context.Context, tid, eid, did string, drains []registry.Drain) (*registry.Delivery, error) {
	d, readErr := s.store.Delivery(ctx, tid, eid, did, false)
	if err := s.q.drainAll(ctx, tid, drains); err != nil {
		return nil, err
	}
	return d, readErr
}

// Enable re-enables an endpoint and queues every held delivery; it returns the endpoint as the
// re-enable left it (read before its drain is queued, so a first attempt cannot already have
// ended its probation) and how many deliveries it queued. One that was disabled starts on
// probation, and webhook.enabled is published.
func (s *Service) Enable(ctx context.Context, tid, eid string) (*registry.Endpoint, int, error) {
	en, err := s.store.EnableEndpoint(ctx, tid, eid)
	if err != nil {
		return nil, 0, err
	}
	e, readErr := s.store.Endpoint(ctx, tid, eid)
	s.ops.publishAll(ctx, tid, en.Ops)
	if err := s.q.drainAll(ctx, tid, en.Drains); err != nil {
		return nil, 0, err
	}
	return e, en.Requeued, readErr
}

// Update applies a patch to an endpoint; ending its ordering by scan queues the deliveries
// waiting in its lanes.
func (s *Service) Update(ctx context.Context, tid, eid string, p registry.EndpointPatch) (*registry.Endpoint, error) {
	e, drains, err := s.store.UpdateEndpoint(ctx, tid, eid, p)
	if err != nil {
		return nil, err
	}
	if err := s.q.drainAll(ctx, tid, drains); err != nil {
		return nil, err
	}
	return e, nil
}

// Recover starts a recovery of an endpoint's failed or missing deliveries (see registry
// lua/recover.lua), run as background steps from a cursor; WEBHOOK_DISABLED when the endpoint
// is disabled. A recovery whose first task cannot be queued is run by the outbox sweeper.
func (s *Service) Recover(ctx context.Context, tid, eid string, n registry.NewRecovery) (*registry.Recovery, error) {
	r, err := s.store.StartRecovery(ctx, tid, eid, n)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "recovery started", "tenantId", tid, "endpointId", eid, "recoveryId", r.ID,
		"since", r.Since, "until", r.Until, "include", r.Include)
	if err := s.q.recover(ctx, tid, r.ID, "0"); err != nil {
		s.log.WarnContext(ctx, "queueing a recovery failed; the outbox sweeper will", "tenantId", tid,
			"recoveryId", r.ID, "error", err.Error())
	}
	return r, nil
}

// Disable disables an endpoint by hand (reason "manual"); its queued deliveries are held.
func (s *Service) Disable(ctx context.Context, tid, eid string) (*registry.Endpoint, error) {
	ops, err := s.store.DisableEndpoint(ctx, tid, eid, registry.ReasonManual)
	if err != nil {
		return nil, err
	}
	s.ops.publishAll(ctx, tid, ops)
	return s.store.Endpoint(ctx, tid, eid)
}
