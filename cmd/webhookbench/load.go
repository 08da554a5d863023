package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// publishFunc publishes one event stamped sentAt and returns its id: through the API for
// webhookd, straight into asynq for the baseline.
type publishFunc func(ctx context.Context, sentAt time.Time, seq int) (string, error)

// loadResult is what one publishing phase did.
type loadResult struct {
	mu       sync.Mutex
	ids      []string        // accepted event ids
	rtts     []time.Duration // round trip of every accepted publish
	rejected int
	firstErr string
	// skipped counts paced publishes not sent because maxInFlight were still waiting for
	// their answer: the open loop stays bounded instead of piling up goroutines.
	skipped    int
	start, end time.Time
}

// timed calls pub, records its answer and round trip, and returns the accepted event's id
// ("" when it was rejected).
func (r *loadResult) timed(ctx context.Context, pub publishFunc, sentAt time.Time, seq int) string {
	start := time.Now()
	id, err := pub(ctx, sentAt, seq)
	r.add(id, err, time.Since(start))
	if err != nil {
		return ""
	}
	return id
}

func (r *loadResult) add(id string, err error, rtt time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.rejected++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
		return
	}
	r.ids = append(r.ids, id)
	r.rtts = append(r.rtts, rtt)
}

// rate is accepted events per second over the phase.
func (r *loadResult) rate() float64 { return perSecond(len(r.ids), r.end.Sub(r.start)) }

// publishClosed publishes n events from workers closed-loop publishers: each sends the next
// event as soon as the previous one is answered.
func publishClosed(ctx context.Context, n, workers int, pub publishFunc) *loadResult {
	res := &loadResult{ids: make([]string, 0, n), start: time.Now()}
	closedLoop(ctx, n, workers, func(seq int) bool {
		res.timed(ctx, pub, time.Now(), seq)
		return true
	})
	res.end = time.Now()
	return res
}

// closedLoop calls do(0..n-1) from workers goroutines, each taking the next number as soon as
// its previous call returned, until ctx ends; a call returning false stops its goroutine. It
// returns when every goroutine has stopped.
func closedLoop(ctx context.Context, n, workers int, do func(i int) bool) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n || !do(i) {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// publishPaced publishes rate events per second for d, open loop: each event is sent at its
// scheduled time whatever happened to earlier ones, and stamped with that time, so a stalled
// server shows up as latency instead of as a slower sender.
func publishPaced(ctx context.Context, rate float64, d time.Duration, maxInFlight int, pub publishFunc) *loadResult {
	res := &loadResult{ids: make([]string, 0, int(rate*d.Seconds()))}
	res.start, res.end, res.skipped = openLoop(ctx, rate, d, maxInFlight, func(seq int, at time.Time) {
		res.timed(ctx, pub, at, seq)
	})
	return res
}

// openLoop calls send(seq, at) in a goroutine of its own at each scheduled time at, rate times
// per second for d, with at most maxInFlight calls running: a call due while that many are
// still running is skipped and counted, so the open loop stays bounded instead of piling up
// goroutines. It returns when every call has returned.
func openLoop(ctx context.Context, rate float64, d time.Duration, maxInFlight int,
	send func(seq int, at time.Time)) (start, end time.Time, skipped int) {
	n := int(rate * d.Seconds())
	start = time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			sleepCtx(ctx, wait)
		}
		select {
		case sem <- struct{}{}:
		default:
			skipped++
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			send(i, at)
		}()
	}
	wg.Wait()
	return start, time.Now(), skipped
}

// perSecond is n per d in seconds; 0 when d is 0.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
