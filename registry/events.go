package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewEvent is an event to store; Body is the exact JSON receivers get.
type NewEvent struct {
	ID             string
	Type           string
	CreatedAt      time.Time
	Body           []byte
	IdempotencyKey string
	// RequestHash identifies the request's content; it is kept with an idempotency key, and a
	// later request with the same key and another hash is IDEMPOTENCY_KEY_REUSED.
	RequestHash string
	// ScanID is the event's data.scanId: its deliveries to an endpoint ordered by scan form
	// one lane (LaneOf).
	ScanID string
	// Exclude names an endpoint that gets no delivery of the event (the one an operational
	// event is about); Internal events are webhookd's own and count against no quota.
	Exclude  string
	Internal bool
	// Quota is the tenant's monthly event quota; 0 means unlimited.
	Quota int64
}

// Stored is what PublishEvent did, or what PublishEvents did with one event of a batch.
type Stored struct {
	Event *Event
	// Deliveries is how many endpoints were subscribed when the event was accepted.
	Deliveries int
	// Replayed is true when the Idempotency-Key named an earlier event, which is returned.
	Replayed bool
	// Inline is true when the deliveries were created with the event (a small fan-out);
	// Drains then lists the drains to put on the queue (with PublishEvents, the batch's
	// Drains). Otherwise a fan-out task must create them.
	Inline bool
	Drains []Drain
	// counted is true when the event counts against the tenant's quota (not Internal);
	// record is what the publish wrote under its idempotency key ('' without one).
	counted bool
	record  string
}

// NewBatch is events to store at once, all or none: a batch publish, or one event. Each
// event's ID, Type, CreatedAt, Body, ScanID and Exclude are used; the rest is the batch's.
type NewBatch struct {
	Events         []NewEvent
	IdempotencyKey string
	// RequestHash identifies the whole request's content (see NewEvent.RequestHash).
	RequestHash string
	// Internal batches are webhookd's own and count against no quota; Quota is the tenant's
	// monthly event quota (0: unlimited), which every event of the batch counts against.
	Internal bool
	Quota    int64
	// Key, when set, is the request's authentication, answered by the publish (KeyCheck).
	Key *KeyCheck
}

// StoredBatch is what PublishEvents did: each event as stored, in the batch's order, and the
// drains to put on the queue for the events whose deliveries were created with them.
type StoredBatch struct {
	Events   []*Stored
	Replayed bool
	Drains   []Drain
}

// PublishEvent stores one event: PublishEvents with a batch of one.
func (s *Store) PublishEvent(ctx context.Context, tid string, n NewEvent) (*Stored, error) {
	sb, err := s.PublishEvents(ctx, tid, NewBatch{Events: []NewEvent{n}, IdempotencyKey: n.IdempotencyKey,
		RequestHash: n.RequestHash, Internal: n.Internal, Quota: n.Quota})
	if err != nil {
		return nil, err
	}
	st := sb.Events[0]
	st.Drains = sb.Drains
	return st, nil
}

var publishScript = script("publish")

// PublishEvents stores a batch of events in one script, all or none, atomically with the
// idempotency key that covers the batch and the tenant's monthly count of every event
// (QUOTA_EXCEEDED when the batch would pass the quota); a key already used with another
// request hash is IDEMPOTENCY_KEY_REUSED, and one used with the same returns the first
// batch, Replayed. An event to which at most Config.InlineFanout endpoints subscribe has its
// deliveries queued in the same step; otherwise an outbox entry guarantees its fan-out. The
// script call is shared with the tenant's other publishes of the moment (groups), each
// stored as it would be alone.
func (s *Store) PublishEvents(ctx context.Context, tid string, b NewBatch) (*StoredBatch, error) {
	if len(b.Events) == 0 {
		return nil, E(CodeInternal)
	}
	c := &publishCall{waiter: newWaiter(), batch: b}
	err := s.publishes.do(ctx, publishSubject(tid, b.Quota, b.Internal), c, func(ctx context.Context, calls []*publishCall) error {
		return s.publish(ctx, tid, calls)
	})
	if b.Key != nil && c.answered() {
		b.Key.Counted, b.Key.Rate = c.counted, c.rate
	}
	switch {
	case err != nil:
		return nil, err
	case c.replay != "":
		return s.replay(ctx, tid, c.replay, b.RequestHash)
	}
	return c.stored, nil
}

