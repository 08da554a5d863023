package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// throttledSettings are webhookd's settings in the throttled scenario: retries come back soon
// after the receiver's Retry-After: 1 (1 s, doubling up to 5 s), so a run's deliveries end
// within it; the attempt budget is the default (10).
var throttledSettings = map[string]string{
	"WEBHOOKD_RETRY_INITIAL_INTERVAL": "1s",
	"WEBHOOKD_RETRY_MULTIPLIER":       "2",
	"WEBHOOKD_RETRY_MAX_INTERVAL":     "5s",
}

// throttledWarmup is "the first seconds" the throttled figures leave out: the time adaptive
// concurrency has to find the receiver's capacity.
const throttledWarmup = 5

// throttledSide is one of the scenario's two measurements of the same load: with the throttled
// endpoint beside the healthy one, or the healthy one alone.
type throttledSide struct {
	label string
	with  bool
}

var throttledSides = []throttledSide{{"beside throttled", true}, {"alone", false}}

// newThrottle is the throttled receiver's rule from --throttle.
func (o *options) newThrottle() *throttle {
	if o.Throttle == "rate" {
		return &throttle{perSecond: o.ThrottlePerSecond}
	}
	return &throttle{maxInFlight: o.ThrottleInFlight}
}

// throttled measures an endpoint whose receiver is overloaded (429 above its capacity) next to
// a healthy endpoint getting the same events, and the healthy endpoint alone under the same
// load (which side goes first alternates from run to run); then rateLimitPerSecond across two
// worker processes (rateLimited).
func (b *bench) throttled(ctx context.Context) (*runResult, error) {
	sides := slices.Clone(throttledSides)
	if b.throttledRuns%2 == 1 {
		slices.Reverse(sides)
	}
	b.throttledRuns++
	got := make(map[string]*runResult, len(sides))
	for _, s := range sides {
		b.logf("throttled: measuring the healthy endpoint %s", s.label)
		r, err := b.throttledSide(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.label, err)
		}
		got[s.label] = r
	}
	r := &runResult{}
	r.note("%s measured first", sides[0].label)
	for _, s := range throttledSides {
		r.merge("", got[s.label])
	}
	beside, ok1 := r.value("healthy latency beside throttled p99")
	alone, ok2 := r.value("healthy latency alone p99")
	if ok1 && ok2 && alone > 0 {
		r.add("healthy p99 beside throttled ÷ alone", "%", 100*beside/alone)
	}
	lim, err := b.rateLimited(ctx)
	if err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	r.merge("", lim)
	return r, nil
}

// throttledSide publishes --throttled-rate events/s for --throttled-duration to the healthy
// endpoint and, with s.with, to the throttled one, and reports both.
func (b *bench) throttledSide(ctx context.Context, s throttledSide) (*runResult, error) {
	e, err := b.setup(ctx, "all", throttledSettings)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	healthy, err := e.receiver(receiverConfig{})
	if err != nil {
		return nil, err
	}
	if _, err := e.register(ctx, healthy, []string{"healthy"}, 200); err != nil {
		return nil, err
	}
	ls := []string{"healthy"}
	var thr *throttle
	var thrID string
	if s.with {
		thr = b.opt.newThrottle()
		rcv, err := e.receiver(receiverConfig{Delay: b.opt.ThrottledDelay, Throttle: thr})
		if err != nil {
			return nil, err
		}
		ids, err := e.register(ctx, rcv, []string{"throttled"}, 200)
		if err != nil {
			return nil, err
		}
		thrID, ls = ids[0], append(ls, "throttled")
		thr.begin(time.Now())
		defer e.sampleConcurrency(ctx, thr, thrID)()
	}
	load := publishPaced(ctx, b.opt.ThrottledRate, b.opt.ThrottledDuration, 256, e.publisher())
	done := e.await(ctx, len(load.ids)*len(ls))
	th := e.settle(ctx, load.ids, []string{"healthy"})
	r := &runResult{}
	r.addLoad("publish accepted "+s.label, load)
	r.addLatency("healthy latency "+s.label, th.latencies)
	r.addTally("healthy "+s.label+" ", th)
	if s.with {
		e.reportThrottled(ctx, r, thr, thrID, load.ids)
	}
	r.addReceiverProblems(e.rec, load.ids)
	e.checkAlive(r)
	if !done {
		r.problem("%s: gave up waiting: %d of %d delivered", s.label, e.rec.uniqueDelivered(), len(load.ids)*len(ls))
	}
	return r, nil
}

// sampleConcurrency reads the endpoint's effectiveConcurrency five times a second into thr's
// series until the returned stop is called.
func (e *env) sampleConcurrency(ctx context.Context, thr *throttle, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := e.api.endpoint(ctx, id); err == nil {
				thr.sampleConcurrency(time.Now(), st.EffectiveConcurrency)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// reportThrottled adds the throttled endpoint's figures: the share of its receiver's answers
// that were 2xx in the warm-up and after it, its 2xx/s against its capacity from the warm-up to
// the end of publishing (while more is offered than the receiver can take, a backlog builds,
// so the sender alone decides the rate), and how its deliveries ended.
func (e *env) reportThrottled(ctx context.Context, r *runResult, thr *throttle, id string, events []string) {
	o := e.b.opt
	series := thr.series()
	capacity := thr.capacity(o.ThrottledDelay)
	r.add("throttled receiver capacity", "/s", capacity)
	warm, after := window(series, 0, throttledWarmup), window(series, throttledWarmup, len(series))
	r.add("throttled 2xx share of attempts, first 5 s", "%", share(warm.OK, warm.Attempts))
	r.add("throttled 2xx share of attempts after 5 s", "%", share(after.OK, after.Attempts))
	if pub := int(o.ThrottledDuration / time.Second); pub > throttledWarmup {
		busy := window(series, throttledWarmup, pub)
		rate := float64(busy.OK) / float64(pub-throttledWarmup)
		r.add("throttled 2xx/s from 5 s to the end of publishing", "/s", rate)
		if capacity > 0 {
			r.add("throttled 2xx/s ÷ capacity from 5 s to the end of publishing", "%", 100*rate/capacity)
		}
		if o.ThrottledRate <= capacity {
			r.note("%g events/s offered is not above the receiver's capacity (%.0f/s): 2xx/s follows the offer", o.ThrottledRate, capacity)
		}
	} else {
		r.note("publishing ended within the %d s warm-up: no throughput to judge against capacity", throttledWarmup)
	}
	all := window(series, 0, len(series))
	r.add("throttled attempts", "", float64(all.Attempts))
	r.add("throttled 429s", "", float64(all.Throttled))
	r.addTally("throttled ", e.rec.check(events, []string{"throttled"}))
	e.reportEnds(ctx, r, id)
	r.note("throttled receiver per second from the first publish (attempts/2xx/429, effective concurrency GET showed): %s",
		formatSeries(series))
}

// reportEnds adds how the throttled endpoint's deliveries ended; a failed one is a problem.
func (e *env) reportEnds(ctx context.Context, r *runResult, id string) {
	for _, status := range []string{"failed", "retrying", "pending"} {
		n, err := e.api.countDeliveries(ctx, id, status)
		if err != nil {
			r.note("counting %s deliveries: %v", status, err)
			continue
		}
		r.add("throttled deliveries "+status, "", float64(n))
		if status == "failed" && n > 0 {
			r.problem("%d throttled deliveries ended failed (their attempts spent on 429s)", n)
		}
	}
	if st, err := e.api.endpoint(ctx, id); err == nil {
		r.add("throttled effective concurrency at the end", "", float64(st.EffectiveConcurrency))
	}
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
