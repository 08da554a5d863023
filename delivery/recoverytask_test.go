package delivery

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// recoverySpy is an Observer that notes every finished recovery it is told of.
type recoverySpy struct {
	mu   sync.Mutex
	told [][2]int // requeued, created
}

func (s *recoverySpy) Attempt(string, time.Duration) {}
func (s *recoverySpy) Disabled(string)               {}
func (s *recoverySpy) Concurrency(string, int, int)  {}

func (s *recoverySpy) Recovered(requeued, created int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.told = append(s.told, [2]int{requeued, created})
}

func (s *recoverySpy) recovered() [][2]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]int(nil), s.told...)
}

// failedWindow is an endpoint whose n deliveries failed (one attempt each) while its receiver
// answered 500; the receiver answers 200 from now on. since is before the first event.
type failedWindow struct {
	rc    *deliverytest.Receiver
	ep    *registry.Endpoint
	ids   []string
	since time.Time
	downs int // POSTs answered 500
}

func newFailedWindow(t *testing.T, st *stack, n int) *failedWindow {
	t.Helper()
	var up atomic.Bool
	fw := &failedWindow{since: time.Now()}
	fw.rc, fw.ep = st.receiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}, registry.EventScanCompleted)
	fw.ids = st.publishN(t, n)
	stop := st.worker(t, WorkerConfig{Policy: RetryPolicy{MaxAttempts: 1}, DisableAfter: 1 << 30, Concurrency: 16})
	for _, id := range fw.ids {
		st.waitStatus(t, fw.ep.ID, id, registry.DeliveryFailed)
	}
	st.waitDrained(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fw.downs = fw.rc.Count()
	up.Store(true)
	return fw
}

// check waits until every failed delivery was received again and the queue is idle, then
// fails unless each event was received exactly once more and its delivery succeeded in its
// next generation (queued once).
func (fw *failedWindow) check(t *testing.T, st *stack) {
	t.Helper()
	eventually(t, "every delivery received again", func() bool { return fw.rc.Count() >= fw.downs+len(fw.ids) })
	for _, id := range fw.ids {
		d := st.waitStatus(t, fw.ep.ID, id, registry.DeliverySucceeded)
		if d.Generation != 1 || d.AttemptCount != 2 {
			t.Errorf("delivery of %s: generation %d, %d attempts; want generation 1 (queued once), 2 attempts",
				id, d.Generation, d.AttemptCount)
		}
	}
	st.waitDrained(t)
	again := map[string]int{}
	for _, h := range fw.rc.Hits()[fw.downs:] {
		again[h.Header.Get("webhook-id")]++
	}
	for _, id := range fw.ids {
		if again[id] != 1 {
			t.Errorf("event %s was received %d times after the recovery, want 1", id, again[id])
		}
	}
	if len(again) != len(fw.ids) {
		t.Errorf("%d webhook-ids received after the recovery, want %d", len(again), len(fw.ids))
	}
}

// checkFinishedOnce fails unless the recovery is done with requeued n, and its end was logged
// once and told to the observer once, with the same counts.
func checkFinishedOnce(t *testing.T, st *stack, log *logBuffer, spy *recoverySpy, eid, rid string, n int) {
	t.Helper()
	var r *registry.Recovery
	eventually(t, "the recovery to be done", func() bool {
		var err error
		r, err = st.store.Recovery(t.Context(), st.tid, eid, rid)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status == "done"
	})
	if r.Requeued != n || r.Created != 0 {
		t.Errorf("recovery requeued %d and created %d, want %d and 0", r.Requeued, r.Created, n)
	}
	lines := log.lines(t, "recovery finished")
	if len(lines) != 1 || lines[0]["recoveryId"] != rid || lines[0]["requeued"] != float64(n) {
		t.Errorf("recovery finished lines = %v, want one for %s with requeued %d", lines, rid, n)
	}
	if got := spy.recovered(); len(got) != 1 || got[0] != [2]int{n, 0} {
		t.Errorf("observer told of recoveries %v, want once with requeued %d", got, n)
	}
}

