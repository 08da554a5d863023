package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// mixedOp is one kind of request of the mixed scenario and its share of all requests.
type mixedOp struct {
	name    string
	percent int
}

// mixedOps is the mix: reads dominate, as with dashboards and clients polling their
// deliveries. 60 % gets, 25 % lists, 15 % publishes.
var mixedOps = []mixedOp{
	{"get webhook", 30}, {"get delivery", 30},
	{"list webhooks", 10}, {"list deliveries", 15},
	{"publish", 15},
}

const (
	// mixedSubscribed endpoints get every published event; the rest of --mixed-endpoints
	// subscribe to an event the bench never publishes, so they fill lists without deliveries.
	mixedSubscribed = 2
	// mixedSeeds events are published and delivered before the load, so that "get delivery"
	// has deliveries to read from the first request on.
	mixedSeeds = 10
	// mixedInFlight bounds the requests waiting for an answer; a request due while the bound
	// is reached is skipped and counted.
	mixedInFlight = 256
)

// mixSchedule spreads the operations over one cycle of 100 requests by smooth weighted
// round robin, so every window of the run sees the same mix.
func mixSchedule(ops []mixedOp) []int {
	total := 0
	for _, o := range ops {
		total += o.percent
	}
	cur := make([]int, len(ops))
	out := make([]int, total)
	for i := range out {
		best := 0
		for j, o := range ops {
			cur[j] += o.percent
			if cur[j] > cur[best] {
				best = j
			}
		}
		cur[best] -= total
		out[i] = best
	}
	return out
}

// mixedWorld is what the mixed requests read: every endpoint, the subscribed ones and the
// deliveries of the seed events.
type mixedWorld struct {
	api        *apiClient
	endpoints  []string
	live       []string
	deliveries []string // "<endpoint id>/deliveries/<delivery id>"
}

// do sends request seq of kind op; a publish returns the accepted event's id.
func (w *mixedWorld) do(ctx context.Context, op string, seq int, at time.Time) (string, error) {
	switch op {
	case "get webhook":
		return "", w.api.call(ctx, http.MethodGet, "/api/v1/webhooks/"+w.endpoints[seq%len(w.endpoints)], nil, nil)
	case "get delivery":
		return "", w.api.call(ctx, http.MethodGet, "/api/v1/webhooks/"+w.deliveries[seq%len(w.deliveries)], nil, nil)
	case "list webhooks":
		return "", w.api.call(ctx, http.MethodGet, "/api/v1/webhooks?limit=20", nil, nil)
	case "list deliveries":
		return "", w.api.call(ctx, http.MethodGet, "/api/v1/webhooks/"+w.live[seq%len(w.live)]+"/deliveries?limit=20", nil, nil)
	}
	p, err := w.api.publish(ctx, at, mixedSeeds+seq)
	if err == nil && p.Deliveries != len(w.live) {
		err = fmt.Errorf("event %s accepted with %d deliveries, want %d", p.ID, p.Deliveries, len(w.live))
	}
	return p.ID, err
}

// opStats is what one operation of the mix measured.
type opStats struct {
	requests, errors int
	firstErr         string
	latencies        []time.Duration
}

// mixedResult is the load phase of the mixed scenario.
type mixedResult struct {
	mu         sync.Mutex
	ops        []opStats // indexed like mixedOps
	published  []string
	skipped    int
	start, end time.Time
}

func (m *mixedResult) record(op int, id string, err error, latency time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.ops[op]
	s.requests++
	s.latencies = append(s.latencies, latency)
	if err != nil {
		s.errors++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
		return
	}
	if id != "" {
		m.published = append(m.published, id)
	}
}

// runMixed sends rate requests per second for d, open loop, in the order of mixSchedule.
// Latency runs from each request's scheduled time, so a stalled server shows up as latency
// rather than as a slower sender.
func runMixed(ctx context.Context, rate float64, d time.Duration, w *mixedWorld) *mixedResult {
	sched := mixSchedule(mixedOps)
	m := &mixedResult{ops: make([]opStats, len(mixedOps))}
	m.start, m.end, m.skipped = openLoop(ctx, rate, d, mixedInFlight, func(seq int, at time.Time) {
		op := sched[seq%len(sched)]
		id, err := w.do(ctx, mixedOps[op].name, seq, at)
		m.record(op, id, err, time.Since(at))
	})
	return m
}

