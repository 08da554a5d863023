package registry_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

// leaseOf reads the number of the drain holding the endpoint's queue lease; 0 when none does.
func (e *env) leaseOf(t *testing.T, tid, eid string) int64 {
	t.Helper()
	n, err := e.rdb.Get(t.Context(), registry.DrainKeyOf(tid, eid)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET drain key: %v", err)
	}
	return n
}

// endLease drops the endpoint's drain lease, as a drain that ended would.
func (e *env) endLease(t *testing.T, tid, eid string) {
	t.Helper()
	if err := e.rdb.Del(t.Context(), registry.DrainKeyOf(tid, eid)).Err(); err != nil {
		t.Fatalf("DEL drain key: %v", err)
	}
}

// hasRecord reports whether the delivery has a record (a dlv hash) of its own.
func (e *env) hasRecord(t *testing.T, tid, did string) bool {
	t.Helper()
	n, err := e.rdb.Exists(t.Context(), registry.DeliveryKeyOf(tid, did)).Result()
	if err != nil {
		t.Fatalf("EXISTS record: %v", err)
	}
	return n == 1
}

// take takes up to limit items of the endpoint's queue as drain n, failing the test on an error.
func (e *env) take(t *testing.T, tid, eid string, n int64, limit int, skip ...string) ([]registry.QueueItem, *registry.Endpoint) {
	t.Helper()
	items, ep, err := e.store.Take(t.Context(), registry.TakeRequest{TenantID: tid, EndpointID: eid, N: n, Limit: limit, Skip: skip})
	if err != nil {
		t.Fatalf("Take(drain %d, limit %d, skip %v): %v", n, limit, skip, err)
	}
	return items, ep
}

// testMaxConcurrency is the effective concurrency's ceiling the tests' batches are recorded with.
const testMaxConcurrency = 16

// finish records one batch of attempts, each with the status p gives it, failing the test on
// an error.
func (e *env) finish(t *testing.T, tid, eid string, p policy, sent ...registry.Outcome) registry.Finished {
	t.Helper()
	for i := range sent {
		sent[i].Status, sent[i].Disable = registrytest.Step(p.maxAttempts, sent[i].Item.Run+1, sent[i].Outcome)
	}
	fin, err := e.store.Finish(t.Context(), registry.FinishRequest{TenantID: tid, EndpointID: eid, Outcomes: sent,
		Streak: p.streak(), MaxConcurrency: testMaxConcurrency})
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if len(fin.Statuses) != len(sent) {
		t.Fatalf("Finish answered %d statuses for %d attempts: %v", len(fin.Statuses), len(sent), fin.Statuses)
	}
	return fin
}

// sentAttempt is an attempt that ends at the clock's reading, numbered as a drain numbers a
// first attempt.
func (e *env) sentAttempt(code int) *registry.Attempt {
	end := e.clock.Now()
	return &registry.Attempt{Number: 1, StartedAt: end.Add(-250 * time.Millisecond), DurationMs: 250, StatusCode: code,
		ResponseBody: "answer " + end.Format(time.RFC3339Nano)}
}

func sameAttempt(a, b registry.Attempt) bool {
	a.StartedAt, b.StartedAt = a.StartedAt.UTC(), b.StartedAt.UTC()
	return a.StartedAt.Equal(b.StartedAt) && a.Number == b.Number && a.DurationMs == b.DurationMs &&
		a.StatusCode == b.StatusCode && a.Error == b.Error && a.ResponseBody == b.ResponseBody
}

func itemIDs(items []registry.QueueItem) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.DeliveryID)
	}
	return out
}

// A drain is handed the head of its endpoint's queue in order, each item with its event's
// body, and the endpoint; Limit caps the batch and Skip passes over the items in flight.
// Taking leaves the items queued.
func TestTakeHandsOutQueueInOrder(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 4)
		n := e.leaseOf(t, tn.ID, ep.ID)
		if n == 0 {
			t.Fatal("no drain holds the queue after the fan-out")
		}
		if outbox := e.dueOutbox(t, tn.ID); !slices.Contains(outbox, registry.Drain{EndpointID: ep.ID, N: n}.OutboxEntry()) {
			t.Errorf("outbox %v lacks the drain %d scheduled by the fan-out", outbox, n)
		}

		items, got := e.take(t, tn.ID, ep.ID, n, 10)
		if got == nil || got.ID != ep.ID || got.URL != ep.URL || !got.Enabled || got.Secret != ep.Secret {
			t.Errorf("Take endpoint = %+v, want %s active with its URL and secret", got, ep.ID)
		}
		if len(items) != len(qs) {
			t.Fatalf("Take(limit 10) = %d items, want %d", len(items), len(qs))
		}
		for i, it := range items {
			d := e.delivery(t, tn.ID, qs[i])
			ev, err := e.store.Event(ctx, tn.ID, it.EventID)
			if err != nil {
				t.Fatalf("Event(%s): %v", it.EventID, err)
			}
			if it.DeliveryID != qs[i].DeliveryID || it.DeliveryID != registry.DeliveryID(it.EventID, ep.ID) ||
				it.EventType != registry.EventScanCompleted || it.Generation != 0 || it.HasRecord ||
				!it.CreatedAt.Equal(d.CreatedAt) || it.Entry == "" {
				t.Errorf("item %d = %+v, want %s of generation 0 without a record, created %v", i, it, qs[i].DeliveryID, d.CreatedAt)
			}
			if !bytes.Equal(it.Body, ev.Body) {
				t.Errorf("item %d body = %q, want the event's %q", i, it.Body, ev.Body)
			}
			if i > 0 && !items[i-1].CreatedAt.Before(it.CreatedAt) {
				t.Errorf("item %d created %v, not after item %d (%v)", i, it.CreatedAt, i-1, items[i-1].CreatedAt)
			}
		}

		cases := []struct {
			name    string
			limit   int
			skip    []int
			unknown []string // ids skipped that are not queued
			want    []int
		}{
			{"limit", 2, nil, nil, []int{0, 1}},
			{"limit one", 1, nil, nil, []int{0}},
			{"skip the head", 2, []int{0, 1}, nil, []int{2, 3}},
			{"skip one in the middle", 10, []int{1}, nil, []int{0, 2, 3}},
			{"limit after a skip", 1, []int{0}, nil, []int{1}},
			{"skip every one", 10, []int{0, 1, 2, 3}, nil, nil},
			{"skip ids not queued", 2, nil, []string{"no-such-delivery", "another"}, []int{0, 1}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				skip := slices.Clone(c.unknown)
				for _, i := range c.skip {
					skip = append(skip, qs[i].DeliveryID)
				}
				var want []string
				for _, i := range c.want {
					want = append(want, qs[i].DeliveryID)
				}
				items, _ := e.take(t, tn.ID, ep.ID, n, c.limit, skip...)
				if got := itemIDs(items); !slices.Equal(got, want) {
					t.Errorf("Take(limit %d, skip %v) = %v, want %v", c.limit, skip, got, want)
				}
			})
		}

		for _, q := range qs {
			if _, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID); !ok {
				t.Errorf("%s left the queue when taken, want it queued until finished", q.DeliveryID)
			}
		}
		if got := e.statusCount(t, tn.ID, ep.ID, registry.DeliveryPending); got != len(qs) {
			t.Errorf("pending after Take = %d, want %d", got, len(qs))
		}
	})
}

