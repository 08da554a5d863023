package registry

import (
	"context"
	"errors"
	"slices"
	"strconv"
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

// retentionSec is the retention period in seconds, as scripts set TTLs.
func (s *Store) retentionSec() int64 { return int64(s.retention / time.Second) }

var fanoutScript = script("fanout")

// CreateDeliveries fans an event out to endpoints (every subscriber of its type when
// endpointIDs is empty): one delivery each (held when the endpoint is disabled), created once
// however often it runs. It returns the drains to queue; NOT_FOUND when the event is gone.
func (s *Store) CreateDeliveries(ctx context.Context, ev *Event, endpointIDs []string) ([]Drain, error) {
	retSec := s.retentionSec()
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

var testScript = script("test")

// CreateTestDelivery stores a webhook.test event and its delivery to the endpoint, queued on
// it; it returns the delivery's id and the drain to queue, if any. WEBHOOK_NOT_FOUND or
// WEBHOOK_DISABLED otherwise.
func (s *Store) CreateTestDelivery(ctx context.Context, ev *Event, eid string) (string, []Drain, error) {
	tid := ev.TenantID
	did := DeliveryID(ev.ID, eid)
	retSec := s.retentionSec()
	res, err := testScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid), eventKey(tid, ev.ID)},
		tenantTag(tid), ev.ID, did, eid, ms(ev.CreatedAt), eventRecord(ev.ID, ev.Type, ms(ev.CreatedAt), "", "", ev.Body),
		retSec).StringSlice()
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

var requeueScript = script("requeue")

// RequeueDelivery queues a delivery again now with a fresh attempt budget; it returns the
// drain to queue, if any. WEBHOOK_NOT_FOUND, DELIVERY_NOT_FOUND or WEBHOOK_DISABLED otherwise.
func (s *Store) RequeueDelivery(ctx context.Context, tid, eid, did string) ([]Drain, error) {
	retSec := s.retentionSec()
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

var enableScript = script("enable")

// Enabled is what EnableEndpoint did: how many held deliveries it queued again, the drain to
// queue for them, and the operational event it recorded (webhook.enabled), if any.
type Enabled struct {
	Requeued int
	Drains   []Drain
	Ops      []string
}

// EnableEndpoint re-enables an endpoint, resets its failure streak and queues its held
// deliveries again; one that was disabled starts on probation. WEBHOOK_NOT_FOUND when unknown.
func (s *Store) EnableEndpoint(ctx context.Context, tid, eid string) (Enabled, error) {
	res, err := enableScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid)}, tenantTag(tid), eid, ms(s.now()),
		s.retentionSec()).Slice()
	if errors.Is(err, redis.Nil) {
		return Enabled{}, E(CodeWebhookNotFound)
	}
	if err != nil {
		return Enabled{}, storeErr("enable endpoint", err)
	}
	n, _ := res[0].(int64)
	w, _ := res[1].(string)
	return Enabled{Requeued: int(n), Drains: parseDrains([]string{w}), Ops: nonEmpty(res[2])}, nil
}

var disableScript = script("disable")

// DisableEndpoint disables an active endpoint (reason "manual") and holds its queued
// deliveries; it returns the operational event recorded (webhook.disabled), if any. An
// endpoint already disabled keeps its reason.
func (s *Store) DisableEndpoint(ctx context.Context, tid, eid, reason string) ([]string, error) {
	res, err := disableScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid)},
		tenantTag(tid), eid, ms(s.now()), reason, s.retentionSec()).Slice()
	if err != nil {
		return nil, storeErr("disable endpoint", err)
	}
	if n, _ := res[0].(int64); n < 0 {
		return nil, E(CodeWebhookNotFound)
	}
	if len(res) < 2 {
		return nil, nil
	}
	return nonEmpty(res[1]), nil
}

// nonEmpty is a script's optional string answer as a list.
func nonEmpty(v any) []string {
	if s, _ := v.(string); s != "" {
		return []string{s}
	}
	return nil
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
	if len(m) > 0 && m["webhookId"] != eid {
		return nil, E(CodeDeliveryNotFound)
	}
	if len(m) == 0 && q.Val() == "" {
		kept, err := s.readKept(ctx, tid, []keptRef{{eid, did}})
		if err != nil {
			return nil, err
		}
		m = kept[0]
	}
	d := deliveryOf(tid, eid, did, m, q.Val())
	if d == nil {
		return nil, E(CodeDeliveryNotFound)
	}
	if withAttempts {
		d.Attempts = make([]Attempt, 0, len(a.Val())+1)
		if len(m) == 0 {
			return d, nil
		}
		if first, ok := firstAttempt(m); ok {
			d.Attempts = append(d.Attempts, first)
		}
		for _, v := range a.Val() {
			if at, ok := decodeAttempt(v); ok {
				d.Attempts = append(d.Attempts, at)
			}
		}
	}
	return d, nil
}

