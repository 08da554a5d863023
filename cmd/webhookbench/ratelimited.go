package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"
)

// rateLimited measures rateLimitPerSecond across worker processes: --rate-limit ×
// --rate-limit-duration events published at once to an endpoint with that limit, through an
// API process and two worker processes; the receiver counts the attempts of each second, and
// each worker's log its own. The
// first second may carry a burst of one second's worth (the limiter's), so the rate is judged
// over the seconds after it, up to the last full one.
func (b *bench) rateLimited(ctx context.Context) (*runResult, error) {
	e, err := b.setup(ctx, "api", throttledSettings)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	var workers []*webhookd
	defer func() {
		for _, w := range workers {
			w.stop(30 * time.Second)
		}
	}()
	// The workers log every attempt, so that each one's share can be counted.
	logged := maps.Clone(throttledSettings)
	logged["WEBHOOKD_LOG_LEVEL"] = "info"
	for range 2 {
		w, err := b.startWebhookd(ctx, "worker", logged)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	counter := &throttle{} // no limit: counts the attempts of each second
	rcv, err := e.receiver(receiverConfig{Throttle: counter})
	if err != nil {
		return nil, err
	}
	ids, err := e.register(ctx, rcv, []string{"limited"}, 200)
	if err != nil {
		return nil, err
	}
	limit := b.opt.RateLimit
	if st, err := e.api.patchEndpoint(ctx, ids[0], map[string]any{"rateLimitPerSecond": limit}); err != nil ||
		st.RateLimitPerSecond == nil || *st.RateLimitPerSecond != limit {
		return nil, fmt.Errorf("set rateLimitPerSecond %d: %v (answered %v)", limit, err, st.RateLimitPerSecond)
	}
	n := max(limit*int(b.opt.RateLimitDuration/time.Second), 1)
	counter.begin(time.Now())
	load := publishClosed(ctx, n, b.opt.Publishers, e.publisher())
	done := e.await(ctx, len(load.ids))
	r := &runResult{}
	r.addLoad("rate-limited publish accepted", load)
	r.addTally("rate-limited ", e.settle(ctx, load.ids, []string{"limited"}))
	addRate(r, counter.series(), limit)
	for i, w := range workers {
		n, err := w.logged(`"msg":"delivery attempt"`)
		if err != nil {
			r.note("reading worker %d's log: %v", i+1, err)
			continue
		}
		r.add(fmt.Sprintf("rate-limited attempts by worker %d", i+1), "", float64(n))
	}
	r.addReceiverProblems(e.rec, load.ids)
	e.checkAlive(r)
	if !done {
		r.problem("rate-limited: gave up waiting: %d of %d delivered", e.rec.uniqueDelivered(), len(load.ids))
	}
	return r, nil
}

// addRate adds the attempts per second the limited endpoint's receiver saw: the first second,
// and the mean, lowest and highest of the full seconds after it.
func addRate(r *runResult, series []throttleSecond, limit int) {
	counts := make([]string, len(series))
	for i, s := range series {
		counts[i] = strconv.Itoa(s.Attempts)
	}
	r.note("rate-limited receiver, attempts per second from the first publish: %s", strings.Join(counts, ", "))
	if len(series) == 0 {
		return
	}
	r.add("rate-limited attempts, first second", "", float64(series[0].Attempts))
	last := len(series) - 1 // cut short by the end of the work
	if last <= 1 {
		r.note("the rate-limited deliveries took under 3 s: no full second after the first to judge")
		return
	}
	steady := window(series, 1, last)
	lo, hi := series[1].Attempts, series[1].Attempts
	for _, s := range series[1:last] {
		lo, hi = min(lo, s.Attempts), max(hi, s.Attempts)
	}
	rate := float64(steady.Attempts) / float64(last-1)
	r.add("rate-limited attempts/s after the first second", "/s", rate)
	r.add("rate-limited attempts/s ÷ rateLimitPerSecond", "%", 100*rate/float64(limit))
	r.add("rate-limited attempts in one second, lowest", "", float64(lo))
	r.add("rate-limited attempts in one second, highest", "", float64(hi))
}

// logged counts the lines of the child's log that contain s.
func (c *child) logged(s string) (int, error) {
	b, err := os.ReadFile(c.logPath)
	return bytes.Count(b, []byte(s)), err
}