// publishSubject is what PublishEvents calls group by: the tenant, the quota and whether the
// events are webhookd's own (the script takes those once for a group).
func publishSubject(tid string, quota int64, internal bool) string {
	return tid + "/" + strconv.FormatInt(quota, 10) + "/" + strconv.FormatBool(internal)
}

// publishCall is one PublishEvents call: its batch, then what the script did with it.
type publishCall struct {
	waiter
	batch  NewBatch
	stored *StoredBatch
	replay string // the idempotency record of an earlier batch
	// counted is true once the script counted the batch's key check, whose decision rate is.
	counted bool
	rate    RateResult
}

func (c *publishCall) size() int { return len(c.batch.Events) }

// publish runs one group of PublishEvents calls of tenant tid, of one quota and kind, in one
// script call (lua/publish.lua).
func (s *Store) publish(ctx context.Context, tid string, calls []*publishCall) error {
	first := calls[0].batch
	keys := []string{outboxKey(tid)}
	args := []any{tenantTag(tid), namespace, s.retentionSec(), int64(s.idemTTL / time.Second), first.Quota,
		int64(40 * 24 * time.Hour / time.Second), first.Internal, s.inline}
	for _, c := range calls {
		keys, args = publishArgs(tid, c.batch, keys, args)
	}
	res, err := publishScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		err = storeErr("publish events", err)
	}
	for _, c := range calls {
		if err == nil {
			res, err = c.read(tid, res)
		}
		if err != nil {
			c.stored, c.replay = nil, ""
			c.err = err
		}
	}
	for _, c := range calls {
		c.answer(c.err)
	}
	return err
}

// publishArgs appends a batch's keys and arguments for lua/publish.lua.
func publishArgs(tid string, b NewBatch, keys []string, args []any) ([]string, []any) {
	at := b.Events[0].CreatedAt
	keys = append(keys, idempotencyKey(tid, b.IdempotencyKey), usageKey(tid, at.UTC().Format("2006-01")))
	args = append(args, idemHead(b), ms(at), unixDay(at), len(b.Events))
	keys, args = keyCheckArgs(b.Key, keys, args)
	for _, n := range b.Events {
		keys = append(keys, subscribersKey(tid, n.Type), eventsKey(tid, n.Type))
		lane, laneBytes := LaneOf(n.ScanID), ""
		if lane != "" {
			laneBytes = laneField(lane)
		}
		idB, _ := idBytes(n.ID)
		record := eventRecord(n.ID, n.Type, ms(at), lane, n.Exclude, keptBody(n.ID, n.Type, n.Body))
		args = append(args, n.ID, n.Type, record, lane, n.Exclude, idB, laneBytes)
	}
	return keys, args
}

