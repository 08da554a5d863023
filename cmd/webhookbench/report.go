package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"
)

// report is everything printed, and the JSON written with --json.
type report struct {
	Environment map[string]string `json:"environment"`
	Options     *options          `json:"options"`
	Scenarios   []scenarioReport  `json:"scenarios"`
	Comparison  []comparison      `json:"comparisonWithBaselines,omitempty"`
	Targets     []targetResult    `json:"targets,omitempty"`
}

// scenarioReport is one scenario: what it does, its medians and every run.
type scenarioReport struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Median      map[string]float64 `json:"median"`
	Runs        []*runResult       `json:"runs"`
	result      *scenarioResult
}

func newReport(b *bench, results []*scenarioResult) *report {
	rep := &report{Environment: environment(b), Options: b.opt}
	for _, sr := range results {
		s := scenarioReport{Name: sr.Name, Description: describe(b.opt, sr.Name), Median: map[string]float64{},
			Runs: sr.Runs, result: sr}
		for _, f := range sr.names() {
			s.Median[f.Name], _ = sr.median(f.Name)
		}
		rep.Scenarios = append(rep.Scenarios, s)
	}
	rep.Comparison = compare(results)
	if !b.opt.Smoke {
		rep.Targets = evaluate(b.opt, results)
	}
	return rep
}

func environment(b *bench) map[string]string {
	env := map[string]string{
		"date": time.Now().UTC().Format(time.RFC3339), "go": runtime.Version(), "os": runtime.GOOS + "/" + runtime.GOARCH,
		"cpus": fmt.Sprint(runtime.NumCPU()),
	}
	if b.rdb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
					env["redis"] = v
				}
			}
		}
	}
	return env
}

func describe(o *options, name string) string {
	switch name {
	case "flood":
		return fmt.Sprintf("%d events to 1 endpoint from %d closed-loop publishers", o.Events, o.Publishers)
	case "batch":
		return fmt.Sprintf("%d events to 1 endpoint in batches of %d (POST /api/v1/events/batch) from %d closed-loop publishers",
			o.Events, batchSize, o.Publishers)
	case "baseline":
		return fmt.Sprintf("bare asynq: %d tasks enqueued with asynq.Client by %d publishers, a handler making one signed HTTPS POST, concurrency %d, TaskCheckInterval 10ms",
			o.Events, o.Publishers, o.Concurrency)
	case "raw":
		return fmt.Sprintf("bare sender, the machine's ceiling: %d events, each signed (Standard Webhooks) and POSTed over pooled HTTPS by %d closed-loop senders "+
			"(--concurrency, as webhookd's delivery and the asynq baseline) to a receiver like the flood's; no queue, no API, no Redis; CPU is webhookbench's alone",
			o.Events, o.Concurrency)
	case "paced":
		return fmt.Sprintf("%g events/s open loop for %s to 1 endpoint", o.Rate, o.Duration)
	case "fanout":
		return fmt.Sprintf("1 event to %d endpoints, after one warm-up event whose figures are marked cold", o.FanoutEndpoints)
	case "slow":
		return fmt.Sprintf("%g events/s open loop for %s to 2 endpoints on 2 receivers, one answering after %s",
			o.SlowRate, o.SlowDuration, o.SlowDelay)
	case "failing":
		return fmt.Sprintf("%d events from %d closed-loop publishers to %d endpoints, %d of them always answering 500 (retries 100ms×2 up to 1s, 4 attempts, disable after 20 failures, no minimum window)",
			max(o.Events/o.FailingEndpoints, 1), o.Publishers, o.FailingEndpoints, o.FailingBad)
	case "mixed":
		return fmt.Sprintf("%g requests/s open loop for %s: 30%% get webhook, 30%% get delivery, 10%% list webhooks, 15%% list deliveries, 15%% publish, "+
			"to a tenant with %d endpoints, %d of them subscribed; latency from each request's scheduled time; any non-2xx is an error",
			o.MixedRate, o.MixedDuration, o.MixedEndpoints, mixedSubscribed)
	case "ordered":
		return fmt.Sprintf("%d scans (scan.started, then at once scan.completed, scan.failed for 1 in %d) from %d closed-loop publishers, at most %d scans open at once, "+
			"to an endpoint with \"ordering\": \"scan\" and, in the same run, to one without ordering (each on a fresh Redis, webhookd and receiver; the first side alternates); "+
			"ordered ÷ unordered is per run", max(o.Events/2, 1), failedEvery, o.Publishers, o.Scans)
	case "idle":
		return fmt.Sprintf("1 endpoint, 1 event delivered, then %s with nothing to do: webhookd's and redis-server's CPU "+
			"as a share of one core", idleWindow)
	case "throttled":
		t := o.newThrottle()
		return fmt.Sprintf("%g events/s open loop for %s to 2 endpoints, a healthy one and one whose receiver answers %s "+
			"(each admitted delivery answered 2xx after %s: capacity %.0f/s), then the same load to the healthy one alone "+
			"(each side on a fresh Redis and webhookd; the first side alternates); then %d events at once to an endpoint "+
			"with rateLimitPerSecond %d, through an API process and two worker processes. Retries 1 s ×2 up to 5 s, "+
			"10 attempts; figures after 5 s leave out the warm-up", o.ThrottledRate, o.ThrottledDuration, t, o.ThrottledDelay,
			t.capacity(o.ThrottledDelay), o.RateLimit*int(o.RateLimitDuration/time.Second), o.RateLimit)
	case "memory":
		return fmt.Sprintf("%d events to %d endpoints published to webhookd --role api (fanned out at publish, no worker, so every delivery stays pending); the event's share measured with a tenant without endpoints. "+
			"Then %d events per payload size (150 B and 2 KB of data) delivered by webhookd --role all to 1 endpoint: used_memory growth per retained delivered event, with redis-server's default hash-max-listpack-value and with %d",
			o.MemEvents, o.MemEndpoints, o.RetainedEvents, listpackValue)
	}
	return ""
}