// Only the drain holding the lease takes; a lapsed lease is taken over by the next drain that
// asks, and the drain that had it has lost it.
func TestTakeLease(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		n := e.leaseOf(t, tn.ID, ep.ID)

		_, _, err := e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n + 1, Limit: 10})
		if !errors.Is(err, registry.ErrDrainLost) {
			t.Errorf("Take by drain %d while %d holds the lease = %v, want ErrDrainLost", n+1, n, err)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != n {
			t.Errorf("lease after a refused take = %d, want %d", got, n)
		}
		_, _, err = e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n + 1, Limit: 10, EndIfEmpty: true})
		if !errors.Is(err, registry.ErrDrainLost) {
			t.Errorf("Take(EndIfEmpty) by drain %d while %d holds the lease = %v, want ErrDrainLost", n+1, n, err)
		}

		items, _, err := e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n, Limit: 10, Renew: true})
		if err != nil || len(items) != 1 || items[0].DeliveryID != q.DeliveryID {
			t.Fatalf("Take(renew) by the holder = %v, %v; want %s", itemIDs(items), err, q.DeliveryID)
		}
		if ttl, err := e.rdb.PTTL(ctx, registry.DrainKeyOf(tn.ID, ep.ID)).Result(); err != nil || ttl <= 0 || ttl > registry.DrainLease {
			t.Errorf("lease TTL after a renewal = %v, %v; want within (0, %v]", ttl, err, registry.DrainLease)
		}
		// A renewal-only take (Limit 0) keeps the lease and hands out nothing.
		if items, _ := e.take(t, tn.ID, ep.ID, n, 0); len(items) != 0 {
			t.Errorf("Take(limit 0) = %v, want nothing", itemIDs(items))
		}

		// The lease lapses: the next drain to ask takes it over, with the lease's expiry.
		if err := e.rdb.Del(ctx, registry.DrainKeyOf(tn.ID, ep.ID)).Err(); err != nil {
			t.Fatal(err)
		}
		items, _ = e.take(t, tn.ID, ep.ID, n+1, 10)
		if got := itemIDs(items); !slices.Equal(got, []string{q.DeliveryID}) {
			t.Errorf("Take by the drain taking over = %v, want [%s]", got, q.DeliveryID)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != n+1 {
			t.Errorf("lease after the take-over = %d, want %d", got, n+1)
		}
		if ttl, err := e.rdb.PTTL(ctx, registry.DrainKeyOf(tn.ID, ep.ID)).Result(); err != nil || ttl <= 0 || ttl > registry.DrainLease {
			t.Errorf("lease TTL after the take-over = %v, %v; want within (0, %v]", ttl, err, registry.DrainLease)
		}
		_, _, err = e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n, Limit: 10, Renew: true})
		if !errors.Is(err, registry.ErrDrainLost) {
			t.Errorf("Take by the drain whose lease lapsed = %v, want ErrDrainLost", err)
		}
	})
}

// EndIfEmpty ends the drain only when nothing is queued: a queue whose items are all in flight
// (skipped) keeps it; an empty one ends it, its lease and outbox entry gone.
func TestTakeEndIfEmpty(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		n := e.leaseOf(t, tn.ID, ep.ID)
		entry := registry.Drain{EndpointID: ep.ID, N: n}.OutboxEntry()
		endIfEmpty := registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n, Limit: 10, EndIfEmpty: true}

		in := endIfEmpty
		in.Skip = []string{q.DeliveryID}
		if items, _, err := e.store.Take(ctx, in); err != nil || len(items) != 0 {
			t.Errorf("Take(EndIfEmpty) with the only item in flight = %v, %v; want nothing and no end", itemIDs(items), err)
		}
		items, _, err := e.store.Take(ctx, endIfEmpty)
		if err != nil || len(items) != 1 {
			t.Fatalf("Take(EndIfEmpty) of a queued item = %v, %v; want it", itemIDs(items), err)
		}
		if fin := e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess,
			Attempt: e.sentAttempt(200)}); fin.Statuses[0] != registry.DeliverySucceeded {
			t.Fatalf("Finish = %v, want succeeded", fin.Statuses)
		}

		// Without EndIfEmpty an empty queue keeps the drain.
		if items, _ := e.take(t, tn.ID, ep.ID, n, 10); len(items) != 0 {
			t.Errorf("Take of an empty queue = %v, want nothing", itemIDs(items))
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != n {
			t.Errorf("lease after a take of an empty queue = %d, want %d", got, n)
		}

		_, _, err = e.store.Take(ctx, endIfEmpty)
		if !errors.Is(err, registry.ErrDrainEnded) {
			t.Fatalf("Take(EndIfEmpty) of an empty queue = %v, want ErrDrainEnded", err)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != 0 {
			t.Errorf("lease after the drain ended = %d, want none", got)
		}
		if outbox := e.dueOutbox(t, tn.ID); slices.Contains(outbox, entry) {
			t.Errorf("outbox %v still has the ended drain's %s", outbox, entry)
		}
		// The next delivery schedules the next drain.
		e.deliver(t, tn.ID, ep.ID)
		next := registry.Drain{EndpointID: ep.ID, N: n + 1}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != next.N {
			t.Errorf("lease after a delivery following the end = %d, want %d", got, next.N)
		}
		if outbox := e.dueOutbox(t, tn.ID); !slices.Contains(outbox, next.OutboxEntry()) || slices.Contains(outbox, entry) {
			t.Errorf("outbox %v, want %s and not %s", outbox, next.OutboxEntry(), entry)
		}
	})
}

