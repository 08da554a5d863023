// Command webhookbench is webhookd's published load benchmark. It starts its own
// redis-server and a webhookd subprocess built from this module, runs HTTPS receivers that
// verify every signature, publishes events through the real API and reports throughput,
// publish→receipt latency, losses and duplicates, Redis commands and memory per delivery, and
// the same figures for a bare asynq baseline measured in the same run.
//
//	go run ./cmd/webhookbench --scenario all --runs 3
//	go run ./cmd/webhookbench --smoke            # correctness only, a few seconds (CI)
//
// Everything it starts listens on loopback only, and every loop is bounded in count and time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "webhookbench:", err)
		os.Exit(1)
	}
}

// scenarioNames lists every scenario in the order --scenario all runs them.
var scenarioNames = []string{"flood", "batch", "baseline", "raw", "paced", "fanout", "slow", "failing", "memory", "mixed",
	"ordered", "throttled", "idle"}

// smokeScenarios are the ones --smoke runs: those that check webhookd's correctness, and the
// raw sender, whose checks the comparisons rest on.
var smokeScenarios = []string{"flood", "batch", "raw", "paced", "fanout", "slow", "failing", "mixed", "ordered", "throttled"}

// serverless are the scenarios that need neither Redis nor webhookd.
var serverless = []string{"raw"}

