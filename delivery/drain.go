package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
)

// Every attempt is made by its endpoint's drain: one asynq task per endpoint at a time (it
// holds a lease on the endpoint's queue) that takes the queued deliveries a batch at a time,
// sends up to EndpointConcurrency of them at once and records each batch of outcomes in one
// step. While the endpoint answers fast, a drain also holds up to a window's worth taken
// ahead, sent as places free, so that a take's round trip does not leave the window empty
// (see ahead). A delivery is queued when it is published, when its retry timer fires, and when
// it is retried by hand or its endpoint re-enabled.
const (
	// drainBudget is how long one drain task runs by default before it hands the queue to a
	// successor task, so that a busy endpoint takes its turn on the task queue like any other.
	drainBudget = 10 * time.Second
	// drainRenew is how often a drain renews its lease (registry.DrainLease); drainTick is how
	// often it looks at the clock, and fills a place its neighbours left free.
	drainRenew = time.Second
	drainTick  = drainRenew / 4
	// takeBatch is the most a busy drain waits to take at once (it takes when half of what it
	// may hold is free); drainBatch is how many outcomes it collects (for at most finishWait)
	// before it records them.
	takeBatch  = 32
	drainBatch = 16
	finishWait = 2 * time.Millisecond
	// While Redis is out of reach a drain tries again every drainTick for up to drainPatience:
	// attempts already made are recorded late rather than made again, and the queue is worked
	// on as soon as Redis answers. Past that the drain fails and asynq runs it again.
	drainPatience = 30 * time.Second
)

func (w *Worker) handleDrain(ctx context.Context, t *asynq.Task) error {
	var p drainPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad drain payload: %w: %w", err, asynq.SkipRetry)
	}
	d := w.newDrain(p.TenantID, registry.Drain{EndpointID: p.EndpointID, N: p.N})
	return asOutage(d.run(ctx))
}

// sent is what one send of a drain ended with; skipped means nothing was sent (the worker
// stopped before a slot came free) and the delivery stays queued. A sent attempt keeps its
// worker slot until its outcome is recorded, so that a worker never has more attempts made
// but not recorded (what a crash repeats) than its concurrency.
type sent struct {
	registry.Outcome
	skipped bool
}

// drain works one endpoint's queue until it is empty (the drain then ends), its budget is
// spent or the worker stops (the queue then passes to a successor task), or its lease is lost.
// Sending and recording overlap: while one batch of outcomes is recorded, it keeps taking and
// sending. A delivery is in held from the moment it is taken until its outcome is recorded
// (it is still at the head of the queue until then, and must not be taken twice), or until it
// is let go unsent from ready (it is then taken again later, by this drain or another).
type drain struct {
	w   *Worker
	tid string
	d   registry.Drain
	now func() time.Time

	held      map[string]bool
	ready     []readyItem // taken ahead, not yet sent, oldest first
	cautious  bool        // one taken ahead waited a tick for a place: take no more ahead
	sending   int
	results   chan sent
	batch     []sent // collected, not yet recording
	recording []sent // being recorded; nil when none is
	recorded  chan recorded
	flush     <-chan time.Time

	deadline, renewAt time.Time
	// outageSince is when Redis stopped answering; zero while it answers.
	outageSince time.Time
	// ep is the endpoint as the last take read it: its concurrency and rate limit; nil before.
	ep *registry.Endpoint
	// rateWait fires when the endpoint's rate limit allows the next attempt; nil unless waiting.
	rateWait            <-chan time.Time
	taking, ended, lost bool
	handoff             bool
	tick                bool
	failed              error
}

// readyItem is a delivery taken ahead: what its take read of the endpoint, and when.
type readyItem struct {
	item registry.QueueItem
	ep   *registry.Endpoint
	at   time.Time
}

// recorded is how recording a batch ended: whether the endpoint is disabled after it.
type recorded struct {
	disabled bool
	err      error
}

func (w *Worker) newDrain(tid string, d registry.Drain) *drain {
	now := w.cfg.Clock()
	return &drain{w: w, tid: tid, d: d, now: w.cfg.Clock, held: make(map[string]bool, 3*w.cfg.EndpointConcurrency),
		results: make(chan sent, w.cfg.EndpointConcurrency), recorded: make(chan recorded, 1),
		deadline: now.Add(w.cfg.DrainBudget), renewAt: now, taking: true}
}

