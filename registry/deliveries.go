package registry

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

var deliveryNamespace = uuid.MustParse("6f1c1a52-3f0b-4f55-9a57-2d5d3c1f7a10")

// namespace is deliveryNamespace's bytes, for the Lua twin of DeliveryID.
var namespace = string(deliveryNamespace[:])

// DeliveryID is the deterministic id of an event's delivery to an endpoint, so that a fan-out
// run twice never creates two deliveries.
func DeliveryID(eventID, endpointID string) string {
	return uuid.NewSHA1(deliveryNamespace, []byte(eventID+"/"+endpointID)).String()
}

// Queued names one delivery run to put on the queue.
type Queued struct {
	DeliveryID string
	EndpointID string
	Generation int
}

// OutboxEntry returns the outbox member that stands for q until it is queued.
func (q Queued) OutboxEntry() OutboxEntry {
	return "d:" + q.DeliveryID + ":" + q.EndpointID + ":" + strconv.Itoa(q.Generation)
}

// ParseQueued reads "did:eid:gen" (the outbox form without its "d:" prefix).
func ParseQueued(s string) (Queued, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Queued{}, false
	}
	g, err := strconv.Atoi(parts[2])
	return Queued{DeliveryID: parts[0], EndpointID: parts[1], Generation: g}, err == nil
}

func (s *Store) retentionArgs() (int64, int64) {
	return int64(s.retention / time.Second), s.retention.Milliseconds()
}

// CreateDeliveries fans an event out to endpoints (every subscriber of its type when
// endpointIDs is empty): one delivery each (held when the endpoint is disabled), created once
// however often it runs. It returns the drains to queue; NOT_FOUND when the event is gone.
func (s *Store) CreateDeliveries(ctx context.Context, ev *Event, endpointIDs []string) ([]Drain, error) {
	retSec, _ := s.retentionArgs()
	args := make([]any, 0, 6+len(endpointIDs))
	args = append(args, tenantTag(ev.TenantID), ev.ID, ev.Type, ms(s.now()), retSec, namespace)
	for _, eid := range endpointIDs {
		args = append(args, eid)
	}
	keys := []string{eventKey(ev.TenantID, ev.ID), subscribersKey(ev.TenantID, ev.Type)}
	res, err := fanoutScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, E(CodeNotFound)
	}
	if err != nil {
		return nil, storeErr("create deliveries", err)
	}
	return parseDrains(res), nil
}

// CreateTestDelivery stores a webhook.test event and its delivery to the endpoint, queued on
// it; it returns the delivery's id and the drain to queue, if any. WEBHOOK_NOT_FOUND or
// WEBHOOK_DISABLED otherwise.
func (s *Store) CreateTestDelivery(ctx context.Context, ev *Event, eid string) (string, []Drain, error) {
	tid := ev.TenantID
	did := DeliveryID(ev.ID, eid)
	retSec, _ := s.retentionArgs()
	res, err := testScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid), eventKey(tid, ev.ID)},
		tenantTag(tid), ev.ID, did, eid, ms(ev.CreatedAt), ev.Body, retSec).StringSlice()
	if err != nil {
		return "", nil, storeErr("create test delivery", err)
	}
	switch res[0] {
	case "nowebhook":
		return "", nil, E(CodeWebhookNotFound)
	case "disabled":
		return "", nil, E(CodeWebhookDisabled)
	}
	return did, parseDrains(res[1:]), nil
}

// RequeueDelivery queues a delivery again now with a fresh attempt budget; it returns the
// drain to queue, if any. WEBHOOK_NOT_FOUND, DELIVERY_NOT_FOUND or WEBHOOK_DISABLED otherwise.
func (s *Store) RequeueDelivery(ctx context.Context, tid, eid, did string) ([]Drain, error) {
	retSec, _ := s.retentionArgs()
	res, err := requeueScript.Run(ctx, s.rdb, []string{deliveryKey(tid, did), endpointKey(tid, eid),
		attemptsKey(tid, did)}, tenantTag(tid), did, eid, ms(s.now()), retSec).StringSlice()
	if err != nil {
		return nil, storeErr("requeue delivery", err)
	}
	switch res[0] {
	case "nowebhook":
		return nil, E(CodeWebhookNotFound)
	case "nodelivery":
		return nil, E(CodeDeliveryNotFound)
	case "disabled":
		return nil, E(CodeWebhookDisabled)
	}
	return parseDrains(res[1:]), nil
}

// EnableEndpoint re-enables an endpoint, resets its failure streak and queues its held
// deliveries again; it returns how many and the drain to queue, if any.
func (s *Store) EnableEndpoint(ctx context.Context, tid, eid string) (int, []Drain, error) {
	res, err := enableScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid)}, tenantTag(tid), eid, ms(s.now())).Slice()
	if errors.Is(err, redis.Nil) {
		return 0, nil, E(CodeWebhookNotFound)
	}
	if err != nil {
		return 0, nil, storeErr("enable endpoint", err)
	}
	n, _ := res[0].(int64)
	w, _ := res[1].(string)
	return int(n), parseDrains([]string{w}), nil
}

