package registry

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// NewEndpoint describes an endpoint to register; the caller has validated it.
type NewEndpoint struct {
	URL         string
	Events      []string
	Description string
	Headers     map[string]string
	Secret      string
	// Disabled registers the endpoint disabled by hand (reason manual): its events are held
	// until it is enabled.
	Disabled bool
	// Ordering is OrderingNone (the default when empty) or OrderingScan.
	Ordering string
	// RateLimitPerSecond caps the endpoint's attempts per second; nil: none.
	RateLimitPerSecond *int
}

// EndpointPatch changes the fields that are not nil.
type EndpointPatch struct {
	URL         *string
	Events      []string
	Description *string
	Headers     map[string]string
	// HeadersSet distinguishes "headers": {} (clear them) from no change.
	HeadersSet bool
	Ordering   *string
	// RateLimitPerSecond replaces the endpoint's rate limit when RateLimitSet (nil: none).
	RateLimitPerSecond *int
	RateLimitSet       bool
}

// CreateEndpoint stores a new active endpoint and its subscriptions in one MULTI/EXEC.
func (s *Store) CreateEndpoint(ctx context.Context, tid string, n NewEndpoint) (*Endpoint, error) {
	now := s.now().UTC()
	e := &Endpoint{
		ID: uuid.NewString(), TenantID: tid, URL: n.URL, Events: dedupe(n.Events), Description: n.Description,
		Headers: n.Headers, Enabled: true, Status: StatusActive, CreatedAt: now, UpdatedAt: now, Secret: n.Secret,
		Ordering: orderingOr(n.Ordering), RateLimitPerSecond: n.RateLimitPerSecond,
	}
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	if n.Disabled {
		reason := ReasonManual
		e.Enabled, e.Status, e.DisabledReason, e.DisabledAt = false, StatusDisabled, &reason, timePtr(now)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, endpointKey(tid, e.ID), endpointFields(e))
		p.ZAdd(ctx, endpointsKey(tid), redis.Z{Score: float64(ms(now)), Member: e.ID})
		for _, t := range e.Events {
			p.SAdd(ctx, subscribersKey(tid, t), e.ID)
		}
		return nil
	})
	if err != nil {
		return nil, storeErr("create endpoint", err)
	}
	return e, nil
}

// Endpoint returns one of the tenant's endpoints; WEBHOOK_NOT_FOUND otherwise.
func (s *Store) Endpoint(ctx context.Context, tid, eid string) (*Endpoint, error) {
	m, err := s.rdb.HGetAll(ctx, endpointKey(tid, eid)).Result()
	if err != nil {
		return nil, storeErr("get endpoint", err)
	}
	if len(m) == 0 {
		return nil, E(CodeWebhookNotFound)
	}
	return endpointFromFields(tid, m), nil
}

// ListEndpoints returns one page of the tenant's endpoints, newest first, optionally only
// those with the given status, and the total count that matched.
func (s *Store) ListEndpoints(ctx context.Context, tid, status string, pg Page) ([]*Endpoint, int, error) {
	ids, err := s.rdb.ZRevRange(ctx, endpointsKey(tid), 0, -1).Result()
	if err != nil {
		return nil, 0, storeErr("list endpoints", err)
	}
	all, err := s.endpointsByID(ctx, tid, ids)
	if err != nil {
		return nil, 0, err
	}
	matched := all[:0]
	for _, e := range all {
		if status == "" || e.Status == status {
			matched = append(matched, e)
		}
	}
	start, stop := pg.bounds(len(matched))
	return matched[start:stop], len(matched), nil
}

// SubscribedEndpoints returns the tenant's endpoints subscribed to an event type, enabled or not.
func (s *Store) SubscribedEndpoints(ctx context.Context, tid, eventType string) ([]*Endpoint, error) {
	ids, err := s.rdb.SMembers(ctx, subscribersKey(tid, eventType)).Result()
	if err != nil {
		return nil, storeErr("list subscribers", err)
	}
	return s.endpointsByID(ctx, tid, ids)
}

func (s *Store) endpointsByID(ctx context.Context, tid string, ids []string) ([]*Endpoint, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, endpointKey(tid, id))
		}
		return nil
	})
	if err != nil {
		return nil, storeErr("get endpoints", err)
	}
	out := make([]*Endpoint, 0, len(ids))
	for _, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			out = append(out, endpointFromFields(tid, m))
		}
	}
	return out, nil
}

