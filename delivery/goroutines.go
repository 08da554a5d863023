package delivery

import "sync/atomic"

// goroutines runs the drains' sends and recordings on goroutines that live on between them. A
// goroutine making an HTTPS attempt grows its stack to tens of KB, and a fresh goroutine for
// every attempt spent about 4 % of a worker's CPU growing it again (runtime.newstack in the
// profile of a batch flood). A job goes to a goroutine waiting for one, or else to a new one;
// once done, a goroutine waits for the next job unless max others already wait, and all stop
// waiting when stop is closed (a worker shutting down). Jobs never wait for a goroutine.
type goroutines struct {
	jobs chan func()
	idle atomic.Int32
	max  int32
	stop <-chan struct{}
}

func newGoroutines(max int, stop <-chan struct{}) *goroutines {
	return &goroutines{jobs: make(chan func()), max: int32(max), stop: stop}
}

// run runs f on a waiting goroutine, or a new one.
func (g *goroutines) run(f func()) {
	select {
	case g.jobs <- f:
	default:
		go g.serve(f)
	}
}

func (g *goroutines) serve(f func()) {
	for f != nil {
		f()
		f = g.next()
	}
}

// next waits for the next job; nil when the goroutine is to end instead.
func (g *goroutines) next() func() {
	defer g.idle.Add(-1)
	if g.idle.Add(1) > g.max {
		return nil
	}
	select {
	case f := <-g.jobs:
		return f
	case <-g.stop:
		return nil
	}
}
