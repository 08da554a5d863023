package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// String is the drain as scripts return and take it: "eid:n" (parseDrain reads it).
func (d Drain) String() string { return d.EndpointID + ":" + strconv.FormatInt(d.N, 10) }

func parseDrains(in []string) []Drain {
	var out []Drain
	for _, s := range in {
		if d, ok := parseDrain(s); ok {
			out = append(out, d)
		}
	}
	return out
}

// QueueEntry is what an endpoint's queue holds for one delivery: enough to send it and to
// create its record, and the run it is queued in. The scripts write it (luaQueueEntry); Go only
// reads it, and hands it back unchanged to tell a superseded delivery.
type QueueEntry struct {
	EventID    string
	EventType  string
	CreatedAt  time.Time
	Generation int
	// HasRecord is true when the delivery already has a record (a retry, a re-enable, a test).
	HasRecord bool
	// Run is how many attempts the run has made: 0 for a first attempt or a fresh run.
	Run int
	// Lane is the delivery's scan lane (LaneOf its event's scanId); empty for none.
	Lane string
	// After is the delivery it waits for in its lane; empty when it is not waiting.
	After string
}

// luaQueueEntry writes and reads entries as "eventId|eventType|createdAtMs|generation|
// hasRecord|run|lane|after"; an entry of an earlier version ends after hasRecord or run.
const luaQueueEntry = `
local function queueEntry(evid, etype, created, gen, rec, run, lane, after)
  return evid .. '|' .. etype .. '|' .. created .. '|' .. gen .. '|' .. rec .. '|' .. run .. '|' .. lane .. '|' .. after
end
-- entryEvent reads only the event id, at a third of parseEntry's cost.
local function entryEvent(v) return (string.match(v, '^[^|]*')) end
local ENTRY = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'
local function parseEntry(v)
  local ev, et, c, g, r, n, l, a = string.match(v, ENTRY)
  if ev then return ev, et, c, tonumber(g), r, tonumber(n), l, a end
  local f = {} -- an entry of an earlier version
  for x in string.gmatch(v .. '|', '([^|]*)|') do table.insert(f, x) end
  return f[1], f[2], f[3], tonumber(f[4]), f[5], tonumber(f[6] or '0'), f[7] or '', f[8] or ''
end
`

func parseQueueEntry(v string) (QueueEntry, bool) {
	p := strings.Split(v, "|")
	if len(p) != 5 && len(p) != 6 && len(p) != 8 {
		return QueueEntry{}, false
	}
	gen, err := strconv.Atoi(p[3])
	if err != nil {
		return QueueEntry{}, false
	}
	e := QueueEntry{EventID: p[0], EventType: p[1], CreatedAt: fromMs(p[2]), Generation: gen, HasRecord: p[4] == "1"}
	if len(p) >= 6 {
		if e.Run, err = strconv.Atoi(p[5]); err != nil {
			return QueueEntry{}, false
		}
	}
	if len(p) == 8 {
		e.Lane, e.After = p[6], p[7]
	}
	return e, true
}

// LaneOf names the lane of a scan's deliveries to an ordered endpoint: a hash of its scanId, so
// that any id the publisher chose is safe in keys and queue entries; empty for no scanId.
func LaneOf(scanID string) string {
	if scanID == "" {
		return ""
	}
	h := sha256.Sum256([]byte(scanID))
	return hex.EncodeToString(h[:10])
}

// QueueItem is one queued delivery a drain took: its entry as stored (handed back when it is
// finished) and what sending it needs.
type QueueItem struct {
	QueueEntry
	DeliveryID string
	Entry      string
	// Body is the event's body; empty when the event has expired.
	Body []byte
}

func parseQueueItem(did, entry string) (QueueItem, bool) {
	e, ok := parseQueueEntry(entry)
	return QueueItem{QueueEntry: e, DeliveryID: did, Entry: entry}, ok
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

var takeScript = script("take")

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
	return takenItems(tid, res[2:]), takenEndpoint(tid, res[1]), nil
}

