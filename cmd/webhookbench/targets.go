package main

import (
	"fmt"
	"strings"
)

// targetResult is one target of the performance issues and whether the medians meet it.
type targetResult struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"` // "meets", "MISSES" or "n/a"
}

// target is a bound on the median of one figure of one scenario.
type target struct {
	text, scenario, figure, unit string
	limit                        float64
	atLeast                      bool
}

func targets(o *options) []target {
	return []target{
		{"≥ 3,000 delivered/s end to end (flood)", "flood", "delivered/s", "/s", 3000, true},
		{"p50 ≤ 10 ms publish→receipt (paced)", "paced", "latency p50", "ms", 10, false},
		{"p99 ≤ 50 ms publish→receipt (paced)", "paced", "latency p99", "ms", 50, false},
		{fmt.Sprintf("fan-out to %d endpoints accepted ≤ 20 ms", o.FanoutEndpoints), "fanout",
			"accepted (publish round trip)", "ms", 20, false},
		{fmt.Sprintf("fan-out to %d endpoints all delivered ≤ 1 s", o.FanoutEndpoints), "fanout",
			"all delivered", "ms", 1000, false},
		{"≤ 25 Redis commands per delivery (flood)", "flood", "redis commands/delivery", "", 25, false},
		{"≤ 512 B Redis memory per pending delivery beyond the payload", "memory",
			"pending delivery beyond the event: Redis memory/delivery", "B", 512, false},
		{"≤ 800 B Redis memory per retained delivered event (150-byte payload)", "memory",
			"retained delivered event, 150 B payload: Redis memory/event", "B", 800, false},
		{"≤ 50 % of a 2 KB payload on top of it per retained delivered event", "memory",
			"retained delivered event, 2 KB payload: beyond the payload", "B", 1024, false},
	}
}

// ratioTarget bounds a webhookd scenario's median of a figure divided by a baseline's median
// of it, both measured in the same run.
type ratioTarget struct {
	text, subject, baseline, figure string
	limit                           float64
	atLeast                         bool
	times                           bool // shown as "2.3 ×" rather than "47 %"
}

var ratioTargets = []ratioTarget{
	{"≥ 50 % of the bare baseline's delivered/s (flood, same run)", "flood", "baseline", "delivered/s", 0.5, true, false},
	{"single-event publish ≥ 25 % of the raw ceiling's delivered/s (flood)", "flood", "raw", "delivered/s", 0.25, true, false},
	{"single-event publish ≥ 100 % of bare asynq's delivered/s (flood)", "flood", "baseline", "delivered/s", 1, true, false},
	{"batch publish (100 a request) ≥ 40 % of the raw ceiling's delivered/s", "batch", "raw", "delivered/s", 0.4, true, false},
	{"CPU per delivery, all processes, ≤ 2 × the raw ceiling's (flood)", "flood", "raw", "all processes CPU/delivery", 2, false, true},
}

// evaluate checks the medians against the targets of the performance issues.
func evaluate(o *options, results []*scenarioResult) []targetResult {
	var out []targetResult
	for _, t := range targets(o) {
		out = append(out, t.evaluate(results))
	}
	cs := compare(results)
	for _, t := range ratioTargets {
		out = append(out, t.evaluate(results, cs))
	}
	out = append(out, throttledTargets(o, results)...)
	out = append(out, latencyAt1000(o, results), orderedTarget(results))
	problems := 0
	for _, sr := range results {
		problems += sr.problems()
	}
	return append(out, targetResult{Target: "0 lost, 0 duplicated, every signature valid, in every scenario",
		Measured: fmt.Sprintf("%d problem(s)", problems), Verdict: verdict(problems == 0)})
}

func (t target) evaluate(results []*scenarioResult) targetResult {
	tr := targetResult{Target: t.text, Measured: "not measured", Verdict: "n/a"}
	if sr := find(results, t.scenario); sr != nil {
		if v, ok := sr.median(t.figure); ok {
			tr.Measured = format(v, t.unit)
			tr.Verdict = verdict(within(v, t.limit, t.atLeast))
		}
	}
	return tr
}

