package main

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// recoverySoakEnv set to 1 runs the long form of the recovery crash test (50,000 failed
// deliveries, a few minutes):
//
//	WEBHOOKD_TEST_RECOVERY_SOAK=1 go test -count=1 -v -timeout 30m -run TestRecoveryWorkerKilledLong ./cmd/webhookd/
const recoverySoakEnv = "WEBHOOKD_TEST_RECOVERY_SOAK"

// recoveryConcurrency is WEBHOOKD_CONCURRENCY in the recovery crash test: a sent attempt keeps
// one of these slots until its outcome is recorded, so a kill repeats at most this many.
const recoveryConcurrency = 16

// TestRecoveryWorkerKilled: 2,000 failed deliveries recovered by an API process and two worker
// processes, the one delivering SIGKILLed when about half are delivered.
func TestRecoveryWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a worker process mid-recovery and waits for its drain's recovery (about 30 s)")
	}
	runRecoverySoak(t, 2000)
}

// TestRecoveryWorkerKilledLong is the long form: 50,000 failed deliveries.
func TestRecoveryWorkerKilledLong(t *testing.T) {
	if os.Getenv(recoverySoakEnv) != "1" {
		t.Skip("the long form: runs with " + recoverySoakEnv + "=1")
	}
	runRecoverySoak(t, 50000)
}

// soakReceiver answers 500 until it is up, then holds each POST 2-10 ms and answers 200; it
// counts the 200s by webhook-id and the POSTs being held by connection.
type soakReceiver struct {
	*deliverytest.Receiver
	up       atomic.Bool
	mu       sync.Mutex
	answered map[string]int
	inflight map[conn]int
	firstOK  map[string]time.Time
}

func newSoakReceiver(t *testing.T) *soakReceiver {
	r := &soakReceiver{answered: map[string]int{}, inflight: map[conn]int{}, firstOK: map[string]time.Time{}}
	r.Receiver = deliverytest.NewReceiver(t, r.respond)
	return r
}

func (r *soakReceiver) respond(_ int, w http.ResponseWriter, req *http.Request) {
	if !r.up.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	c := connOf(req)
	r.mu.Lock()
	r.inflight[c]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[c]--
		r.mu.Unlock()
	}()
	select {
	case <-time.After(2*time.Millisecond + rand.N(8*time.Millisecond)):
		w.WriteHeader(http.StatusOK)
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		if r.answered[id]++; r.answered[id] == 1 {
			r.firstOK[id] = time.Now()
		}
		r.mu.Unlock()
	case <-req.Context().Done(): // the worker died
	}
}

// delivered is how many webhook-ids were answered 200 at least once.
func (r *soakReceiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.answered)
}

// heldBy is how many POSTs the receiver is holding on the connections conns.
func (r *soakReceiver) heldBy(conns map[conn]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c, k := range r.inflight {
		if conns[c] {
			n += k
		}
	}
	return n
}

// soakRun is one recovery crash run: the stack, its processes and endpoint.
type soakRun struct {
	st      *stack
	api     *service
	workers []*process
	tid     string
	key     string
	ep      endpointView
	rc      *soakReceiver
}

