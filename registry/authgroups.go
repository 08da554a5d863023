package registry

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// An API request's authentication is one round trip (lua/authenticate.lua), and a busy key's
// requests arrive many at once: a scanner fleet publishing with one key, say. authGroups lets
// them share the round trip. The first request of a key runs at once, in the caller's
// goroutine; those that arrive while it runs wait in line, and run together as the next group,
// in a goroutine of its own, as soon as it is done; and so on. A key used by one request at a
// time waits for nothing, and under load one script call reads the key's record once for a
// whole group and counts each of its requests, in their order, as one call each would.
//
// A request waits in line at most authWait. Past that, Redis is slow or out of reach, and the
// request goes alone, as it would without groups: go-redis fails fast for concurrent callers
// of a server that refuses connections, where groups one at a time would each wait out their
// dial retries. For the same reason, when a group finds Redis out of reach, those in line get
// its answer.

// authWait is the longest a request waits in line for its key's next group; a round trip
// under load takes well under a millisecond.
const authWait = 50 * time.Millisecond

// authCall is one request's authentication: its token's hash, then its answer once done closes.
type authCall struct {
	hash string
	done chan struct{}
	key  *APIKey
	rate RateResult
	err  error
}

// authGroups holds, for each key id whose group is running, the calls in line for the next.
type authGroups struct {
	mu      sync.Mutex
	waiting map[string][]*authCall
	wait    time.Duration // authWait when 0 (tests change it)
}

// authGroup runs one group of calls to completion: it answers each and closes its done. It
// returns the error it answered them all with, if any.
type authGroup func(ctx context.Context, kid string, defaultPerMinute int, calls []*authCall) error

// add answers c: at once, in a group of its own, when no group of its key runs, or else in
// the next group, or alone when that has not started within the wait. It returns when c is
// answered or ctx ends. Calls group only with calls of the same default limit.
func (g *authGroups) add(ctx context.Context, kid string, defaultPerMinute int, c *authCall, run authGroup) {
	id := kid + "/" + strconv.Itoa(defaultPerMinute)
	g.mu.Lock()
	if w, running := g.waiting[id]; running {
		g.waiting[id] = append(w, c)
		g.mu.Unlock()
		g.await(ctx, id, kid, defaultPerMinute, c, run)
		return
	}
	if g.waiting == nil {
		g.waiting = make(map[string][]*authCall)
	}
	g.waiting[id] = nil
	g.mu.Unlock()
	g.run(context.WithoutCancel(ctx), id, kid, defaultPerMinute, []*authCall{c}, run)
}

// await waits for c's group; when none has taken c within the wait, c leaves the line and
// runs alone.
func (g *authGroups) await(ctx context.Context, id, kid string, defaultPerMinute int, c *authCall, run authGroup) {
	wait := g.wait
	if wait == 0 {
		wait = authWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-ctx.Done():
		return
	case <-t.C:
	}
	g.mu.Lock()
	w := g.waiting[id]
	i := slices.Index(w, c)
	if i >= 0 {
		g.waiting[id] = slices.Delete(w, i, i+1)
	}
	g.mu.Unlock()
	if i >= 0 {
		_ = run(ctx, kid, defaultPerMinute, []*authCall{c})
		return
	}
	select { // a group took it meanwhile, and answers it
	case <-c.done:
	case <-ctx.Done():
	}
}

// run runs one group, then hands the line to a goroutine of its own as the next group, so
// that the caller's request goes on with its answer; when the group found Redis out of reach,
// the line gets that answer instead.
func (g *authGroups) run(ctx context.Context, id, kid string, defaultPerMinute int, calls []*authCall, run authGroup) {
	err := run(ctx, kid, defaultPerMinute, calls)
	g.mu.Lock()
	next := g.waiting[id]
	if len(next) == 0 || IsUnavailable(err) {
		delete(g.waiting, id)
	} else {
		g.waiting[id] = nil
	}
	g.mu.Unlock()
	switch {
	case len(next) == 0:
	case IsUnavailable(err):
		for _, c := range next {
			c.err = err
			close(c.done)
		}
	default:
		go g.run(ctx, id, kid, defaultPerMinute, next, run)
	}
}

// waitingFor is how many calls of kid are in line for the next group (tests).
func (g *authGroups) waitingFor(kid string, defaultPerMinute int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting[kid+"/"+strconv.Itoa(defaultPerMinute)])
}