func (t ratioTarget) evaluate(results []*scenarioResult, cs []comparison) targetResult {
	tr := targetResult{Target: t.text, Verdict: "n/a"}
	for _, name := range []string{t.subject, t.baseline} {
		switch {
		case !contains(scenarioNames, name):
			tr.Measured = "not measured: webhookbench has no " + name + " scenario yet"
			return tr
		case find(results, name) == nil:
			tr.Measured = "not measured: no " + name + " run"
			return tr
		}
	}
	c, ok := lookup(cs, t.subject, t.figure)
	a, ok2 := c.ratio(t.baseline)
	if !ok || !ok2 {
		tr.Measured = "not measured: no " + t.figure
		return tr
	}
	share := fmt.Sprintf("%.0f %%", 100*a.Ratio)
	if t.times {
		share = fmt.Sprintf("%.2f ×", a.Ratio)
	}
	tr.Measured = fmt.Sprintf("%s (%s ÷ %s)", share, format(c.Webhookd, c.Unit), format(a.Value, c.Unit))
	tr.Verdict = verdict(within(a.Ratio, t.limit, t.atLeast))
	return tr
}

// latencyAt1000 is "p50 ≤ 5 ms, p99 ≤ 20 ms publish→receipt at 1,000 events/s": judged from
// the paced scenario when it ran at 1,000 events/s or more (--rate 1000).
func latencyAt1000(o *options, results []*scenarioResult) targetResult {
	tr := targetResult{Target: "p50 ≤ 5 ms and p99 ≤ 20 ms publish→receipt at 1,000 events/s (paced)", Verdict: "n/a"}
	sr := find(results, "paced")
	switch {
	case sr == nil:
		tr.Measured = "not measured: no paced run"
	case o.Rate < 1000:
		tr.Measured = fmt.Sprintf("not measured: paced ran at %g events/s (--rate 1000)", o.Rate)
	default:
		p50, ok1 := sr.median("latency p50")
		p99, ok2 := sr.median("latency p99")
		if !ok1 || !ok2 {
			tr.Measured = "not measured: no latency"
			return tr
		}
		tr.Measured = fmt.Sprintf("p50 %s, p99 %s at %g events/s", format(p50, "ms"), format(p99, "ms"), o.Rate)
		tr.Verdict = verdict(p50 <= 5 && p99 <= 20)
	}
	return tr
}

// orderedTarget is "ordered ≥ 80 % of unordered (same run)": the median of the runs' own
// ratios of the ordered endpoint's delivered/s to the unordered one's, each measured in one run.
func orderedTarget(results []*scenarioResult) targetResult {
	tr := targetResult{Target: "ordered ≥ 80 % of unordered delivered/s (same run)", Verdict: "n/a",
		Measured: "not measured: no ordered run"}
	sr := find(results, "ordered")
	if sr == nil {
		return tr
	}
	ratio, ok := sr.median("ordered ÷ unordered delivered/s")
	if !ok {
		tr.Measured = "not measured: no run measured both endpoints"
		return tr
	}
	var runs []string
	for _, r := range sr.Runs {
		if v, ok := r.value("ordered ÷ unordered delivered/s"); ok {
			runs = append(runs, fmt.Sprintf("%.0f", v))
		}
	}
	ord, _ := sr.median("ordered delivered/s")
	un, _ := sr.median("unordered delivered/s")
	tr.Measured = fmt.Sprintf("%.0f %% (runs %s %%; medians %s ordered, %s unordered)", ratio,
		strings.Join(runs, " / "), format(ord, "/s"), format(un, "/s"))
	tr.Verdict = verdict(ratio >= 80)
	return tr
}

func within(v, limit float64, atLeast bool) bool {
	if atLeast {
		return v >= limit
	}
	return v <= limit
}

func verdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "MISSES"
}