// runRecoverySoak publishes n events to one endpoint whose receiver answers 500, waits until
// every delivery is failed (one attempt each), brings the receiver up and recovers them all,
// SIGKILLing the worker process that is delivering once about half are delivered. Every event
// must be received with success, the recovery must queue each delivery exactly once (its
// generation one more than before), and any duplicate POST must be one the kill cut off.
func runRecoverySoak(t *testing.T, n int) {
	s := newSoakRun(t)
	since, ids := failMany(t, s.st, s.api, s.key, s.ep.ID, n, 10*time.Minute)
	failedIn := time.Since(since)
	before := s.generations(t, ids, registry.DeliveryFailed)

	s.rc.up.Store(true)
	downPOSTs := s.rc.Count()
	start := time.Now()
	r := s.api.startRecovery(t, s.key, s.ep.ID, since)
	stepsDone := s.watchRecovery(t, r.ID, start)
	victim, kill := s.killDeliverer(t, n/2)
	var stepsAtKill registry.Recovery
	s.api.call(t, s.key, http.MethodGet, "/api/v1/webhooks/"+s.ep.ID+"/recoveries/"+r.ID, nil).
		want(t, http.StatusOK, &stepsAtKill)

	waitFor(t, 10*time.Minute, fmt.Sprintf("%d deliveries received", n), func() bool { return s.rc.delivered() >= n })
	recovered := time.Since(start)
	done := s.api.waitRecovery(t, s.key, s.ep.ID, r.ID)
	waitFor(t, 2*time.Minute, "the queue to drain", func() bool { return s.st.drained(t) })
	if done.Requeued != n || done.Created != 0 {
		t.Errorf("recovery requeued %d and created %d, want %d and 0", done.Requeued, done.Created, n)
	}

	dups, lost, lastDup := s.tally(t, ids, downPOSTs, kill)
	after := s.generations(t, ids, registry.DeliverySucceeded)
	twice := 0
	for i := range ids {
		if after[i] != before[i]+1 {
			if twice++; twice <= 5 {
				t.Errorf("delivery of %s: generation %d after the recovery, %d before: want exactly one more",
					ids[i], after[i], before[i])
			}
		}
	}
	stall, resume := s.rc.pause(start, kill.at)
	t.Logf("recoverysoak deliveries=%d failed_s=%.1f recovered_s=%.1f steps_done_ms=%d "+
		"recovery_done_at_kill=%v killed_pid=%d killed_at_delivered=%d victim_inflight=%d longest_pause_ms=%d "+
		"pause_end_after_kill_ms=%d delivered=%d lost=%d duplicated=%d queued_twice=%d last_duplicate_after_kill_ms=%d "+
		"posts_after_recover=%d",
		n, failedIn.Seconds(), recovered.Seconds(), (<-stepsDone).Milliseconds(),
		stepsAtKill.Status == "done", victim, kill.delivered, kill.victim, stall.Milliseconds(), resume.Milliseconds(),
		s.rc.delivered(), lost, dups, twice, lastDup.Milliseconds(), s.rc.Count()-downPOSTs)
	if lost > 0 || twice > 0 {
		t.Errorf("%d lost and %d queued twice, want 0 and 0", lost, twice)
	}
}

func newSoakRun(t *testing.T) *soakRun {
	t.Helper()
	// A long attempt timeout, so that no attempt times out under CPU contention: a duplicate
	// has no cause but the kill. A sweep every second finds a dead worker's tasks soon after
	// their 15 s lease lapses.
	st := newStack(t, map[string]string{"WEBHOOKD_LOG_LEVEL": "warn", "WEBHOOKD_ATTEMPT_TIMEOUT": "30s",
		"WEBHOOKD_MAX_ATTEMPTS": "1", "WEBHOOKD_DISABLE_AFTER_FAILURES": "1000000000",
		"WEBHOOKD_CONCURRENCY": strconv.Itoa(recoveryConcurrency), "WEBHOOKD_SWEEP_INTERVAL": "1s"})
	s := &soakRun{st: st, rc: newSoakReceiver(t)}
	_, s.api = st.startAPIProcess(t)
	s.tid, s.key = st.tenant(t)
	s.ep = s.api.createEndpoint(t, s.key, s.rc.URL, []string{registry.EventScanCompleted}, nil)
	for range 2 {
		s.workers = append(s.workers, st.startProcess(t, "serve", "--role", "worker"))
	}
	return s
}

// soakKill is the SIGKILL of the worker that was delivering.
type soakKill struct {
	at        time.Time
	delivered int // events received when it came
	victim    int // POSTs of the victim the receiver was holding
}