// EndDrain ends a drain ("more" while anything is queued), hands its lease to a successor,
// or finds it lost and clears the lost drain's outbox entry.
func TestEndDrain(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		d := registry.Drain{EndpointID: ep.ID, N: e.leaseOf(t, tn.ID, ep.ID)}

		res, next, err := e.store.EndDrain(ctx, tn.ID, d, false)
		if err != nil || res != "more" || next != nil {
			t.Errorf("EndDrain(end) with a delivery queued = %q, %+v, %v; want more", res, next, err)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != d.N {
			t.Errorf("lease after \"more\" = %d, want %d", got, d.N)
		}
		if outbox := e.dueOutbox(t, tn.ID); !slices.Contains(outbox, d.OutboxEntry()) {
			t.Errorf("outbox %v lost %s on \"more\"", outbox, d.OutboxEntry())
		}

		// Handoff passes the lease on to drain N+1, queued or not.
		res, next, err = e.store.EndDrain(ctx, tn.ID, d, true)
		want := registry.Drain{EndpointID: ep.ID, N: d.N + 1}
		if err != nil || res != "handoff" || next == nil || *next != want {
			t.Fatalf("EndDrain(handoff) = %q, %+v, %v; want handoff to %+v", res, next, err, want)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != want.N {
			t.Errorf("lease after handoff = %d, want %d", got, want.N)
		}
		if ttl, err := e.rdb.PTTL(ctx, registry.DrainKeyOf(tn.ID, ep.ID)).Result(); err != nil || ttl <= 0 || ttl > registry.DrainLease {
			t.Errorf("lease TTL after handoff = %v, %v; want within (0, %v]", ttl, err, registry.DrainLease)
		}
		if outbox := e.dueOutbox(t, tn.ID); !slices.Contains(outbox, want.OutboxEntry()) || slices.Contains(outbox, d.OutboxEntry()) {
			t.Errorf("outbox after handoff = %v, want %s instead of %s", outbox, want.OutboxEntry(), d.OutboxEntry())
		}
		if _, _, err := e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: d.N, Limit: 10}); !errors.Is(err, registry.ErrDrainLost) {
			t.Errorf("Take by the drain that handed off = %v, want ErrDrainLost", err)
		}
		if res, _, err := e.store.EndDrain(ctx, tn.ID, d, false); !errors.Is(err, registry.ErrDrainLost) {
			t.Errorf("EndDrain by the drain that handed off = %q, %v; want ErrDrainLost", res, err)
		}
		d = want

		items, _ := e.take(t, tn.ID, ep.ID, d.N, 10)
		if len(items) != 1 || items[0].DeliveryID != q.DeliveryID {
			t.Fatalf("successor's Take = %v, want [%s]", itemIDs(items), q.DeliveryID)
		}
		e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
		res, next, err = e.store.EndDrain(ctx, tn.ID, d, false)
		if err != nil || res != "ended" || next != nil {
			t.Errorf("EndDrain(end) of an empty queue = %q, %+v, %v; want ended", res, next, err)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != 0 {
			t.Errorf("lease after the drain ended = %d, want none", got)
		}
		if outbox := e.dueOutbox(t, tn.ID); slices.Contains(outbox, d.OutboxEntry()) {
			t.Errorf("outbox %v still has the ended drain's %s", outbox, d.OutboxEntry())
		}

		// A drain whose lease lapsed and was taken over has lost it: its entry goes, the
		// holder's lease stays.
		e.deliver(t, tn.ID, ep.ID)
		lapsed := registry.Drain{EndpointID: ep.ID, N: e.leaseOf(t, tn.ID, ep.ID)}
		if lapsed.N != d.N+1 {
			t.Fatalf("drain scheduled after the end = %d, want %d", lapsed.N, d.N+1)
		}
		if err := e.rdb.Del(ctx, registry.DrainKeyOf(tn.ID, ep.ID)).Err(); err != nil {
			t.Fatal(err)
		}
		e.take(t, tn.ID, ep.ID, lapsed.N+7, 0)
		res, next, err = e.store.EndDrain(ctx, tn.ID, lapsed, true)
		if !errors.Is(err, registry.ErrDrainLost) || next != nil {
			t.Errorf("EndDrain(handoff) after the lease was taken over = %q, %+v, %v; want ErrDrainLost", res, next, err)
		}
		if outbox := e.dueOutbox(t, tn.ID); slices.Contains(outbox, lapsed.OutboxEntry()) {
			t.Errorf("outbox %v still has the lost drain's %s", outbox, lapsed.OutboxEntry())
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != lapsed.N+7 {
			t.Errorf("holder's lease after a lost drain ended = %d, want %d", got, lapsed.N+7)
		}
	})
}

