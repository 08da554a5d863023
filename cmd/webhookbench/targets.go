package main

import "fmt"

// comparison is one median of the flood next to the baseline's.
type comparison struct {
	Figure   string  `json:"figure"`
	Unit     string  `json:"unit"`
	Ours     float64 `json:"webhookd"`
	Baseline float64 `json:"baseline"`
	Ratio    float64 `json:"ratio"`
}

func find(results []*scenarioResult, name string) *scenarioResult {
	for _, r := range results {
		if r.Name == name && len(r.Runs) > 0 {
			return r
		}
	}
	return nil
}

// compare puts the flood's medians next to the baseline's: webhookd ÷ baseline.
func compare(results []*scenarioResult) []comparison {
	ours, base := find(results, "flood"), find(results, "baseline")
	if ours == nil || base == nil {
		return nil
	}
	var out []comparison
	for _, f := range []figure{{Name: "delivered/s", Unit: "/s"}, {Name: "latency p50", Unit: "ms"},
		{Name: "latency p99", Unit: "ms"}, {Name: "redis commands/delivery"}, {Name: "redis-server CPU/delivery", Unit: "µs"},
		{Name: "all processes CPU/delivery", Unit: "µs"}} {
		o, ok1 := ours.median(f.Name)
		b, ok2 := base.median(f.Name)
		if ok1 && ok2 && b != 0 {
			out = append(out, comparison{Figure: f.Name, Unit: f.Unit, Ours: o, Baseline: b, Ratio: o / b})
		}
	}
	return out
}

// targetResult is one target of the performance issue and whether the medians meet it.
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
	}
}

// evaluate checks the medians against the targets of the performance issue.
func evaluate(o *options, results []*scenarioResult) []targetResult {
	var out []targetResult
	for _, t := range targets(o) {
		tr := targetResult{Target: t.text, Measured: "not measured", Verdict: "n/a"}
		if sr := find(results, t.scenario); sr != nil {
			if v, ok := sr.median(t.figure); ok {
				tr.Measured = format(v, t.unit)
				ok := v <= t.limit
				if t.atLeast {
					ok = v >= t.limit
				}
				tr.Verdict = verdict(ok)
			}
		}
		out = append(out, tr)
	}
	out = append(out, ratioTarget(results))
	problems := 0
	for _, sr := range results {
		problems += sr.problems()
	}
	out = append(out, targetResult{Target: "0 lost, 0 duplicated, every signature valid, in every scenario",
		Measured: fmt.Sprintf("%d problem(s)", problems), Verdict: verdict(problems == 0)})
	return out
}

// ratioTarget is "≥ 50 % of the bare baseline measured in the same run".
func ratioTarget(results []*scenarioResult) targetResult {
	tr := targetResult{Target: "≥ 50 % of the bare baseline's delivered/s (same run)", Measured: "not measured", Verdict: "n/a"}
	for _, c := range compare(results) {
		if c.Figure == "delivered/s" {
			tr.Measured = fmt.Sprintf("%.0f %%", 100*c.Ratio)
			tr.Verdict = verdict(c.Ratio >= 0.5)
		}
	}
	return tr
}

func verdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "MISSES"
}
