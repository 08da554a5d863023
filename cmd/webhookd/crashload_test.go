package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
)

// crashLoadEnv set to 1 runs the long form of the crash-under-load test (12,000 deliveries,
// three kills, about two minutes):
//
//	WEBHOOKD_TEST_CRASHLOAD=1 go test -count=1 -v -run TestWorkerCrashUnderLoadLong ./cmd/webhookd/
const crashLoadEnv = "WEBHOOKD_TEST_CRASHLOAD"

// crashLoad is one run: events published at an even pace over span to endpoints receivers,
// with kills worker processes SIGKILLed (and replaced) at even intervals inside the span.
type crashLoad struct {
	events, endpoints, workers, kills, publishers int
	span                                          time.Duration
}

// TestWorkerCrashUnderLoad: 2,000 deliveries (500 events to four endpoints) published
// continuously through an API process to two worker processes, two of which are SIGKILLed in
// turn (each replaced at once). Every accepted event reaches every endpoint, the registry
// records each delivery as succeeded with one attempt, and the only duplicates are attempts
// the killed workers had in flight (same webhook-id, same body, valid signature).
func TestWorkerCrashUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills worker processes under load and waits for their tasks' recovery (about 40 s)")
	}
	runCrashLoad(t, crashLoad{events: 500, endpoints: 4, workers: 2, kills: 2, publishers: 4, span: 24 * time.Second})
}

// TestWorkerCrashUnderLoadLong is the long form: 12,000 deliveries, three kills.
func TestWorkerCrashUnderLoadLong(t *testing.T) {
	if os.Getenv(crashLoadEnv) != "1" {
		t.Skip("the long form: runs with " + crashLoadEnv + "=1")
	}
	runCrashLoad(t, crashLoad{events: 3000, endpoints: 4, workers: 2, kills: 3, publishers: 8, span: 90 * time.Second})
}

// crashConcurrency is WEBHOOKD_CONCURRENCY in the crash test: the most tasks one worker
// process holds, so the most a SIGKILL can leave unfinished.
const crashConcurrency = 8

// kill is one SIGKILL of a worker process.
type kill struct {
	at       time.Time
	pid      int
	victim   int // POSTs from the victim the receivers had started and not answered at the kill
	inflight int // the same from every worker
	dups     int // duplicated deliveries whose first POST came before this kill (and after the previous)
	resume   time.Duration
	redeliv  time.Duration // longest kill-to-second-POST of those duplicates
}

