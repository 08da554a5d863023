package delivery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

const (
	// slotWait is how long an attempt waits for a busy endpoint's slot before it is deferred:
	// long enough for a fast receiver's slot to come free, too short to let a slow one hold
	// a worker that another endpoint's delivery could use.
	slotWait = 20 * time.Millisecond
	// A deferred delivery runs again after busyDelay plus up to busyJitter, spread so that a
	// backlog of a slow endpoint does not come back all at once.
	busyDelay  = time.Second
	busyJitter = 2 * time.Second
)

// endpointSlots caps the attempts one endpoint may have in flight in this process, so a slow
// or hanging receiver cannot take every delivery worker while other endpoints' deliveries
// wait behind it in the shared queue.
type endpointSlots struct {
	limit int
	mu    sync.Mutex
	sems  map[string]*endpointSem
}

type endpointSem struct {
	slots chan struct{}
	users int // attempts holding or waiting for a slot; the entry is dropped at zero
}

func newEndpointSlots(limit int) *endpointSlots {
	return &endpointSlots{limit: limit, sems: make(map[string]*endpointSem)}
}

// acquire takes one of endpoint id's slots, waiting at most wait. It returns a release func,
// or ok false when the endpoint stayed at its limit (or ctx ended).
func (s *endpointSlots) acquire(ctx context.Context, id string, wait time.Duration) (release func(), ok bool) {
	s.mu.Lock()
	sem := s.sems[id]
	if sem == nil {
		sem = &endpointSem{slots: make(chan struct{}, s.limit)}
		s.sems[id] = sem
	}
	sem.users++
	s.mu.Unlock()

	select {
	case sem.slots <- struct{}{}:
		return func() { <-sem.slots; s.leave(id, sem) }, true
	default:
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case sem.slots <- struct{}{}:
		return func() { <-sem.slots; s.leave(id, sem) }, true
	case <-timer.C:
	case <-ctx.Done():
	}
	s.leave(id, sem)
	return nil, false
}

func (s *endpointSlots) leave(id string, sem *endpointSem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sem.users--; sem.users == 0 {
		delete(s.sems, id)
	}
}

// inFlight reports the slots endpoint id holds now (for tests).
func (s *endpointSlots) inFlight(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sem := s.sems[id]; sem != nil {
		return len(sem.slots)
	}
	return 0
}

// busyRetry is the error that defers a delivery whose endpoint is at its limit: no attempt
// was made, so it is not a failure and costs none of the delivery's attempts.
func busyRetry() *RetryError {
	return &RetryError{Delay: busyDelay + rand.N(busyJitter), Busy: true}
}