// One batch records a success, a failure with retries left and an expired event: succeeded
// (the attempt kept in the record created now), retrying (its retry in the outbox) and failed.
func TestFinishBatch(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 3)
		n := e.leaseOf(t, tn.ID, ep.ID)
		items, _ := e.take(t, tn.ID, ep.ID, n, 10)
		if len(items) != 3 {
			t.Fatalf("Take = %d items, want 3", len(items))
		}
		now := e.clock.Advance(time.Minute)
		ok, bad := e.sentAttempt(200), e.sentAttempt(500)
		retryAt := now.Add(30 * time.Second)
		fin := e.finish(t, tn.ID, ep.ID, policy{disableAfter: 100, maxAttempts: 5},
			registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: ok},
			registry.Outcome{Item: items[1], Outcome: registry.OutcomeFailure, Attempt: bad, NextAttemptAt: retryAt},
			registry.Outcome{Item: items[2], Outcome: registry.OutcomeExpired})
		want := []string{registry.DeliverySucceeded, registry.DeliveryRetrying, registry.DeliveryFailed}
		if !slices.Equal(fin.Statuses, want) || (fin.DisabledReason != "") {
			t.Fatalf("Finish = %+v, want %v and not disabled", fin, want)
		}

		cases := []struct {
			name     string
			q        queued
			status   string
			attempts []registry.Attempt
			next     *time.Time
		}{
			{"success", qs[0], registry.DeliverySucceeded, []registry.Attempt{*ok}, nil},
			{"failure", qs[1], registry.DeliveryRetrying, []registry.Attempt{*bad}, &retryAt},
			{"expired", qs[2], registry.DeliveryFailed, nil, nil},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				// A first attempt that succeeded is kept in its minute's hash, without a record.
				if has, want := e.hasRecord(t, tn.ID, c.q.DeliveryID), c.status != registry.DeliverySucceeded; has != want {
					t.Errorf("record after the first attempt was finished: %t, want %t", has, want)
				}
				d, err := e.store.Delivery(ctx, tn.ID, ep.ID, c.q.DeliveryID, true)
				if err != nil {
					t.Fatalf("Delivery: %v", err)
				}
				if d.Status != c.status || d.AttemptCount != len(c.attempts) || d.RunAttempts != len(c.attempts) ||
					d.Generation != 0 || d.EventID != items[i].EventID || d.EventType != registry.EventScanCompleted ||
					!d.CreatedAt.Equal(items[i].CreatedAt) || !d.UpdatedAt.Equal(now) || d.WebhookID != ep.ID {
					t.Errorf("delivery = %+v, want %s with %d attempts, created %v, updated %v",
						d, c.status, len(c.attempts), items[i].CreatedAt, now)
				}
				if (d.NextAttemptAt == nil) != (c.next == nil) || (c.next != nil && !d.NextAttemptAt.Equal(*c.next)) {
					t.Errorf("nextAttemptAt = %v, want %v", d.NextAttemptAt, c.next)
				}
				if len(d.Attempts) != len(c.attempts) {
					t.Fatalf("attempts = %+v, want %+v", d.Attempts, c.attempts)
				}
				for j := range c.attempts {
					if !sameAttempt(d.Attempts[j], c.attempts[j]) {
						t.Errorf("attempt %d = %+v, want %+v as sent", j, d.Attempts[j], c.attempts[j])
					}
				}
				if _, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, c.q.DeliveryID); ok {
					t.Errorf("still queued after its first attempt was finished")
				}
				if got := e.statusCount(t, tn.ID, ep.ID, c.status); got != 1 {
					t.Errorf("%s index lists %d, want 1", c.status, got)
				}
			})
		}
		retry := queued{DeliveryID: qs[1].DeliveryID, EndpointID: ep.ID, Generation: items[1].Generation}
		timer := registry.Retry{DeliveryID: retry.DeliveryID, EndpointID: ep.ID, Generation: retry.Generation, Run: 1}
		outbox := e.dueOutbox(t, tn.ID)
		if !slices.Contains(outbox, timer.OutboxEntry()) {
			t.Errorf("outbox %v lacks the retry %s", outbox, timer.OutboxEntry())
		}
		if due, err := e.store.DueOutbox(ctx, tn.ID, retryAt.Add(-time.Millisecond), 1000); err != nil ||
			slices.Contains(entries(due), timer.OutboxEntry()) {
			t.Errorf("outbox due before the retry time = %v, %v; want the retry scored at %v", due, err, retryAt)
		}
		for _, q := range []queued{qs[0], qs[2]} {
			if slices.ContainsFunc(outbox, func(s registry.OutboxEntry) bool {
				w, _ := registry.ParseWork(s)
				return w.Retry != nil && w.Retry.DeliveryID == q.DeliveryID
			}) {
				t.Errorf("outbox %v has a retry of the finished %s", outbox, q.DeliveryID)
			}
		}
		if got := e.statusCount(t, tn.ID, ep.ID, registry.DeliveryPending); got != 0 {
			t.Errorf("pending after Finish = %d, want 0", got)
		}
		if got := e.statusCount(t, tn.ID, ep.ID, ""); got != 3 {
			t.Errorf("all deliveries after Finish = %d, want 3", got)
		}
		// success, failure, expired: a streak of one failure (an expired event is no failure).
		if got := e.getEndpoint(t, tn.ID, ep.ID); got.ConsecutiveFailures != 1 || !got.Enabled {
			t.Errorf("endpoint after the batch = %d failures, enabled %t; want 1, enabled", got.ConsecutiveFailures, got.Enabled)
		}

		// The retry timer queues it again; its attempt is numbered after the first.
		e.clock.Set(retryAt)
		second := e.record(tn.ID, retry, registry.OutcomeSuccess, lenient)
		second.Attempt.Number = 2
		if r := e.recordAttempt(t, second); r.Status != registry.DeliverySucceeded {
			t.Fatalf("retry = %+v, want succeeded", r)
		}
		d, err := e.store.Delivery(ctx, tn.ID, ep.ID, retry.DeliveryID, true)
		if err != nil || d.AttemptCount != 2 || len(d.Attempts) != 2 || !sameAttempt(d.Attempts[0], *bad) || d.Attempts[1].Number != 2 {
			t.Errorf("after the retry: %+v, %v; want the first attempt then the retry", d, err)
		}
	})
}