// options are the command-line flags.
type options struct {
	Scenario         string        `json:"scenario"`
	Events           int           `json:"events"`
	Publishers       int           `json:"publishers"`
	Duration         time.Duration `json:"duration"`
	Rate             float64       `json:"rate"`
	Concurrency      int           `json:"concurrency"`
	Runs             int           `json:"runs"`
	FanoutEndpoints  int           `json:"fanoutEndpoints"`
	SlowDelay        time.Duration `json:"slowDelay"`
	SlowRate         float64       `json:"slowRate"`
	SlowDuration     time.Duration `json:"slowDuration"`
	FailingEndpoints int           `json:"failingEndpoints"`
	FailingBad       int           `json:"failingBad"`
	MemEvents        int           `json:"memEvents"`
	MemEndpoints     int           `json:"memEndpoints"`
	RetainedEvents   int           `json:"retainedEvents"`
	MixedRate        float64       `json:"mixedRate"`
	MixedDuration    time.Duration `json:"mixedDuration"`
	MixedEndpoints   int           `json:"mixedEndpoints"`
	Scans            int           `json:"scans"`
	// The throttled scenario's receiver rule, load and rate limit.
	Throttle          string        `json:"throttle"`
	ThrottleInFlight  int           `json:"throttleInFlight"`
	ThrottlePerSecond int           `json:"throttlePerSecond"`
	ThrottledDelay    time.Duration `json:"throttledDelay"`
	ThrottledRate     float64       `json:"throttledRate"`
	ThrottledDuration time.Duration `json:"throttledDuration"`
	RateLimit         int           `json:"rateLimit"`
	RateLimitDuration time.Duration `json:"rateLimitDuration"`
	Smoke             bool          `json:"smoke"`
	JSONPath          string        `json:"-"`
	RedisURL          string        `json:"-"`
	Target            string        `json:"target,omitempty"`
	Key               string        `json:"-"`
	WebhookdBin       string        `json:"-"`
	CADir             string        `json:"-"`
	Keep              bool          `json:"-"`
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("webhookbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Scenario, "scenario", "all", "flood, batch, baseline, raw, paced, fanout, slow, failing, memory, mixed, ordered, throttled, idle or all (comma-separated list allowed)")
	fs.IntVar(&o.Events, "events", 50000, "events published by flood, batch (in requests of 100), baseline and raw (failing publishes events/failing-endpoints; ordered events/2 scans of 2 events to each of its endpoints)")
	fs.IntVar(&o.Publishers, "publishers", 32, "closed-loop publishers of flood, batch, failing, baseline and ordered")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long paced publishes")
	fs.Float64Var(&o.Rate, "rate", 100, "events per second of paced")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "delivery concurrency of webhookd (--concurrency), of the baseline's asynq server and of the raw sender")
	fs.IntVar(&o.Runs, "runs", 3, "runs of each scenario; the report shows each figure's median and every run")
	fs.IntVar(&o.FanoutEndpoints, "fanout-endpoints", 1000, "endpoints the fanout scenario's one event goes to")
	fs.DurationVar(&o.SlowDelay, "slow-delay", 200*time.Millisecond, "delay of the slow receiver per request")
	fs.Float64Var(&o.SlowRate, "slow-rate", 400, "events per second of the slow scenario (400 × 200ms needs 80 workers: more than the default 64)")
	fs.DurationVar(&o.SlowDuration, "slow-duration", 10*time.Second, "how long the slow scenario publishes")
	fs.IntVar(&o.FailingEndpoints, "failing-endpoints", 10, "endpoints of the failing scenario")
	fs.IntVar(&o.FailingBad, "failing-bad", 2, "how many of them always answer 500")
	fs.IntVar(&o.MemEvents, "mem-events", 2000, "events published for the Redis memory measurement")
	fs.IntVar(&o.MemEndpoints, "mem-endpoints", 10, "endpoints of the Redis memory measurement")
	fs.IntVar(&o.RetainedEvents, "retained-events", 20000, "events delivered per payload size for the memory scenario's retained-event measurement")
	fs.Float64Var(&o.MixedRate, "mixed-rate", 400, "requests per second of the mixed scenario (60% gets, 25% lists, 15% publishes)")
	fs.DurationVar(&o.MixedDuration, "mixed-duration", time.Minute, "how long the mixed scenario sends requests")
	fs.IntVar(&o.MixedEndpoints, "mixed-endpoints", 20, "endpoints of the mixed scenario's tenant; 2 of them subscribe to the published events")
	fs.IntVar(&o.Scans, "scans", 1000, "scans open at once in the ordered scenario: a scan opens when its scan.started is published and closes when both its callbacks arrived")
	throttledFlags(fs, o)
	fs.BoolVar(&o.Smoke, "smoke", false, "correctness only: a few hundred events, exits non-zero on any loss, duplicate or bad signature")
	fs.StringVar(&o.JSONPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.RedisURL, "redis-url", "", "use this Redis instead of starting redis-server; it must be a dedicated database: the bench empties it (FLUSHDB) before every run")
	fs.StringVar(&o.Target, "target", "", "benchmark an already running webhookd at this loopback URL instead of starting one (needs --key)")
	fs.StringVar(&o.Key, "key", "", "API key of --target, with webhooks:read, webhooks:write and events:write")
	fs.StringVar(&o.WebhookdBin, "webhookd-bin", "", "use this webhookd binary instead of building ./cmd/webhookd")
	fs.StringVar(&o.CADir, "ca-dir", "", "keep the receivers' CA (ca.pem, ca.key) here and reuse it; give ca.pem to a --target webhookd as WEBHOOKD_EXTRA_CA_FILE")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory (webhookd and redis logs)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.Smoke {
		o.smokeDefaults()
	}
	return o, o.validate()
}

// smokeDefaults shrinks every scenario to seconds; correctness is all smoke checks.
func (o *options) smokeDefaults() {
	if o.Scenario == "all" {
		o.Scenario = strings.Join(smokeScenarios, ",")
	}
	o.Events, o.Publishers, o.Runs = 300, 8, 1
	o.Duration, o.Rate = 2*time.Second, 50
	o.FanoutEndpoints = 20
	o.SlowRate, o.SlowDuration = 20, 2*time.Second
	o.FailingEndpoints, o.FailingBad = 5, 1
	// Retained events: enough that a phase's growth (about 1 KB an event) outweighs what Redis
	// frees on its own meanwhile (a keyspace table resized: a few hundred KB).
	o.MemEvents, o.MemEndpoints, o.RetainedEvents = 100, 2, 2000
	o.MixedRate, o.MixedDuration, o.MixedEndpoints = 100, 2*time.Second, 5
	o.Scans = 50
	o.ThrottledRate, o.ThrottledDuration, o.RateLimitDuration = 100, 2*time.Second, 3*time.Second
}

