package main

import (
	"bufio"
	"encoding/json"
	"io"
	"math/rand/v2"

	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// scrape returns the /metrics text, after checking that HEAD is answered as GET is.
func scrape(t *testing.T, s *service) string {
	t.Helper()
	head, err := apiClient.Head(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK {
		t.Fatalf("HEAD /metrics = %d, want 200 as for GET", head.StatusCode)
	}
	res, err := apiClient.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", res.StatusCode)
	}
	return string(b)
}

// metricValue finds the sample whose name and labels start with series; ok is false if absent.
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	st := newStack(t, map[string]string{"WEBHOOKD_DISABLE_AFTER_FAILURES": "1", "WEBHOOKD_DISABLE_MIN_WINDOW": "0"})
	svc := st.start(t)
	// Before anything happened, the counters with known labels are there at 0.
	first := scrape(t, svc)
	for _, series := range []string{`webhookd_endpoints_disabled_total{reason="gone"}`,
		`webhookd_delivery_attempts_total{outcome="throttled"}`, `webhookd_recovery_deliveries_total{kind="created"}`} {
		if v, ok := metricValue(first, series); !ok || v != 0 {
			t.Errorf("a fresh process shows %s = %v (present %v), want 0", series, v, ok)
		}
	}
	_, key := st.tenant(t)
	ok := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	bad := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusInternalServerError))
	good := svc.createEndpoint(t, key, ok.URL, []string{registry.EventScanCompleted}, nil)
	failing := svc.createEndpoint(t, key, bad.URL, []string{registry.EventScanFailed}, nil)

	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	svc.waitDelivery(t, key, good.ID, ev.ID, registry.DeliverySucceeded)
	svc.publish(t, key, registry.EventScanFailed, scanData()) // fails once: disabled
	waitFor(t, patience, "the failing endpoint disabled", func() bool { return !svc.endpoint(t, key, failing.ID).Enabled })
	svc.publish(t, key, registry.EventScanFailed, scanData()) // held
	for range 2 {                                             // made-up methods are counted as one "other", not a series each
		req, _ := http.NewRequest("BREW"+strconv.Itoa(rand.IntN(1e6)), svc.URL+"/healthz", nil)
		if res, err := apiClient.Do(req); err == nil {
			res.Body.Close()
		}
	}

	want := map[string]float64{
		`webhookd_http_requests_total{method="other",route="/healthz",status="405"}`:         2,
		`webhookd_http_requests_total{method="POST",route="/api/v1/events",status="202"}`:    3,
		`webhookd_http_requests_total{method="POST",route="/api/v1/webhooks",status="201"}`:  2,
		`webhookd_delivery_attempts_total{outcome="success"}`:                                1,
		`webhookd_delivery_attempts_total{outcome="failure"}`:                                1,
		`webhookd_delivery_attempt_duration_seconds_count`:                                   2,
		`webhookd_endpoints_disabled_total{reason="consecutive_failures"}`:                   1,
		`webhookd_http_request_duration_seconds_count{method="POST",route="/api/v1/events"}`: 3,
		`webhookd_endpoints`:          2,
		`webhookd_endpoints_disabled`: 1,
		`webhookd_deliveries_held`:    2,
		`webhookd_tenants`:            1,
	}
	var text string
	waitFor(t, patience, "metrics to reflect the scenario", func() bool {
		text = scrape(t, svc)
		for series, w := range want {
			if v, ok := metricValue(text, series); !ok || v != w {
				return false
			}
		}
		return true
	})
	if strings.Contains(text, `method="BREW`) {
		t.Errorf("metrics name a made-up method")
	}
	if _, ok := metricValue(text, `process_resident_memory_bytes`); !ok {
		t.Errorf("metrics lack process_resident_memory_bytes")
	}
	// The queue is "webhookd" on a single Redis, its shards "webhookd-<i>of<n>-<slot>" on a cluster.
	for _, state := range []string{"pending", "retry"} {
		if !hasQueueSeries(text, state) {
			t.Errorf("metrics lack webhookd_queue_tasks of webhookd's queue in state %s", state)
		}
	}
}