// An attempt of a delivery superseded between Take and Finish (held by a disable, queued
// again by a manual retry) is "stale" and leaves the delivery as it is; a manual retry of a
// delivery never attempted changes nothing, so its attempt counts.
func TestFinishStale(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)

		t.Run("disabled", func(t *testing.T) {
			ep := e.endpoint(t, tn.ID)
			q := e.deliver(t, tn.ID, ep.ID)
			items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 10)
			if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
				t.Fatalf("DisableEndpoint: %v", err)
			}
			before := e.delivery(t, tn.ID, q)
			e.clock.Advance(time.Second)
			fin := e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
			if !slices.Equal(fin.Statuses, []string{"stale"}) || (fin.DisabledReason != "") {
				t.Errorf("Finish after a disable = %+v, want stale", fin)
			}
			d := e.delivery(t, tn.ID, q)
			if d.Status != registry.DeliveryHeld || d.Generation != before.Generation || d.NextAttemptAt != nil {
				t.Errorf("delivery after a stale finish = %+v, want held as the disable left it (%+v)", d, before)
			}
			if got := e.statusCount(t, tn.ID, ep.ID, registry.DeliveryHeld); got != 1 {
				t.Errorf("held index lists %d, want 1", got)
			}
			if got := e.statusCount(t, tn.ID, ep.ID, registry.DeliverySucceeded); got != 0 {
				t.Errorf("succeeded index lists %d after a stale finish, want 0", got)
			}
		})

		t.Run("requeued", func(t *testing.T) {
			ep := e.endpoint(t, tn.ID)
			q := e.deliver(t, tn.ID, ep.ID)
			items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 10)
			e.finish(t, tn.ID, ep.ID, policy{disableAfter: 100, maxAttempts: 1},
				registry.Outcome{Item: items[0], Outcome: registry.OutcomeFailure, Attempt: e.sentAttempt(500)})
			if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID); err != nil {
				t.Fatalf("RequeueDelivery: %v", err)
			}
			n := e.leaseOf(t, tn.ID, ep.ID)
			items, _ = e.take(t, tn.ID, ep.ID, n, 10)
			if len(items) != 1 || !items[0].HasRecord || items[0].Generation != 1 {
				t.Fatalf("Take after a manual retry = %+v, want the delivery with its record, generation 1", items)
			}
			e.clock.Advance(time.Second)
			if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID); err != nil {
				t.Fatalf("RequeueDelivery again: %v", err)
			}
			fin := e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
			if !slices.Equal(fin.Statuses, []string{"stale"}) {
				t.Errorf("Finish of a run queued again meanwhile = %v, want stale", fin.Statuses)
			}
			d := e.delivery(t, tn.ID, q)
			if d.Status != registry.DeliveryPending || d.Generation != 2 || d.RunAttempts != 0 {
				t.Errorf("delivery after a stale finish = %+v, want pending in generation 2 with no run attempts", d)
			}
			if it, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID); !ok || it.Generation != 2 {
				t.Errorf("queue entry after a stale finish = %+v, %t; want generation 2 still queued", it, ok)
			}
			if got := e.statusCount(t, tn.ID, ep.ID, registry.DeliverySucceeded); got != 0 {
				t.Errorf("succeeded index lists %d after a stale finish, want 0", got)
			}
			// The current run finishes.
			items, _ = e.take(t, tn.ID, ep.ID, n, 10)
			fin = e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
			if !slices.Equal(fin.Statuses, []string{registry.DeliverySucceeded}) {
				t.Errorf("Finish of the current run = %v, want succeeded", fin.Statuses)
			}
		})

		t.Run("deleted endpoint", func(t *testing.T) {
			ep := e.endpoint(t, tn.ID)
			q := e.deliver(t, tn.ID, ep.ID)
			items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 10)
			if err := e.store.DeleteEndpoint(ctx, tn.ID, ep.ID); err != nil {
				t.Fatalf("DeleteEndpoint: %v", err)
			}
			fin := e.finish(t, tn.ID, ep.ID, policy{disableAfter: 1, maxAttempts: 5}, registry.Outcome{Item: items[0],
				Outcome: registry.OutcomeFailure, Attempt: e.sentAttempt(500), NextAttemptAt: e.clock.Now().Add(time.Minute)})
			if !slices.Equal(fin.Statuses, []string{"stale"}) || (fin.DisabledReason != "") {
				t.Errorf("Finish after the endpoint was deleted = %+v, want stale", fin)
			}
			if e.hasRecord(t, tn.ID, q.DeliveryID) {
				t.Errorf("Finish created a record for a deleted endpoint's delivery")
			}
			if got := e.statusCount(t, tn.ID, ep.ID, ""); got != 0 {
				t.Errorf("deleted endpoint lists %d deliveries after Finish, want none", got)
			}
			if n, err := e.rdb.Exists(ctx, "wh:{t:"+tn.ID+"}:ep:"+ep.ID).Result(); err != nil || n != 0 {
				t.Errorf("Finish recreated the deleted endpoint's hash: %d, %v", n, err)
			}
		})

		t.Run("manual retry of a queued delivery", func(t *testing.T) {
			ep := e.endpoint(t, tn.ID)
			q := e.deliver(t, tn.ID, ep.ID)
			items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 10)
			if drains, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID); err != nil || len(drains) != 0 {
				t.Fatalf("RequeueDelivery of a queued delivery = %+v, %v; want nothing to do", drains, err)
			}
			fin := e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
			if !slices.Equal(fin.Statuses, []string{registry.DeliverySucceeded}) {
				t.Errorf("Finish = %v, want succeeded", fin.Statuses)
			}
		})
	})
}