func takenEndpoint(tid string, v any) *Endpoint {
	flat, _ := v.([]any)
	if len(flat) == 0 {
		return nil
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	return endpointFromFields(tid, m)
}

func takenItems(tid string, res []any) []QueueItem {
	items := make([]QueueItem, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		did, _ := res[i].(string)
		entry, _ := res[i+1].(string)
		record, _ := res[i+2].(string)
		if it, ok := parseQueueItem(did, entry); ok {
			if ev := parseEvent(tid, it.EventID, record); ev != nil {
				it.Body = ev.Body
			}
			items = append(items, it)
		}
	}
	return items
}

var endDrainScript = script("enddrain")

// EndDrain ends a drain whose queue looked empty: "ended", or "more" when something was queued
// meanwhile. With handoff it instead passes the lease to a successor it returns (recorded in
// the outbox until it ends). ErrDrainLost when the drain no longer holds the lease.
func (s *Store) EndDrain(ctx context.Context, tid string, d Drain, handoff bool) (string, *Drain, error) {
	mode := "end"
	if handoff {
		mode = "handoff"
	}
	res, err := endDrainScript.Run(ctx, s.rdb, []string{drainKey(tid, d.EndpointID), drainCountKey(tid, d.EndpointID),
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

// AttemptOutcome is how an attempt ended, for the failure streak.
type AttemptOutcome string

// Outcomes of an attempt.
const (
	OutcomeSuccess   AttemptOutcome = "success"
	OutcomeFailure   AttemptOutcome = "failure"
	OutcomeGone      AttemptOutcome = "gone"
	OutcomeThrottled AttemptOutcome = "throttled"
	// OutcomeExpired marks a queued delivery whose event expired before it was sent.
	OutcomeExpired AttemptOutcome = "expired"
)

// Outcome is one finished attempt of a queued delivery and what the policy decided follows.
type Outcome struct {
	Item    QueueItem
	Outcome AttemptOutcome
	// Attempt is nil when nothing was sent (the event expired).
	Attempt *Attempt
	// Status is the delivery's next status: succeeded, retrying (at NextAttemptAt) or failed.
	Status        string
	NextAttemptAt time.Time
	// Disable, when set, is the reason to disable the endpoint at once (gone).
	Disable string
	// Backoff is true for a 429 or 503 answer: the endpoint's effective concurrency halves.
	Backoff bool
}

// FinishRequest is a batch of a drain's finished attempts, the streak rule that judges them,
// and the most attempts the endpoint may have in flight (its effective concurrency's ceiling).
type FinishRequest struct {
	TenantID, EndpointID string
	Outcomes             []Outcome
	Streak               StreakRule
	MaxConcurrency       int
}

// Finished is what Finish did: each delivery's status now, in the order given (the decided
// one, "held" when the endpoint is disabled, or "stale" when the delivery was superseded
// meanwhile), and, when the batch disabled the endpoint, the reason and the delivery whose
// attempt did it.
type Finished struct {
	Statuses       []string
	DisabledReason string
	DisabledBy     string
	// Concurrency is the endpoint's effective concurrency after the batch.
	Concurrency int
	// Ops are the operational events the batch recorded, to publish (PublishOp).
	Ops []string
}

// statsTTL is how long an endpoint's hourly stats are kept: the longest window they answer
// for, and an hour.
const statsTTL = 7*24*time.Hour + time.Hour

var finishScript = script("health", "finish")

// Finish records a batch of a drain's attempts atomically (see lua/finish.lua). A delivery
// left retrying has its retry timer in the outbox; the caller queues it (Retry).
func (s *Store) Finish(ctx context.Context, r FinishRequest) (Finished, error) {
	tid, eid := r.TenantID, r.EndpointID
	retSec := s.retentionSec()
	args := make([]any, 0, 8+12*len(r.Outcomes))
	args = append(args, tenantTag(tid), eid, ms(s.now()), r.Streak.Threshold, r.Streak.MinWindow.Milliseconds(), retSec,
		max(r.MaxConcurrency, 1), int64(statsTTL/time.Second))
	for _, o := range r.Outcomes {
		att, end := attemptArgs(o.Attempt, s.now())
		var dur int64
		keptF, keptV := "", ""
		if o.Attempt != nil {
			dur = o.Attempt.DurationMs
		}
		if o.Attempt != nil && o.Status == DeliverySucceeded {
			keptF = keptField(o.Item.DeliveryID)
			keptV = keptValue(o.Item.EventID, o.Item.EventType, ms(o.Item.CreatedAt), ms(end), att)
		}
		args = append(args, o.Item.DeliveryID, o.Item.Entry, string(o.Outcome), o.Status, o.Disable, att, ms(end),
			ms(o.NextAttemptAt), o.Backoff, dur, keptF, keptV)
	}
	res, err := finishScript.Run(ctx, s.rdb, []string{endpointKey(tid, eid), endpointQueueKey(tid, eid),
		endpointStatusKey(tid, eid, DeliveryPending), outboxKey(tid)}, args...).StringSlice()
	if err != nil {
		return Finished{}, storeErr("finish attempts", err)
	}
	fin := Finished{DisabledReason: res[0], DisabledBy: res[1]}
	fin.Concurrency, _ = strconv.Atoi(res[2])
	n, _ := strconv.Atoi(res[3])
	fin.Ops, fin.Statuses = res[4:4+n], res[4+n:]
	return fin, nil
}

// attemptArgs encodes an attempt for finish and tells when it ended (now when none was made).
func attemptArgs(a *Attempt, now time.Time) (string, time.Time) {
	if a == nil {
		return "", now
	}
	return encodeAttempt(a), a.StartedAt.Add(time.Duration(a.DurationMs) * time.Millisecond)
}

var dueScript = script("due")

// Due fires a retry timer: the delivery goes back on its endpoint's queue for its next
// attempt, and the drain to schedule, if any, is returned. A timer whose delivery has moved on
// since (held, queued again, finished, deleted) does nothing; its outbox entry goes either way.
func (s *Store) Due(ctx context.Context, tid string, r Retry) ([]Drain, error) {
	run := ""
	if r.Run >= 0 {
		run = strconv.Itoa(r.Run)
	}
	res, err := dueScript.Run(ctx, s.rdb, []string{deliveryKey(tid, r.DeliveryID), endpointKey(tid, r.EndpointID),
		outboxKey(tid)}, tenantTag(tid), r.DeliveryID, r.EndpointID, r.Generation, run, ms(s.now()),
		string(r.OutboxEntry()), s.retentionSec()).StringSlice()
	if err != nil {
		return nil, storeErr("fire retry", err)
	}
	return parseDrains(res[1:]), nil
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

// queuedDelivery is the view of a delivery that has no record yet: queued, never attempted.
func queuedDelivery(tid, eid string, it QueueItem) *Delivery {
	at := it.CreatedAt
	return &Delivery{ID: it.DeliveryID, TenantID: tid, WebhookID: eid, EventID: it.EventID, EventType: it.EventType,
		Status: DeliveryPending, CreatedAt: at, UpdatedAt: at, NextAttemptAt: &at, Generation: it.Generation}
}

// firstAttempt reads the first attempt kept in a record created by a drain.
func firstAttempt(m map[string]string) (Attempt, bool) {
	return decodeAttempt(m["first"])
}