// read takes the call's answer off the front of lua/publish.lua's and returns the rest. The
// call's own outcome (QUOTA_EXCEEDED) is its err; an error returned is the group's.
func (c *publishCall) read(tid string, res []string) ([]string, error) {
	b, n := c.batch, len(c.batch.Events)
	if b.Key != nil {
		var err error
		res, c.counted, c.rate, err = readKeyCheck(res)
		switch {
		case errors.Is(err, ErrKeyChanged) || errors.Is(err, errKeyRefused):
			c.err = err
			return res, nil
		case err != nil:
			return nil, err
		}
	}
	switch {
	case len(res) >= 2 && res[0] == "replay":
		c.replay = res[1]
		return res[2:], nil
	case len(res) >= 1 && res[0] == "quota":
		c.err = E(CodeQuotaExceeded)
		return res[1:], nil
	case len(res) < 2+2*n || res[0] != "ok":
		return nil, storeErr("publish events", fmt.Errorf("answer of %d values for %d events", len(res), n))
	}
	drains, _ := strconv.Atoi(res[1+2*n])
	if len(res) < 2+2*n+drains {
		return nil, storeErr("publish events", fmt.Errorf("answer of %d values for %d drains", len(res), drains))
	}
	at := b.Events[0].CreatedAt
	sb := &StoredBatch{Events: make([]*Stored, n), Drains: parseDrains(res[2+2*n : 2+2*n+drains])}
	for i, e := range b.Events {
		cnt, _ := strconv.Atoi(res[2+2*i])
		ev := &Event{ID: e.ID, TenantID: tid, Type: e.Type, CreatedAt: at.UTC(), Body: e.Body}
		sb.Events[i] = &Stored{Event: ev, Deliveries: cnt, Inline: res[1+2*i] == "inline", counted: !b.Internal}
	}
	record := idemRecord(idemHead(b), sb.Events)
	for _, st := range sb.Events {
		st.record = record
	}
	c.stored = sb
	return res[2+2*n+drains:], nil
}

var retractScript = script("retract")

// RetractEvents removes an accepted batch none of whose work could be queued: its events, the
// deliveries created with them, its idempotency key and quota count, and the drains it
// scheduled that have nothing else to do. It does nothing, and reports false, once any
// event's work may be under way (a sweep took a fan-out, a drain ran).
func (s *Store) RetractEvents(ctx context.Context, tid, idemKey string, sb *StoredBatch) (bool, error) {
	at := sb.Events[0].Event.CreatedAt
	keys := []string{idempotencyKey(tid, idemKey), usageKey(tid, at.UTC().Format("2006-01")), outboxKey(tid)}
	counted := 0
	for _, st := range sb.Events {
		if st.counted {
			counted++
		}
	}
	args := []any{tenantTag(tid), namespace, sb.Events[0].record, counted, len(sb.Events), unixDay(at)}
	for _, st := range sb.Events {
		ev := st.Event
		keys = append(keys, eventKey(tid, ev.ID), subscribersKey(tid, ev.Type), eventsKey(tid, ev.Type))
		args = append(args, ev.ID, st.Inline)
	}
	for _, d := range sb.Drains {
		args = append(args, d.String())
	}
	n, err := retractScript.Run(ctx, s.rdb, keys, args...).Int()
	return n == 1, storeErr("retract events", err)
}

// Usage is a tenant's event count in the current UTC calendar month.
type Usage struct {
	Period            string    `json:"period"`
	PeriodStart       time.Time `json:"periodStart"`
	PeriodEnd         time.Time `json:"periodEnd"`
	EventsPublished   int64     `json:"eventsPublished"`
	MonthlyEventQuota int64     `json:"monthlyEventQuota"`
	Remaining         *int64    `json:"remaining"`
}

// Usage reads the tenant's count for this month.
func (s *Store) Usage(ctx context.Context, tid string) (Usage, error) {
	t, err := s.Tenant(ctx, tid)
	if err != nil {
		if errors.Is(err, ErrTenantNotFound) {
			return Usage{}, E(CodeNotFound)
		}
		return Usage{}, err
	}
	now := s.now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	n, err := s.rdb.Get(ctx, usageKey(tid, now.Format("2006-01"))).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Usage{}, storeErr("read usage", err)
	}
	u := Usage{Period: now.Format("2006-01"), PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0),
		EventsPublished: n, MonthlyEventQuota: t.MonthlyEventQuota}
	if t.MonthlyEventQuota > 0 {
		r := max(t.MonthlyEventQuota-n, 0)
		u.Remaining = &r
	}
	return u, nil
}
