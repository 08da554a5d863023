package main

import (
	"reflect"
	"strings"
	"testing"
)

// results makes one run per scenario with the given figures.
func results(figs map[string]map[string]float64) []*scenarioResult {
	var out []*scenarioResult
	for _, name := range scenarioNames {
		fs, ok := figs[name]
		if !ok {
			continue
		}
		r := &runResult{}
		for f, v := range fs {
			r.add(f, "", v)
		}
		out = append(out, &scenarioResult{Name: name, Runs: []*runResult{r}})
	}
	return out
}

var measured = map[string]map[string]float64{
	"flood":    {"delivered/s": 2000, "all processes CPU/delivery": 700, "redis commands/delivery": 23, "latency p50": 900},
	"baseline": {"delivered/s": 4000, "all processes CPU/delivery": 300, "redis commands/delivery": 18, "latency p50": 4500},
	"raw":      {"delivered/s": 20000, "all processes CPU/delivery": 100, "latency p50": 1},
}

func TestCompareAgainstBothBaselines(t *testing.T) {
	got := map[string][]against{}
	for _, c := range compare(results(measured)) {
		if c.Scenario != "flood" {
			t.Errorf("comparison of %s, want only flood", c.Scenario)
		}
		got[c.Figure] = c.Against
	}
	want := map[string][]against{
		"delivered/s": {{Baseline: "baseline", Value: 4000, Ratio: 0.5}, {Baseline: "raw", Value: 20000, Ratio: 0.1}},
		"all processes CPU/delivery": {{Baseline: "baseline", Value: 300, Ratio: 700.0 / 300},
			{Baseline: "raw", Value: 100, Ratio: 7}},
		// raw makes no Redis command: compared with the asynq baseline only.
		"redis commands/delivery": {{Baseline: "baseline", Value: 18, Ratio: 23.0 / 18}},
		// Flood latency is queueing: compared with the baseline that queues, not with raw.
		"latency p50": {{Baseline: "baseline", Value: 4500, Ratio: 0.2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("comparisons = %+v\nwant %+v", got, want)
	}
}

func TestRatioTargets(t *testing.T) {
	withoutRaw := map[string]map[string]float64{"flood": measured["flood"], "baseline": measured["baseline"]}
	withBatch := map[string]map[string]float64{"batch": {"delivered/s": 10000}, "raw": measured["raw"]}
	for _, tc := range []struct {
		name     string
		figs     map[string]map[string]float64
		target   string
		verdict  string
		measured string
	}{
		{"half of asynq", measured, "≥ 50 % of the bare baseline", "meets", "50 % (2000/s ÷ 4000/s)"},
		{"quarter of raw", measured, "≥ 25 % of the raw ceiling", "MISSES", "10 %"},
		{"all of asynq", measured, "≥ 100 % of bare asynq", "MISSES", "50 %"},
		{"CPU twice raw's", measured, "≤ 2 × the raw ceiling", "MISSES", "7.00 ×"},
		{"batch not run", measured, "batch publish", "n/a", "no batch run"},
		{"batch at half of raw", withBatch, "batch publish", "meets", "50 % (10000/s ÷ 20000/s)"},
		{"raw not run", withoutRaw, "≥ 25 % of the raw ceiling", "n/a", "no raw run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := results(tc.figs)
			var got *targetResult
			for _, tr := range evaluate(&options{FanoutEndpoints: 1}, res) {
				if strings.Contains(tr.Target, tc.target) {
					got = &tr
				}
			}
			if got == nil {
				t.Fatalf("no target with %q", tc.target)
			}
			if got.Verdict != tc.verdict || !strings.Contains(got.Measured, tc.measured) {
				t.Errorf("%s: %s, %q; want %s, %q", got.Target, got.Verdict, got.Measured, tc.verdict, tc.measured)
			}
		})
	}
}
