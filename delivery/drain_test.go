package delivery

import (
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
