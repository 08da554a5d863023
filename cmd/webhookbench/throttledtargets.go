package main

import (
	"fmt"
	"math"
)

// bandTarget bounds the median of one figure of the throttled scenario between lo and hi.
type bandTarget struct {
	text, figure, unit string
	lo, hi             float64
}

// throttledTargets are issue 16's targets, judged on the throttled scenario's medians; a
// delivery ending failed is judged on every run.
func throttledTargets(o *options, results []*scenarioResult) []targetResult {
	bands := []bandTarget{
		{"throttled: ≥ 90 % of attempts answered 2xx after the first 5 s",
			"throttled 2xx share of attempts after 5 s", "%", 90, math.Inf(1)},
		{"throttled: 2xx/s within ±20 % of the receiver's capacity (from 5 s to the end of publishing)",
			"throttled 2xx/s ÷ capacity from 5 s to the end of publishing", "%", 80, 120},
		{fmt.Sprintf("rateLimitPerSecond %d holds ±10 %% across two worker processes", o.RateLimit),
			"rate-limited attempts/s ÷ rateLimitPerSecond", "%", 90, 110},
	}
	sr := find(results, "throttled")
	var out []targetResult
	for _, b := range bands {
		tr := targetResult{Target: b.text, Measured: "not measured: no throttled run", Verdict: "n/a"}
		if v, ok := sr.medianOf(b.figure); ok {
			tr.Measured, tr.Verdict = format(v, b.unit), verdict(v >= b.lo && v <= b.hi)
		}
		out = append(out, tr)
	}
	return append(out, noneFailed(sr), healthyUnchanged(sr))
}

// medianOf is median on a scenario that may not have run.
func (s *scenarioResult) medianOf(name string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	return s.median(name)
}

// noneFailed: no throttled delivery ended failed, in any run.
func noneFailed(sr *scenarioResult) targetResult {
	tr := targetResult{Target: "throttled: no delivery ends failed (every run)", Measured: "not measured: no throttled run",
		Verdict: "n/a"}
	if sr == nil {
		return tr
	}
	most, seen := 0.0, false
	for _, r := range sr.Runs {
		if v, ok := r.value("throttled deliveries failed"); ok {
			most, seen = max(most, v), true
		}
	}
	if seen {
		tr.Measured, tr.Verdict = fmt.Sprintf("at most %.0f failed in a run", most), verdict(most == 0)
	}
	return tr
}

// healthyUnchanged: the healthy endpoint's p99 beside the throttled one is at most 120 % of its
// p99 alone or 5 ms above it, whichever is more (medians over the runs).
func healthyUnchanged(sr *scenarioResult) targetResult {
	tr := targetResult{Target: "throttled: healthy endpoint's p99 unchanged (≤ 120 % or +5 ms of it alone, same runs)",
		Measured: "not measured: no throttled run", Verdict: "n/a"}
	beside, ok1 := sr.medianOf("healthy latency beside throttled p99")
	alone, ok2 := sr.medianOf("healthy latency alone p99")
	if ok1 && ok2 {
		tr.Measured = fmt.Sprintf("%s beside, %s alone", format(beside, "ms"), format(alone, "ms"))
		tr.Verdict = verdict(beside <= max(1.2*alone, alone+5))
	}
	return tr
}