// ListDeliveries returns one page of an endpoint's deliveries, newest first, optionally of
// one status, and the total. Pending deliveries are those on the queue and those waiting in
// their scan's lane.
func (s *Store) ListDeliveries(ctx context.Context, tid, eid, status string, pg Page) ([]*Delivery, int, error) {
	var keys []string
	switch status {
	case "":
		keys = deliveryIndexes(tid, eid)
	case DeliveryPending:
		keys = []string{endpointStatusKey(tid, eid, status), endpointStatusKey(tid, eid, waitingIndex)}
	default:
		keys = []string{endpointStatusKey(tid, eid, status)}
	}
	ids, total, err := s.pageOf(ctx, keys, everything, pg)
	if err != nil || len(ids) == 0 {
		return nil, total, err
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
	records, entries := make([]map[string]string, len(ids)), queued.Val()
	var refs []keptRef
	var at []int
	for i, c := range cmds {
		records[i] = c.Val()
		if e, _ := entries[i].(string); len(records[i]) == 0 && e == "" {
			refs, at = append(refs, keptRef{eid, ids[i]}), append(at, i)
		}
	}
	kept, err := s.readKept(ctx, tid, refs)
	if err != nil {
		return nil, 0, err
	}
	for j, i := range at {
		records[i] = kept[j]
	}
	out := make([]*Delivery, 0, len(ids))
	for i, m := range records {
		e, _ := entries[i].(string)
		if d := deliveryOf(tid, eid, ids[i], m, e); d != nil {
			out = append(out, d)
		}
	}
	return out, total, nil
}

// deliveryOf is a delivery as read: its record (m) and its queue entry, when queued or waiting;
// nil when it has neither.
func deliveryOf(tid, eid, did string, m map[string]string, entry string) *Delivery {
	it, queued := parseQueueItem(did, entry)
	var d *Delivery
	switch {
	case len(m) > 0:
		d = deliveryFromFields(tid, did, m)
	case queued:
		d = queuedDelivery(tid, eid, it)
	default:
		return nil
	}
	if queued && it.After != "" { // waiting in its lane: no attempt is due until its turn
		after := it.After
		d.WaitingFor, d.NextAttemptAt = &after, nil
	}
	return d
}

// deliveryFromFields reads a delivery's record; its id is its key's (records written before
// this version repeat it in a field, unread).
func deliveryFromFields(tid, did string, m map[string]string) *Delivery {
	d := &Delivery{ID: did, TenantID: tid, WebhookID: m["webhookId"], EventID: m["eventId"],
		EventType: m["eventType"], Status: m["status"], CreatedAt: fromMs(m["createdAt"]),
		UpdatedAt: fromMs(m["updatedAt"]), NextAttemptAt: timePtr(fromMs(m["nextAttemptAt"]))}
	d.AttemptCount, _ = strconv.Atoi(m["attemptCount"])
	d.Generation, _ = strconv.Atoi(m["generation"])
	d.RunAttempts, _ = strconv.Atoi(m["runAttempts"])
	return d
}

var trimScript = script("trim")

// TrimIndexes drops event and delivery index entries older than the retention period (their
// records have expired) from the tenant's event indexes and every endpoint's; it returns how
// many. It also sets the expiry of the day scan indexes (expireScanIndexes).
func (s *Store) TrimIndexes(ctx context.Context, tid string) (int, error) {
	if err := s.expireScanIndexes(ctx, tid); err != nil {
		return 0, err
	}
	eids, err := s.rdb.ZRange(ctx, endpointsKey(tid), 0, -1).Result()
	if err != nil {
		return 0, storeErr("list endpoints", err)
	}
	cutoff := ms(s.now().Add(-s.retention))
	var evKeys []string
	for _, typ := range slices.Concat(EventTypes, OperationalEventTypes) {
		evKeys = append(evKeys, eventsKey(tid, typ))
	}
	total, err := trimScript.Run(ctx, s.rdb, evKeys, cutoff).Int()
	if err != nil {
		return 0, storeErr("trim indexes", err)
	}
	for _, eid := range eids {
		keys := []string{formerDeliveriesKey(tid, eid)}
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