// UpdateEndpoint applies a patch of url, events, description, headers and ordering atomically
// (WATCH on the endpoint, MULTI for it and its subscription sets). Ending the ordering by scan
// puts every delivery waiting in a lane on the queue; the drain to queue for them, if any, is
// returned.
func (s *Store) UpdateEndpoint(ctx context.Context, tid, eid string, p EndpointPatch) (*Endpoint, []Drain, error) {
	var was string
	e, err := s.changeEndpoint(ctx, tid, eid, "update endpoint", func(e *Endpoint, pp redis.Pipeliner) {
		was = e.Ordering
		old := e.Events
		applyPatch(e, p, s.now().UTC())
		pp.HSet(ctx, endpointKey(tid, eid), patchFields(e))
		if e.RateLimitPerSecond == nil {
			pp.HDel(ctx, endpointKey(tid, eid), "rateLimit")
		}
		for _, t := range old {
			if !e.Subscribes(t) {
				pp.SRem(ctx, subscribersKey(tid, t), eid)
			}
		}
		for _, t := range e.Events {
			pp.SAdd(ctx, subscribersKey(tid, t), eid)
		}
	})
	if err != nil || was != OrderingScan || e.Ordering == OrderingScan {
		return e, nil, err
	}
	drains, err := s.unorder(ctx, tid, eid)
	return e, drains, err
}

var unorderScript = script("unorder")

// unorder puts the deliveries waiting in an endpoint's lanes on its queue (lua/unorder.lua).
func (s *Store) unorder(ctx context.Context, tid, eid string) ([]Drain, error) {
	res, err := unorderScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid), endpointStatusKey(tid, eid, waitingIndex),
		endpointStatusKey(tid, eid, DeliveryPending), endpointQueueKey(tid, eid)}, tenantTag(tid), eid, ms(s.now())).Slice()
	if err != nil {
		return nil, storeErr("end ordering", err)
	}
	w, _ := res[1].(string)
	return parseDrains([]string{w}), nil
}

// orderingOr reads a stored or requested ordering: OrderingScan, else OrderingNone.
func orderingOr(o string) string {
	if o == OrderingScan {
		return OrderingScan
	}
	return OrderingNone
}

// changeEndpoint reads an endpoint under WATCH, lets change edit it and queue its writes in one
// MULTI, and starts again when another client changed the endpoint meanwhile. It returns the
// endpoint as changed; WEBHOOK_NOT_FOUND when there is none.
func (s *Store) changeEndpoint(ctx context.Context, tid, eid, op string, change func(*Endpoint, redis.Pipeliner)) (*Endpoint, error) {
	key := endpointKey(tid, eid)
	var out *Endpoint
	for i := 0; i < 10; i++ {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			m, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return err
			}
			if len(m) == 0 {
				return E(CodeWebhookNotFound)
			}
			out = endpointFromFields(tid, m)
			_, err = tx.TxPipelined(ctx, func(pp redis.Pipeliner) error {
				change(out, pp)
				return nil
			})
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, storeErr(op, err)
		}
		return out, nil
	}
	return nil, storeErr(op, redis.TxFailedErr)
}

func applyPatch(e *Endpoint, p EndpointPatch, now time.Time) {
	if p.URL != nil {
		e.URL = *p.URL
	}
	if p.Events != nil {
		e.Events = dedupe(p.Events)
	}
	if p.Description != nil {
		e.Description = *p.Description
	}
	if p.Ordering != nil {
		e.Ordering = orderingOr(*p.Ordering)
	}
	if p.RateLimitSet {
		e.RateLimitPerSecond = p.RateLimitPerSecond
	}
	if p.HeadersSet {
		e.Headers = p.Headers
		if e.Headers == nil {
			e.Headers = map[string]string{}
		}
	}
	e.UpdatedAt = now
}

// DeleteEndpoint removes an endpoint, its subscriptions and its delivery indexes. Queued
// deliveries find it gone and stop; delivery records expire with the retention period.
func (s *Store) DeleteEndpoint(ctx context.Context, tid, eid string) error {
	e, err := s.Endpoint(ctx, tid, eid)
	if err != nil {
		return err
	}
	// A lane made meanwhile keeps its list until the retention period expires it.
	lanes, err := s.rdb.HKeys(ctx, lanesKey(tid, eid)).Result()
	if err != nil {
		return storeErr("delete endpoint", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, endpointKey(tid, eid), formerDeliveriesKey(tid, eid), endpointQueueKey(tid, eid), drainKey(tid, eid),
			drainCountKey(tid, eid), endpointStatusKey(tid, eid, waitingIndex), lanesKey(tid, eid))
		for _, lane := range lanes {
			p.Del(ctx, laneKey(tid, eid, lane))
		}
		for _, st := range DeliveryStatuses {
			p.Del(ctx, endpointStatusKey(tid, eid, st))
		}
		p.ZRem(ctx, endpointsKey(tid), eid)
		for _, t := range e.Events {
			p.SRem(ctx, subscribersKey(tid, t), eid)
		}
		return nil
	})
	return storeErr("delete endpoint", err)
}

