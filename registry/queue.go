package registry

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DrainLease is how long a drain holds its endpoint's queue without renewing the lease. A
// drain renews it every second; when its process dies the lease lapses, and the next delivery
// queued on the endpoint (or the dead drain's task, recovered) schedules another.
const DrainLease = 6 * time.Second

// Drain names one drain of an endpoint's queue to put on the task queue: the endpoint and the
// drain's number. Only the drain whose number the endpoint's drain key holds takes deliveries.
type Drain struct {
	EndpointID string
	N          int64
}

// OutboxEntry returns the outbox member that stands for d until it ends.
func (d Drain) OutboxEntry() OutboxEntry {
	return "q:" + d.EndpointID + ":" + strconv.FormatInt(d.N, 10)
}

// ParseDrain reads "eid:n" (the outbox form without its "q:" prefix).
func ParseDrain(s string) (Drain, bool) {
	eid, n, ok := strings.Cut(s, ":")
	v, err := strconv.ParseInt(n, 10, 64)
	return Drain{EndpointID: eid, N: v}, ok && err == nil && eid != ""
}

func parseDrains(in []string) []Drain {
	var out []Drain
	for _, s := range in {
		if d, ok := ParseDrain(s); ok {
			out = append(out, d)
		}
	}
	return out
}

// QueueItem is one queued delivery a drain took: its queue entry (handed back when it is
// finished, to tell a superseded one) and what sending it needs.
type QueueItem struct {
	DeliveryID string
	Entry      string
	EventID    string
	EventType  string
	CreatedAt  time.Time
	Generation int
	// HasRecord is true when the delivery already has a record (a retry, a re-enable, a test).
	HasRecord bool
	// Body is the event's body; empty when the event has expired.
	Body []byte
}

func parseQueueItem(did, entry string) (QueueItem, bool) {
	p := strings.Split(entry, "|")
	if len(p) != 5 {
		return QueueItem{}, false
	}
	gen, err := strconv.Atoi(p[3])
	if err != nil {
		return QueueItem{}, false
	}
	return QueueItem{DeliveryID: did, Entry: entry, EventID: p[0], EventType: p[1], CreatedAt: fromMs(p[2]),
		Generation: gen, HasRecord: p[4] == "1"}, true
}

// Take results.
var (
	// ErrDrainLost means the drain no longer holds its endpoint's queue lease.
	ErrDrainLost = errors.New("registry: drain lease lost")
	// ErrDrainEnded means the queue was empty and the drain has ended.
	ErrDrainEnded = errors.New("registry: drain ended")
)

// TakeRequest asks for the next deliveries of an endpoint's queue.
type TakeRequest struct {
	TenantID, EndpointID string
	N                    int64
	Limit                int
	// Skip names the deliveries the drain has in flight.
	Skip []string
	// Renew renews the lease; EndIfEmpty ends the drain when nothing is queued.
	Renew, EndIfEmpty bool
}

// Take hands a drain up to Limit deliveries from the head of its endpoint's queue, with the
// endpoint (nil when deleted). The drain must hold the queue's lease, or take over a lapsed
// one: ErrDrainLost otherwise, ErrDrainEnded when EndIfEmpty ended it.
func (s *Store) Take(ctx context.Context, r TakeRequest) ([]QueueItem, *Endpoint, error) {
	tid, eid := r.TenantID, r.EndpointID
	args := make([]any, 0, 6+len(r.Skip))
	args = append(args, tenantTag(tid), r.N, r.Limit, r.Renew, r.EndIfEmpty, eid)
	for _, id := range r.Skip {
		args = append(args, id)
	}
	res, err := takeScript.Run(ctx, s.rdb, []string{drainKey(tid, eid), endpointStatusKey(tid, eid, DeliveryPending),
		endpointQueueKey(tid, eid), endpointKey(tid, eid), outboxKey(tid)}, args...).Slice()
	if err != nil {
		return nil, nil, storeErr("take queued deliveries", err)
	}
	switch res[0] {
	case "lost":
		return nil, nil, ErrDrainLost
	case "ended":
		return nil, nil, ErrDrainEnded
	}
	var e *Endpoint
	if flat, _ := res[1].([]any); len(flat) > 0 {
		m := make(map[string]string, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			k, _ := flat[i].(string)
			v, _ := flat[i+1].(string)
			m[k] = v
		}
		e = endpointFromFields(tid, m)
	}
	items := make([]QueueItem, 0, (len(res)-2)/3)
	for i := 2; i+2 < len(res); i += 3 {
		did, _ := res[i].(string)
		entry, _ := res[i+1].(string)
		body, _ := res[i+2].(string)
		if it, ok := parseQueueItem(did, entry); ok {
			it.Body = []byte(body)
			items = append(items, it)
		}
	}
	return items, e, nil
}

// EndDrain ends a drain whose queue looked empty: "ended", or "more" when something was queued
// meanwhile. With handoff it instead passes the lease to a successor it returns (recorded in
// the outbox until queued). ErrDrainLost when the drain no longer holds the lease.
func (s *Store) EndDrain(ctx context.Context, tid string, d Drain, handoff bool) (string, *Drain, error) {
	mode := "end"
	if handoff {
		mode = "handoff"
	}
	res, err := endDrainScript.Run(ctx, s.rdb, []string{drainKey(tid, d.EndpointID),
		endpointStatusKey(tid, d.EndpointID, DeliveryPending), outboxKey(tid)}, d.N, d.EndpointID, mode, ms(s.now())).Text()
	if err != nil {
		return "", nil, storeErr("end drain", err)
	}
	switch res {
	case "lost":
		return "", nil, ErrDrainLost
	case "ended", "more":
		return res, nil, nil
	}
	n, err := strconv.ParseInt(res, 10, 64)
	if err != nil {
		return "", nil, storeErr("end drain", err)
	}
	return "handoff", &Drain{EndpointID: d.EndpointID, N: n}, nil
}