// DisableEndpoint disables an active endpoint (reason "manual") and holds its queued
// deliveries. An endpoint already disabled keeps its reason.
func (s *Store) DisableEndpoint(ctx context.Context, tid, eid, reason string) error {
	retSec, _ := s.retentionArgs()
	n, err := disableScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid)},
		tenantTag(tid), eid, ms(s.now()), reason, retSec).Int()
	if err != nil {
		return storeErr("disable endpoint", err)
	}
	if n < 0 {
		return E(CodeWebhookNotFound)
	}
	return nil
}

// HoldDelivery holds a delivery whose endpoint is disabled. It answers "held", "active" (the
// endpoint is enabled again: go on), "stale" or "deleted".
func (s *Store) HoldDelivery(ctx context.Context, tid string, q Queued) (string, error) {
	res, err := holdScript.Run(ctx, s.rdb, []string{deliveryKey(tid, q.DeliveryID), endpointKey(tid, q.EndpointID)},
		tenantTag(tid), q.DeliveryID, q.EndpointID, q.Generation, ms(s.now())).Text()
	return res, storeErr("hold delivery", err)
}

// AttemptContext is everything one delivery attempt reads, fetched in one round trip.
type AttemptContext struct {
	Delivery *Delivery
	Endpoint *Endpoint
	Event    *Event
}

// LoadAttempt reads a delivery, its endpoint and its event in one pipeline; a nil field means
// that record is gone.
func (s *Store) LoadAttempt(ctx context.Context, tid string, q Queued, eventID string) (AttemptContext, error) {
	var d, e, ev *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		d = p.HGetAll(ctx, deliveryKey(tid, q.DeliveryID))
		e = p.HGetAll(ctx, endpointKey(tid, q.EndpointID))
		ev = p.HGetAll(ctx, eventKey(tid, eventID))
		return nil
	})
	if err != nil {
		return AttemptContext{}, storeErr("load attempt", err)
	}
	var ac AttemptContext
	if m := d.Val(); len(m) > 0 {
		ac.Delivery = deliveryFromFields(tid, m)
	}
	if m := e.Val(); len(m) > 0 {
		ac.Endpoint = endpointFromFields(tid, m)
	}
	if m := ev.Val(); len(m) > 0 {
		ac.Event = eventFromFields(tid, m)
	}
	return ac, nil
}

// AttemptOutcome is how an attempt ended, for the failure streak.
type AttemptOutcome string

// Outcomes of an attempt.
const (
	OutcomeSuccess   AttemptOutcome = "success"
	OutcomeFailure   AttemptOutcome = "failure"
	OutcomeGone      AttemptOutcome = "gone"
	OutcomeThrottled AttemptOutcome = "throttled"
)

// AttemptRecord is one finished attempt and the policy that judges it.
type AttemptRecord struct {
	TenantID      string
	Queued        Queued
	Attempt       Attempt
	Outcome       AttemptOutcome
	NextAttemptAt time.Time
	// DisableAfter and DisableMinWindow are the auto-disable threshold and minimum streak age.
	DisableAfter     int
	DisableMinWindow time.Duration
	// MaxAttempts is the attempt budget of one run of the delivery.
	MaxAttempts int
}

// Recorded is what RecordAttempt decided.
type Recorded struct {
	// Status is the delivery's status now ("retrying" means: schedule the next attempt), or
	// "stale" when the run was superseded.
	Status string
	// Disabled is true when this attempt disabled the endpoint.
	Disabled bool
}

// RecordAttempt stores an attempt and, atomically, its consequences: the endpoint's failure
// streak and auto-disable (holding its queued deliveries), and the delivery's next status.
func (s *Store) RecordAttempt(ctx context.Context, r AttemptRecord) (Recorded, error) {
	tid, q := r.TenantID, r.Queued
	att, err := json.Marshal(r.Attempt)
	if err != nil {
		return Recorded{}, err
	}
	retSec, _ := s.retentionArgs()
	res, err := recordScript.Run(ctx, s.rdb,
		[]string{deliveryKey(tid, q.DeliveryID), endpointKey(tid, q.EndpointID), attemptsKey(tid, q.DeliveryID)},
		tenantTag(tid), q.DeliveryID, q.EndpointID, q.Generation, att, string(r.Outcome), ms(r.Attempt.StartedAt.Add(time.Duration(r.Attempt.DurationMs)*time.Millisecond)),
		r.DisableAfter, r.DisableMinWindow.Milliseconds(), r.MaxAttempts, ms(r.NextAttemptAt), retSec).Slice()
	if err != nil {
		return Recorded{}, storeErr("record attempt", err)
	}
	st, _ := res[0].(string)
	dis, _ := res[1].(int64)
	return Recorded{Status: st, Disabled: dis == 1}, nil
}

