package registry_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// finishOne takes the endpoint's next queued delivery as a drain would and records one attempt
// of it with outcome, a duration and whether it was a 429/503; it returns what Finish did.
func (e *env) finishOne(t *testing.T, tid, eid string, p policy, out registry.AttemptOutcome, backoff bool,
	dur time.Duration) registry.Finished {
	t.Helper()
	items, _ := e.take(t, tid, eid, e.leaseOf(t, tid, eid), 1)
	if len(items) != 1 {
		t.Fatalf("nothing queued to attempt on %s", eid)
	}
	end := e.clock.Now()
	att := &registry.Attempt{Number: 1, StartedAt: end.Add(-dur), DurationMs: dur.Milliseconds(), StatusCode: 500}
	fin := e.finish(t, tid, eid, p, registry.Outcome{Item: items[0], Outcome: out, Attempt: att, Backoff: backoff,
		NextAttemptAt: end.Add(time.Minute)})
	return fin
}

// opTypes reads the types of the ops a batch recorded.
func (e *env) opTypes(t *testing.T, tid string, ops []string) []string {
	t.Helper()
	var out []string
	for _, id := range ops {
		op, err := e.store.Op(context.Background(), tid, id)
		if err != nil {
			t.Fatalf("Op(%s): %v", id, err)
		}
		out = append(out, op.Type)
	}
	return out
}

// An endpoint failing warns once (webhook.degraded at half the threshold), then is disabled
// (webhook.disabled); each is recorded once, for the tenant's other endpoints subscribed to it.
func TestHealthOperationalEvents(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted, registry.EventWebhookDegraded, registry.EventWebhookDisabled)
		p := policy{disableAfter: 4, maxAttempts: 100}
		for range 4 {
			e.deliver(t, tn.ID, ep.ID)
		}
		// Nobody else subscribes: the endpoint's own failures record nothing.
		if fin := e.finishOne(t, tn.ID, ep.ID, p, registry.OutcomeFailure, false, 0); len(fin.Ops) != 0 {
			t.Fatalf("ops with no other subscriber = %v", fin.Ops)
		}
		e.endpoint(t, tn.ID, registry.EventWebhookDegraded, registry.EventWebhookDisabled)
		var got []string
		for range 3 {
			got = append(got, e.opTypes(t, tn.ID, e.finishOne(t, tn.ID, ep.ID, p, registry.OutcomeFailure, false, 0).Ops)...)
		}
		want := []string{registry.EventWebhookDegraded, registry.EventWebhookDisabled}
		if !slices.Equal(got, want) {
			t.Errorf("operational events = %v, want %v", got, want)
		}
	})
}

// An endpoint shows degraded from the failure that reaches half the threshold until a success.
func TestDegradedShown(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		p := policy{disableAfter: 4, maxAttempts: 100}
		for range 3 {
			e.deliver(t, tn.ID, ep.ID)
		}
		degraded := func() bool {
			got, err := e.store.Endpoint(context.Background(), tn.ID, ep.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Degraded
		}
		for i, c := range []struct {
			out  registry.AttemptOutcome
			want bool
		}{{registry.OutcomeFailure, false}, {registry.OutcomeFailure, true}, {registry.OutcomeSuccess, false}} {
			e.finishOne(t, tn.ID, ep.ID, p, c.out, false, 0)
			if got := degraded(); got != c.want {
				t.Errorf("after attempt %d (%s): degraded = %v, want %v", i+1, c.out, got, c.want)
			}
		}
	})
}

// A re-enabled endpoint is on probation until a success: a failure disables it at once
// (probation_failed) and its delivery is held without spending its budget.
func TestProbation(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		p := policy{disableAfter: 100, maxAttempts: 5}
		q := e.deliver(t, tn.ID, ep.ID)
		if _, err := e.store.DisableEndpoint(ctx, tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID); err != nil {
			t.Fatal(err)
		}
		if got := e.getEndpoint(t, tn.ID, ep.ID); !got.Probation || got.Concurrency(testMaxConcurrency) != 1 {
			t.Fatalf("re-enabled endpoint: probation %t, concurrency %d; want on probation, 1", got.Probation, got.Concurrency(testMaxConcurrency))
		}
		fin := e.finishOne(t, tn.ID, ep.ID, p, registry.OutcomeFailure, false, 0)
		got := e.getEndpoint(t, tn.ID, ep.ID)
		if fin.DisabledReason != registry.ReasonProbationFailed || got.Enabled || got.Probation {
			t.Fatalf("failure on probation: %+v, endpoint %+v; want disabled (probation_failed)", fin, got)
		}
		if d := e.delivery(t, tn.ID, queued{DeliveryID: q.DeliveryID, EndpointID: ep.ID}); d.Status != registry.DeliveryHeld ||
			d.RunAttempts != 0 || d.AttemptCount != 1 {
			t.Errorf("delivery = %+v, want held with its attempt logged and its budget whole", d)
		}
		if _, err := e.store.EnableEndpoint(ctx, tn.ID, ep.ID); err != nil {
			t.Fatal(err)
		}
		e.finishOne(t, tn.ID, ep.ID, p, registry.OutcomeSuccess, false, 0)
		if got := e.getEndpoint(t, tn.ID, ep.ID); !got.Enabled || got.Probation {
			t.Errorf("after a success on probation: %+v, want active, off probation", got)
		}
	})
}

