package main

import (
	"fmt"
	"io"
)

// subjects are webhookd's scenarios compared with the baselines, in report order: single-event
// publishing (flood) and publishing in batches of 100 (batch).
var subjects = []string{"flood", "batch"}

// baselineRef is a ceiling measured in the same run that every subject is compared with.
type baselineRef struct {
	scenario, label string
	queues          bool // events wait in a queue, as webhookd's do
}

// baselineRefs are the two baselines: bare asynq (a queue and a signed POST), and the bare
// sender (the signed POST alone), the machine's ceiling.
var baselineRefs = []baselineRef{{"baseline", "bare asynq", true}, {"raw", "raw", false}}

// comparedFigure is a figure compared with the baselines.
type comparedFigure struct {
	figure
	// queueing marks a latency that under closed-loop publishers is mostly time spent queued
	// behind them: compared with a baseline that queues too, not with raw's bare POST.
	queueing bool
}

// comparedFigures are the figures compared. A figure a baseline does not have (raw makes no
// Redis command) is left out of its column.
var comparedFigures = []comparedFigure{{figure{Name: "delivered/s", Unit: "/s"}, false},
	{figure{Name: "latency p50", Unit: "ms"}, true}, {figure{Name: "latency p99", Unit: "ms"}, true},
	{figure{Name: "redis commands/delivery"}, false}, {figure{Name: "redis-server CPU/delivery", Unit: "µs"}, false},
	{figure{Name: "all processes CPU/delivery", Unit: "µs"}, false}}

// comparison is one median of a webhookd scenario next to the baselines' medians.
type comparison struct {
	Scenario string    `json:"scenario"`
	Figure   string    `json:"figure"`
	Unit     string    `json:"unit"`
	Webhookd float64   `json:"webhookd"`
	Against  []against `json:"against"`
}

// against is one baseline's median of a figure and webhookd's ratio to it.
type against struct {
	Baseline string  `json:"baseline"` // its scenario name
	Value    float64 `json:"value"`
	Ratio    float64 `json:"ratio"` // webhookd ÷ baseline
}

// ratio returns webhookd ÷ the named baseline for this figure.
func (c comparison) ratio(baseline string) (against, bool) {
	for _, a := range c.Against {
		if a.Baseline == baseline {
			return a, true
		}
	}
	return against{}, false
}

func find(results []*scenarioResult, name string) *scenarioResult {
	for _, r := range results {
		if r.Name == name && len(r.Runs) > 0 {
			return r
		}
	}
	return nil
}

// compare puts every subject's medians next to each baseline's that ran: webhookd ÷ baseline.
func compare(results []*scenarioResult) []comparison {
	var out []comparison
	for _, name := range subjects {
		ours := find(results, name)
		if ours == nil {
			continue
		}
		for _, f := range comparedFigures {
			o, ok := ours.median(f.Name)
			if !ok {
				continue
			}
			c := comparison{Scenario: name, Figure: f.Name, Unit: f.Unit, Webhookd: o}
			for _, ref := range baselineRefs {
				if f.queueing && !ref.queues {
					continue
				}
				if base := find(results, ref.scenario); base != nil {
					if v, ok := base.median(f.Name); ok && v != 0 {
						c.Against = append(c.Against, against{Baseline: ref.scenario, Value: v, Ratio: o / v})
					}
				}
			}
			if len(c.Against) > 0 {
				out = append(out, c)
			}
		}
	}
	return out
}

// lookup returns the comparison of a subject's figure.
func lookup(cs []comparison, scenario, fig string) (comparison, bool) {
	for _, c := range cs {
		if c.Scenario == scenario && c.Figure == fig {
			return c, true
		}
	}
	return comparison{}, false
}

// printComparison writes one table per subject: webhookd, then each baseline that ran with
// webhookd's ratio to it ("–" where the baseline has no such figure).
func printComparison(w io.Writer, cs []comparison) {
	fmt.Fprintf(w, "\n== webhookd against the baselines measured in this run, medians (ratio = webhookd ÷ baseline)\n")
	var refs []baselineRef
	for _, ref := range baselineRefs {
		for _, c := range cs {
			if _, ok := c.ratio(ref.scenario); ok {
				refs = append(refs, ref)
				break
			}
		}
	}
	last := ""
	for _, c := range cs {
		if c.Scenario != last {
			last = c.Scenario
			fmt.Fprintf(w, "  %-28s %12s", c.Scenario, "webhookd")
			for _, ref := range refs {
				fmt.Fprintf(w, " %12s %8s", ref.label, "ratio")
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  %-28s %12s", c.Figure, format(c.Webhookd, c.Unit))
		for _, ref := range refs {
			if a, ok := c.ratio(ref.scenario); ok {
				fmt.Fprintf(w, " %12s %8s", format(a.Value, c.Unit), formatRatio(a.Ratio))
			} else {
				fmt.Fprintf(w, " %12s %8s", "–", "–")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  (latency in a flood is mostly time queued behind the publishers: compared with bare asynq only;\n"+
		"  CPU from /proc, 10 ms ticks, all processes: webhookd, redis-server and webhookbench, which is the publishers and\n"+
		"  receivers, in the asynq baseline also its server and handler; raw has no other process: its figure is webhookbench's,\n"+
		"  the senders and the receiver)\n")
}

// formatRatio shows three significant digits, without an exponent.
func formatRatio(r float64) string {
	if r >= 100 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.3g", r)
}
