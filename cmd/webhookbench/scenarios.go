package main

import (
	"context"
	"time"
)

// flood publishes --events events to one endpoint from --publishers closed-loop publishers:
// webhookd's throughput at saturation, and the cost of each delivery.
func (b *bench) flood(ctx context.Context) (*runResult, error) {
	return b.saturate(ctx, "flood", "publish round trip", func(e *env) *loadResult {
		return publishClosed(ctx, b.opt.Events, b.opt.Publishers, e.publisher())
	})
}

// saturate runs a throughput scenario: one endpoint (label) on one receiver, the events load
// publishes, every delivery awaited and checked, and the figures every throughput scenario
// reports (rttName names the publishing round trip).
func (b *bench) saturate(ctx context.Context, label, rttName string, load func(e *env) *loadResult) (*runResult, error) {
	e, _, err := b.oneEndpoint(ctx, label)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	ls := []string{label}
	before := b.snap(ctx, e.wd)
	l := load(e)
	b.logf("%s: %d events accepted at %.0f/s; waiting for deliveries", label, len(l.ids), l.rate())
	done := e.await(ctx, len(l.ids))
	after := b.snap(ctx, e.wd)
	t := e.settle(ctx, l.ids, ls)
	r := &runResult{}
	r.addPhase("publish accepted", rttName, phase{load: l, tally: t, rec: e.rec, before: before, after: after})
	e.checkAlive(r)
	r.addRSS(e.wd)
	if !done {
		r.problem("gave up waiting: %d of %d delivered", t.delivered, t.expected)
	}
	return r, nil
}

// paced publishes --rate events per second for --duration, open loop, to one endpoint: the
// latency a tenant sees under ordinary load, and what a delivery costs there.
func (b *bench) paced(ctx context.Context) (*runResult, error) {
	e, _, err := b.oneEndpoint(ctx, "paced")
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	ls := []string{"paced"}
	before := b.snap(ctx, e.wd)
	load := publishPaced(ctx, b.opt.Rate, b.opt.Duration, 256, e.publisher())
	done := e.await(ctx, len(load.ids))
	after := b.snap(ctx, e.wd)
	t := e.settle(ctx, load.ids, ls)
	r := &runResult{}
	r.addLoad("publish accepted", load)
	r.addLatency("publish round trip", load.rtts)
	r.addLatency("latency", t.latencies)
	r.addTally("", t)
	r.addCost(before, after, t.delivered)
	r.addReceiverProblems(e.rec, load.ids)
	e.checkAlive(r)
	r.addRSS(e.wd)
	if !done {
		r.problem("gave up waiting: %d of %d delivered", t.delivered, t.expected)
	}
	return r, nil
}

// fanout sends one event to --fanout-endpoints endpoints: how long the API takes to accept
// it and how long until every endpoint has it. A first, unmeasured fan-out warms the
// connections; its figures are reported as "cold".
func (b *bench) fanout(ctx context.Context) (*runResult, error) {
	e, err := b.setup(ctx, "all", nil)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	rcv, err := e.receiver(receiverConfig{})
	if err != nil {
		return nil, err
	}
	ls := labels("f", b.opt.FanoutEndpoints)
	start := time.Now()
	if _, err := e.register(ctx, rcv, ls, 200); err != nil {
		return nil, err
	}
	b.logf("fanout: %d endpoints registered in %s", len(ls), time.Since(start).Round(time.Millisecond))
	r := &runResult{}
	cold, err := e.fanoutOnce(ctx, r, ls, "cold ", 0)
	if err != nil {
		return nil, err
	}
	warm, err := e.fanoutOnce(ctx, r, ls, "", 1)
	if err != nil {
		return nil, err
	}
	r.addReceiverProblems(e.rec, []string{cold, warm})
	e.checkAlive(r)
	return r, nil
}

// fanoutOnce publishes one event to every endpoint in ls, adds its timings and returns its id.
func (e *env) fanoutOnce(ctx context.Context, r *runResult, ls []string, prefix string, seq int) (string, error) {
	// Counted before publishing: a fan-out made at publish can deliver before the answer arrives.
	want := e.rec.uniqueDelivered() + len(ls)
	t0 := time.Now()
	p, err := e.api.publish(ctx, t0, seq)
	accepted := time.Since(t0)
	if err != nil {
		return "", err
	}
	if p.Deliveries != len(ls) {
		r.problem("%sevent accepted with %d deliveries, want %d", prefix, p.Deliveries, len(ls))
	}
	done := e.await(ctx, want)
	t := e.settle(ctx, []string{p.ID}, ls)
	r.add(prefix+"accepted (publish round trip)", "ms", ms(accepted))
	if t.delivered > 0 {
		r.add(prefix+"first delivered", "ms", ms(t.first.Sub(t0)))
		r.add(prefix+"all delivered", "ms", ms(t.last.Sub(t0)))
	}
	r.addTally(prefix, t)
	if !done {
		r.problem("%sgave up waiting: %d of %d delivered", prefix, t.delivered, t.expected)
	}
	return p.ID, nil
}
