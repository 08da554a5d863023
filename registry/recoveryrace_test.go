package registry_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// A recovery of an endpoint ordered by scan forms each scan's lane again in publish order:
// the scan's first failed delivery goes on the queue, the later ones wait behind it, and
// each goes on the queue only when the one ahead is done.
func TestRecoverOrderedLanes(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.orderedEndpoint(t, tn.ID)
		since := e.clock.Now()
		a1 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanStarted, "scan-a")
		b1 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanStarted, "scan-b")
		a2 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanCompleted, "scan-a")
		a3 := e.publishScan(t, tn.ID, ep.ID, registry.EventScanCancelled, "scan-a")
		once := policy{disableAfter: 1000, maxAttempts: 1}
		for _, did := range []string{a1, b1, a2, a3} { // each fails for good, promoting the next
			if r := e.attempt(t, tn.ID, queued{DeliveryID: did, EndpointID: ep.ID}, registry.OutcomeFailure, once); r.Status != registry.DeliveryFailed {
				t.Fatalf("attempt of %s = %+v, want failed", did, r)
			}
		}

		r := e.runRecovery(t, tn.ID, ep.ID, e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverFailed).ID)
		if r.Requeued != 4 {
			t.Fatalf("recovery requeued %d, want 4", r.Requeued)
		}
		if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, []string{a1, b1}) {
			t.Fatalf("queue after the recovery = %v, want the scans' first deliveries %v", got, []string{a1, b1})
		}
		if w2, w3 := e.waitingFor(t, tn.ID, ep.ID, a2), e.waitingFor(t, tn.ID, ep.ID, a3); w2 != a1 || w3 != a2 {
			t.Errorf("waitingFor = %q, %q; want %q, %q", w2, w3, a1, a2)
		}
		for i, did := range []string{a1, a2, a3} {
			q := e.run(t, tn.ID, queued{DeliveryID: did, EndpointID: ep.ID})
			if r := e.attempt(t, tn.ID, q, registry.OutcomeSuccess, once); r.Status != registry.DeliverySucceeded {
				t.Fatalf("recovered attempt of %s = %+v, want succeeded", did, r)
			}
			want := []string{b1}
			if i < 2 {
				want = append(want, []string{a2, a3}[i])
			}
			if got := e.queueOf(t, tn.ID, ep.ID); !slices.Equal(got, want) {
				t.Errorf("queue after %s succeeded = %v, want %v", did, got, want)
			}
		}
	})
}

// A recovery racing manual retries of the same failed deliveries queues each once: a delivery
// retried first is no longer failed and the recovery leaves it; one the recovery queued first
// is queued again by its retry in a newer generation. The recovery counts exactly those it
// queued.
func TestRecoverRacingManualRetry(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		since := e.clock.Now()
		var qs []queued
		for i := range 700 { // two steps
			q := e.deliver(t, tn.ID, ep.ID)
			e.attempt(t, tn.ID, q, registry.OutcomeFailure, policy{disableAfter: 1 << 20, maxAttempts: 1})
			qs = append(qs, q)
			if i%5 == 0 {
				e.clock.Advance(time.Millisecond)
			}
		}
		rcv := e.startRecovery(t, tn.ID, ep.ID, since, registry.RecoverFailed)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			rcv = e.runRecovery(t, tn.ID, ep.ID, rcv.ID)
		})
		for g := range 4 { // four retriers from the other end, so that they meet the recovery
			wg.Go(func() {
				<-start
				for i := len(qs) - 1 - g; i >= 0; i -= 4 {
					if _, err := e.store.RequeueDelivery(t.Context(), tn.ID, ep.ID, qs[i].DeliveryID); err != nil {
						t.Errorf("RequeueDelivery: %v", err)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		gens := map[int]int{}
		for _, q := range qs {
			d := e.delivery(t, tn.ID, q)
			if d.Status != registry.DeliveryPending || d.RunAttempts != 0 {
				t.Errorf("delivery %s is %s with %d attempts in its run, want pending with a fresh budget", q.DeliveryID,
					d.Status, d.RunAttempts)
			}
			gens[d.Generation]++
		}
		if gens[1]+gens[2] != len(qs) || rcv.Requeued != gens[2] {
			t.Errorf("generations %v, recovery requeued %d: want generation 1 or 2 each, and the recovery to have "+
				"queued exactly those its retry queued again (generation 2)", gens, rcv.Requeued)
		}
		t.Logf("recovery first: %d, retry first: %d", gens[2], gens[1])
	})
}