// RotateSecret makes secret the endpoint's signing secret. The replaced one keeps signing for
// grace (0: stops at once), and so does each older one until its own grace ends, at most three
// secrets signing at once (see Endpoint.afterRotation). WEBHOOK_NOT_FOUND for an unknown endpoint.
func (s *Store) RotateSecret(ctx context.Context, tid, eid, secret string, grace time.Duration) (*Endpoint, error) {
	return s.changeEndpoint(ctx, tid, eid, "rotate secret", func(e *Endpoint, p redis.Pipeliner) {
		now := s.now().UTC()
		setPrevious(e, e.afterRotation(now, grace))
		e.Secret, e.UpdatedAt = secret, now
		set, del := secretFields(e)
		p.HSet(ctx, endpointKey(tid, eid), set)
		if len(del) > 0 {
			p.HDel(ctx, endpointKey(tid, eid), del...)
		}
	})
}

func setPrevious(e *Endpoint, prev []PreviousSecret) {
	e.PrevSecret, e.PrevSecretExpiresAt, e.OlderSecret, e.OlderSecretExpiresAt = "", time.Time{}, "", time.Time{}
	if len(prev) > 0 {
		e.PrevSecret, e.PrevSecretExpiresAt = prev[0].Secret, prev[0].ExpiresAt
	}
	if len(prev) > 1 {
		e.OlderSecret, e.OlderSecretExpiresAt = prev[1].Secret, prev[1].ExpiresAt
	}
}

// secretFields are the hash fields of e's secrets to set, and the names of those to delete.
func secretFields(e *Endpoint) (map[string]any, []string) {
	set := map[string]any{"secret": e.Secret, "updatedAt": ms(e.UpdatedAt)}
	var del []string
	for _, f := range []struct {
		name, secret string
		exp          time.Time
	}{{"prevSecret", e.PrevSecret, e.PrevSecretExpiresAt}, {"olderSecret", e.OlderSecret, e.OlderSecretExpiresAt}} {
		if f.secret == "" {
			del = append(del, f.name, f.name+"ExpiresAt")
			continue
		}
		set[f.name], set[f.name+"ExpiresAt"] = f.secret, ms(f.exp)
	}
	return set, del
}

func endpointFields(e *Endpoint) map[string]any {
	f := patchFields(e)
	f["id"] = e.ID
	f["status"] = e.Status
	f["consecutiveFailures"] = e.ConsecutiveFailures
	f["createdAt"] = ms(e.CreatedAt)
	f["secret"] = e.Secret
	if e.DisabledReason != nil {
		f["disabledReason"], f["disabledAt"] = *e.DisabledReason, ms(*e.DisabledAt)
	}
	return f
}

func patchFields(e *Endpoint) map[string]any {
	ev, _ := json.Marshal(e.Events)
	hd, _ := json.Marshal(e.Headers)
	f := map[string]any{
		"url": e.URL, "events": string(ev), "description": e.Description, "headers": string(hd),
		"ordering": e.Ordering, "updatedAt": ms(e.UpdatedAt),
	}
	if e.RateLimitPerSecond != nil {
		f["rateLimit"] = *e.RateLimitPerSecond
	}
	return f
}

func endpointFromFields(tid string, m map[string]string) *Endpoint {
	e := &Endpoint{
		ID: m["id"], TenantID: tid, URL: m["url"], Description: m["description"], Status: m["status"],
		CreatedAt: fromMs(m["createdAt"]), UpdatedAt: fromMs(m["updatedAt"]), Secret: m["secret"],
		PrevSecret: m["prevSecret"], PrevSecretExpiresAt: fromMs(m["prevSecretExpiresAt"]),
		OlderSecret: m["olderSecret"], OlderSecretExpiresAt: fromMs(m["olderSecretExpiresAt"]),
		FailureStreakStart: fromMs(m["streakStart"]), Ordering: orderingOr(m["ordering"]),
	}
	_ = json.Unmarshal([]byte(m["events"]), &e.Events)
	_ = json.Unmarshal([]byte(m["headers"]), &e.Headers)
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	if e.Events == nil {
		e.Events = []string{}
	}
	e.ConsecutiveFailures, _ = strconv.Atoi(m["consecutiveFailures"])
	e.Probation = m["probation"] == "1" && e.Status == StatusActive
	e.Degraded = m["degraded"] == "1" && e.Status == StatusActive
	e.concurrency, _ = strconv.Atoi(m["concurrency"])
	if n, err := strconv.Atoi(m["rateLimit"]); err == nil && n > 0 {
		e.RateLimitPerSecond = &n
	}
	e.Enabled = e.Status == StatusActive
	if r := m["disabledReason"]; r != "" && !e.Enabled {
		e.DisabledReason = &r
		e.DisabledAt = timePtr(fromMs(m["disabledAt"]))
	}
	return e
}
