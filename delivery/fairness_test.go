package delivery

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// A receiver that holds every request may take only its endpoint's share of the workers
// (Concurrency 4: 2 per endpoint); another endpoint's delivery is delivered while they hang,
// and the slow endpoint's other deliveries wait in its queue without costing attempts. With the
// cap at the full concurrency the fast delivery waits behind the slow ones.
func TestSlowEndpointDoesNotStarveOthers(t *testing.T) {
	st := newStack(t)
	st.worker(t, WorkerConfig{Concurrency: 4, AttemptTimeout: time.Minute})

	release := make(chan struct{})
	var inFlight, most atomic.Int64
	slow, slowEp := st.receiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
	}, registry.EventScanStarted)
	_, fastEp := st.receiver(t, deliverytest.Status(http.StatusOK), registry.EventScanCompleted)

	// The first delivery is held alone before the rest are queued: the drain must fill its
	// second place while the first hangs.
	held := []*Published{st.publish(t, registry.EventScanStarted, nil)}
	eventually(t, "the first held attempt at the slow receiver", func() bool { return slow.Count() == 1 })
	for range 5 {
		held = append(held, st.publish(t, registry.EventScanStarted, nil))
	}
	eventually(t, "two held attempts at the slow receiver", func() bool { return slow.Count() == 2 })
	ev := st.publish(t, registry.EventScanCompleted, nil)
	st.waitStatus(t, fastEp.ID, ev.ID, registry.DeliverySucceeded)
	if n := slow.Count(); n != 2 {
		t.Errorf("slow receiver got %d requests while it held 2, want 2 (the rest queued)", n)
	}

	close(release)
	for _, e := range held {
		d := st.waitStatus(t, slowEp.ID, e.ID, registry.DeliverySucceeded)
		if len(d.Attempts) != 1 {
			t.Errorf("delivery %s has %d attempts, want 1: waiting in the queue is not an attempt", d.ID, len(d.Attempts))
		}
	}
	if m := most.Load(); m > 2 {
		t.Errorf("slow receiver had %d requests in flight at once, want at most 2", m)
	}
	if got := slow.IDCounts(); len(got) != len(held) {
		t.Errorf("slow receiver saw %d distinct events, want %d", len(got), len(held))
	}
}
