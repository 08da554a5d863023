package registry

import (
	"context"
	"errors"
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
	// Quota is the tenant's monthly event quota; 0 means unlimited.
	Quota int64
}

// Stored is what PublishEvent did.
type Stored struct {
	Event *Event
	// Deliveries is how many endpoints were subscribed when the event was accepted.
	Deliveries int
	// Replayed is true when the Idempotency-Key named an earlier event, which is returned.
	Replayed bool
	// Inline is true when the deliveries were created with the event (a small fan-out);
	// Drains then lists the drains to put on the queue. Otherwise a fan-out task must create them.
	Inline bool
	Drains []Drain
}

// PublishEvent stores an event once, atomically with its idempotency key and the tenant's
// monthly count (QUOTA_EXCEEDED past the quota). When at most Config.InlineFanout endpoints
// subscribe, their deliveries are queued in the same step; otherwise an outbox entry
// guarantees the fan-out.
func (s *Store) PublishEvent(ctx context.Context, tid string, n NewEvent) (*Stored, error) {
	retSec, _ := s.retentionArgs()
	res, err := publishScript.Run(ctx, s.rdb, s.eventKeys(tid, n.ID, n.Type, n.IdempotencyKey, n.CreatedAt),
		n.ID, n.Type, ms(n.CreatedAt), n.Body, retSec, int64(s.idemTTL/time.Second), n.Quota,
		int64(40*24*time.Hour/time.Second), n.IdempotencyKey != "", tenantTag(tid), s.inline, namespace).StringSlice()
	if err != nil {
		return nil, storeErr("publish event", err)
	}
	switch res[0] {
	case "quota":
		return nil, E(CodeQuotaExceeded)
	case "replay":
		ev, err := s.Event(ctx, tid, res[1])
		if err != nil {
			return nil, err
		}
		return &Stored{Event: ev, Deliveries: ev.deliveries, Replayed: true}, nil
	}
	cnt, _ := strconv.Atoi(res[1])
	ev := &Event{ID: n.ID, TenantID: tid, Type: n.Type, CreatedAt: n.CreatedAt.UTC(), Body: n.Body}
	st := &Stored{Event: ev, Deliveries: cnt, Inline: res[0] == "inline"}
	if st.Inline {
		st.Drains = parseDrains(res[2:])
	}
	return st, nil
}

func (s *Store) eventKeys(tid, evid, typ, idemKey string, at time.Time) []string {
	return []string{eventKey(tid, evid), idempotencyKey(tid, idemKey), usageKey(tid, at.UTC().Format("2006-01")),
		outboxKey(tid), subscribersKey(tid, typ)}
}

// RetractEvent removes an accepted event none of whose work could be queued, with the
// deliveries created with it and the drains it scheduled that have nothing else to do (a
// fan-out only while no sweep took it); it reports whether it did.
func (s *Store) RetractEvent(ctx context.Context, tid string, ev *Event, idemKey string, st *Stored) (bool, error) {
	args := []any{ev.ID, idemKey != "", tenantTag(tid), namespace, st.Inline}
	for _, d := range st.Drains {
		args = append(args, d.EndpointID+":"+strconv.FormatInt(d.N, 10))
	}
	n, err := retractScript.Run(ctx, s.rdb, s.eventKeys(tid, ev.ID, ev.Type, idemKey, ev.CreatedAt), args...).Int()
	return n == 1, storeErr("retract event", err)
}

// Event returns a stored event; an *Error NOT_FOUND when it is unknown or expired.
func (s *Store) Event(ctx context.Context, tid, evid string) (*Event, error) {
	m, err := s.rdb.HGetAll(ctx, eventKey(tid, evid)).Result()
	if err != nil {
		return nil, storeErr("get event", err)
	}
	if len(m) == 0 {
		return nil, E(CodeNotFound)
	}
	return eventFromFields(tid, m), nil
}

func eventFromFields(tid string, m map[string]string) *Event {
	n, _ := strconv.Atoi(m["deliveries"])
	return &Event{ID: m["id"], TenantID: tid, Type: m["type"], CreatedAt: fromMs(m["createdAt"]),
		Body: []byte(m["body"]), deliveries: n}
}

// OutboxEntry is work accepted but maybe not yet queued: "e:<eventID>" (a fan-out),
// "q:<endpointID>:<n>" (a drain of an endpoint's queue, kept until the drain ends) or
// "d:<deliveryID>:<endpointID>:<generation>" (a retry, scored with its time).
type OutboxEntry = string

// DueOutbox returns up to limit outbox entries of a tenant older than before.
func (s *Store) DueOutbox(ctx context.Context, tid string, before time.Time, limit int64) ([]OutboxEntry, error) {
	out, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: outboxKey(tid), Start: "-inf",
		Stop: strconv.FormatInt(ms(before), 10), ByScore: true, Count: limit}).Result()
	return out, storeErr("read outbox", err)
}

// OutboxDone removes entries whose work is queued.
func (s *Store) OutboxDone(ctx context.Context, tid string, entries ...OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	members := make([]any, len(entries))
	for i, e := range entries {
		members[i] = e
	}
	return storeErr("clear outbox", s.rdb.ZRem(ctx, outboxKey(tid), members...).Err())
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
