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
}

// EndpointPatch changes the fields that are not nil.
type EndpointPatch struct {
	URL         *string
	Events      []string
	Description *string
	Headers     map[string]string
	// HeadersSet distinguishes "headers": {} (clear them) from no change.
	HeadersSet bool
}

// CreateEndpoint stores a new active endpoint and its subscriptions in one MULTI/EXEC.
func (s *Store) CreateEndpoint(ctx context.Context, tid string, n NewEndpoint) (*Endpoint, error) {
	now := s.now().UTC()
	e := &Endpoint{
		ID: uuid.NewString(), TenantID: tid, URL: n.URL, Events: dedupe(n.Events), Description: n.Description,
		Headers: n.Headers, Enabled: true, Status: StatusActive, CreatedAt: now, UpdatedAt: now, Secret: n.Secret,
	}
	if e.Headers == nil {
		e.Headers = map[string]string{}
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

// UpdateEndpoint applies a patch of url, events, description and headers atomically
// (WATCH on the endpoint, MULTI for it and its subscription sets).
func (s *Store) UpdateEndpoint(ctx context.Context, tid, eid string, p EndpointPatch) (*Endpoint, error) {
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
			e := endpointFromFields(tid, m)
			old := e.Events
			applyPatch(e, p, s.now().UTC())
			_, err = tx.TxPipelined(ctx, func(pp redis.Pipeliner) error {
				pp.HSet(ctx, key, patchFields(e))
				for _, t := range old {
					if !e.Subscribes(t) {
						pp.SRem(ctx, subscribersKey(tid, t), eid)
					}
				}
				for _, t := range e.Events {
					pp.SAdd(ctx, subscribersKey(tid, t), eid)
				}
				return nil
			})
			out = e
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, storeErr("update endpoint", err)
		}
		return out, nil
	}
	return nil, storeErr("update endpoint", redis.TxFailedErr)
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
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, endpointKey(tid, eid), endpointDeliveriesKey(tid, eid), endpointQueueKey(tid, eid), drainKey(tid, eid),
			drainKey(tid, eid)+":n")
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

// RotateSecret makes secret the endpoint's signing secret; the previous one keeps signing
// for grace (0: stops at once).
func (s *Store) RotateSecret(ctx context.Context, tid, eid, secret string, grace time.Duration) (*Endpoint, error) {
	now := s.now().UTC()
	res, err := rotateScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid)},
		secret, ms(now.Add(grace)), ms(now), grace > 0).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr("rotate secret", err)
	}
	if res == nil {
		return nil, E(CodeWebhookNotFound)
	}
	return s.Endpoint(ctx, tid, eid)
}

var rotateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[4] == '1' then
  local old = redis.call('HGET', KEYS[1], 'secret')
  redis.call('HSET', KEYS[1], 'prevSecret', old, 'prevSecretExpiresAt', ARGV[2])
else
  redis.call('HDEL', KEYS[1], 'prevSecret', 'prevSecretExpiresAt')
end
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'updatedAt', ARGV[3])
return 1`)

func endpointFields(e *Endpoint) map[string]any {
	f := patchFields(e)
	f["id"] = e.ID
	f["status"] = e.Status
	f["consecutiveFailures"] = e.ConsecutiveFailures
	f["createdAt"] = ms(e.CreatedAt)
	f["secret"] = e.Secret
	return f
}

func patchFields(e *Endpoint) map[string]any {
	ev, _ := json.Marshal(e.Events)
	hd, _ := json.Marshal(e.Headers)
	return map[string]any{
		"url": e.URL, "events": string(ev), "description": e.Description, "headers": string(hd),
		"updatedAt": ms(e.UpdatedAt),
	}
}

func endpointFromFields(tid string, m map[string]string) *Endpoint {
	e := &Endpoint{
		ID: m["id"], TenantID: tid, URL: m["url"], Description: m["description"], Status: m["status"],
		CreatedAt: fromMs(m["createdAt"]), UpdatedAt: fromMs(m["updatedAt"]), Secret: m["secret"],
		PrevSecret: m["prevSecret"], PrevSecretExpiresAt: fromMs(m["prevSecretExpiresAt"]),
		FailureStreakStart: fromMs(m["streakStart"]),
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
	e.Enabled = e.Status == StatusActive
	if r := m["disabledReason"]; r != "" && !e.Enabled {
		e.DisabledReason = &r
		e.DisabledAt = timePtr(fromMs(m["disabledAt"]))
	}
	return e
}