func runCrashLoad(t *testing.T, cl crashLoad) {
	started := time.Now()
	// A long attempt timeout: no attempt times out under CPU contention, so no retry (and no
	// duplicate) has any cause but a kill.
	st := newStack(t, map[string]string{"WEBHOOKD_LOG_LEVEL": "warn", "WEBHOOKD_ATTEMPT_TIMEOUT": "30s",
		"WEBHOOKD_CONCURRENCY": strconv.Itoa(crashConcurrency)})
	_, api := st.startAPIProcess(t)
	tid, key := st.tenant(t)

	// Each receiver holds every POST 20-120ms, so the workers always have attempts in flight;
	// inflight counts the POSTs being held by connection.
	inflight := map[conn]int{}
	rcs := make([]*deliverytest.Receiver, cl.endpoints)
	eps := make([]endpointView, cl.endpoints)
	answered := make([]map[string]int, cl.endpoints) // webhook-id -> POSTs answered 200
	var mu sync.Mutex
	for i := range rcs {
		answered[i] = map[string]int{}
		rcs[i] = deliverytest.NewReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			c := connOf(r)
			mu.Lock()
			inflight[c]++
			mu.Unlock()
			defer func() {
				mu.Lock()
				inflight[c]--
				mu.Unlock()
			}()
			select {
			case <-time.After(20*time.Millisecond + rand.N(100*time.Millisecond)):
				w.WriteHeader(http.StatusOK)
				mu.Lock()
				answered[i][r.Header.Get("webhook-id")]++
				mu.Unlock()
			case <-r.Context().Done(): // the worker died
			}
		})
		eps[i] = api.createEndpoint(t, key, rcs[i].URL, []string{registry.EventScanCompleted}, nil)
	}
	posts := func() int {
		n := 0
		for _, rc := range rcs {
			n += rc.Count()
		}
		return n
	}

	var workers, all []*process
	for range cl.workers {
		workers = append(workers, st.startProcess(t, "serve", "--role", "worker"))
	}
	all = append(all, workers...)

	// Publishers: one event every span/events, each tried once; every answer must be 202.
	var (
		accepted []string
		failed   atomic.Int64
		pubWG    sync.WaitGroup
	)
	next := make(chan struct{})
	for range cl.publishers {
		pubWG.Go(func() {
			for range next {
				status, id, err := publishAttempt(t, api, key, "")
				mu.Lock()
				if err != nil || status != http.StatusAccepted || id == "" {
					if failed.Add(1) == 1 {
						t.Errorf("publish: %d %q %v", status, id, err)
					}
				} else {
					accepted = append(accepted, id)
				}
				mu.Unlock()
			}
		})
	}
	pubStart := time.Now()
	go func() {
		defer close(next)
		tick := time.NewTicker(cl.span / time.Duration(cl.events))
		defer tick.Stop()
		for range cl.events {
			select {
			case next <- struct{}{}:
			case <-t.Context().Done():
				return
			}
			<-tick.C
		}
	}()

	// The kills, evenly inside the publishing span; each victim is the oldest worker, killed
	// while a receiver holds a POST of its (matched by the victim's TCP ports).
	var kills []*kill
	for k := 1; k <= cl.kills; k++ {
		time.Sleep(time.Until(pubStart.Add(cl.span * time.Duration(k) / time.Duration(cl.kills+1))))
		victim := workers[0]
		pid := victim.cmd.Process.Pid
		var kl *kill
		waitFor(t, patience, fmt.Sprintf("worker %d to have a POST in flight", pid), func() bool {
			conns := tcpConns(t, pid)
			kl = &kill{pid: pid}
			mu.Lock()
			for c, n := range inflight {
				kl.inflight += n
				if conns[c] {
					kl.victim += n
				}
			}
			mu.Unlock()
			kl.at = time.Now()
			return kl.victim > 0
		})
		var exit *exec.ExitError
		if err := victim.signal(t, syscall.SIGKILL); !errors.As(err, &exit) || exit.ExitCode() != -1 {
			t.Fatalf("killed worker exited with %v, want death by signal", err)
		}
		kills = append(kills, kl)
		repl := st.startProcess(t, "serve", "--role", "worker")
		workers = append(workers[1:], repl)
		all = append(all, repl)
	}
	pubWG.Wait()
	published := time.Since(pubStart)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d publishes failed", failed.Load(), cl.events)
	}
	mu.Lock()
	evids := slices.Clone(accepted)
	mu.Unlock()
	want := len(evids) * cl.endpoints

	// Every pair answered, then nothing left queued or running.
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for i := range answered {
			n += len(answered[i])
		}
		return n
	}
	waitFor(t, 5*time.Minute, fmt.Sprintf("%d deliveries answered", want), func() bool { return delivered() >= want })
	allDelivered := time.Since(started)
	waitFor(t, 2*time.Minute, "the queue to drain", func() bool { return st.drained(t) })
	elapsed := time.Since(started)

	// Tally per (webhook-id, endpoint).
	isAccepted := make(map[string]bool, len(evids))
	for _, id := range evids {
		isAccepted[id] = true
	}
	var lost, dups, unanswered int
	type dup struct{ first, second time.Time }
	var dupList []dup
	mu.Lock()
	for i, rc := range rcs {
		byID := map[string][]deliverytest.Hit{}
		for _, h := range rc.Hits() {
			id := h.Header.Get("webhook-id")
			byID[id] = append(byID[id], h)
			var body struct{ ID string }
			if err := json.Unmarshal(h.Body, &body); err != nil || body.ID != id {
				t.Errorf("endpoint %d: POST with webhook-id %q has body id %q (%v)", i, id, body.ID, err)
			}
			if err := signing.Verify(eps[i].Secret, h.Header, h.Body, h.At); err != nil {
				t.Errorf("endpoint %d: POST of %s: signature: %v", i, id, err)
			}
		}
		for id, hs := range byID {
			if !isAccepted[id] {
				t.Errorf("endpoint %d got %d POST(s) of %q, never accepted", i, len(hs), id)
			}
			unanswered += len(hs) - answered[i][id]
			if len(hs) < 2 {
				continue
			}
			dups += len(hs) - 1
			dupList = append(dupList, dup{hs[0].At, hs[1].At})
			for _, h := range hs {
				deliverytest.CheckSigned(t, h, id, eps[i].Secret)
				if !reflect.DeepEqual(h.Body, hs[0].Body) {
					t.Errorf("endpoint %d: duplicate POSTs of %s carry different bodies", i, id)
				}
			}
		}
		for _, id := range evids {
			if answered[i][id] == 0 {
				lost++
			}
		}
	}
	mu.Unlock()

	// Each duplicate is an attempt a killed worker had started: its first POST came before a
	// kill (at most one attempt timeout before it), its second after. No kill leaves more
	// duplicates than a worker holds tasks.
	const grace = time.Second // the POST of a worker dying this instant may be read just after
	for _, d := range dupList {
		var kl *kill
		for _, k := range kills {
			if !d.first.After(k.at.Add(grace)) {
				kl = k
				break
			}
		}
		if kl == nil || d.first.Before(kl.at.Add(-30*time.Second)) || !d.second.After(kl.at) {
			t.Errorf("duplicate POSTs at %s and %s are not explained by a kill", d.first.Format(time.StampMilli),
				d.second.Format(time.StampMilli))
			continue
		}
		kl.dups++
		kl.redeliv = max(kl.redeliv, d.second.Sub(kl.at))
	}
	allHits := make([]time.Time, 0, want+dups)
	for _, rc := range rcs {
		for _, h := range rc.Hits() {
			allHits = append(allHits, h.At)
		}
	}
	slices.SortFunc(allHits, func(a, b time.Time) int { return a.Compare(b) })
	for _, k := range kills {
		if i, _ := slices.BinarySearchFunc(allHits, k.at, func(a, b time.Time) int { return a.Compare(b) }); i < len(allHits) {
			k.resume = allHits[i].Sub(k.at)
		}
		if k.dups > crashConcurrency {
			t.Errorf("kill of worker %d left %d duplicates, more than the %d tasks a worker holds", k.pid, k.dups,
				crashConcurrency)
		}
	}
	// A killed worker's drains are recovered two ways: the lease lapses and the endpoint's next
	// delivery schedules a new drain, and the sweep requeues the dead tasks (which then find
	// the lease taken, or take it over). Either way each duplicate is one of the victim's
	// attempts in flight, bounded above.
	requeued, requeueAt := requeueLog(t, all)
	if requeued == 0 {
		t.Error("no task of a killed worker was requeued: the kills hit no attempt in flight")
	}
	if lost > 0 {
		t.Errorf("%d of %d deliveries lost", lost, want)
	}

	// The registry agrees: every delivery succeeded, with exactly the one attempt that
	// completed (a killed attempt is never recorded).
	var bad atomic.Int64
	var regWG sync.WaitGroup
	ids := make(chan [2]string)
	for range 8 {
		regWG.Go(func() {
			for p := range ids {
				d, err := st.store.Delivery(t.Context(), tid, p[1], registry.DeliveryID(p[0], p[1]), false)
				if err != nil || d.Status != registry.DeliverySucceeded || d.AttemptCount != 1 {
					if bad.Add(1) <= 5 {
						t.Errorf("delivery of %s to %s: %+v, %v; want succeeded with 1 attempt", p[0], p[1], d, err)
					}
				}
			}
		})
	}
	for _, id := range evids {
		for _, ep := range eps {
			ids <- [2]string{id, ep.ID}
		}
	}
	close(ids)
	regWG.Wait()

	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	var resume, redeliv, victimAt, inflightAt, perKill, reqAt []string
	for _, k := range kills {
		resume = append(resume, ms(k.resume))
		redeliv = append(redeliv, ms(k.redeliv))
		victimAt = append(victimAt, strconv.Itoa(k.victim))
		inflightAt = append(inflightAt, strconv.Itoa(k.inflight))
		perKill = append(perKill, strconv.Itoa(k.dups))
	}
	// Kill and requeue times from the start: a requeue may follow an earlier kill than the last.
	var killAt []string
	for _, k := range kills {
		killAt = append(killAt, ms(k.at.Sub(started)))
	}
	for _, at := range requeueAt {
		reqAt = append(reqAt, ms(at.Sub(started)))
	}
	t.Logf("crashload events=%d endpoints=%d deliveries=%d posts=%d delivered=%d lost=%d duplicated=%d unanswered=%d "+
		"kills=%d dup_bound=%d requeued=%d dups_per_kill=%s victim_inflight_at_kill=%s all_inflight_at_kill=%s resume_ms=%s "+
		"redeliver_ms=%s kill_at_ms=%s requeue_at_ms=%s published_s=%.1f delivered_s=%.1f total_s=%.1f",
		len(evids), cl.endpoints, want, posts(), delivered(), lost, dups, unanswered, len(kills),
		crashConcurrency*len(kills), requeued, strings.Join(perKill, ","), strings.Join(victimAt, ","),
		strings.Join(inflightAt, ","), strings.Join(resume, ","), strings.Join(redeliv, ","), strings.Join(killAt, ","),
		strings.Join(reqAt, ","),
		published.Seconds(), allDelivered.Seconds(), elapsed.Seconds())
	if dups > crashConcurrency*len(kills) {
		t.Errorf("%d duplicates, more than concurrency %d x %d kills", dups, crashConcurrency, len(kills))
	}
}

