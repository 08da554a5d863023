package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// env is one scenario run: a fresh Redis database, a webhookd process (unless --target), a
// tenant and key, the receivers and the recorder they share.
type env struct {
	b         *bench
	wd        *webhookd // nil with --target
	api       *apiClient
	rec       *recorder
	tenant    string
	recvs     []*receiver
	endpoints []string // ids registered, deleted at the end with --target
}

// setup starts a run: webhookd with role and extra WEBHOOKD_* settings, and a new tenant.
func (b *bench) setup(ctx context.Context, role string, settings map[string]string) (*env, error) {
	e := &env{b: b, rec: newRecorder()}
	if b.opt.Target != "" {
		if len(settings) > 0 || role != "all" {
			return nil, errSkipped
		}
		e.api = newAPIClient(b.opt.Target, b.opt.Key, b.opt.Publishers)
		return e, nil
	}
	if err := b.flush(ctx); err != nil {
		return nil, fmt.Errorf("flush redis: %w", err)
	}
	wd, err := b.startWebhookd(ctx, role, settings)
	if err != nil {
		return nil, err
	}
	e.wd = wd
	tid, key, err := b.newTenantKey(ctx)
	if err != nil {
		e.close(ctx)
		return nil, err
	}
	e.tenant = tid
	e.api = newAPIClient(wd.base, key, b.opt.Publishers)
	return e, nil
}

// close stops the receivers and webhookd; with --target it deletes the endpoints it made.
func (e *env) close(ctx context.Context) {
	if e.wd == nil && e.api != nil {
		parallel(len(e.endpoints), 16, func(i int) error { return e.api.deleteEndpoint(ctx, e.endpoints[i]) })
	}
	if e.api != nil {
		e.api.close()
	}
	for _, r := range e.recvs {
		r.Close()
	}
	if e.wd != nil {
		e.wd.stop(30 * time.Second)
	}
}

// receiver starts a receiver recording into the run's recorder.
func (e *env) receiver(cfg receiverConfig) (*receiver, error) {
	r, err := startReceiver(e.b.ca, e.rec, cfg)
	if err != nil {
		return nil, err
	}
	e.recvs = append(e.recvs, r)
	return r, nil
}

// register creates one endpoint per label on r for every event type and tells r to answer
// them with status.
func (e *env) register(ctx context.Context, r *receiver, labels []string, status int) ([]string, error) {
	eps, err := e.registerFor(ctx, r, labels, allEvents)
	ids := make([]string, len(eps))
	for i, ep := range eps {
		if ep.ID != "" {
			r.expect(labels[i], ep.Secret, status)
		}
		ids[i] = ep.ID
	}
	return ids, err
}

// registerFor creates one endpoint per label on r subscribed to events, through the API (16
// at a time: each one makes webhookd probe the receiver). r is not told of them: a delivery
// to one counts as a problem unless the caller calls r.expect.
func (e *env) registerFor(ctx context.Context, r *receiver, labels, events []string) ([]createdEndpoint, error) {
	eps := make([]createdEndpoint, len(labels))
	err := parallel(len(labels), 16, func(i int) error {
		ep, err := e.api.createEndpointFor(ctx, r.URL(labels[i]), events)
		if err != nil {
			return fmt.Errorf("register endpoint %s: %w", labels[i], err)
		}
		eps[i] = ep
		return nil
	})
	for _, ep := range eps {
		if ep.ID != "" {
			e.endpoints = append(e.endpoints, ep.ID)
		}
	}
	return eps, err
}

// publisher publishes through the API.
func (e *env) publisher() publishFunc {
	return func(ctx context.Context, sentAt time.Time, seq int) (string, error) {
		p, err := e.api.publish(ctx, sentAt, seq)
		return p.ID, err
	}
}

// await waits until want distinct deliveries arrived: it gives up after the bench's stall
// time without progress, or after a limit that grows with want.
func (e *env) await(ctx context.Context, want int) bool {
	limit := time.Minute + time.Duration(want)*5*time.Millisecond
	return e.rec.waitFor(ctx, want, e.b.stall, limit)
}

// settle waits a moment for late duplicates, then tallies events × labels.
func (e *env) settle(ctx context.Context, events, labels []string) tally {
	sleepCtx(ctx, 300*time.Millisecond)
	return e.rec.check(events, labels)
}

// oneEndpoint sets up webhookd (role all, default settings) with one receiver and one endpoint
// on it, labelled label; it returns the env (which the caller closes) and the endpoint's id.
func (b *bench) oneEndpoint(ctx context.Context, label string) (*env, string, error) {
	e, err := b.setup(ctx, "all", nil)
	if err != nil {
		return nil, "", err
	}
	rcv, err := e.receiver(receiverConfig{})
	if err != nil {
		e.close(ctx)
		return nil, "", err
	}
	eids, err := e.register(ctx, rcv, []string{label}, 200)
	if err != nil {
		e.close(ctx)
		return nil, "", err
	}
	return e, eids[0], nil
}

// checkAlive records a webhookd that exited during the run, with the end of its log.
func (e *env) checkAlive(r *runResult) {
	if e.wd == nil || !e.wd.exited() {
		return
	}
	how := fmt.Sprint(e.wd.err)
	if e.wd.err == nil {
		// webhookd exits 0 only after SIGTERM or SIGINT, and the bench sends none before a
		// run ends: something outside the bench stopped it.
		how = "exit status 0: stopped by a SIGTERM or SIGINT from outside the bench"
	}
	r.problem("webhookd exited during the run (%s); log %s ends:\n%s", how, e.wd.logPath, e.wd.tail())
}

// labels returns n labels prefix0, prefix1, ...
func labels(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// parallel runs f(0..n-1) with at most width at once and returns the first error.
func parallel(n, width int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, width)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