// Sent is one finished attempt of a queued delivery.
type Sent struct {
	Item    QueueItem
	Outcome AttemptOutcome
	// Attempt is nil when nothing was sent (the event expired: the delivery fails).
	Attempt       *Attempt
	NextAttemptAt time.Time
}

// OutcomeExpired marks a queued delivery whose event expired before it was sent.
const OutcomeExpired AttemptOutcome = "expired"

// FinishRequest is a batch of a drain's finished attempts and the policy that judges them.
type FinishRequest struct {
	TenantID, EndpointID string
	Sent                 []Sent
	DisableAfter         int
	DisableMinWindow     time.Duration
	MaxAttempts          int
}

// Finished is what Finish decided: each delivery's status now, in the order sent ("retrying":
// queue its retry task, recorded in the outbox; "stale": superseded meanwhile), and whether
// the batch disabled the endpoint.
type Finished struct {
	Statuses []string
	Disabled bool
}

// Finish records a batch of a drain's attempts atomically (see finishScript).
func (s *Store) Finish(ctx context.Context, r FinishRequest) (Finished, error) {
	tid, eid := r.TenantID, r.EndpointID
	retSec, _ := s.retentionArgs()
	args := make([]any, 0, 7+6*len(r.Sent))
	args = append(args, tenantTag(tid), eid, ms(s.now()), r.DisableAfter, r.DisableMinWindow.Milliseconds(),
		r.MaxAttempts, retSec)
	for _, x := range r.Sent {
		att, at := "", ms(s.now())
		if x.Attempt != nil {
			b, err := json.Marshal(x.Attempt)
			if err != nil {
				return Finished{}, err
			}
			att = string(b)
			at = ms(x.Attempt.StartedAt.Add(time.Duration(x.Attempt.DurationMs) * time.Millisecond))
		}
		args = append(args, x.Item.DeliveryID, x.Item.Entry, string(x.Outcome), att, at, ms(x.NextAttemptAt))
	}
	res, err := finishScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid), endpointQueueKey(tid, eid),
		endpointStatusKey(tid, eid, DeliveryPending), outboxKey(tid)}, args...).Slice()
	if err != nil {
		return Finished{}, storeErr("finish attempts", err)
	}
	dis, _ := res[0].(int64)
	out := Finished{Disabled: dis == 1, Statuses: make([]string, 0, len(res)-1)}
	for _, v := range res[1:] {
		st, _ := v.(string)
		out.Statuses = append(out.Statuses, st)
	}
	return out, nil
}

// QueuedItem reads the queue entry of a delivery waiting on its endpoint's queue, as a drain
// takes it (without the body); false when the delivery is not queued.
func (s *Store) QueuedItem(ctx context.Context, tid, eid, did string) (QueueItem, bool, error) {
	v, err := s.rdb.HGet(ctx, endpointQueueKey(tid, eid), did).Result()
	if errors.Is(err, redis.Nil) {
		return QueueItem{}, false, nil
	}
	if err != nil {
		return QueueItem{}, false, storeErr("read queue entry", err)
	}
	it, ok := parseQueueItem(did, v)
	return it, ok, nil
}

// RecordAny records an attempt as the worker would: through Finish (as the endpoint's drain)
// while the delivery is queued in the attempt's generation, else through RecordAttempt (as its
// retry task). For tests and tools that play the worker's part.
func (s *Store) RecordAny(ctx context.Context, r AttemptRecord) (Recorded, error) {
	q := r.Queued
	it, ok, err := s.QueuedItem(ctx, r.TenantID, q.EndpointID, q.DeliveryID)
	if err != nil {
		return Recorded{}, err
	}
	if !ok || it.Generation != q.Generation {
		return s.RecordAttempt(ctx, r)
	}
	fin, err := s.Finish(ctx, FinishRequest{TenantID: r.TenantID, EndpointID: q.EndpointID,
		Sent:         []Sent{{Item: it, Outcome: r.Outcome, Attempt: &r.Attempt, NextAttemptAt: r.NextAttemptAt}},
		DisableAfter: r.DisableAfter, DisableMinWindow: r.DisableMinWindow, MaxAttempts: r.MaxAttempts})
	if err != nil {
		return Recorded{}, err
	}
	return Recorded{Status: fin.Statuses[0], Disabled: fin.Disabled}, nil
}

// queuedDelivery is the view of a delivery that has no record yet: queued, never attempted.
func queuedDelivery(tid, eid string, it QueueItem) *Delivery {
	at := it.CreatedAt
	return &Delivery{ID: it.DeliveryID, TenantID: tid, WebhookID: eid, EventID: it.EventID, EventType: it.EventType,
		Status: DeliveryPending, CreatedAt: at, UpdatedAt: at, NextAttemptAt: &at, Generation: it.Generation}
}

// firstAttempt reads the first attempt kept in a record created by a drain.
func firstAttempt(m map[string]string) (Attempt, bool) {
	var a Attempt
	js := m["first"]
	return a, js != "" && json.Unmarshal([]byte(js), &a) == nil
}
