package registry_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// step is one attempt of a streak test: its outcome, the reason to disable its policy gave,
// and when it ended, after the test's start.
type step struct {
	out     registry.AttemptOutcome
	disable string
	at      time.Duration
}

const (
	ok   = registry.OutcomeSuccess
	fail = registry.OutcomeFailure
	gone = registry.OutcomeGone
	thr  = registry.OutcomeThrottled
	exp  = registry.OutcomeExpired
)

// streakWant is what Count gives for a sequence: the streak after it and, when one of its
// attempts disabled the endpoint, the reason and which attempt (index) did.
type streakWant struct {
	streak registry.Streak
	reason string
	by     int
}

func countSteps(rule registry.StreakRule, steps []step, probation bool) streakWant {
	w := streakWant{streak: registry.Streak{Active: true, Probation: probation}, by: -1}
	for i, s := range steps {
		var reason string
		w.streak, reason = rule.Count(w.streak, s.out, s.disable, start.Add(s.at))
		if reason != "" {
			w.reason, w.by = reason, i
		}
	}
	return w
}

func TestStreakRuleCount(t *testing.T) {
	rule := registry.StreakRule{Threshold: 3, MinWindow: time.Minute}
	cases := []struct {
		name   string
		steps  []step
		fails  int
		reason string
		by     int
	}{
		{"success resets", []step{{fail, "", 0}, {fail, "", time.Second}, {ok, "", 2 * time.Second}}, 0, "", -1},
		{"threshold before the window", []step{{fail, "", 0}, {fail, "", time.Second}, {fail, "", 2 * time.Second}}, 3, "", -1},
		{"threshold and window", []step{{fail, "", 0}, {fail, "", time.Second}, {fail, "", time.Minute}}, 3,
			registry.ReasonConsecutiveFailures, 2},
		{"throttled and expired do not count", []step{{fail, "", 0}, {thr, "", time.Second}, {exp, "", time.Minute},
			{fail, "", time.Minute}}, 2, "", -1},
		{"gone disables at once", []step{{gone, registry.ReasonGone, 0}}, 1, registry.ReasonGone, 0},
		// The first disable's reason stands: a failure after a 410 in the same batch is no
		// consecutive_failures.
		{"gone then failures", []step{{fail, "", 0}, {fail, "", time.Second}, {gone, registry.ReasonGone, time.Minute},
			{fail, "", 2 * time.Minute}}, 4, registry.ReasonGone, 2},
		{"disabled keeps counting", []step{{fail, "", 0}, {fail, "", time.Second}, {fail, "", time.Minute},
			{fail, "", 2 * time.Minute}}, 4, registry.ReasonConsecutiveFailures, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := countSteps(rule, c.steps, false)
			if got.streak.Failures != c.fails || got.reason != c.reason || got.by != c.by {
				t.Errorf("Count = %+v, want %d failures, reason %q by attempt %d", got, c.fails, c.reason, c.by)
			}
		})
	}
}

// TestStreakRuleMatchesFinish holds the Lua streak of Finish to StreakRule.Count: random
// sequences of outcomes, recorded as one batch and one attempt at a time, leave the endpoint
// with the streak Count computes, disabled for the same reason by the same attempt.
func TestStreakRuleMatchesFinish(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	outs := []registry.AttemptOutcome{ok, fail, fail, fail, gone, thr, exp}
	var seqs [][]step
	for range 40 {
		var steps []step
		at := time.Duration(0)
		for range 1 + rnd.IntN(10) {
			at += time.Duration(rnd.IntN(40)) * time.Second
			s := step{out: outs[rnd.IntN(len(outs))], at: at}
			if s.out == gone {
				s.disable = registry.ReasonGone
			}
			steps = append(steps, s)
		}
		seqs = append(seqs, steps)
	}
	rule := registry.StreakRule{Threshold: 3, MinWindow: time.Minute}
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		for i, steps := range seqs {
			probation := i%3 == 0 // a third of them start right after a re-enable
			want := countSteps(rule, steps, probation)
			for _, batched := range []bool{true, false} {
				got := e.finishSteps(t, rule, steps, batched, probation)
				if got != want {
					t.Errorf("sequence %d %v (batched %t, probation %t): Finish left %+v, Count gives %+v", i, steps,
						batched, probation, got, want)
				}
			}
		}
	})
}