// conn is a loopback TCP connection as its client sees it: local and remote port.
type conn struct{ local, remote int }

// connOf is the connection r came on.
func connOf(r *http.Request) conn {
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	c := conn{local: port(r.RemoteAddr)}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		c.remote = port(a.String())
	}
	return c
}

// tcpConns returns the TCP connections process pid holds, from /proc.
func tcpConns(t *testing.T, pid int) map[conn]bool {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("sockets of %d: %v", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	conns := map[conn]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			t.Fatalf("sockets of %d: %v", pid, err)
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			port := func(addr string) int {
				_, hex, _ := strings.Cut(addr, ":")
				n, _ := strconv.ParseInt(hex, 16, 32)
				return int(n)
			}
			conns[conn{port(f[1]), port(f[2])}] = true
		}
	}
	return conns
}

// requeueLog sums what the worker processes logged as requeued tasks of dead workers, with
// the time of each such line.
func requeueLog(t *testing.T, procs []*process) (int, []time.Time) {
	t.Helper()
	total := 0
	var at []time.Time
	for _, p := range procs {
		sc := bufio.NewScanner(strings.NewReader(p.output.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct {
				Time  time.Time `json:"time"`
				Msg   string    `json:"msg"`
				Count int       `json:"count"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "requeued tasks of dead workers" {
				continue
			}
			total += line.Count
			at = append(at, line.Time)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	return total, at
}
