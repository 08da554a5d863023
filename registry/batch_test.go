package registry_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

// newBatch is n scan.completed events of scans of their own, created now.
func (e *env) newBatch(n int, idemKey string) registry.NewBatch {
	b := registry.NewBatch{IdempotencyKey: idemKey, RequestHash: "h"}
	for i := range n {
		id := newEventID()
		b.Events = append(b.Events, registry.NewEvent{ID: id, Type: registry.EventScanCompleted, CreatedAt: e.clock.Now(),
			Body: eventBody(id, registry.EventScanCompleted), ScanID: fmt.Sprintf("scan-%d", i)})
	}
	return b
}

func (e *env) used(t *testing.T, tid string) int64 {
	t.Helper()
	u, err := e.store.Usage(t.Context(), tid)
	if err != nil {
		t.Fatal(err)
	}
	return u.EventsPublished
}

// stored counts the events of b that can be read.
func (e *env) stored(t *testing.T, tid string, b registry.NewBatch) int {
	t.Helper()
	n := 0
	for _, ev := range b.Events {
		if _, err := e.store.Event(t.Context(), tid, ev.ID); err == nil {
			n++
		}
	}
	return n
}

// TestPublishEventsAllOrNone: a batch that would pass the quota stores and counts nothing; one
// within it stores and counts every event.
func TestPublishEventsAllOrNone(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 5)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(6, "")
		b.Quota = 5
		_, err := e.store.PublishEvents(t.Context(), tn.ID, b)
		wantCode(t, err, registry.CodeQuotaExceeded)
		if n, used := e.stored(t, tn.ID, b), e.used(t, tn.ID); n != 0 || used != 0 {
			t.Errorf("after a refused batch: %d events stored, %d counted; want none", n, used)
		}
		b.Events = b.Events[:5]
		sb, err := e.store.PublishEvents(t.Context(), tn.ID, b)
		if err != nil || len(sb.Events) != 5 || len(sb.Drains) != 1 {
			t.Fatalf("PublishEvents = %+v, %v; want 5 events and the one drain of their endpoint", sb, err)
		}
		for _, st := range sb.Events {
			if !st.Inline || st.Deliveries != 1 {
				t.Errorf("event %s: inline %v, %d deliveries; want its delivery queued with it", st.Event.ID, st.Inline, st.Deliveries)
			}
		}
		if items, _ := e.take(t, tn.ID, ep.ID, sb.Drains[0].N, 10); len(items) != 5 {
			t.Errorf("endpoint queue holds %d deliveries, want 5", len(items))
		}
		if used := e.used(t, tn.ID); used != 5 {
			t.Errorf("%d events counted, want 5", used)
		}
	})
}

// TestRetractEvents: a batch none of whose work was queued is withdrawn whole; once any of its
// work may be under way, nothing is.
func TestRetractEvents(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(3, "retract-me")
		sb, err := e.store.PublishEvents(t.Context(), tn.ID, b)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := e.store.RetractEvents(t.Context(), tn.ID, b.IdempotencyKey, sb)
		if !ok || err != nil {
			t.Fatalf("RetractEvents = %v, %v; want retracted", ok, err)
		}
		if n, used := e.stored(t, tn.ID, b), e.used(t, tn.ID); n != 0 || used != 0 {
			t.Errorf("after retracting: %d events stored, %d counted; want none", n, used)
		}
		if ds, total, _ := e.store.ListDeliveries(t.Context(), tn.ID, ep.ID, "", registry.Page{Page: 1, Limit: 10}); total != 0 {
			t.Errorf("after retracting: %d deliveries listed (%v), want none", total, ds)
		}
		// The key is free again: the same batch is stored anew.
		if again, err := e.store.PublishEvents(t.Context(), tn.ID, b); err != nil || again.Replayed {
			t.Errorf("publish after retracting = %+v, %v; want stored, not replayed", again, err)
		}
	})
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		e.endpoint(t, tn.ID, registry.EventScanCompleted)
		b := e.newBatch(2, "")
		sb, err := e.store.PublishEvents(t.Context(), tn.ID, b) // fan-out tasks: nothing inline
		if err != nil {
			t.Fatal(err)
		}
		// A sweep queued the second event's fan-out: the batch stands.
		if err := e.store.OutboxDone(t.Context(), tn.ID, registry.FanoutEntry(b.Events[1].ID)); err != nil {
			t.Fatal(err)
		}
		if ok, err := e.store.RetractEvents(t.Context(), tn.ID, "", sb); ok || err != nil {
			t.Errorf("RetractEvents = %v, %v; want refused once any fan-out was taken", ok, err)
		}
		if n := e.stored(t, tn.ID, b); n != 2 {
			t.Errorf("%d events stored, want both", n)
		}
	})
}

