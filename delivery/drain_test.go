package delivery

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// publishN publishes n events of type scan.completed and returns their ids.
func (st *stack) publishN(t *testing.T, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = st.publish(t, registry.EventScanCompleted, nil).ID
	}
	return ids
}

// drains is how many drains endpoint eid has had (the number of the last one).
func (st *stack) drains(t *testing.T, eid string) int {
	t.Helper()
	n, err := st.rdb.Get(t.Context(), "wh:{t:"+st.tid+"}:ep:"+eid+":drain:n").Int()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A drain that outlasts its budget hands the queue to a successor task: the endpoint's
// deliveries are worked by several drains in turn, each once.
func TestDrainHandsOffAfterBudget(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	rc, ep := st.receiver(t, slowOK(20*time.Millisecond), registry.EventScanCompleted)
	ids := st.publishN(t, 60) // 60 × 20 ms over 2 at a time: about 600 ms of work
	st.worker(t, WorkerConfig{Concurrency: 4, EndpointConcurrency: 2, DrainBudget: 100 * time.Millisecond})
	st.deliveredOnce(t, rc, ep.ID, ids...)
	if n := st.drains(t, ep.ID); n < 3 {
		t.Errorf("the queue was worked by %d drain(s), want a handoff every 100 ms", n)
	}
}

// A worker that stops in the middle of a queue finishes and records what it sent, then hands
// the rest to a successor task, which another worker runs: nothing lost, nothing sent twice.
func TestDrainHandsOffOnShutdown(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	rc, ep := st.receiver(t, slowOK(20*time.Millisecond), registry.EventScanCompleted)
	ids := st.publishN(t, 60)
	stop := st.worker(t, WorkerConfig{Concurrency: 2})
	eventually(t, "the first worker to deliver 5 events", func() bool { return len(rc.IDCounts()) >= 5 })
	if err := stop(); err != nil {
		t.Fatalf("Worker.Run: %v", err)
	}
	if sent := len(rc.IDCounts()); sent == len(ids) {
		t.Fatalf("the stopping worker sent all %d deliveries; want it to stop taking them", sent)
	}
	before := st.drains(t, ep.ID)
	st.worker(t, WorkerConfig{Concurrency: 2})
	st.deliveredOnce(t, rc, ep.ID, ids...)
	if after := st.drains(t, ep.ID); after != before {
		t.Errorf("drains: %d at shutdown, %d at the end; want the successor queued at shutdown to finish", before, after)
	}
}

// A drain of an endpoint that answers fast takes deliveries ahead of its window (a window's
// worth), sent as places free: a take hands out more than the window, the receiver never has
// more than the window in flight, and each delivery arrives once.
func TestDrainTakesAheadOfItsWindow(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	var inFlight, most atomic.Int64
	rc, ep := st.receiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		slowOK(2*time.Millisecond)(0, w, r)
	}, registry.EventScanCompleted)
	ids := st.publishN(t, 100)
	store := &faultStore{Store: st.store}
	st.worker(t, WorkerConfig{Store: store, Concurrency: 8, EndpointConcurrency: 4})
	st.deliveredOnce(t, rc, ep.ID, ids...)
	if m := most.Load(); m > 4 {
		t.Errorf("the receiver had %d requests in flight at once, want at most the window of 4", m)
	}
	if n := store.mostTaken.Load(); n <= 4 {
		t.Errorf("the largest take handed out %d deliveries, want more than the window of 4 (taken ahead)", n)
	}
}

// Deliveries taken ahead are let go, unsent, once one has waited a tick for a place (the
// endpoint answers slowly), and the drain takes no more ahead: an endpoint disabled while its
// attempts hang gets no attempt but those in flight.
func TestDrainLetsGoOfWhatWaitsAhead(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	release := make(chan struct{})
	rc, ep := st.receiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, registry.EventScanCompleted)
	st.publishN(t, 6)
	st.worker(t, WorkerConfig{Concurrency: 4, EndpointConcurrency: 2, AttemptTimeout: time.Minute})
	eventually(t, "two attempts held by the receiver", func() bool { return rc.Count() == 2 })
	if _, err := st.store.DisableEndpoint(t.Context(), st.tid, ep.ID, registry.ReasonManual); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * drainTick) // the two taken ahead have waited several ticks
	close(release)
	st.waitDrained(t)
	if n := rc.Count(); n != 2 {
		t.Errorf("the receiver got %d attempts, want the 2 in flight when its endpoint was disabled", n)
	}
}