// hasQueueSeries reports whether text has a webhookd_queue_tasks series of webhookd's queue,
// or one of its shards, in state.
func hasQueueSeries(text, state string) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, `webhookd_queue_tasks{queue="webhookd`) && strings.Contains(line, `state="`+state+`"`) {
			return true
		}
	}
	return false
}

// logLines decodes the JSON log lines with the given message.
func logLines(t *testing.T, log, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestAttemptLogs: one JSON line per attempt with its ids, number, status and duration, and no
// secret, signature or key anywhere in the log, even when a receiver echoes them back.
func TestAttemptLogs(t *testing.T) {
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(map[bool]int{true: http.StatusInternalServerError, false: http.StatusOK}[n == 1])
		_, _ = io.WriteString(w, "echo: "+r.Header.Get("webhook-signature")) // a receiver leaking it back
	})
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/rotate-secret", nil).want(t, http.StatusOK, nil)
	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	d := svc.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliverySucceeded)

	// An attempt's line is written once its outcome is recorded, so just after the API shows it.
	var lines []map[string]any
	waitFor(t, 5*time.Second, "two attempt log lines", func() bool {
		lines = logLines(t, svc.Stderr.String(), "delivery attempt")
		return len(lines) >= 2
	})
	if len(lines) != len(d.Attempts) || len(lines) != 2 {
		t.Fatalf("%d attempt log lines for %d attempts, want one each (2)", len(lines), len(d.Attempts))
	}
	for i, l := range lines {
		for _, f := range []string{"tenantId", "endpointId", "eventId", "deliveryId", "attempt", "statusCode", "durationMs", "outcome"} {
			if _, ok := l[f]; !ok {
				t.Errorf("attempt line %d lacks %s: %v", i+1, f, l)
			}
		}
		if l["eventId"] != ev.ID || l["endpointId"] != ep.ID || l["attempt"] != float64(i+1) {
			t.Errorf("attempt line %d = %v, want event %s endpoint %s attempt %d", i+1, l, ev.ID, ep.ID, i+1)
		}
	}
	log := svc.Stderr.String() + svc.Stdout.String()
	for _, secret := range []string{key, ep.Secret, "whsec_", "v1,", rc.Hits()[0].Header.Get("webhook-signature")} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains a secret, key or signature (%.12s…)", secret)
		}
	}
}

// TestSIGTERMFinishesAttemptInFlight runs a worker as a real process: SIGTERM during an attempt
// lets it finish and be recorded, and the process exits with status 0.
func TestSIGTERMFinishesAttemptInFlight(t *testing.T) {
	st := newStack(t, nil)
	api := st.start(t, "--role", "api")
	_, key := st.tenant(t)
	arrived := make(chan struct{}, 1)
	rc := deliverytest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		time.Sleep(1500 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	ep := api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	worker := st.startProcess(t, "serve", "--role", "worker")
	ev := api.publish(t, key, registry.EventScanCompleted, scanData())
	select {
	case <-arrived:
	case <-time.After(patience):
		t.Fatal("the attempt never arrived")
	}
	if err := worker.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("worker exited with %v after SIGTERM, want status 0", err)
	}
	d := api.delivery(t, key, ep.ID, deliveryID(ev.ID, ep.ID))
	if d.Status != registry.DeliverySucceeded || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusOK {
		t.Fatalf("after SIGTERM the delivery is %s with attempts %+v, want the in-flight attempt finished and recorded",
			d.Status, d.Attempts)
	}
	if rc.Count() != 1 {
		t.Errorf("receiver got %d POSTs, want 1", rc.Count())
	}
}

func deliveryID(evid, eid string) string { return registry.DeliveryID(evid, eid) }

