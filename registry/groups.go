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
// goroutine; those that arrive while it runs wait in line, and the front of the line runs
// together as the next group, in a goroutine of its own, as soon as it is done; and so on. A
// subject with one call at a time waits for nothing.
//
// A group holds at most groupMax units of work (a call's size: its events for a publish, 1 for
// an authentication), or one call when that alone is more: a script holds Redis while it runs,
// and every other client, of whichever tenant, waits behind it. Each subject has one script of
// bounded length in Redis at a time, and the rest of its line waits in webhookd. (Uncapped,
// 256 batch publishers of one tenant made scripts of up to 7,600 events that held Redis for
// up to 65–158 ms, and groups of over 4,000 events of one type failed whole.)
//
// A call leaves the line and goes alone, as it would without groups, once the group running
// ahead of it has taken longer than groupWait: Redis is then slow or out of reach, and go-redis
// fails fast for concurrent callers of a server that refuses connections, where groups one at
// a time would each wait out their dial retries. For the same reason, when a group finds Redis
// out of reach, those in line get its answer. A call whose context ends while it waits in line
// leaves the line and is never run.

// groupWait is the longest a group may run before the calls in line behind it go alone; a
// group's round trip under load takes a few milliseconds.
const groupWait = 50 * time.Millisecond

// groupMax is the most work one group holds: a group of publishes of 200 events is 5–10 ms of
// redis-server on a 2-core machine.
const groupMax = 200

// waiter is what every grouped call has: its answer's error, and done, closed once answered.
type waiter struct {
	done chan struct{}
	err  error
}

func newWaiter() waiter { return waiter{done: make(chan struct{})} }

func (w *waiter) waiting() *waiter { return w }

// answered tells whether the call has its answer, which its results are then part of.
func (w *waiter) answered() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// answer ends the call with err (its other results set before).
func (w *waiter) answer(err error) {
	w.err = err
	close(w.done)
}

// groupRun runs one group of calls to completion: it answers each. It returns the error it
// answered them all with, if any.
type groupRun[C any] func(ctx context.Context, calls []C) error

// groupCall is what groups hold: a call's waiter, and its size (see groupMax).
type groupCall interface {
	comparable
	waiting() *waiter
	size() int
}

// line is a subject's running group's start and the calls waiting for the groups after it.
type line[C groupCall] struct {
	since time.Time
	calls []C
}

// groups holds the line of each subject whose group is running.
type groups[C groupCall] struct {
	mu    sync.Mutex
	lines map[string]*line[C]
	wait  time.Duration // groupWait when 0 (tests change it)
	max   int           // groupMax when 0 (tests change it)
}

// do answers c: at once, in a group of its own, when no group of its subject runs, or else in
// a group after it, or alone when the group ahead runs past the wait. It returns when c is
// answered or ctx ends (with c's error then).
func (g *groups[C]) do(ctx context.Context, subject string, c C, run groupRun[C]) error {
	g.mu.Lock()
	if l, running := g.lines[subject]; running {
		l.calls = append(l.calls, c)
		g.mu.Unlock()
		return g.await(ctx, subject, c, run)
	}
	if g.lines == nil {
		g.lines = make(map[string]*line[C])
	}
	g.lines[subject] = &line[C]{since: time.Now()}
	g.mu.Unlock()
	g.run(context.WithoutCancel(ctx), subject, []C{c}, run)
	return c.waiting().err
}

// await waits for c's group; when the group ahead has run longer than the wait, c leaves the
// line and runs alone, and when ctx ends first, c leaves the line unanswered.
func (g *groups[C]) await(ctx context.Context, subject string, c C, run groupRun[C]) error {
	wait := g.waitFor()
	t := time.NewTimer(wait)
	defer t.Stop()
	w := c.waiting()
	for waiting := true; waiting; {
		select {
		case <-w.done:
			return w.err
		case <-ctx.Done():
			waiting = false
		case <-t.C:
			if left := g.patience(subject, wait); left > 0 {
				t.Reset(left)
			} else {
				waiting = false
			}
		}
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

// waitFor is the wait: groupWait unless a test set another.
func (g *groups[C]) waitFor() time.Duration {
	if g.wait == 0 {
		return groupWait
	}
	return g.wait
}

// patience is how much longer the calls in subject's line wait for the running group: what is
// left of the wait since it started; 0 when nothing is.
func (g *groups[C]) patience(subject string, wait time.Duration) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.lines[subject]; l != nil {
		return max(wait-time.Since(l.since), 0)
	}
	return 0
}

// leave takes c out of its subject's line; false when a group took it.
func (g *groups[C]) leave(subject string, c C) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.lines[subject]
	if l == nil {
		return false
	}
	i := slices.Index(l.calls, c)
	if i >= 0 {
		l.calls = slices.Delete(l.calls, i, i+1)
	}
	return i >= 0
}

// run runs one group, then hands the front of the line to a goroutine of its own as the next
// group, so that the caller goes on with its answer; when the group found Redis out of reach,
// the whole line gets that answer instead.
func (g *groups[C]) run(ctx context.Context, subject string, calls []C, run groupRun[C]) {
	err := run(ctx, calls)
	g.mu.Lock()
	l := g.lines[subject]
	next := l.calls
	if len(next) == 0 || IsUnavailable(err) {
		delete(g.lines, subject)
	} else {
		next, l.calls = g.front(next)
		l.since = time.Now()
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

// front splits a line into its next group, as many calls as fit in the cap (at least one), and
// the rest.
func (g *groups[C]) front(calls []C) ([]C, []C) {
	limit := g.max
	if limit == 0 {
		limit = groupMax
	}
	n, total := 1, calls[0].size()
	for n < len(calls) && total+calls[n].size() <= limit {
		total += calls[n].size()
		n++
	}
	return calls[:n], slices.Clone(calls[n:])
}

// inLine is how many calls of subject are in line for the next group (tests).
func (g *groups[C]) inLine(subject string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.lines[subject]; l != nil {
		return len(l.calls)
	}
	return 0
}
