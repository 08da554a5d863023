package registry

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The outbox is a sorted set per tenant of work that was accepted but may not be on the task
// queue yet: the script that accepts the work writes its entry in the same atomic step, and the
// entry stays until the work is surely queued (a fan-out), ends (a drain) or fires (a retry
// timer). Every worker sweeps it (delivery.Worker.Sweep), so a crash between a write and its
// enqueue delays work but never loses it. Entries are scored with the time the work is due.
//
// This file and luaEncodings below are the only places that spell an entry; everything else
// handles the typed Work.

// OutboxEntry is one member of a tenant's outbox, as stored.
type OutboxEntry string

// Work is what one outbox entry stands for; exactly one of Fanout, Drain, Retry, Recovery and
// Operational is set.
type Work struct {
	Entry OutboxEntry
	// Fanout is the id of an event whose fan-out task may not be queued.
	Fanout string
	// Drain is a drain of an endpoint's queue; its entry stays until the drain ends.
	Drain *Drain
	// Retry is a delivery's retry timer; its entry stays until the timer fires.
	Retry *Retry
	// Recovery is a recovery's work; its entry stays until the recovery is done.
	Recovery *RecoveryRef
	// Operational is the id of an operational event recorded but maybe not yet published.
	Operational string
}

// Retry names one retry timer of a delivery: the run (generation) and how many attempts the
// run had made when the retry was scheduled. When it fires the delivery goes back on its
// endpoint's queue, unless it has moved on since (held, queued again, deleted).
type Retry struct {
	DeliveryID string
	EndpointID string
	Generation int
	// Run is the attempts of the run so far; -1 when unknown (a timer queued by a version
	// that did not record it), in which case the generation alone tells a stale timer.
	Run int
}

// FanoutEntry is the entry of an event's fan-out.
func FanoutEntry(evid string) OutboxEntry { return "e:" + OutboxEntry(evid) }

// OutboxEntry is the entry of a drain, kept until the drain ends.
func (d Drain) OutboxEntry() OutboxEntry {
	return OutboxEntry("q:" + d.String())
}

// OutboxEntry is the entry of a retry timer, kept until it fires.
func (r Retry) OutboxEntry() OutboxEntry {
	e := "d:" + r.DeliveryID + ":" + r.EndpointID + ":" + strconv.Itoa(r.Generation)
	if r.Run >= 0 {
		e += ":" + strconv.Itoa(r.Run)
	}
	return OutboxEntry(e)
}

// luaEncodings writes the entries as the Go functions above read them.
const luaEncodings = `
local function fanoutEntry(evid) return 'e:' .. evid end
local function drainEntry(eid, n) return 'q:' .. eid .. ':' .. n end
local function retryEntry(did, eid, gen, run) return 'd:' .. did .. ':' .. eid .. ':' .. gen .. ':' .. run end
local function opEntry(opid) return 'o:' .. opid end
`

// ParseWork reads an outbox entry; false for one it does not know.
func ParseWork(e OutboxEntry) (Work, bool) {
	kind, rest, _ := strings.Cut(string(e), ":")
	w := Work{Entry: e}
	switch kind {
	case "e":
		w.Fanout = rest
		return w, rest != ""
	case "q":
		d, ok := parseDrain(rest)
		w.Drain = &d
		return w, ok
	case "d":
		r, ok := parseRetry(rest)
		w.Retry = &r
		return w, ok
	case "v":
		w.Recovery = &RecoveryRef{ID: rest}
		return w, rest != ""
	case "o":
		w.Operational = rest
		return w, rest != ""
	}
	return w, false
}

// parseDrain reads "eid:n".
func parseDrain(s string) (Drain, bool) {
	eid, n, ok := strings.Cut(s, ":")
	v, err := strconv.ParseInt(n, 10, 64)
	return Drain{EndpointID: eid, N: v}, ok && err == nil && eid != ""
}

// parseRetry reads "did:eid:gen:run", or "did:eid:gen" (Run -1).
func parseRetry(s string) (Retry, bool) {
	p := strings.Split(s, ":")
	if len(p) != 3 && len(p) != 4 {
		return Retry{}, false
	}
	r := Retry{DeliveryID: p[0], EndpointID: p[1], Run: -1}
	var err error
	if r.Generation, err = strconv.Atoi(p[2]); err != nil {
		return Retry{}, false
	}
	if len(p) == 4 {
		if r.Run, err = strconv.Atoi(p[3]); err != nil || r.Run < 0 {
			return Retry{}, false
		}
	}
	return r, r.DeliveryID != "" && r.EndpointID != ""
}

// DueOutbox returns up to limit outbox entries of a tenant due before before, read; entries it
// cannot read are left out.
func (s *Store) DueOutbox(ctx context.Context, tid string, before time.Time, limit int64) ([]Work, error) {
	raw, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: outboxKey(tid), Start: "-inf",
		Stop: strconv.FormatInt(ms(before), 10), ByScore: true, Count: limit}).Result()
	if err != nil {
		return nil, storeErr("read outbox", err)
	}
	out := make([]Work, 0, len(raw))
	for _, e := range raw {
		if w, ok := ParseWork(OutboxEntry(e)); ok {
			out = append(out, w)
		}
	}
	return out, nil
}

// OutboxDone removes entries whose work is queued.
func (s *Store) OutboxDone(ctx context.Context, tid string, entries ...OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	members := make([]any, len(entries))
	for i, e := range entries {
		members[i] = string(e)
	}
	return storeErr("clear outbox", s.rdb.ZRem(ctx, outboxKey(tid), members...).Err())
}