// 429s and 503s to attempts sent after the last halving halve the effective concurrency;
// successes grow it back by one per run of as many as its value, at once up to the safe level
// (one below the value last throttled), above it at most once a second until 10 s after the
// last halving.
func TestEffectiveConcurrency(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		for range 80 {
			e.deliver(t, tn.ID, ep.ID)
		}
		p := policy{disableAfter: 100, maxAttempts: 5}
		finish := func(out registry.AttemptOutcome, backoff bool) int {
			return e.finishOne(t, tn.ID, ep.ID, p, out, backoff, 0).Concurrency
		}
		steps := []struct {
			out     registry.AttemptOutcome
			backoff bool
			advance time.Duration
			times   int
			want    int
		}{
			{registry.OutcomeThrottled, true, 0, 1, 8},                // safe level 15
			{registry.OutcomeThrottled, true, 0, 1, 8},                // sent no later than the halving: let be
			{registry.OutcomeThrottled, true, time.Millisecond, 1, 4}, // sent after it: safe level 7
			{registry.OutcomeSuccess, false, 0, 3, 4},
			{registry.OutcomeSuccess, false, 0, 1, 5}, // a run of 4: below the safe level, at once
			{registry.OutcomeSuccess, false, 0, 5, 6},
			{registry.OutcomeSuccess, false, 0, 6, 7},
			{registry.OutcomeSuccess, false, 0, 7, 7},           // at the safe level, within a second of the halving
			{registry.OutcomeSuccess, false, time.Second, 1, 8}, // the run is complete a second on: probe
			{registry.OutcomeSuccess, false, 0, 8, 8},           // probing again waits a second
			{registry.OutcomeThrottled, true, 0, 1, 4},          // safe level 7
			{registry.OutcomeSuccess, false, 0, 4, 5},
			{registry.OutcomeSuccess, false, 0, 11, 7},
			{registry.OutcomeSuccess, false, 0, 7, 7},                 // a probe a second at most
			{registry.OutcomeSuccess, false, 10 * time.Second, 15, 9}, // 10 s on the safe level is forgotten
		}
		for i, s := range steps {
			e.clock.Advance(s.advance)
			got := 0
			for range s.times {
				got = finish(s.out, s.backoff)
			}
			if got != s.want {
				t.Fatalf("step %d (%d × %s, backoff %t): effective concurrency %d, want %d", i, s.times, s.out,
					s.backoff, got, s.want)
			}
		}
		if got := e.getEndpoint(t, tn.ID, ep.ID).Concurrency(testMaxConcurrency); got != 9 {
			t.Errorf("endpoint's concurrency = %d, want 9", got)
		}
	})
}

// An attempt that finishes after its endpoint was deleted (it was in flight) leaves no health
// and no stats behind: the endpoint stays deleted.
func TestFinishAfterDeletionKeepsEndpointDeleted(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		e.deliver(t, tn.ID, ep.ID)
		items, _ := e.take(t, tn.ID, ep.ID, e.leaseOf(t, tn.ID, ep.ID), 1)
		if err := e.store.DeleteEndpoint(t.Context(), tn.ID, ep.ID); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		att := e.sentAttempt(http.StatusServiceUnavailable)
		e.finish(t, tn.ID, ep.ID, policy{disableAfter: 1, maxAttempts: 5}, registry.Outcome{Item: items[0],
			Outcome: registry.OutcomeThrottled, Attempt: att, Backoff: true, NextAttemptAt: e.clock.Now().Add(time.Minute)})
		_, err := e.store.Endpoint(t.Context(), tn.ID, ep.ID)
		wantCode(t, err, registry.CodeWebhookNotFound)
		stats := registry.StatsKeyOf(tn.ID, ep.ID, att.StartedAt.Unix()/3600)
		if n := e.rdb.Exists(t.Context(), stats).Val(); n != 0 {
			t.Errorf("stats of the deleted endpoint were written (%s)", stats)
		}
	})
}

// An endpoint's attempts are counted by hour: succeeded, failed, and percentile durations.
func TestEndpointStats(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		for range 10 {
			e.deliver(t, tn.ID, ep.ID)
		}
		p := policy{disableAfter: 100, maxAttempts: 5}
		for i := range 10 {
			out := registry.OutcomeSuccess
			if i >= 8 {
				out = registry.OutcomeFailure
			}
			e.finishOne(t, tn.ID, ep.ID, p, out, false, time.Duration(20+i*100)*time.Millisecond)
		}
		hours, err := e.store.EndpointStats(t.Context(), tn.ID, ep.ID, 3)
		if err != nil || len(hours) != 3 {
			t.Fatalf("EndpointStats = %+v, %v", hours, err)
		}
		now := hours[2]
		if now.Succeeded != 8 || now.Failed != 2 || now.P50Ms == nil || *now.P50Ms != 500 || *now.P99Ms != 1000 {
			t.Errorf("this hour = %+v (p50 %v, p99 %v), want 8 succeeded, 2 failed, p50 500, p99 1000", now,
				deref(now.P50Ms), deref(now.P99Ms))
		}
		if hours[0].Succeeded+hours[0].Failed != 0 || hours[0].P50Ms != nil {
			t.Errorf("an earlier hour = %+v, want empty", hours[0])
		}
	})
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}