// finishSteps records steps on a new endpoint with Finish, in one batch or one at a time, and
// reads back the streak it left and what the answers said disabled it.
func (e *env) finishSteps(t *testing.T, rule registry.StreakRule, steps []step, batched, probation bool) streakWant {
	t.Helper()
	tn := e.tenant(t, 0)
	ep := e.endpoint(t, tn.ID)
	if probation {
		if _, err := e.store.DisableEndpoint(t.Context(), tn.ID, ep.ID, registry.ReasonManual); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.EnableEndpoint(t.Context(), tn.ID, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	var outs []registry.Outcome
	for _, s := range steps {
		q := e.deliver(t, tn.ID, ep.ID)
		it, _, err := e.store.QueuedItem(t.Context(), tn.ID, ep.ID, q.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		o := registry.Outcome{Item: it, Outcome: s.out, Status: registry.DeliveryFailed, Disable: s.disable}
		if s.out != exp {
			o.Attempt = &registry.Attempt{Number: 1, StartedAt: start.Add(s.at)}
		}
		outs = append(outs, o)
	}
	got := streakWant{by: -1}
	record := func(first int, batch []registry.Outcome) {
		fin, err := e.store.Finish(t.Context(), registry.FinishRequest{TenantID: tn.ID, EndpointID: ep.ID,
			Outcomes: batch, Streak: rule})
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if fin.DisabledReason != "" {
			got.reason = fin.DisabledReason
			for j, o := range batch {
				if o.Item.DeliveryID == fin.DisabledBy {
					got.by = first + j
				}
			}
		}
	}
	if batched {
		record(0, outs)
	} else {
		for i := range outs {
			record(i, outs[i:i+1])
		}
	}
	ag := e.getEndpoint(t, tn.ID, ep.ID)
	got.streak = registry.Streak{Active: ag.Enabled, Probation: ag.Probation, Failures: ag.ConsecutiveFailures,
		Start: ag.FailureStreakStart}
	return got
}

// A batch [410, 500] is disabled by its 410, and says so: the reason comes from the script that
// disabled the endpoint, never from a guess at the batch's last outcome.
func TestFinishReportsWhatDisabled(t *testing.T) {
	rule := registry.StreakRule{Threshold: 2}
	cases := []struct {
		name   string
		steps  []step
		reason string
		by     int
	}{
		{"410 then 500", []step{{gone, registry.ReasonGone, 0}, {fail, "", time.Second}}, registry.ReasonGone, 0},
		{"streak then an expired event", []step{{fail, "", 0}, {fail, "", time.Second}, {exp, "", 2 * time.Second}},
			registry.ReasonConsecutiveFailures, 1},
	}
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got := e.finishSteps(t, rule, c.steps, true, false)
				if got.reason != c.reason || got.by != c.by || got.streak.Active {
					t.Errorf("Finish = %+v, want disabled (%s) by attempt %d", got, c.reason, c.by)
				}
			})
		}
	})
}

// On probation the first failure disables, with its own reason unless the attempt gave one; a
// success ends probation.
func TestStreakRuleProbation(t *testing.T) {
	rule := registry.StreakRule{Threshold: 15, MinWindow: time.Hour}
	cases := []struct {
		name   string
		steps  []step
		reason string
		by     int
	}{
		{"failure", []step{{thr, "", 0}, {fail, "", time.Second}}, registry.ReasonProbationFailed, 1},
		{"gone keeps its reason", []step{{gone, registry.ReasonGone, 0}}, registry.ReasonGone, 0},
		{"a success ends it", []step{{ok, "", 0}, {fail, "", time.Second}}, "", -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := countSteps(rule, c.steps, true)
			if got.reason != c.reason || got.by != c.by {
				t.Errorf("Count on probation = %+v, want reason %q by attempt %d", got, c.reason, c.by)
			}
		})
	}
}