// Delivery returns one delivery of an endpoint, with its attempts when asked;
// DELIVERY_NOT_FOUND when unknown, expired or another endpoint's.
func (s *Store) Delivery(ctx context.Context, tid, eid, did string, withAttempts bool) (*Delivery, error) {
	var h *redis.MapStringStringCmd
	var q *redis.StringCmd
	var a *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, deliveryKey(tid, did))
		q = p.HGet(ctx, endpointQueueKey(tid, eid), did)
		if withAttempts {
			a = p.LRange(ctx, attemptsKey(tid, did), 0, -1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("get delivery", err)
	}
	m := h.Val()
	if len(m) == 0 {
		if it, ok := parseQueueItem(did, q.Val()); ok {
			d := queuedDelivery(tid, eid, it)
			if withAttempts {
				d.Attempts = []Attempt{}
			}
			return d, nil
		}
	}
	if len(m) == 0 || m["webhookId"] != eid {
		return nil, E(CodeDeliveryNotFound)
	}
	d := deliveryFromFields(tid, m)
	if withAttempts {
		d.Attempts = make([]Attempt, 0, len(a.Val())+1)
		if first, ok := firstAttempt(m); ok {
			d.Attempts = append(d.Attempts, first)
		}
		for _, js := range a.Val() {
			var at Attempt
			if json.Unmarshal([]byte(js), &at) == nil {
				d.Attempts = append(d.Attempts, at)
			}
		}
	}
	return d, nil
}

// ListDeliveries returns one page of an endpoint's deliveries, newest first, optionally of
// one status, and the total.
func (s *Store) ListDeliveries(ctx context.Context, tid, eid, status string, pg Page) ([]*Delivery, int, error) {
	key := endpointDeliveriesKey(tid, eid)
	if status != "" {
		key = endpointStatusKey(tid, eid, status)
	}
	total, err := s.rdb.ZCard(ctx, key).Result()
	if err != nil {
		return nil, 0, storeErr("count deliveries", err)
	}
	start, stop := pg.bounds(int(total))
	if start == stop {
		return nil, int(total), nil
	}
	ids, err := s.rdb.ZRevRange(ctx, key, int64(start), int64(stop-1)).Result()
	if err != nil {
		return nil, 0, storeErr("list deliveries", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	var queued *redis.SliceCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, deliveryKey(tid, id))
		}
		queued = p.HMGet(ctx, endpointQueueKey(tid, eid), ids...)
		return nil
	})
	if err != nil {
		return nil, 0, storeErr("get deliveries", err)
	}
	out := make([]*Delivery, 0, len(ids))
	entries := queued.Val()
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			out = append(out, deliveryFromFields(tid, m))
		} else if e, _ := entries[i].(string); e != "" {
			if it, ok := parseQueueItem(ids[i], e); ok {
				out = append(out, queuedDelivery(tid, eid, it))
			}
		}
	}
	return out, int(total), nil
}

func deliveryFromFields(tid string, m map[string]string) *Delivery {
	d := &Delivery{ID: m["id"], TenantID: tid, WebhookID: m["webhookId"], EventID: m["eventId"],
		EventType: m["eventType"], Status: m["status"], CreatedAt: fromMs(m["createdAt"]),
		UpdatedAt: fromMs(m["updatedAt"]), NextAttemptAt: timePtr(fromMs(m["nextAttemptAt"]))}
	d.AttemptCount, _ = strconv.Atoi(m["attemptCount"])
	d.Generation, _ = strconv.Atoi(m["generation"])
	d.RunAttempts, _ = strconv.Atoi(m["runAttempts"])
	return d
}

// TrimIndexes drops delivery index entries older than the retention period from every endpoint
// of the tenant (their records have expired); it returns how many.
func (s *Store) TrimIndexes(ctx context.Context, tid string) (int, error) {
	eids, err := s.rdb.ZRange(ctx, endpointsKey(tid), 0, -1).Result()
	if err != nil {
		return 0, storeErr("list endpoints", err)
	}
	cutoff := ms(s.now().Add(-s.retention))
	total := 0
	for _, eid := range eids {
		keys := []string{endpointDeliveriesKey(tid, eid)}
		for _, st := range DeliveryStatuses {
			if st != DeliveryPending {
				keys = append(keys, endpointStatusKey(tid, eid, st))
			}
		}
		n, err := trimScript.Run(ctx, s.rdb, keys, cutoff).Int()
		if err != nil {
			return total, storeErr("trim indexes", err)
		}
		total += n
	}
	return total, nil
}
