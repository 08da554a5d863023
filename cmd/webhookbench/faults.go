package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// slow publishes --slow-rate events per second for --slow-duration to two endpoints on two
// receivers, one answering after --slow-delay: the fast endpoint's latency must not follow
// the slow one's.
func (b *bench) slow(ctx context.Context) (*runResult, error) {
	e, err := b.setup(ctx, "all", nil)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	fast, err := e.receiver(receiverConfig{})
	if err != nil {
		return nil, err
	}
	slow, err := e.receiver(receiverConfig{Delay: b.opt.SlowDelay})
	if err != nil {
		return nil, err
	}
	if _, err := e.register(ctx, fast, []string{"fast"}, 200); err != nil {
		return nil, err
	}
	if _, err := e.register(ctx, slow, []string{"slow"}, 200); err != nil {
		return nil, err
	}
	load := publishPaced(ctx, b.opt.SlowRate, b.opt.SlowDuration, 256, e.publisher())
	done := e.await(ctx, 2*len(load.ids))
	tf := e.settle(ctx, load.ids, []string{"fast"})
	ts := e.rec.check(load.ids, []string{"slow"})
	r := &runResult{}
	r.addLoad("publish accepted", load)
	r.addLatency("fast endpoint latency", tf.latencies)
	r.addLatency("slow endpoint latency", ts.latencies)
	r.addTally("fast ", tf)
	r.addTally("slow ", ts)
	r.addReceiverProblems(e.rec, load.ids)
	e.checkAlive(r)
	r.note("the slow endpoint alone needs about %.0f delivery workers (rate × delay); webhookd has %d",
		b.opt.SlowRate*b.opt.SlowDelay.Seconds(), b.opt.Concurrency)
	if !done {
		r.problem("gave up waiting: %d of %d delivered", tf.delivered+ts.delivered, tf.expected+ts.expected)
	}
	return r, nil
}

// failingSettings make retries and auto-disable happen within the scenario.
var failingSettings = map[string]string{
	"WEBHOOKD_RETRY_INITIAL_INTERVAL": "100ms",
	"WEBHOOKD_RETRY_MULTIPLIER":       "2",
	"WEBHOOKD_RETRY_MAX_INTERVAL":     "1s",
	"WEBHOOKD_MAX_ATTEMPTS":           "4",
	"WEBHOOKD_DISABLE_AFTER_FAILURES": "20",
	"WEBHOOKD_DISABLE_MIN_WINDOW":     "0s",
}

// failing floods --failing-endpoints endpoints of which --failing-bad always answer 500:
// the healthy ones must keep their throughput while the failing ones are retried and then
// disabled.
func (b *bench) failing(ctx context.Context) (*runResult, error) {
	e, err := b.setup(ctx, "all", failingSettings)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	rcv, err := e.receiver(receiverConfig{})
	if err != nil {
		return nil, err
	}
	good := labels("ok", b.opt.FailingEndpoints-b.opt.FailingBad)
	bad := labels("bad", b.opt.FailingBad)
	if _, err := e.register(ctx, rcv, good, http.StatusOK); err != nil {
		return nil, err
	}
	badIDs, err := e.register(ctx, rcv, bad, http.StatusInternalServerError)
	if err != nil {
		return nil, err
	}
	before := b.snap(ctx, e.wd)
	load := publishClosed(ctx, max(b.opt.Events/b.opt.FailingEndpoints, 1), b.opt.Publishers, e.publisher())
	done := e.await(ctx, len(load.ids)*len(good))
	after := b.snap(ctx, e.wd)
	t := e.settle(ctx, load.ids, good)
	r := &runResult{}
	r.addLoad("publish accepted", load)
	r.add("healthy delivered/s", "/s", perSecond(t.delivered, t.last.Sub(load.start)))
	r.addLatency("healthy latency", t.latencies)
	r.addTally("healthy ", t)
	r.addReceiverProblems(e.rec, load.ids)
	e.checkAlive(r)
	r.addCost(before, after, t.delivered)
	e.reportFailing(ctx, r, bad, badIDs)
	if !done {
		r.problem("gave up waiting: %d of %d healthy deliveries", t.delivered, t.expected)
	}
	return r, nil
}

// reportFailing adds what became of the failing endpoints: attempts they answered with 500,
// whether they are disabled, and their deliveries by status.
func (e *env) reportFailing(ctx context.Context, r *runResult, bad, ids []string) {
	failed, _, _, _, _ := e.rec.failures()
	attempts, disabled := 0, 0
	for i, id := range ids {
		attempts += failed[bad[i]]
		st, err := e.api.endpoint(ctx, id)
		if err != nil {
			r.note("%s: %v", bad[i], err)
			continue
		}
		if st.Status == "disabled" {
			disabled++
		}
		reason := "-"
		if st.DisabledReason != nil {
			reason = *st.DisabledReason
		}
		var counts []string
		for _, s := range []string{"pending", "retrying", "held", "failed", "succeeded"} {
			if n, err := e.api.countDeliveries(ctx, id, s); err == nil {
				counts = append(counts, fmt.Sprintf("%s %d", s, n))
			}
		}
		r.note("failing endpoint %s: %d attempts answered 500, status %s (reason %s); deliveries: %s",
			bad[i], failed[bad[i]], st.Status, reason, strings.Join(counts, ", "))
	}
	r.add("failing endpoints: attempts answered 500", "", float64(attempts))
	r.add("failing endpoints disabled", "", float64(disabled))
}