// A delivery with a record queued again (a manual retry, a test ping) has its new attempt
// appended to its log, numbered after the attempts it has.
func TestFinishNumbersAttemptsOfRequeued(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)

		t.Run("manual retry", func(t *testing.T) {
			ep := e.endpoint(t, tn.ID)
			q := e.deliver(t, tn.ID, ep.ID)
			n := e.leaseOf(t, tn.ID, ep.ID)
			p := policy{disableAfter: 100, maxAttempts: 2}
			items, _ := e.take(t, tn.ID, ep.ID, n, 10)
			first := e.sentAttempt(500)
			if fin := e.finish(t, tn.ID, ep.ID, p, registry.Outcome{Item: items[0], Outcome: registry.OutcomeFailure,
				Attempt: first, NextAttemptAt: e.clock.Now().Add(time.Minute)}); fin.Statuses[0] != registry.DeliveryRetrying {
				t.Fatalf("first attempt = %v, want retrying", fin.Statuses)
			}
			e.clock.Advance(time.Minute)
			retry := e.record(tn.ID, q, registry.OutcomeFailure, p)
			retry.Attempt.Number = 2
			if r := e.recordAttempt(t, retry); r.Status != registry.DeliveryFailed {
				t.Fatalf("retry = %+v, want failed", r)
			}
			e.clock.Advance(time.Hour)
			if _, err := e.store.RequeueDelivery(ctx, tn.ID, ep.ID, q.DeliveryID); err != nil {
				t.Fatalf("RequeueDelivery: %v", err)
			}
			items, _ = e.take(t, tn.ID, ep.ID, n, 10)
			if len(items) != 1 || !items[0].HasRecord || items[0].Generation != 1 {
				t.Fatalf("Take after a manual retry = %+v, want the delivery with its record, generation 1", items)
			}
			third := e.sentAttempt(200) // numbered 1, as a drain numbers every attempt it makes
			fin := e.finish(t, tn.ID, ep.ID, p, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: third})
			if !slices.Equal(fin.Statuses, []string{registry.DeliverySucceeded}) {
				t.Fatalf("Finish = %v, want succeeded", fin.Statuses)
			}
			d, err := e.store.Delivery(ctx, tn.ID, ep.ID, q.DeliveryID, true)
			if err != nil {
				t.Fatalf("Delivery: %v", err)
			}
			if d.Status != registry.DeliverySucceeded || d.AttemptCount != 3 || d.RunAttempts != 1 || d.Generation != 1 {
				t.Errorf("delivery = %+v, want succeeded with 3 attempts, 1 in run 1", d)
			}
			var nums []int
			for _, a := range d.Attempts {
				nums = append(nums, a.Number)
			}
			if !slices.Equal(nums, []int{1, 2, 3}) {
				t.Errorf("attempt numbers = %v, want [1 2 3]", nums)
			}
			if len(d.Attempts) == 3 {
				want := *third
				want.Number = 3
				if !sameAttempt(d.Attempts[0], *first) || !sameAttempt(d.Attempts[2], want) {
					t.Errorf("attempts = %+v, want the first %+v ... the new %+v", d.Attempts, *first, want)
				}
			}
		})

		t.Run("test ping", func(t *testing.T) {
			ep := e.endpoint(t, tn.ID)
			ev := &registry.Event{ID: "evt_ping_" + ep.ID, TenantID: tn.ID, Type: registry.EventWebhookTest,
				CreatedAt: e.clock.Now(), Body: []byte(`{"type":"webhook.test"}`)}
			did, drains, err := e.store.CreateTestDelivery(ctx, ev, ep.ID)
			if err != nil || len(drains) != 1 {
				t.Fatalf("CreateTestDelivery = %s, %+v, %v; want one drain", did, drains, err)
			}
			items, _ := e.take(t, tn.ID, ep.ID, drains[0].N, 10)
			if len(items) != 1 || items[0].DeliveryID != did || !items[0].HasRecord || !bytes.Equal(items[0].Body, ev.Body) {
				t.Fatalf("Take = %+v, want the test delivery with its record and body", items)
			}
			fin := e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
			d, err := e.store.Delivery(ctx, tn.ID, ep.ID, did, true)
			if err != nil || fin.Statuses[0] != registry.DeliverySucceeded || d.Status != registry.DeliverySucceeded ||
				d.AttemptCount != 1 || len(d.Attempts) != 1 || d.Attempts[0].Number != 1 {
				t.Errorf("test delivery after Finish %v = %+v, %v; want succeeded with attempt 1", fin.Statuses, d, err)
			}
		})
	})
}