// report adds per operation its requests, errors and latency; any error is a problem.
func (m *mixedResult) report(r *runResult) {
	total := 0
	for i, op := range mixedOps {
		s := m.ops[i]
		total += s.requests
		r.add(op.name+" requests", "", float64(s.requests))
		r.add(op.name+" errors", "", float64(s.errors))
		r.addLatency(op.name, s.latencies)
		if s.errors > 0 {
			r.problem("%s: %d of %d requests failed; first: %s", op.name, s.errors, s.requests, s.firstErr)
		}
	}
	r.add("requests answered/s", "/s", perSecond(total, m.end.Sub(m.start)))
	r.add("requests skipped (in-flight cap)", "", float64(m.skipped))
	if m.skipped > 0 {
		r.note("%d requests skipped: %d answers were outstanding", m.skipped, mixedInFlight)
	}
}

// mixed runs --mixed-rate requests per second for --mixed-duration against one tenant's
// --mixed-endpoints endpoints: gets, lists and publishes together. Every request must answer
// 2xx, and every published event must reach both subscribed endpoints exactly once.
func (b *bench) mixed(ctx context.Context) (*runResult, error) {
	e, err := b.setup(ctx, "all", nil)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	w, ls, seeds, err := e.mixedWorld(ctx, b.opt.MixedEndpoints)
	if err != nil {
		return nil, err
	}
	defer w.api.close()
	b.logf("mixed: %d endpoints, %d seed deliveries; %g requests/s for %s", len(w.endpoints), len(w.deliveries),
		b.opt.MixedRate, b.opt.MixedDuration)
	m := runMixed(ctx, b.opt.MixedRate, b.opt.MixedDuration, w)
	published := append(seeds, m.published...)
	done := e.await(ctx, len(published)*len(ls))
	t := e.settle(ctx, published, ls)
	r := &runResult{}
	m.report(r)
	r.add("events published under load", "", float64(len(m.published)))
	r.addLatency("publish→receipt latency", t.latencies)
	r.addTally("", t)
	r.addReceiverProblems(e.rec, published)
	e.checkAlive(r)
	r.addRSS(e.wd)
	if !done {
		r.problem("gave up waiting: %d of %d delivered", t.delivered, t.expected)
	}
	return r, nil
}

// mixedWorld registers the endpoints, publishes the seed events, waits for them and lists
// their deliveries. It returns the world, the subscribed labels and the seed event ids.
func (e *env) mixedWorld(ctx context.Context, endpoints int) (*mixedWorld, []string, []string, error) {
	rcv, err := e.receiver(receiverConfig{})
	if err != nil {
		return nil, nil, nil, err
	}
	ls := labels("live", mixedSubscribed)
	live, err := e.register(ctx, rcv, ls, 200)
	if err != nil {
		return nil, nil, nil, err
	}
	// The receiver does not know the idle endpoints: a delivery to one is a problem.
	idle, err := e.registerFor(ctx, rcv, labels("idle", endpoints-mixedSubscribed), []string{"scan.started"})
	if err != nil {
		return nil, nil, nil, err
	}
	w := &mixedWorld{api: newAPIClient(e.api.base, e.api.key, mixedInFlight), live: live,
		endpoints: append([]string{}, live...)}
	for _, ep := range idle {
		w.endpoints = append(w.endpoints, ep.ID)
	}
	seeds, err := e.seed(ctx, w, ls)
	if err != nil {
		w.api.close()
		return nil, nil, nil, err
	}
	return w, ls, seeds, nil
}

// seed publishes mixedSeeds events, waits for their deliveries and keeps their paths.
func (e *env) seed(ctx context.Context, w *mixedWorld, ls []string) ([]string, error) {
	var seeds []string
	for i := range mixedSeeds {
		p, err := e.api.publish(ctx, time.Now(), i)
		if err != nil {
			return nil, fmt.Errorf("seed event: %w", err)
		}
		seeds = append(seeds, p.ID)
	}
	if !e.await(ctx, len(seeds)*len(ls)) {
		return nil, fmt.Errorf("seed events not delivered: %d of %d", e.rec.uniqueDelivered(), len(seeds)*len(ls))
	}
	for _, id := range w.live {
		dids, err := e.api.deliveryIDs(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("list seed deliveries: %w", err)
		}
		for _, did := range dids {
			w.deliveries = append(w.deliveries, id+"/deliveries/"+did)
		}
	}
	if len(w.deliveries) == 0 {
		return nil, fmt.Errorf("the seed events have no deliveries")
	}
	return seeds, nil
}
