package registry

import (
	"context"
	"strconv"
	"sync"
)

// An API request's authentication is one round trip (lua/authenticate.lua), and a busy key's
// requests arrive many at once: a scanner fleet publishing with one key, say. authGroups lets
// them share the round trip. The first request of a key runs at once, in its own goroutine;
// those that arrive while it runs wait, and run together as the next group as soon as it is
// done, and so on. A key used by one request at a time waits for nothing, and under load one
// script call reads the key's record once for a whole group and counts each of its requests,
// in their order, as one call each would.

// authCall is one request's authentication: its token's hash, then its answer once done closes.
type authCall struct {
	hash string
	done chan struct{}
	key  *APIKey
	rate RateResult
	err  error
}

// authGroups holds, for each key id whose group is running, the calls that wait for the next
// one.
type authGroups struct {
	mu      sync.Mutex
	waiting map[string][]*authCall
}

// authGroup runs one group of calls to completion: it answers each and closes its done.
type authGroup func(ctx context.Context, kid string, defaultPerMinute int, calls []*authCall)

// add runs c with the calls that arrive while it runs, or, when a group of kid is running,
// leaves it to wait for the next. Calls group only with calls of the same default limit.
func (g *authGroups) add(ctx context.Context, kid string, defaultPerMinute int, c *authCall, run authGroup) {
	id := kid + "/" + strconv.Itoa(defaultPerMinute)
	g.mu.Lock()
	if w, running := g.waiting[id]; running {
		g.waiting[id] = append(w, c)
		g.mu.Unlock()
		return
	}
	if g.waiting == nil {
		g.waiting = make(map[string][]*authCall)
	}
	g.waiting[id] = nil
	g.mu.Unlock()
	g.run(context.WithoutCancel(ctx), id, kid, defaultPerMinute, []*authCall{c}, run)
}

// run runs one group, then hands those that waited meanwhile to a goroutine of their own as
// the next, so that the caller's request goes on with its answer.
func (g *authGroups) run(ctx context.Context, id, kid string, defaultPerMinute int, calls []*authCall, run authGroup) {
	run(ctx, kid, defaultPerMinute, calls)
	g.mu.Lock()
	next := g.waiting[id]
	if len(next) == 0 {
		delete(g.waiting, id)
	} else {
		g.waiting[id] = nil
	}
	g.mu.Unlock()
	if len(next) > 0 {
		go g.run(ctx, id, kid, defaultPerMinute, next, run)
	}
}

// waitingFor is how many calls of kid wait for the next group (tests).
func (g *authGroups) waitingFor(kid string, defaultPerMinute int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting[kid+"/"+strconv.Itoa(defaultPerMinute)])
}