func (r *drain) run(ctx context.Context) error {
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	stopping := r.w.stopping
	for {
		if r.taking && !r.now().Before(r.deadline) {
			r.taking, r.handoff = false, true
		}
		if !r.taking {
			r.letGo()
		}
		if r.wantTake() {
			r.take(ctx)
		}
		if len(r.held) == 0 && !r.taking {
			break
		}
		r.maybeFlush(ctx)
		select {
		case s := <-r.results:
			r.collect(s)
			r.sendReady(ctx)
		case rec := <-r.recorded:
			r.recordedBatch(rec)
		case <-r.flush:
			r.flush = nil
			r.startRecording(ctx)
		case <-tick.C:
			r.tick = true
			r.renew(ctx)
			r.letGoStale()
		case <-r.rateWait:
			r.rateWait = nil
		case <-stopping:
			stopping = nil
			if r.taking {
				r.taking, r.handoff = false, true
			}
		}
	}
	return r.end(ctx)
}

// wantTake reports whether to take now: always when nothing is in flight, else when enough of
// what the drain may hold (the window and ahead) is free that one take serves several
// (minTake), or at a tick when any of it is (its neighbours hang). During an outage it waits
// for the next tick. During probation it takes only once the last outcome is recorded: a
// failure there disables the endpoint, and the next delivery must find it disabled, not be
// sent.
func (r *drain) wantTake() bool {
	switch {
	case !r.taking || r.rateWait != nil:
		return false
	case !r.outageSince.IsZero():
		return r.tick
	case r.ep != nil && r.ep.Probation:
		return len(r.held) == 0
	}
	room := r.room()
	minTake := max(1, min(takeBatch, (r.window()+r.ahead())/2))
	return len(r.held) == 0 || room >= minTake || (room > 0 && r.tick)
}

// room is how many more deliveries the drain may take now: its window and ahead, less those
// it sends and holds ready.
func (r *drain) room() int {
	return max(r.window()+r.ahead()-r.sending-len(r.ready), 0)
}

// ahead is how many deliveries the drain may hold taken beyond its window: a window's worth
// while the endpoint takes its full concurrency and answers fast. None during probation (one
// attempt at a time), under a rate limit (a delivery is allowed when taken), while 429 and 503
// answers hold its window lower (sends follow the window the receiver admits; taken ahead, they
// kept its window full at every place freed and drew nearly four times the 429s), and (cautious) once
// one taken ahead waited a tick for a place: the endpoint answers slowly, and a delivery sent
// long after its take would miss a change made meanwhile (its endpoint disabled, its URL or
// secret changed).
func (r *drain) ahead() int {
	if r.cautious || r.ep == nil || r.ep.Probation || r.ep.RateLimitPerSecond != nil ||
		r.window() < r.w.cfg.EndpointConcurrency {
		return 0
	}
	return r.window()
}

// window is how many attempts the endpoint may have in flight: its effective concurrency (1
// during probation), read at every take; 1 until the first take has read it.
func (r *drain) window() int {
	if r.ep == nil {
		return 1
	}
	return r.ep.Concurrency(r.w.cfg.EndpointConcurrency)
}

func (r *drain) take(ctx context.Context) {
	r.tick = false
	renew := !r.now().Before(r.renewAt)
	items, ep, err := r.w.cfg.Store.Take(ctx, registry.TakeRequest{TenantID: r.tid, EndpointID: r.d.EndpointID,
		N: r.d.N, Limit: r.room(), Skip: keysOf(r.held), Renew: renew,
		EndIfEmpty: len(r.held) == 0})
	if r.redisFailed(err) {
		return
	}
	switch {
	case errors.Is(err, registry.ErrDrainEnded):
		r.taking, r.ended = false, true
	case errors.Is(err, registry.ErrDrainLost):
		r.taking, r.lost = false, true
	case err != nil:
		r.stop(err)
	case ep == nil && len(items) > 0:
		r.taking = false // the endpoint was deleted
	case len(items) > 0 && !ep.Enabled:
		// Disabling holds the queue in the same step, so this is a race with a re-enable.
		r.stop(errors.New("endpoint is disabled but has deliveries queued"))
	default:
		if renew {
			r.renewAt = r.now().Add(drainRenew)
		}
		// A take that found nothing new reads no endpoint (nil), and the window is 1 until a
		// take finds more: the drain waits for what it sends rather than take again at once.
		// Deliveries taken ahead keep the window they were taken with.
		if ep != nil || len(r.ready) == 0 {
			r.ep = ep
		}
		if ep != nil && !ep.Enabled {
			r.letGo()
		}
		// The take asked for what the last take's window left free; a batch recorded since may
		// have lowered it (a 429): what no longer fits stays queued.
		items = items[:min(len(items), r.room())]
		at := r.now()
		for _, it := range r.allowed(ctx, items) {
			r.held[it.DeliveryID] = true
			r.ready = append(r.ready, readyItem{item: it, ep: ep, at: at})
		}
		r.sendReady(ctx)
	}
}

