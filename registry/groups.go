package registry

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Under load, an API request's round trips to Redis arrive many at once with the same subject:
// a scanner fleet authenticating with one key and publishing for one tenant, say. groups lets
// such calls share one script call (lua/authenticate.lua for a key's requests,
// lua/publish.lua for a tenant's publishes), which does each call's work in their order, as
// one script call each would. The first call of a subject runs at once, in the caller's
// goroutine; those that arrive while it runs wait in line, and run together as the next group,
// in a goroutine of its own, as soon as it is done; and so on. A subject with one call at a
// time waits for nothing.
//
// A call waits in line at most groupWait. Past that, Redis is slow or out of reach, and the
// call goes alone, as it would without groups: go-redis fails fast for concurrent callers of a
// server that refuses connections, where groups one at a time would each wait out their dial
// retries. For the same reason, when a group finds Redis out of reach, those in line get its
// answer. A call whose context ends while it waits in line leaves the line and is never run.

// groupWait is the longest a call waits in line for its subject's next group; a round trip
// under load takes well under a millisecond.
const groupWait = 50 * time.Millisecond

// waiter is what every grouped call has: its answer's error, and done, closed once answered.
type waiter struct {
	done chan struct{}
	err  error
}

func newWaiter() waiter { return waiter{done: make(chan struct{})} }

func (w *waiter) waiting() *waiter { return w }

// answer ends the call with err (its other results set before).
func (w *waiter) answer(err error) {
	w.err = err
	close(w.done)
}

// groupRun runs one group of calls to completion: it answers each. It returns the error it
// answered them all with, if any.
type groupRun[C any] func(ctx context.Context, calls []C) error

// groups holds, for each subject whose group is running, the calls in line for the next.
type groups[C interface {
	comparable
	waiting() *waiter
}] struct {
	mu      sync.Mutex
	waiting map[string][]C
	wait    time.Duration // groupWait when 0 (tests change it)
}

// do answers c: at once, in a group of its own, when no group of its subject runs, or else in
// the next group, or alone when that has not started within the wait. It returns when c is
// answered or ctx ends (with c's error then).
func (g *groups[C]) do(ctx context.Context, subject string, c C, run groupRun[C]) error {
	g.mu.Lock()
	if w, running := g.waiting[subject]; running {
		g.waiting[subject] = append(w, c)
		g.mu.Unlock()
		return g.await(ctx, subject, c, run)
	}
	if g.waiting == nil {
		g.waiting = make(map[string][]C)
	}
	g.waiting[subject] = nil
	g.mu.Unlock()
	g.run(context.WithoutCancel(ctx), subject, []C{c}, run)
	return c.waiting().err
}

// await waits for c's group; when none has taken c within the wait, c leaves the line and
// runs alone, and when ctx ends first, c leaves the line unanswered.
func (g *groups[C]) await(ctx context.Context, subject string, c C, run groupRun[C]) error {
	wait := g.wait
	if wait == 0 {
		wait = groupWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	w := c.waiting()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
	case <-t.C:
	}
	if !g.leave(subject, c) {
		select { // a group took it meanwhile, and answers it
		case <-w.done:
			return w.err
		case <-ctx.Done():
			return storeErr("wait for a group", ctx.Err())
		}
	}
	if ctx.Err() != nil {
		return storeErr("wait for a group", ctx.Err())
	}
	_ = run(ctx, []C{c})
	return w.err
}

// leave takes c out of its subject's line; false when a group took it.
func (g *groups[C]) leave(subject string, c C) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.waiting[subject]
	i := slices.Index(w, c)
	if i >= 0 {
		g.waiting[subject] = slices.Delete(w, i, i+1)
	}
	return i >= 0
}

// run runs one group, then hands the line to a goroutine of its own as the next group, so
// that the caller goes on with its answer; when the group found Redis out of reach, the line
// gets that answer instead.
func (g *groups[C]) run(ctx context.Context, subject string, calls []C, run groupRun[C]) {
	err := run(ctx, calls)
	g.mu.Lock()
	next := g.waiting[subject]
	if len(next) == 0 || IsUnavailable(err) {
		delete(g.waiting, subject)
	} else {
		g.waiting[subject] = nil
	}
	g.mu.Unlock()
	switch {
	case len(next) == 0:
	case IsUnavailable(err):
		for _, c := range next {
			c.waiting().answer(err)
		}
	default:
		go g.run(ctx, subject, next, run)
	}
}

// inLine is how many calls of subject are in line for the next group (tests).
func (g *groups[C]) inLine(subject string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting[subject])
}
