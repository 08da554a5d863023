package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// startRecovery asks for a recovery of endpoint eid's events since since, of what include
// names (the default when empty); it must be accepted, running.
func (s *service) startRecovery(tb testing.TB, key, eid string, since time.Time, include ...string) registry.Recovery {
	tb.Helper()
	body := map[string]any{"since": since.Format(time.RFC3339Nano)}
	if len(include) > 0 {
		body["include"] = include
	}
	var r registry.Recovery
	s.call(tb, key, http.MethodPost, "/api/v1/webhooks/"+eid+"/recover", body).want(tb, http.StatusAccepted, &r)
	if !strings.HasPrefix(r.ID, "rcv_") || r.WebhookID != eid || r.Status != "running" {
		tb.Fatalf("recover answered %+v, want a running rcv_ recovery of %s", r, eid)
	}
	return r
}

// waitRecovery waits until a recovery is done and returns it.
func (s *service) waitRecovery(tb testing.TB, key, eid, rid string) registry.Recovery {
	tb.Helper()
	var r registry.Recovery
	waitFor(tb, 2*patience, "recovery "+rid+" to be done", func() bool {
		s.call(tb, key, http.MethodGet, "/api/v1/webhooks/"+eid+"/recoveries/"+rid, nil).want(tb, http.StatusOK, &r)
		return r.Status == "done"
	})
	if r.FinishedAt == nil {
		tb.Errorf("recovery %s is done without finishedAt", rid)
	}
	return r
}

// deliveryTotal is how many deliveries of endpoint eid have status, from the list's pagination.
func (s *service) deliveryTotal(tb testing.TB, key, eid, status string) int {
	tb.Helper()
	r := s.call(tb, key, http.MethodGet, "/api/v1/webhooks/"+eid+"/deliveries?limit=1&status="+status, nil)
	var page struct {
		Pagination struct {
			Total int `json:"total"`
		} `json:"pagination"`
	}
	r.want(tb, http.StatusOK, nil)
	if err := json.Unmarshal(r.Body, &page); err != nil {
		tb.Fatalf("list deliveries: %v: %s", err, r.Body)
	}
	return page.Pagination.Total
}

// publishMany publishes n events of typ through svc with 8 publishers and returns their ids.
// A publish that is not accepted fails the test.
func publishMany(t *testing.T, svc *service, key, typ string, n int) []string {
	t.Helper()
	var (
		mu  sync.Mutex
		ids []string
		bad atomic.Int64
		wg  sync.WaitGroup
	)
	next := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for range next {
				status, id, err := publishType(t, svc, key, typ)
				if err != nil || status != http.StatusAccepted {
					if bad.Add(1) == 1 {
						t.Errorf("publish %s: %d %v", typ, status, err)
					}
					continue
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d of %d publishes failed", bad.Load(), n)
	}
	return ids
}

// failMany publishes n events for endpoint eid, whose receiver fails them, and waits (at
// most timeout) until each delivery is failed and nothing is left queued. It returns the time
// before the first publish and the events' ids.
func failMany(t *testing.T, st *stack, svc *service, key, eid string, n int, timeout time.Duration) (time.Time, []string) {
	t.Helper()
	since := time.Now()
	ids := publishMany(t, svc, key, registry.EventScanCompleted, n)
	waitFor(t, timeout, fmt.Sprintf("%d deliveries failed", n), func() bool {
		return svc.deliveryTotal(t, key, eid, registry.DeliveryFailed) == n && st.drained(t)
	})
	return since, ids
}

// publishType publishes one event of typ with a fresh scan; it never stops the test, so
// publishers may call it from their own goroutines.
func publishType(t *testing.T, svc *service, key, typ string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"type": typ, "data": scanData()})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, svc.URL+"/api/v1/events", strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := apiClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var env struct {
		Data struct{ ID string } `json:"data"`
	}
	err = json.NewDecoder(res.Body).Decode(&env)
	return res.StatusCode, env.Data.ID, err
}

// recoveryLog counts, by recovery id, the "recovery started" and "recovery finished" lines of
// a JSON log, and keeps each finished line's counts.
type recoveryLog struct {
	started, finished map[string]int
	counts            map[string][2]int // requeued, created
}