// throttledFlags are the throttled scenario's flags.
func throttledFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.Throttle, "throttle", "inflight", "the throttled receiver's rule: inflight (429 above --throttle-inflight requests in flight) or rate (429 above --throttle-per-second requests/s)")
	fs.IntVar(&o.ThrottleInFlight, "throttle-inflight", 4, "requests the throttled receiver answers at once (--throttle inflight)")
	fs.IntVar(&o.ThrottlePerSecond, "throttle-per-second", 50, "requests per second the throttled receiver answers (--throttle rate)")
	fs.DurationVar(&o.ThrottledDelay, "throttled-delay", 50*time.Millisecond, "time the throttled receiver takes to answer a delivery it admits")
	fs.Float64Var(&o.ThrottledRate, "throttled-rate", 120, "events per second the throttled scenario publishes, open loop, to both of its endpoints")
	fs.DurationVar(&o.ThrottledDuration, "throttled-duration", 20*time.Second, "how long the throttled scenario publishes")
	fs.IntVar(&o.RateLimit, "rate-limit", 20, "rateLimitPerSecond of the throttled scenario's rate-limited endpoint")
	fs.DurationVar(&o.RateLimitDuration, "rate-limit-duration", 20*time.Second, "the rate-limited endpoint gets --rate-limit × this many events at once")
}

func (o *options) validate() error {
	for _, s := range o.scenarios() {
		if !contains(scenarioNames, s) {
			return fmt.Errorf("unknown scenario %q (want %s or all)", s, strings.Join(scenarioNames, ", "))
		}
	}
	if o.Events < 1 || o.Publishers < 1 || o.Runs < 1 || o.Concurrency < 1 || o.FanoutEndpoints < 1 ||
		o.Rate <= 0 || o.SlowRate <= 0 || o.Duration <= 0 || o.SlowDuration <= 0 || o.MemEvents < 1 || o.MemEndpoints < 1 || o.RetainedEvents < 1 ||
		o.MixedRate <= 0 || o.MixedDuration <= 0 || o.Scans < 1 || o.ThrottleInFlight < 1 || o.ThrottlePerSecond < 1 ||
		o.ThrottledDelay < 0 || o.ThrottledRate <= 0 || o.ThrottledDuration <= 0 || o.RateLimit < 1 ||
		o.RateLimit > 10000 || o.RateLimitDuration < time.Second {
		return errors.New("counts, rates and durations must be positive")
	}
	if o.FailingBad < 0 || o.FailingBad >= o.FailingEndpoints {
		return errors.New("--failing-bad must be at least 0 and less than --failing-endpoints")
	}
	if o.Throttle != "inflight" && o.Throttle != "rate" {
		return fmt.Errorf("--throttle must be inflight or rate, not %q", o.Throttle)
	}
	if o.MixedEndpoints < mixedSubscribed {
		return fmt.Errorf("--mixed-endpoints must be at least %d", mixedSubscribed)
	}
	if (o.Target == "") != (o.Key == "") {
		return errors.New("--target and --key go together")
	}
	if o.Target != "" && !isLoopbackURL(o.Target) {
		return errors.New("--target must be a loopback URL such as http://127.0.0.1:8080")
	}
	return nil
}

// scenarios expands --scenario.
func (o *options) scenarios() []string {
	if o.Scenario == "all" {
		return scenarioNames
	}
	var out []string
	for _, s := range strings.Split(o.Scenario, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// needsServers reports whether a selected scenario needs Redis or webhookd.
func (o *options) needsServers() bool {
	for _, s := range o.scenarios() {
		if !contains(serverless, s) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// run is the whole program, with its environment passed in so the smoke test runs it
// in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	results := b.runAll(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep := newReport(b, results)
	rep.print(stdout)
	if o.JSONPath != "" {
		if err := rep.writeJSON(o.JSONPath); err != nil {
			return err
		}
	}
	if n := rep.problems(); n > 0 {
		b.opt.Keep = true // the logs explain the problems
		return fmt.Errorf("%d correctness problem(s): see the report", n)
	}
	return nil
}
