package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// figure is one measured number of one run.
type figure struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
}

// runResult is what one run of one scenario measured. Problems are correctness failures (losses,
// duplicates, bad signatures, rejected publishes, timeouts); notes are context.
type runResult struct {
	Figures  []figure `json:"figures"`
	Notes    []string `json:"notes,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

func (r *runResult) add(name, unit string, v float64) {
	r.Figures = append(r.Figures, figure{Name: name, Unit: unit, Value: v})
}

func (r *runResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *runResult) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// value returns the figure called name.
func (r *runResult) value(name string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// quantile names a q-quantile in figure names.
type quantile struct {
	name string
	q    float64
}

// latencyQuantiles are the quantiles every latency is reported by.
var latencyQuantiles = []quantile{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"max", 1}}

// addLatency adds p50, p90, p99 and max of ls in milliseconds, each name prefixed.
func (r *runResult) addLatency(prefix string, ls []time.Duration) {
	r.addQuantiles(prefix, ls, latencyQuantiles)
}

// addQuantiles adds the quantiles qs of ds in milliseconds, each name prefixed.
func (r *runResult) addQuantiles(prefix string, ds []time.Duration, qs []quantile) {
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for _, p := range qs {
		r.add(prefix+" "+p.name, "ms", ms(percentile(s, p.q)))
	}
}

// percentile is the nearest-rank q-quantile of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// addTally adds the correctness counts and records any loss, duplicate or stray delivery
// as a problem.
func (r *runResult) addTally(prefix string, t tally) {
	r.add(prefix+"delivered", "", float64(t.delivered))
	r.add(prefix+"lost", "", float64(t.lost))
	r.add(prefix+"duplicated", "", float64(t.duplicates))
	if t.lost > 0 {
		r.problem("%slost %d of %d deliveries", prefix, t.lost, t.expected)
	}
	if t.duplicates > 0 {
		r.problem("%s%d duplicated deliveries", prefix, t.duplicates)
	}
}

// addReceiverProblems records requests the receivers refused to count, and deliveries of
// events not in published (the run's accepted events).
func (r *runResult) addReceiverProblems(rec *recorder, published []string) {
	_, badSig, badBody, unknown, firstErr := rec.failures()
	r.add("bad signatures", "", float64(badSig))
	if n := rec.strays(published); n > 0 {
		r.problem("%d deliveries of events the bench did not publish", n)
	}
	if badSig+badBody+unknown > 0 {
		r.problem("receivers got %d requests with a bad signature, %d with a bad body, %d to unknown endpoints; first: %s",
			badSig, badBody, unknown, firstErr)
	}
}

// addLoad adds the publishing phase's figures; rejected publishes are problems.
func (r *runResult) addLoad(name string, l *loadResult) {
	r.add(name, "/s", l.rate())
	if l.rejected > 0 {
		r.problem("%d publishes rejected; first: %s", l.rejected, l.firstErr)
	}
	if l.skipped > 0 {
		r.note("%d paced publishes skipped: too many answers outstanding", l.skipped)
	}
}

// phase is the publishing phase of a throughput scenario (flood, baseline, raw): what was
// published, what the receivers saw of it, and the counters read around it.
type phase struct {
	load          *loadResult
	tally         tally
	rec           *recorder
	before, after snapshot
}

// addPhase adds the figures every throughput scenario reports, so that they compare: the
// publish rate and round trip (named for what publishing is in the scenario), delivered/s from
// the first publish to the last receipt, publish→receipt latency, the correctness counts and
// the cost per delivery.
func (r *runResult) addPhase(loadName, rttName string, p phase) {
	r.addLoad(loadName, p.load)
	r.addLatency(rttName, p.load.rtts)
	r.add("delivered/s", "/s", perSecond(p.tally.delivered, p.tally.last.Sub(p.load.start)))
	r.addLatency("latency", p.tally.latencies)
	r.addTally("", p.tally)
	r.addReceiverProblems(p.rec, p.load.ids)
	r.addCost(p.before, p.after, p.tally.delivered)
}

// scenarioResult is every run of one scenario.
type scenarioResult struct {
	Name string       `json:"name"`
	Runs []*runResult `json:"runs"`
}

// names lists the figure names of all runs in first-seen order, with their units.
func (s *scenarioResult) names() []figure {
	var out []figure
	for _, r := range s.Runs {
		for _, f := range r.Figures {
			if !slices.ContainsFunc(out, func(o figure) bool { return o.Name == f.Name }) {
				out = append(out, figure{Name: f.Name, Unit: f.Unit})
			}
		}
	}
	return out
}

// median is the median of a figure over the runs that have it (the lower middle of an even
// count, so it is always a measured value).
func (s *scenarioResult) median(name string) (float64, bool) {
	var vs []float64
	for _, r := range s.Runs {
		if v, ok := r.value(name); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	return vs[(len(vs)-1)/2], true
}

// problems counts the correctness failures over all runs.
func (s *scenarioResult) problems() int {
	n := 0
	for _, r := range s.Runs {
		n += len(r.Problems)
	}
	return n
}