// A failure that reaches the auto-disable threshold holds the delivery and the rest of the
// queue, and the batch's earlier retrying delivery too.
func TestFinishAutoDisableHoldsQueue(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		qs := e.deliveries(t, tn.ID, ep.ID, 4)
		items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 2)
		next := e.clock.Now().Add(time.Minute)
		fin := e.finish(t, tn.ID, ep.ID, policy{disableAfter: 2, maxAttempts: 5},
			registry.Outcome{Item: items[0], Outcome: registry.OutcomeFailure, Attempt: e.sentAttempt(500), NextAttemptAt: next},
			registry.Outcome{Item: items[1], Outcome: registry.OutcomeFailure, Attempt: e.sentAttempt(500), NextAttemptAt: next})
		if !slices.Equal(fin.Statuses, []string{registry.DeliveryRetrying, registry.DeliveryHeld}) || !(fin.DisabledReason != "") {
			t.Fatalf("Finish = %+v, want [retrying held] and disabled", fin)
		}
		if got := e.getEndpoint(t, tn.ID, ep.ID); got.Enabled || got.DisabledReason == nil ||
			*got.DisabledReason != registry.ReasonConsecutiveFailures {
			t.Errorf("endpoint = %+v, want disabled for consecutive failures", got)
		}
		for i, q := range qs {
			if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryHeld || d.NextAttemptAt != nil {
				t.Errorf("delivery %d = %+v, want held", i, d)
			}
			if _, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID); ok {
				t.Errorf("delivery %d still queued on a disabled endpoint", i)
			}
		}
		for st, want := range map[string]int{registry.DeliveryHeld: 4, registry.DeliveryPending: 0, registry.DeliveryRetrying: 0} {
			if got := e.statusCount(t, tn.ID, ep.ID, st); got != want {
				t.Errorf("%s index lists %d, want %d", st, got, want)
			}
		}
	})
}

// A delivery never attempted has no record: reads answer from its queue entry.
func TestQueuedDeliveryReads(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep, other := e.endpoint(t, tn.ID), e.endpoint(t, tn.ID)
		done := e.deliver(t, tn.ID, ep.ID)
		e.attempt(t, tn.ID, done, registry.OutcomeSuccess, lenient)

		ev := e.publish(t, tn.ID, registry.EventScanCompleted)
		created := e.clock.Advance(time.Minute) // deliveries are created when the event fans out
		q := e.fanout(t, ev, ep.ID)[0]
		e.clock.Advance(time.Minute)
		if e.hasRecord(t, tn.ID, q.DeliveryID) {
			t.Errorf("a queued delivery has a record (%s) before its first attempt", registry.DeliveryKeyOf(tn.ID, q.DeliveryID))
		}
		if n, err := e.rdb.Exists(ctx, registry.DeliveryKeyOf(tn.ID, q.DeliveryID)+":att").Result(); err != nil || n != 0 {
			t.Errorf("a queued delivery has an attempt log: %d, %v", n, err)
		}

		check := func(t *testing.T, d *registry.Delivery) {
			t.Helper()
			if d.ID != q.DeliveryID || d.WebhookID != ep.ID || d.EventID != ev.ID || d.EventType != ev.Type ||
				d.Status != registry.DeliveryPending || d.AttemptCount != 0 || !d.CreatedAt.Equal(created) ||
				!d.UpdatedAt.Equal(created) || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(created) || d.Generation != 0 {
				t.Errorf("queued delivery = %+v, want pending for %s (%s), 0 attempts, created %v", d, ev.ID, ev.Type, created)
			}
		}
		for _, with := range []bool{false, true} {
			d, err := e.store.Delivery(ctx, tn.ID, ep.ID, q.DeliveryID, with)
			if err != nil {
				t.Fatalf("Delivery(withAttempts %t): %v", with, err)
			}
			check(t, d)
			if with && (d.Attempts == nil || len(d.Attempts) != 0) {
				t.Errorf("Delivery(withAttempts).Attempts = %#v, want an empty list", d.Attempts)
			}
		}
		_, err := e.store.Delivery(ctx, tn.ID, other.ID, q.DeliveryID, false)
		wantCode(t, err, registry.CodeDeliveryNotFound)

		cases := []struct {
			status string
			want   []string
		}{
			{"", []string{q.DeliveryID, done.DeliveryID}},
			{registry.DeliveryPending, []string{q.DeliveryID}},
			{registry.DeliverySucceeded, []string{done.DeliveryID}},
			{registry.DeliveryHeld, nil},
		}
		for _, c := range cases {
			t.Run("status="+c.status, func(t *testing.T) {
				list, total, err := e.store.ListDeliveries(ctx, tn.ID, ep.ID, c.status, registry.Page{Page: 1, Limit: 100})
				if err != nil {
					t.Fatalf("ListDeliveries: %v", err)
				}
				var got []string
				for _, d := range list {
					got = append(got, d.ID)
					if d.ID == q.DeliveryID {
						check(t, d)
					}
				}
				if total != len(c.want) || !slices.Equal(got, c.want) {
					t.Errorf("ListDeliveries(%q) = %v (total %d), want %v", c.status, got, total, c.want)
				}
			})
		}
		if e.hasRecord(t, tn.ID, q.DeliveryID) {
			t.Errorf("reading a queued delivery created its record")
		}
	})
}