// TestDashboard: asynqmon at /admin/queues only with WEBHOOKD_ADMIN_TOKEN, behind it.
func TestDashboard(t *testing.T) {
	off := newStack(t, nil).start(t)
	res, err := apiClient.Get(off.URL + "/admin/queues")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("without a token /admin/queues = %d, want 404", res.StatusCode)
	}

	st := newStack(t, map[string]string{"WEBHOOKD_ADMIN_TOKEN": "t0ken-for-tests"})
	svc := st.start(t)
	_, key := st.tenant(t)
	ep := svc.createEndpoint(t, key, deliverytest.NewReceiver(t, deliverytest.Status(200)).URL, []string{registry.EventScanCompleted}, nil)
	svc.waitDelivery(t, key, ep.ID, svc.publish(t, key, registry.EventScanCompleted, scanData()).ID, registry.DeliverySucceeded)

	get := func(path, password string) (int, string, http.Header) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, svc.URL+path, nil)
		if password != "" {
			req.SetBasicAuth("admin", password)
		}
		res, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	if code, body, h := get("/admin/queues", ""); code != 401 || !strings.Contains(body, `"MISSING_ADMIN_TOKEN"`) || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d %s, want 401 MISSING_ADMIN_TOKEN with WWW-Authenticate", code, body)
	}
	if code, body, _ := get("/admin/queues/api/queues", "wrong"); code != 401 || !strings.Contains(body, `"INVALID_ADMIN_TOKEN"`) {
		t.Errorf("wrong token: %d %s, want 401 INVALID_ADMIN_TOKEN", code, body)
	}
	if code, body, _ := get("/admin/queues", "t0ken-for-tests"); code != 200 || !strings.Contains(body, "<html") {
		t.Errorf("right token: %d, want the dashboard page", code)
	}
	code, body, _ := get("/admin/queues/api/queues", "t0ken-for-tests")
	// One queue, "webhookd", on a single Redis; shards "webhookd-<i>of<n>-<slot>" on a cluster.
	if code != 200 || !strings.Contains(body, `"queue":"webhookd`) {
		t.Errorf("queue list: %d %.300s, want webhookd's queue or its shards", code, body)
	}
}

// TestWorkerProcessMetrics: a --role worker process has no API; with WEBHOOKD_METRICS_ADDR it
// serves its own /metrics, where its attempts are counted (the API process's has none), and
// queue depth is reported by shard.
func TestWorkerProcessMetrics(t *testing.T) {
	st := newStack(t, map[string]string{"WEBHOOKD_QUEUE_SHARDS": "3"})
	api := st.start(t, "--role", "api")
	addr := freeAddr(t)
	st.start(t, "--role", "worker", "--metrics-addr", addr)
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	ev := api.publish(t, key, registry.EventScanCompleted, scanData())
	api.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliverySucceeded)

	worker := &service{URL: "http://" + addr}
	const attempts = `webhookd_delivery_attempts_total{outcome="success"}`
	waitFor(t, patience, "the worker's metrics to count the attempt", func() bool {
		v, ok := metricValue(scrape(t, worker), attempts)
		return ok && v == 1
	})
	if v, ok := metricValue(scrape(t, api), attempts); ok && v != 0 {
		t.Errorf("the API process counts %v attempts; it made none", v)
	}
	text := scrape(t, worker)
	for _, shard := range delivery.NewShards(3).Names() { // the two without a task too
		series := `webhookd_queue_tasks{queue="` + shard + `",state="pending"}`
		if _, ok := metricValue(text, series); !ok {
			t.Errorf("metrics lack %s (the endpoint's shard is %s)", series, delivery.NewShards(3).Of(ep.ID))
		}
	}
}

// TestGCTarget: the binary runs with the garbage collector's target at gcPercent unless GOGC
// is set, and then at GOGC, as Go's own metric on /metrics shows.
func TestGCTarget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		gogc string
		want float64
	}{{"", gcPercent}, {"150", 150}} {
		t.Run("GOGC="+tt.gogc, func(t *testing.T) {
			t.Parallel()
			st := newStack(t, map[string]string{"GOGC": tt.gogc})
			_, svc := st.startAPIProcess(t)
			if v, ok := metricValue(scrape(t, svc), "go_gc_gogc_percent"); !ok || v != tt.want {
				t.Errorf("go_gc_gogc_percent = %v (found %v), want %v", v, ok, tt.want)
			}
		})
	}
}