// sendReady sends the deliveries taken, oldest first, while the window has places.
func (r *drain) sendReady(ctx context.Context) {
	n := 0
	for ; n < len(r.ready) && r.sending < r.window(); n++ {
		ri := r.ready[n]
		r.sending++
		r.w.goroutines.run(func() { r.send(ctx, ri.ep, ri.item) })
	}
	r.ready = r.ready[n:]
}

// letGo lets go of the deliveries taken ahead, unsent: they stay queued for a later take.
func (r *drain) letGo() {
	for _, ri := range r.ready {
		delete(r.held, ri.item.DeliveryID)
	}
	r.ready = nil
}

// letGoStale lets go of the deliveries taken ahead once the oldest has waited a tick, and
// takes no more ahead.
func (r *drain) letGoStale() {
	if len(r.ready) > 0 && r.now().Sub(r.ready[0].at) >= drainTick {
		r.letGo()
		r.cautious = true
	}
}

// allowed is as many of the taken items as the endpoint's rate limit lets go now (all when it
// has none); the rest stay queued, and the drain waits for the limit before it takes again.
// Waiting costs no attempt.
func (r *drain) allowed(ctx context.Context, items []registry.QueueItem) []registry.QueueItem {
	if r.ep == nil || r.ep.RateLimitPerSecond == nil || len(items) == 0 {
		return items
	}
	n, wait, err := r.w.cfg.Store.AllowAttempts(ctx, r.tid, r.d.EndpointID, *r.ep.RateLimitPerSecond, len(items))
	if err != nil {
		r.redisFailed(err)
		return nil
	}
	if n == 0 {
		r.rateWait = time.After(max(wait, time.Millisecond))
	}
	return items[:n]
}

// send makes one attempt within the worker's concurrency and reports how it ended. An expired
// event sends nothing, so it takes no slot (finish frees one only for an attempt made).
func (r *drain) send(ctx context.Context, e *registry.Endpoint, it registry.QueueItem) {
	if len(it.Body) > 0 && !r.w.takeSlot(ctx) {
		r.results <- sent{Outcome: registry.Outcome{Item: it}, skipped: true}
		return
	}
	r.results <- sent{Outcome: r.w.attempt(ctx, e, it)}
}

func (r *drain) collect(s sent) {
	r.sending--
	if s.skipped {
		delete(r.held, s.Item.DeliveryID)
		return
	}
	if r.batch == nil {
		r.batch = make([]sent, 0, drainBatch)
	}
	r.batch = append(r.batch, s)
}

// maybeFlush records the batch when it is full, or when nothing else will come soon (nothing
// in flight, no more taking); else it waits finishWait for more. One batch at a time.
func (r *drain) maybeFlush(ctx context.Context) {
	if r.recording != nil || len(r.batch) == 0 {
		return
	}
	if len(r.batch) >= drainBatch || r.sending == 0 || !r.taking {
		r.flush = nil
		r.startRecording(ctx)
	} else if r.flush == nil {
		r.flush = time.After(finishWait)
	}
}

func (r *drain) startRecording(ctx context.Context) {
	if r.recording != nil || len(r.batch) == 0 {
		return
	}
	r.recording, r.batch = r.batch, nil
	b := r.recording
	r.w.goroutines.run(func() {
		disabled, err := r.w.finish(ctx, r.tid, r.d.EndpointID, b)
		r.recorded <- recorded{disabled: disabled, err: err}
	})
}

// recordedBatch ends a batch's recording. A batch that disabled the endpoint lets go of what
// was taken ahead: it is held with the rest of the queue.
func (r *drain) recordedBatch(rec recorded) {
	for _, s := range r.recording {
		delete(r.held, s.Item.DeliveryID)
	}
	r.recording = nil
	if rec.disabled {
		r.letGo()
	}
	if rec.err != nil {
		r.stop(rec.err)
	}
}

// renew renews the lease when it is due (a take renews it too).
func (r *drain) renew(ctx context.Context) {
	if r.lost || r.now().Before(r.renewAt) {
		return
	}
	_, _, err := r.w.cfg.Store.Take(ctx, registry.TakeRequest{TenantID: r.tid, EndpointID: r.d.EndpointID,
		N: r.d.N, Renew: true})
	if r.redisFailed(err) {
		return
	}
	switch {
	case errors.Is(err, registry.ErrDrainLost):
		r.taking, r.lost = false, true
	case err != nil:
		r.stop(err)
	default:
		r.renewAt = r.now().Add(drainRenew)
	}
}