// Disabling an endpoint holds its queued deliveries (creating their records), enabling it
// queues them again, and deleting it drops the queue: its drain then ends.
func TestQueuedDeliveryDisableEnableDelete(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		q := e.deliver(t, tn.ID, ep.ID)
		d0 := e.delivery(t, tn.ID, q)
		n := e.leaseOf(t, tn.ID, ep.ID)
		if e.hasRecord(t, tn.ID, q.DeliveryID) {
			t.Fatalf("a queued delivery has a record before its first attempt")
		}

		e.clock.Advance(time.Minute)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatalf("DisableEndpoint: %v", err)
		}
		if !e.hasRecord(t, tn.ID, q.DeliveryID) {
			t.Errorf("holding a queued delivery created no record")
		}
		held := e.delivery(t, tn.ID, q)
		if held.Status != registry.DeliveryHeld || held.AttemptCount != 0 || held.EventID != d0.EventID ||
			held.EventType != d0.EventType || !held.CreatedAt.Equal(d0.CreatedAt) || held.NextAttemptAt != nil ||
			held.Generation != d0.Generation+1 {
			t.Errorf("held delivery = %+v, want held, 0 attempts, as queued (%+v), a new generation", held, d0)
		}
		if _, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, q.DeliveryID); ok {
			t.Errorf("held delivery is still queued")
		}
		if items, _ := e.take(t, tn.ID, ep.ID, n, 10); len(items) != 0 {
			t.Errorf("Take on a disabled endpoint = %v, want nothing", itemIDs(items))
		}
		_, _, err := e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: n, Limit: 10, EndIfEmpty: true})
		if !errors.Is(err, registry.ErrDrainEnded) {
			t.Errorf("Take(EndIfEmpty) on a disabled endpoint = %v, want ErrDrainEnded", err)
		}

		e.clock.Advance(time.Minute)
		en, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID)
		count, drains := en.Requeued, en.Drains
		want := registry.Drain{EndpointID: ep.ID, N: n + 1}
		if err != nil || count != 1 || len(drains) != 1 || drains[0] != want {
			t.Fatalf("EnableEndpoint = %d, %+v, %v; want 1 queued and drain %+v", count, drains, err, want)
		}
		if d := e.delivery(t, tn.ID, q); d.Status != registry.DeliveryPending || d.Generation != held.Generation+1 {
			t.Errorf("delivery after enable = %+v, want pending in generation %d", d, held.Generation+1)
		}
		items, _ := e.take(t, tn.ID, ep.ID, want.N, 10)
		if len(items) != 1 || items[0].DeliveryID != q.DeliveryID || !items[0].HasRecord || items[0].Generation != held.Generation+1 {
			t.Fatalf("Take after enable = %+v, want the delivery with its record", items)
		}

		// A second delivery waits in the queue; deleting the endpoint drops both.
		waiting := e.deliver(t, tn.ID, ep.ID)
		if err := e.store.DeleteEndpoint(ctx, tn.ID, ep.ID); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		if _, ok, _ := e.store.QueuedItem(ctx, tn.ID, ep.ID, waiting.DeliveryID); ok {
			t.Errorf("a delivery is still queued on the deleted endpoint")
		}
		_, err = e.store.Delivery(ctx, tn.ID, ep.ID, waiting.DeliveryID, false)
		wantCode(t, err, registry.CodeDeliveryNotFound)
		if got := e.statusCount(t, tn.ID, ep.ID, ""); got != 0 {
			t.Errorf("deleted endpoint lists %d deliveries, want none", got)
		}
		_, _, err = e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: ep.ID, N: want.N, Limit: 10, EndIfEmpty: true})
		if !errors.Is(err, registry.ErrDrainEnded) {
			t.Errorf("Take(EndIfEmpty) after DeleteEndpoint = %v, want ErrDrainEnded", err)
		}
		if got := e.leaseOf(t, tn.ID, ep.ID); got != 0 {
			t.Errorf("lease after the deleted endpoint's drain ended = %d, want none", got)
		}
		if outbox := e.dueOutbox(t, tn.ID); slices.Contains(outbox, want.OutboxEntry()) {
			t.Errorf("outbox %v still has the deleted endpoint's drain %s", outbox, want.OutboxEntry())
		}
	})
}

// Memory shape: a queued delivery is its queue entry and index entries only; a first attempt
// that succeeds keeps it as one field of its creation minute's hash, kept for the retention
// period after the minute ends; one that fails creates its record, kept for the retention period.
func TestQueuedDeliveryHasNoRecord(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		st := e.publishStored(t, tn.ID, registry.EventScanCompleted)
		did := registry.DeliveryID(st.Event.ID, ep.ID)
		if n, err := e.rdb.Exists(t.Context(), registry.DeliveryKeyOf(tn.ID, did)).Result(); err != nil || n != 0 {
			t.Fatalf("EXISTS %s = %d, %v; want 0 before the first attempt", registry.DeliveryKeyOf(tn.ID, did), n, err)
		}
		if len(st.Drains) != 1 {
			t.Fatalf("PublishEvent drains = %+v, want one", st.Drains)
		}
		items, _ := e.take(t, tn.ID, ep.ID, st.Drains[0].N, 10)
		if n, err := e.rdb.Exists(t.Context(), registry.DeliveryKeyOf(tn.ID, did)).Result(); err != nil || n != 0 {
			t.Fatalf("EXISTS record after Take = %d, %v; want 0 until the attempt is finished", n, err)
		}
		e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeSuccess, Attempt: e.sentAttempt(200)})
		if e.hasRecord(t, tn.ID, did) {
			t.Errorf("a delivery that succeeded at its first attempt has a record of its own")
		}
		kk := registry.KeptKeyOf(tn.ID, st.Event.CreatedAt)
		if ok, err := e.rdb.HExists(t.Context(), kk, registry.KeptFieldOf(did)).Result(); err != nil || !ok {
			t.Errorf("HEXISTS %s %s = %t, %v; want it kept there", kk, did, ok, err)
		}
		retention := 30 * 24 * time.Hour
		if ttl, err := e.rdb.TTL(t.Context(), kk).Result(); err != nil || ttl < retention || ttl > retention+time.Minute {
			t.Errorf("kept minute's TTL = %v, %v; want the retention period after the minute ends", ttl, err)
		}

		failed := e.publishStored(t, tn.ID, registry.EventScanCompleted)
		fdid := registry.DeliveryID(failed.Event.ID, ep.ID)
		items, _ = e.take(t, tn.ID, ep.ID, st.Drains[0].N, 10)
		e.finish(t, tn.ID, ep.ID, lenient, registry.Outcome{Item: items[0], Outcome: registry.OutcomeFailure,
			Attempt: e.sentAttempt(500), NextAttemptAt: e.clock.Now().Add(time.Minute)})
		if ttl, err := e.rdb.TTL(t.Context(), registry.DeliveryKeyOf(tn.ID, fdid)).Result(); err != nil || ttl <= 0 {
			t.Errorf("failed first attempt: record TTL = %v, %v; want the retention period", ttl, err)
		}
	})
}
