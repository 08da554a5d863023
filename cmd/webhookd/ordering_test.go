package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// scanReceiver is an HTTPS receiver that fails about 30 % of first attempts at random, holds
// each request a moment so that concurrency shows, and records every POST by scan.
type scanReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	rnd      *rand.Rand
	seen     map[string]bool       // webhook-ids answered before
	posts    map[string][]scanPost // by scanId, in arrival order
	inFlight map[string]int        // requests being answered, by scanId
	most     int                   // most scans in flight at one moment
}

type scanPost struct {
	typ, id string
	at      time.Time
	ok      bool
}

func newScanReceiver(t *testing.T) *scanReceiver {
	r := &scanReceiver{rnd: rand.New(rand.NewPCG(7, 30)), seen: map[string]bool{}, posts: map[string][]scanPost{},
		inFlight: map[string]int{}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *scanReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		return
	}
	body, _ := io.ReadAll(req.Body)
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ScanID string `json:"scanId"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ev)
	id, scan := req.Header.Get("webhook-id"), ev.Data.ScanID
	r.mu.Lock()
	fail := !r.seen[id] && r.rnd.Float64() < 0.3
	r.seen[id] = true
	r.inFlight[scan]++
	r.most = max(r.most, len(r.inFlight))
	r.posts[scan] = append(r.posts[scan], scanPost{typ: ev.Type, id: id, at: time.Now(), ok: !fail})
	r.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // the receiver's work
	r.mu.Lock()
	if r.inFlight[scan]--; r.inFlight[scan] == 0 {
		delete(r.inFlight, scan)
	}
	r.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// check verifies every scan's callbacks: the later event's first POST came only after the
// earlier one was received with success (publish order held), and each arrived.
func (r *scanReceiver) check(t *testing.T, scans map[string][2]string) (delivered int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	bad := 0
	for scan, ids := range scans {
		okAt := map[string]time.Time{}
		firstAt := map[string]time.Time{}
		for _, p := range r.posts[scan] {
			if _, ok := firstAt[p.id]; !ok {
				firstAt[p.id] = p.at
			}
			if _, ok := okAt[p.id]; !ok && p.ok {
				okAt[p.id] = p.at
			}
		}
		first, second := ids[0], ids[1]
		switch {
		case okAt[first].IsZero() || okAt[second].IsZero():
			bad++
			t.Errorf("scan %s: not delivered (started %v, then %v)", scan, okAt[first], okAt[second])
		case firstAt[second].Before(okAt[first]):
			bad++
			t.Errorf("scan %s: the second event's first POST (%s) came before the first was received (%s)",
				scan, firstAt[second].Format(time.StampMicro), okAt[first].Format(time.StampMicro))
		default:
			delivered += 2
		}
		if bad > 10 {
			t.Fatal("more than 10 scans out of order or undelivered")
		}
	}
	return delivered
}

func (r *scanReceiver) mostInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.most
}

// orderedRun publishes 200 scans (scan.started, then scan.completed or scan.failed at once) to
// an endpoint ordered by scan, through api, and returns the scans' event ids.
func orderedRun(t *testing.T, api *service, key, url string) map[string][2]string {
	t.Helper()
	var ep endpointView
	api.call(t, key, http.MethodPost, "/api/v1/webhooks", map[string]any{"url": url, "ordering": "scan",
		"events": []string{registry.EventScanStarted, registry.EventScanCompleted, registry.EventScanFailed}}).
		want(t, http.StatusCreated, &ep)
	scans := map[string][2]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range 8 { // eight publishers, 25 scans each
		wg.Go(func() {
			for i := range 25 {
				scan := fmt.Sprintf("scan-%d-%d", p, i)
				data := map[string]any{"scanId": scan, "scanType": "zap"}
				first := api.publish(t, key, registry.EventScanStarted, data)
				end := registry.EventScanCompleted
				if i%3 == 0 {
					end = registry.EventScanFailed
				}
				second := api.publish(t, key, end, data)
				mu.Lock()
				scans[scan] = [2]string{first.ID, second.ID}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return scans
}

// TestScanOrderingEndToEnd: 200 scans to an endpoint ordered by scan, whose receiver fails
// about 30 % of first attempts: each scan's second callback is attempted only after its first
// was received, while many scans are delivered at once; nothing is lost.
func TestScanOrderingEndToEnd(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_RETRY_INITIAL_INTERVAL": "200ms", "WEBHOOKD_RETRY_MAX_INTERVAL": "1s",
		"WEBHOOKD_CONCURRENCY": "32"})
	api := st.start(t)
	_, key := st.tenant(t)
	rc := newScanReceiver(t)
	scans := orderedRun(t, api, key, rc.srv.URL+"/hooks")
	waitFor(t, 2*patience, "every scan's callbacks", func() bool { return rc.deliveredCount() == 2*len(scans) })
	if got := rc.check(t, scans); got != 2*len(scans) {
		t.Errorf("%d callbacks delivered in order, want %d", got, 2*len(scans))
	}
	if m := rc.mostInFlight(); m < 8 {
		t.Errorf("at most %d scans were in flight at once, want at least 8: ordering must stay parallel across scans", m)
	}
}

// TestScanOrderingWorkerKilled: the same with an API process and two worker processes, one
// of which is SIGKILLed in the middle: a redelivery may repeat what was in flight, but no
// scan's later callback overtakes its first.
func TestScanOrderingWorkerKilled(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_ADDR": freeAddr(t), "WEBHOOKD_RETRY_INITIAL_INTERVAL": "200ms",
		"WEBHOOKD_RETRY_MAX_INTERVAL": "1s", "WEBHOOKD_SWEEP_INTERVAL": "1s", "WEBHOOKD_CONCURRENCY": "32"})
	st.startProcess(t, "serve", "--role", "api")
	victim := st.startProcess(t, "serve", "--role", "worker")
	st.startProcess(t, "serve", "--role", "worker")
	api := &service{URL: "http://" + st.env["WEBHOOKD_ADDR"]}
	waitFor(t, patience, "the API process to listen", func() bool {
		res, err := http.Get(api.URL + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == http.StatusOK
	})
	_, key := st.tenant(t)
	rc := newScanReceiver(t)
	done := make(chan map[string][2]string, 1)
	go func() { done <- orderedRun(t, api, key, rc.srv.URL+"/hooks") }()
	waitFor(t, patience, "deliveries under way", func() bool { return rc.deliveredCount() >= 100 })
	_ = victim.signal(t, syscall.SIGKILL) // it exits killed, as meant
	scans := <-done
	waitFor(t, 3*patience, "every scan's callbacks", func() bool { return rc.deliveredCount() == 2*len(scans) })
	if got := rc.check(t, scans); got != 2*len(scans) {
		t.Errorf("%d callbacks delivered in order, want %d", got, 2*len(scans))
	}
}

// deliveredCount is how many distinct callbacks were received with success.
func (r *scanReceiver) deliveredCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := map[string]bool{}
	for _, ps := range r.posts {
		for _, p := range ps {
			if p.ok {
				ok[p.id] = true
			}
		}
	}
	return len(ok)
}