func parseRecoveryLog(t *testing.T, log string) recoveryLog {
	t.Helper()
	l := recoveryLog{started: map[string]int{}, finished: map[string]int{}, counts: map[string][2]int{}}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg        string `json:"msg"`
			RecoveryID string `json:"recoveryId"`
			Requeued   int    `json:"requeued"`
			Created    int    `json:"created"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case "recovery started":
			l.started[line.RecoveryID]++
		case "recovery finished":
			l.finished[line.RecoveryID]++
			l.counts[line.RecoveryID] = [2]int{line.Requeued, line.Created}
		}
	}
	return l
}

// check fails unless each recovery of want logged one start and one finish line with its
// counts, and no other recovery logged either.
func (l recoveryLog) check(t *testing.T, want ...registry.Recovery) {
	t.Helper()
	if len(l.started) != len(want) || len(l.finished) != len(want) {
		t.Errorf("log has start lines for %v and finish lines for %v, want one each for %d recoveries",
			l.started, l.finished, len(want))
	}
	for _, r := range want {
		if l.started[r.ID] != 1 || l.finished[r.ID] != 1 {
			t.Errorf("recovery %s logged %d start and %d finish lines, want 1 and 1", r.ID, l.started[r.ID], l.finished[r.ID])
		}
		if got := l.counts[r.ID]; got != [2]int{r.Requeued, r.Created} {
			t.Errorf("recovery %s logged requeued, created = %v, want %d, %d", r.ID, got, r.Requeued, r.Created)
		}
	}
}

// checkRecoveryMetrics fails unless /metrics counts recoveries finished and the deliveries
// they requeued and created.
func checkRecoveryMetrics(t *testing.T, svc *service, recoveries, requeued, created int) {
	t.Helper()
	text := scrape(t, svc)
	for series, want := range map[string]int{
		"webhookd_recoveries_total":                           recoveries,
		`webhookd_recovery_deliveries_total{kind="requeued"}`: requeued,
		`webhookd_recovery_deliveries_total{kind="created"}`:  created,
	} {
		if got, ok := metricValue(text, series); !ok || got != float64(want) {
			t.Errorf("%s = %v (present %v), want %d", series, got, ok, want)
		}
	}
}

// firstHits returns, by webhook-id, the POSTs a receiver got after its first skip POSTs.
func firstHits(rc *deliverytest.Receiver, skip int) map[string][]deliverytest.Hit {
	out := map[string][]deliverytest.Hit{}
	for _, h := range rc.Hits()[skip:] {
		id := h.Header.Get("webhook-id")
		out[id] = append(out[id], h)
	}
	return out
}

// checkEachOnce fails unless hits hold exactly one POST of each of ids and nothing else,
// each signed with secret for its event, carrying its event id as webhook-id and in the body.
func checkEachOnce(t *testing.T, hits map[string][]deliverytest.Hit, ids []string, secret string) {
	t.Helper()
	bad := 0
	for _, id := range ids {
		hs := hits[id]
		if len(hs) != 1 {
			bad++
			if bad <= 5 {
				t.Errorf("event %s: %d POSTs, want exactly 1", id, len(hs))
			}
			continue
		}
		deliverytest.CheckSigned(t, hs[0], id, secret)
		var body struct{ ID string }
		if err := json.Unmarshal(hs[0].Body, &body); err != nil || body.ID != id {
			t.Errorf("event %s: body id %q (%v)", id, body.ID, err)
		}
	}
	if len(hits) != len(ids) {
		t.Errorf("POSTs of %d webhook-ids, want the %d events", len(hits), len(ids))
	}
	if bad > 0 {
		t.Fatalf("%d of %d events not received exactly once", bad, len(ids))
	}
}

// TestRecoverFailedEndToEnd: an endpoint whose receiver answers 500 gets 1,000 events until
// every delivery is failed (two attempts each); the receiver recovers and one recover call
// delivers each event exactly once more, signed, with its event id as webhook-id, in a fresh
// attempt budget. The recovery reports requeued 1,000; a second one requeues 0 and sends
// nothing. Both are counted in /metrics and logged once at start and once at finish.
func TestRecoverFailedEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("delivers 3,000 attempts through the binary")
	}
	t.Parallel()
	const n = 1000
	st := newStack(t, map[string]string{"WEBHOOKD_MAX_ATTEMPTS": "2", "WEBHOOKD_DISABLE_AFTER_FAILURES": "1000000",
		"WEBHOOKD_CONCURRENCY": "32"})
	svc := st.start(t)
	_, key := st.tenant(t)
	var up atomic.Bool
	rc := deliverytest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	since, ids := failMany(t, st, svc, key, ep.ID, n, 3*patience)
	if got := rc.Count(); got != 2*n {
		t.Fatalf("receiver got %d POSTs while down, want %d (two attempts each)", got, 2*n)
	}
	if e := svc.endpoint(t, key, ep.ID); e.Status != "active" {
		t.Fatalf("endpoint is %s after the failures, want active", e.Status)
	}

	up.Store(true)
	downHits := rc.Count()
	r := svc.startRecovery(t, key, ep.ID, since)
	if !slices.Equal(r.Include, []string{"failed"}) || !r.Since.Equal(since.Truncate(time.Millisecond)) {
		t.Errorf("recovery = %+v, want include [failed] since %s", r, since)
	}
	waitFor(t, 3*patience, "every event delivered again", func() bool { return len(firstHits(rc, downHits)) >= n })
	done := svc.waitRecovery(t, key, ep.ID, r.ID)
	if done.Requeued != n || done.Created != 0 {
		t.Errorf("recovery requeued %d and created %d, want %d and 0", done.Requeued, done.Created, n)
	}
	waitFor(t, patience, "the queue to drain", func() bool { return st.drained(t) })
	checkEachOnce(t, firstHits(rc, downHits), ids, ep.Secret)
	if got := svc.deliveryTotal(t, key, ep.ID, registry.DeliverySucceeded); got != n {
		t.Errorf("%d deliveries succeeded, want %d", got, n)
	}
	// A fresh budget: a third attempt, after the two that spent the first.
	d := svc.delivery(t, key, ep.ID, registry.DeliveryID(ids[0], ep.ID))
	if d.Status != registry.DeliverySucceeded || len(d.Attempts) != 3 || d.Attempts[2].StatusCode != http.StatusNoContent {
		t.Errorf("recovered delivery = %s with %d attempts, want succeeded with 2 failures and a 204", d.Status, len(d.Attempts))
	}

	again := svc.startRecovery(t, key, ep.ID, since)
	second := svc.waitRecovery(t, key, ep.ID, again.ID)
	if second.Requeued != 0 || second.Created != 0 {
		t.Errorf("second recovery requeued %d and created %d, want 0 and 0", second.Requeued, second.Created)
	}
	waitFor(t, patience, "the queue to drain", func() bool { return st.drained(t) })
	if got := rc.Count(); got != downHits+n {
		t.Errorf("receiver got %d POSTs after the recoveries, want %d: the second recovery sent something", got-downHits, n)
	}
	checkRecoveryMetrics(t, svc, 2, n, 0)
	parseRecoveryLog(t, svc.Stderr.String()).check(t, done, second)
}

// TestRecoverMissingEndToEnd: an endpoint created after 500 events of a type it subscribes to
// (and 50 of one it does not) is recovered with include ["missing"] and receives each of the
// 500 exactly once, signed with its own secret, with the event ids as webhook-ids; the
// recovery reports created 500, a second one creates 0. The endpoint that existed already
// receives nothing more.
func TestRecoverMissingEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("delivers 1,000 events through the binary")
	}
	t.Parallel()
	const n = 500
	st := newStack(t, map[string]string{"WEBHOOKD_CONCURRENCY": "32"})
	svc := st.start(t)
	_, key := st.tenant(t)
	old := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	oldEp := svc.createEndpoint(t, key, old.URL, []string{registry.EventScanCompleted}, nil)

	since := time.Now()
	ids := publishMany(t, svc, key, registry.EventScanCompleted, n)
	publishMany(t, svc, key, registry.EventScanStarted, 50)
	waitFor(t, 2*patience, "the existing endpoint's deliveries", func() bool { return old.Count() >= n && st.drained(t) })

	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	r := svc.startRecovery(t, key, ep.ID, since, "missing")
	done := svc.waitRecovery(t, key, ep.ID, r.ID)
	if done.Created != n || done.Requeued != 0 || !slices.Equal(done.Include, []string{"missing"}) {
		t.Errorf("recovery = %+v, want include [missing], created %d, requeued 0", done, n)
	}
	waitFor(t, 2*patience, "every missing event delivered", func() bool { return rc.Count() >= n && st.drained(t) })
	checkEachOnce(t, firstHits(rc, 0), ids, ep.Secret)
	if got := svc.deliveryTotal(t, key, ep.ID, registry.DeliverySucceeded); got != n {
		t.Errorf("%d deliveries succeeded, want %d", got, n)
	}

	again := svc.startRecovery(t, key, ep.ID, since, "missing", "failed")
	second := svc.waitRecovery(t, key, ep.ID, again.ID)
	if second.Created != 0 || second.Requeued != 0 {
		t.Errorf("second recovery created %d and requeued %d, want 0 and 0", second.Created, second.Requeued)
	}
	waitFor(t, patience, "the queue to drain", func() bool { return st.drained(t) })
	if got := rc.Count(); got != n {
		t.Errorf("receiver got %d POSTs, want %d: the second recovery sent something", got, n)
	}
	if got := old.Count(); got != n {
		t.Errorf("the existing endpoint got %d POSTs, want its %d", got, n)
	}
	if got := svc.deliveryTotal(t, key, oldEp.ID, registry.DeliverySucceeded); got != n {
		t.Errorf("the existing endpoint has %d deliveries succeeded, want %d", got, n)
	}
	checkRecoveryMetrics(t, svc, 2, 0, n)
	parseRecoveryLog(t, svc.Stderr.String()).check(t, done, second)
}