// problems counts correctness failures over all scenarios.
func (rep *report) problems() int {
	n := 0
	for _, s := range rep.Scenarios {
		n += s.result.problems()
	}
	return n
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// print writes the human-readable report: per scenario the median of every figure and each
// run, then the comparison with the baseline and the targets.
func (rep *report) print(w io.Writer) {
	e := rep.Environment
	fmt.Fprintf(w, "webhookbench %s: %s %s, %s CPUs, redis %s; webhookd concurrency %d, %d publishers, %d run(s) per scenario\n",
		e["date"], e["go"], e["os"], e["cpus"], cmp.Or(e["redis"], "unknown"), rep.Options.Concurrency,
		rep.Options.Publishers, rep.Options.Runs)
	for _, s := range rep.Scenarios {
		s.print(w)
	}
	if len(rep.Comparison) > 0 {
		printComparison(w, rep.Comparison)
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\n== targets (medians)\n")
		for _, t := range rep.Targets {
			fmt.Fprintf(w, "  %-7s %-72s %s\n", t.Verdict, t.Target, t.Measured)
		}
	}
	fmt.Fprintf(w, "\ncorrectness problems: %d\n", rep.problems())
}

func (s scenarioReport) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s: %s\n", s.Name, s.Description)
	if len(s.Runs) == 0 {
		fmt.Fprintf(w, "  skipped in this configuration\n")
		return
	}
	fmt.Fprintf(w, "  %-58s %12s", "figure", "median")
	for i := range s.Runs {
		fmt.Fprintf(w, " %12s", fmt.Sprintf("run %d", i+1))
	}
	fmt.Fprintln(w)
	for _, f := range s.result.names() {
		fmt.Fprintf(w, "  %-58s %12s", f.Name, format(s.Median[f.Name], f.Unit))
		for _, r := range s.Runs {
			v, ok := r.value(f.Name)
			cell := "-"
			if ok {
				cell = format(v, f.Unit)
			}
			fmt.Fprintf(w, " %12s", cell)
		}
		fmt.Fprintln(w)
	}
	for i, r := range s.Runs {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  note, run %d: %s\n", i+1, n)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  PROBLEM, run %d: %s\n", i+1, p)
		}
	}
}

// format shows v with about three significant digits and its unit.
func format(v float64, unit string) string {
	var s string
	switch a := math.Abs(v); {
	case unit == "" && v == math.Trunc(v):
		s = fmt.Sprintf("%.0f", v)
	case a >= 100:
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	if unit == "" {
		return s
	}
	if unit == "/s" {
		return s + unit
	}
	return s + " " + unit
}