// TestLostRecoveryRunBySweeper: a recovery whose task chain was lost after its first step (a
// worker died between the step and queueing the next, and the step's drain was never queued
// either) is picked up by the outbox sweeper of two workers and finishes: every failed
// delivery is queued once and received once, and its end is logged and counted once.
func TestLostRecoveryRunBySweeper(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	const n = 1100 // three steps of at most 500 events
	fw := newFailedWindow(t, st, n)

	// The step ran a minute ago by the store's clock, so its outbox entries (the recovery's
	// and its drain's) are past the sweeper's grace.
	past, err := registry.New(registry.Config{Client: st.rdb, Now: func() time.Time { return time.Now().Add(-time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := past.StartRecovery(t.Context(), st.tid, fw.ep.ID, registry.NewRecovery{Since: fw.since,
		Until: time.Now().Add(time.Second), Include: []string{registry.RecoverFailed}})
	if err != nil {
		t.Fatal(err)
	}
	step, err := past.RecoverStep(t.Context(), st.tid, r.ID)
	if err != nil || step.Done || len(step.Drains) != 1 {
		t.Fatalf("first step = %+v, %v; want a running recovery and one drain to queue", step, err)
	}
	if !st.drained(t) {
		t.Fatal("something is queued; the recovery must be left to the sweeper")
	}

	log, spy := &logBuffer{}, &recoverySpy{}
	for range 2 {
		st.worker(t, WorkerConfig{SweepInterval: 100 * time.Millisecond, Observer: spy,
			Logger: slog.New(slog.NewJSONHandler(log, nil))})
	}
	fw.check(t, st)
	checkFinishedOnce(t, st, log, spy, fw.ep.ID, r.ID, n)
	if len(log.lines(t, "outbox sweep queued work")) == 0 {
		t.Error("no sweep queued work: the recovery was not left to the sweeper")
	}
}

// TestRecoveryChainsStepOnce: two task chains of one recovery (a chain the sweeper started
// beside the original, say) run at once on two workers: each delivery is still queued once,
// and the recovery's end is logged and counted once.
func TestRecoveryChainsStepOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	const n = 1100
	fw := newFailedWindow(t, st, n)
	r, err := st.store.StartRecovery(t.Context(), st.tid, fw.ep.ID, registry.NewRecovery{Since: fw.since,
		Until: time.Now().Add(time.Second), Include: []string{registry.RecoverFailed}})
	if err != nil {
		t.Fatal(err)
	}
	for _, first := range []string{"0", "s1"} {
		if err := st.svc.q.recover(t.Context(), st.tid, r.ID, first); err != nil {
			t.Fatal(err)
		}
	}
	log, spy := &logBuffer{}, &recoverySpy{}
	for range 2 {
		st.worker(t, WorkerConfig{Observer: spy, Logger: slog.New(slog.NewJSONHandler(log, nil))})
	}
	fw.check(t, st)
	checkFinishedOnce(t, st, log, spy, fw.ep.ID, r.ID, n)
}

// lostReplyStore is the real registry, but the step that finishes a recovery answers an outage
// once after it has done its work: a connection that drops between the script's write and its
// reply, or the read of the finished recovery failing.
type lostReplyStore struct {
	*registry.Store
	lost atomic.Bool
}

func (s *lostReplyStore) RecoverStep(ctx context.Context, tid, rid string) (registry.RecoveryStep, error) {
	st, err := s.Store.RecoverStep(ctx, tid, rid)
	if err == nil && st.Finished != nil && s.lost.CompareAndSwap(false, true) {
		return registry.RecoveryStep{}, outage("recover")
	}
	return st, err
}

// TestRecoveryFinishReportedDespiteLostReply: when the step that finishes a recovery loses its
// reply (the store call fails after Redis did the work), the task's retry still logs the
// recovery's end once and counts it once in the metrics: the one "recovery finished" line and
// webhookd_recoveries_total must not depend on one reply arriving.
func TestRecoveryFinishReportedDespiteLostReply(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	const n = 20
	fw := newFailedWindow(t, st, n)
	store := &lostReplyStore{Store: st.store}
	log, spy := &logBuffer{}, &recoverySpy{}
	st.worker(t, WorkerConfig{Store: store, Observer: spy, Logger: slog.New(slog.NewJSONHandler(log, nil))})
	r, err := st.svc.Recover(t.Context(), st.tid, fw.ep.ID, registry.NewRecovery{Since: fw.since,
		Until: time.Now().Add(time.Second), Include: []string{registry.RecoverFailed}})
	if err != nil {
		t.Fatal(err)
	}
	fw.check(t, st)
	eventually(t, "the finishing step's reply to be lost", store.lost.Load)
	st.waitDrained(t) // the retried step has run
	checkFinishedOnce(t, st, log, spy, fw.ep.ID, r.ID, n)
}
