package delivery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// faultStore is the real registry with faults injected, each off until a test sets it:
//   - outages: the next loadFaults calls that take deliveries (Take) and recordFaults calls that
//     record attempts (Finish) answer SERVICE_UNAVAILABLE, as the registry does when Redis
//     cannot be reached, without touching Redis;
//   - a slow first record (holdFirstFinish): the first Finish call waits until the test lets
//     it go, so that the outcomes the drain collects meanwhile are recorded together, in the
//     order they were collected;
//   - expired events: Take hands out the deliveries whose body expire matches without their
//     body, which is how an event that expired while queued reaches the drain.
//
// It notes the most deliveries one Take handed out (mostTaken).
//
// It notes the deliveries of every batch it passes to Finish, so that a test can check it
// built the batch it meant to.
type faultStore struct {
	*registry.Store
	loadFaults, recordFaults atomic.Int32
	injected                 atomic.Int32

	expire    func(body []byte) bool
	expired   atomic.Int32
	mostTaken atomic.Int32

	hold      chan struct{} // nil: no first Finish is held
	finishing chan struct{} // closed when the held Finish call arrives
	held      atomic.Bool
	release   func()

	mu      sync.Mutex
	batches [][]string
}

func outage(op string) error {
	return registry.Wrap(registry.CodeServiceUnavailable, errors.Join(errors.New(op), syscall.ECONNREFUSED))
}

// holdFirstFinish makes the first Finish call wait for release (called at the test's cleanup at
// the latest); finishing is closed when that call arrives.
func (s *faultStore) holdFirstFinish(t *testing.T) {
	s.hold, s.finishing = make(chan struct{}), make(chan struct{})
	s.release = sync.OnceFunc(func() { close(s.hold) })
	t.Cleanup(s.release)
}

func (s *faultStore) Take(ctx context.Context, r registry.TakeRequest) ([]registry.QueueItem, *registry.Endpoint, error) {
	if r.Limit > 0 && s.loadFaults.Add(-1) >= 0 {
		s.injected.Add(1)
		return nil, nil, outage("take")
	}
	items, ep, err := s.Store.Take(ctx, r)
	for n := int32(len(items)); n > s.mostTaken.Load(); {
		if s.mostTaken.CompareAndSwap(s.mostTaken.Load(), n) {
			break
		}
	}
	for i := range items {
		if s.expire != nil && s.expire(items[i].Body) {
			items[i].Body = nil
			s.expired.Add(1)
		}
	}
	return items, ep, err
}

func (s *faultStore) Finish(ctx context.Context, r registry.FinishRequest) (registry.Finished, error) {
	if s.recordFaults.Add(-1) >= 0 {
		s.injected.Add(1)
		return registry.Finished{}, outage("finish")
	}
	if s.hold != nil && s.held.CompareAndSwap(false, true) {
		close(s.finishing)
		<-s.hold
	}
	ids := make([]string, len(r.Outcomes))
	for i, o := range r.Outcomes {
		ids[i] = o.Item.DeliveryID
	}
	s.mu.Lock()
	s.batches = append(s.batches, ids)
	s.mu.Unlock()
	return s.Store.Finish(ctx, r)
}

// recorded returns the deliveries of every batch recorded so far, in order.
func (s *faultStore) recorded() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.batches...)
}