// redisFailed tracks outages: it reports whether err is one the drain rides out (it then
// tries again at the next tick), and stops the drain once the outage outlasts drainPatience.
func (r *drain) redisFailed(err error) bool {
	if err == nil || !IsOutage(err) {
		r.outageSince = time.Time{}
		return false
	}
	if r.outageSince.IsZero() {
		r.outageSince = r.now()
	}
	if r.now().Sub(r.outageSince) > drainPatience {
		r.stop(err)
	}
	return true
}

func (r *drain) stop(err error) {
	r.taking = false
	if err != nil && r.failed == nil {
		r.failed = err
	}
}

// end ends the drain, or hands its queue to a successor, riding out an outage as the rest of
// the drain does. When Redis failed for longer it returns the error and asynq runs the drain
// again: deliveries whose outcome was not recorded stay queued and are sent again.
func (r *drain) end(ctx context.Context) error {
	if r.failed != nil || r.ended {
		return r.failed
	}
	tid := r.tid
	if r.lost || !r.handoff {
		// Ends the drain, or (lost) clears its outbox entry: whoever holds the lease now works
		// the queue. Something queued meanwhile ("more") goes to a successor.
		res, _, err := r.endDrain(ctx, false)
		if errors.Is(err, registry.ErrDrainLost) || (err == nil && res == "ended") {
			return nil
		}
		if err != nil {
			return err
		}
	}
	_, next, err := r.endDrain(ctx, true)
	if errors.Is(err, registry.ErrDrainLost) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.w.q.drain(context.WithoutCancel(ctx), tid, *next); err != nil {
		r.w.log.WarnContext(ctx, "queueing the next drain failed; the outbox sweeper will", "tenantId", tid,
			"endpointId", r.d.EndpointID, "error", err.Error())
	}
	return nil
}

// endDrain is Store.EndDrain, patiently.
func (r *drain) endDrain(ctx context.Context, handoff bool) (string, *registry.Drain, error) {
	type ended struct {
		res  string
		next *registry.Drain
	}
	e, err := patiently(ctx, func() (ended, error) {
		res, next, err := r.w.cfg.Store.EndDrain(context.WithoutCancel(ctx), r.tid, r.d, handoff)
		return ended{res, next}, err
	})
	return e.res, e.next, err
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// finish records a batch of outcomes (see recordBatch), reports them, and queues the retry
// timer of each delivery left retrying (its outbox entry stays until it fires). It reports
// whether the batch disabled the endpoint.
func (w *Worker) finish(ctx context.Context, tid, eid string, batch []sent) (bool, error) {
	outs := make([]registry.Outcome, len(batch))
	for i, s := range batch {
		outs[i] = s.Outcome
	}
	fin, err := w.recordBatch(ctx, registry.FinishRequest{TenantID: tid, EndpointID: eid, Outcomes: outs,
		Streak: w.cfg.Streak, MaxConcurrency: w.cfg.EndpointConcurrency})
	for _, o := range outs {
		if o.Attempt != nil {
			w.freeSlot()
		}
	}
	w.report(ctx, tid, eid, outs, fin, err)
	if err != nil {
		return false, err
	}
	w.ops.publishAll(ctx, tid, fin.Ops)
	for i, o := range outs {
		if fin.Statuses[i] != registry.DeliveryRetrying {
			continue
		}
		r := registry.Retry{DeliveryID: o.Item.DeliveryID, EndpointID: eid, Generation: o.Item.Generation,
			Run: o.Item.Run + 1}
		if err := w.q.retry(ctx, tid, r, o.NextAttemptAt); err != nil {
			w.log.WarnContext(ctx, "queueing a retry failed; the outbox sweeper will", "tenantId", tid,
				"deliveryId", r.DeliveryID, "error", err.Error())
		}
	}
	return fin.DisabledReason != "", nil
}

// recordBatch records a batch, riding out an outage: attempts already made are recorded late
// rather than made again.
func (w *Worker) recordBatch(ctx context.Context, req registry.FinishRequest) (registry.Finished, error) {
	return patiently(ctx, func() (registry.Finished, error) {
		return w.cfg.Store.Finish(context.WithoutCancel(ctx), req)
	})
}

// patiently runs op until it succeeds, fails for another reason than an outage, or Redis has
// been out of reach for drainPatience (or ctx ends), trying again every drainTick.
func patiently[T any](ctx context.Context, op func() (T, error)) (T, error) {
	give := time.Now().Add(drainPatience)
	for {
		v, err := op()
		if err == nil || !IsOutage(err) || time.Now().After(give) {
			return v, err
		}
		select {
		case <-time.After(drainTick):
		case <-ctx.Done():
			return v, err
		}
	}
}