// TestBatchWorkIsOneCommandAKey: a batch of events to the same endpoints reads each endpoint
// and schedules its drain once, not once an event, and writes the events' records, each
// endpoint's queue and the event log one command a key (at flush); a drain takes a batch of
// deliveries with their events in one read, and records their outcomes with one command for
// each queue and index they leave or join. Counted by redis-server (INFO commandstats) on a
// server of the test's own, so that no other test's commands are counted; the deliveries end
// as they would one at a time.
func TestBatchWorkIsOneCommandAKey(t *testing.T) {
	srv := registrytest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	e := newEnv(t, rdb, registry.Config{InlineFanout: 32})
	tn := e.tenant(t, 0)
	plain := e.endpoint(t, tn.ID)
	ordered, err := e.store.CreateEndpoint(t.Context(), tn.ID, registry.NewEndpoint{URL: "https://hooks.example.test/ordered",
		Events: []string{registry.EventScanCompleted}, Secret: newSecret(t), Ordering: registry.OrderingScan})
	if err != nil {
		t.Fatal(err)
	}
	b := e.newBatch(50, "")
	for i := range b.Events {
		b.Events[i].ScanID = fmt.Sprintf("scan-%d", i%5)
	}
	resetStats(t, rdb)
	sb, err := e.store.PublishEvents(t.Context(), tn.ID, b)
	if err != nil || len(sb.Drains) != 2 {
		t.Fatalf("PublishEvents = %+v, %v; want the drains of both endpoints", sb, err)
	}
	// Written at flush, one command a key: the events' records (one HSET of their minute's hash),
	// each endpoint's queued deliveries (one ZADD and one HSET each), the log (one ZADD). One a
	// delivery: the 45 that wait behind their lane's head on the ordered endpoint (a ZADD of the
	// waiting index, an HSET of the queue entry) and the scan index's entries of scans already in
	// it (an HSET); the lanes' heads (5 HSETs) and the drains (2 ZADDs of the outbox).
	wantAtMost(t, "a batch of 50 events to 2 endpoints", commandCalls(t, rdb), map[string]int{"hmget": 2, "exists": 2,
		"zadd": 1 + 1 + 45 + 1 + 2, "hset": 1 + 2 + 45 + 45 + 5})

	drains := map[string]int64{sb.Drains[0].EndpointID: sb.Drains[0].N, sb.Drains[1].EndpointID: sb.Drains[1].N}
	if items, _ := e.take(t, tn.ID, ordered.ID, drains[ordered.ID], 50); len(items) != 5 {
		t.Errorf("ordered endpoint: %d deliveries queued, want one a scan (5), the rest waiting in lanes", len(items))
	}
	resetStats(t, rdb)
	items, _ := e.take(t, tn.ID, plain.ID, drains[plain.ID], 16)
	if len(items) != 16 {
		t.Fatalf("took %d deliveries, want 16", len(items))
	}
	for _, it := range items {
		if !strings.Contains(string(it.Body), it.EventID) {
			t.Fatalf("delivery %s was taken with body %q, not its event's", it.DeliveryID, it.Body)
		}
	}
	wantAtMost(t, "taking 16 deliveries", commandCalls(t, rdb), map[string]int{"get": 1, "mget": 1})
	resetStats(t, rdb)
	var sent []registry.Outcome
	for i, it := range items {
		out := registry.OutcomeSuccess
		if i%4 == 0 {
			out = registry.OutcomeFailure
		}
		sent = append(sent, registry.Outcome{Item: it, Outcome: out, Attempt: e.sentAttempt(200)})
	}
	fin := e.finish(t, tn.ID, plain.ID, policy{disableAfter: 100, maxAttempts: 5}, sent...)
	// HDEL: the queue entries and the endpoint's streak. HSET: the 12 kept successes in one (their
	// minute's hash), a record for each of the 4 retrying, the endpoint's health.
	wantAtMost(t, "recording 16 outcomes", commandCalls(t, rdb), map[string]int{
		"hdel": 2, "zrem": 1, "zadd": 3, "hget": 0, "hset": 1 + 4 + 1})
	if ok, retrying := e.statusCount(t, tn.ID, plain.ID, registry.DeliverySucceeded),
		e.statusCount(t, tn.ID, plain.ID, registry.DeliveryRetrying); ok != 12 || retrying != 4 {
		t.Errorf("after the batch: %d succeeded, %d retrying (%v); want 12 and 4", ok, retrying, fin.Statuses)
	}
	if n := e.statusCount(t, tn.ID, plain.ID, registry.DeliveryPending); n != 34 {
		t.Errorf("%d deliveries still pending, want 34", n)
	}
}

func resetStats(t *testing.T, rdb *redis.Client) {
	t.Helper()
	if err := rdb.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

// wantAtMost fails for each command called more often than most allows.
func wantAtMost(t *testing.T, what string, calls, most map[string]int) {
	t.Helper()
	for cmd, n := range most {
		if calls[cmd] > n {
			t.Errorf("%s: %d %s, want at most %d", what, calls[cmd], strings.ToUpper(cmd), n)
		}
	}
}

// commandCalls is redis-server's INFO commandstats: calls by command, lower case.
func commandCalls(t *testing.T, rdb *redis.Client) map[string]int {
	t.Helper()
	info, err := rdb.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		calls[name] = n
	}
	return calls
}