// killDeliverer waits until half events are received, then SIGKILLs the worker process
// whose POSTs the receiver is holding (an endpoint's queue is drained by one process at a
// time) and returns its pid.
func (s *soakRun) killDeliverer(t *testing.T, half int) (int, soakKill) {
	t.Helper()
	waitFor(t, 10*time.Minute, fmt.Sprintf("%d deliveries received", half), func() bool { return s.rc.delivered() >= half })
	var victim *process
	var k soakKill
	waitFor(t, patience, "a worker with POSTs in flight", func() bool {
		for _, w := range s.workers {
			if held := s.rc.heldBy(tcpConns(t, w.cmd.Process.Pid)); held > 0 {
				victim, k = w, soakKill{at: time.Now(), delivered: s.rc.delivered(), victim: held}
				return true
			}
		}
		return false
	})
	var exit *exec.ExitError
	if err := victim.signal(t, syscall.SIGKILL); !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("killed worker exited with %v, want death by signal", err)
	}
	return victim.cmd.Process.Pid, k
}

// generations reads each event's delivery and returns its generation; each must have status.
func (s *soakRun) generations(t *testing.T, ids []string, status string) []int {
	t.Helper()
	gens := make([]int, len(ids))
	var bad atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				did := registry.DeliveryID(ids[i], s.ep.ID)
				d, err := s.st.store.Delivery(t.Context(), s.tid, s.ep.ID, did, false)
				if err != nil || d.Status != status {
					if bad.Add(1) <= 5 {
						t.Errorf("delivery %s: %+v, %v; want %s", did, d, err, status)
					}
					continue
				}
				gens[i] = d.Generation
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d of %d deliveries are not %s", bad.Load(), len(ids), status)
	}
	return gens
}

// tally counts the events never received with success (lost) and the POSTs beyond one per
// event after the recovery began (duplicates). A duplicate must be one the kill cut off: its
// first POST before the kill, its second after. It also returns how long after the kill the
// last duplicate came.
func (s *soakRun) tally(t *testing.T, ids []string, skip int, k soakKill) (dups, lost int, last time.Duration) {
	t.Helper()
	hits := firstHits(s.rc.Receiver, skip)
	s.rc.mu.Lock()
	defer s.rc.mu.Unlock()
	const grace = time.Second // a POST of a worker dying this instant may be read just after
	for _, id := range ids {
		hs := hits[id]
		if s.rc.answered[id] == 0 {
			lost++
			continue
		}
		if len(hs) < 2 {
			continue
		}
		dups += len(hs) - 1
		for _, h := range hs {
			deliverytest.CheckSigned(t, h, id, s.ep.Secret)
		}
		if hs[0].At.After(k.at.Add(grace)) || !hs[1].At.After(k.at) {
			t.Errorf("event %s: POSTs at %s and %s are not explained by the kill at %s", id,
				hs[0].At.Format(time.StampMilli), hs[1].At.Format(time.StampMilli), k.at.Format(time.StampMilli))
		}
		last = max(last, hs[len(hs)-1].At.Sub(k.at))
	}
	if len(hits) != len(ids) {
		t.Errorf("POSTs of %d webhook-ids after the recovery began, want the %d events", len(hits), len(ids))
	}
	if dups > recoveryConcurrency {
		t.Errorf("%d duplicates, more than the %d attempts a worker holds until their outcomes are recorded", dups,
			recoveryConcurrency)
	}
	return dups, lost, last
}

// watchRecovery reads the recovery every 20 ms from the registry until it is done, and sends
// how long after start that was.
func (s *soakRun) watchRecovery(t *testing.T, rid string, start time.Time) <-chan time.Duration {
	done := make(chan time.Duration, 1)
	go func() {
		for t.Context().Err() == nil {
			r, err := s.st.store.Recovery(t.Context(), s.tid, s.ep.ID, rid)
			if err == nil && r.Status == "done" {
				done <- time.Since(start)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- -1
	}()
	return done
}

// pause returns the longest pause between two first successes after start, and how long
// after the kill it ended.
func (r *soakReceiver) pause(start, kill time.Time) (longest, endAfterKill time.Duration) {
	r.mu.Lock()
	at := slices.SortedFunc(maps.Values(r.firstOK), time.Time.Compare)
	r.mu.Unlock()
	prev := start
	for _, a := range at {
		if a.Sub(prev) > longest {
			longest, endAfterKill = a.Sub(prev), a.Sub(kill)
		}
		prev = a
	}
	return longest, endAfterKill
}
