package main

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// The scale-out tests: webhookd on a real Redis Cluster with the API and the workers in
// separate processes that share nothing but the cluster. They run with WEBHOOKD_TEST_CLUSTER=1,
// as does the rest of the suite then (see clusterstack_test.go).

// startAPIProcess runs `webhookd serve --role api` as a child process on a free loopback port
// and returns it with a service on that address once /healthz answers.
func (st *stack) startAPIProcess(t *testing.T) (*process, *service) {
	t.Helper()
	addr := freeAddr(t)
	p := st.startProcess(t, "serve", "--role", "api", "--addr", addr)
	svc := &service{URL: "http://" + addr}
	waitFor(t, patience, "the API process to listen", func() bool {
		select {
		case <-p.waited:
			t.Fatalf("the API process exited: %v", p.err)
		default:
		}
		res, err := apiClient.Get(svc.URL + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return p, svc
}

// wantClusterLog fails unless a process logged that it connected to the Redis Cluster.
func wantClusterLog(t *testing.T, name, log string) {
	t.Helper()
	if !strings.Contains(log, `"redis":"redis cluster `) {
		t.Errorf("%s did not log a connection to the Redis Cluster:\n%s", name, tail(log, 2000))
	}
}

// TestClusterAPIAndWorkerProcesses: two API processes and two worker processes share one
// cluster and nothing else. Every event is delivered once, signed; an endpoint changed through
// one API process (URL, headers, secret) is what the next delivery by any worker uses.
func TestClusterAPIAndWorkerProcesses(t *testing.T) {
	requireCluster(t)
	t.Parallel()
	st := newStack(t, nil)
	apiProc, apiA := st.startAPIProcess(t)
	apiB := st.start(t, "--role", "api")
	workers := []*process{st.startProcess(t, "serve", "--role", "worker"), st.startProcess(t, "serve", "--role", "worker")}
	_, key := st.tenant(t)

	first := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := apiA.createEndpoint(t, key, first.URL, []string{registry.EventScanCompleted}, nil)
	ev := apiB.publish(t, key, registry.EventScanCompleted, scanData())
	apiA.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliverySucceeded)
	deliverytest.CheckSigned(t, first.HitsFor(ev.ID)[0], ev.ID, ep.Secret)

	second := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	apiB.call(t, key, http.MethodPatch, "/api/v1/webhooks/"+ep.ID,
		map[string]any{"url": second.URL, "headers": map[string]string{"X-Config": "v2"}}).want(t, http.StatusOK, nil)
	var rot struct{ Secret string }
	apiA.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/rotate-secret",
		map[string]any{"gracePeriodSeconds": 0}).want(t, http.StatusOK, &rot)
	ev2 := apiA.publish(t, key, registry.EventScanCompleted, scanData())
	apiB.waitDelivery(t, key, ep.ID, ev2.ID, registry.DeliverySucceeded)
	if n := len(first.HitsFor(ev2.ID)); n != 0 {
		t.Errorf("the old URL got %d POSTs of the event published after the change", n)
	}
	h := second.HitsFor(ev2.ID)
	if len(h) != 1 {
		t.Fatalf("the new URL got %d POSTs of the event, want 1", len(h))
	}
	if got := h[0].Header.Get("X-Config"); got != "v2" {
		t.Errorf("X-Config = %q, want the header set through the other API process", got)
	}
	deliverytest.CheckSigned(t, h[0], ev2.ID, rot.Secret)

	want := map[string]int{ev2.ID: 1}
	apis := []*service{apiA, apiB}
	for i := range 20 {
		want[apis[i%2].publish(t, key, registry.EventScanCompleted, scanData()).ID] = 1
	}
	waitFor(t, patience, "every event delivered", func() bool { return second.Count() >= len(want) })
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got := second.IDCounts(); !reflect.DeepEqual(got, want) {
		t.Errorf("POSTs by webhook-id = %v, want each of the %d events once", got, len(want))
	}

	for i, w := range workers {
		t.Logf("worker %d made %d attempts", i+1, strings.Count(w.output.String(), `"msg":"delivery attempt"`))
		wantClusterLog(t, "worker "+strconv.Itoa(i+1), w.output.String())
	}
	wantClusterLog(t, "the API process", apiProc.output.String())
	for name, p := range map[string]*process{"worker 1": workers[0], "worker 2": workers[1], "api": apiProc} {
		if err := p.signal(t, syscall.SIGTERM); err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0", name, err)
		}
	}
}

// TestClusterAutoDisableHeldAndReenable: failures recorded by a worker process disable the
// endpoint; events published meanwhile are held; PATCH {"enabled": true} through an API
// process requeues them and the worker delivers them.
func TestClusterAutoDisableHeldAndReenable(t *testing.T) {
	requireCluster(t)
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_DISABLE_AFTER_FAILURES": "3", "WEBHOOKD_DISABLE_MIN_WINDOW": "0"})
	api := st.start(t, "--role", "api")
	st.startProcess(t, "serve", "--role", "worker")
	_, key := st.tenant(t)
	var healthy atomic.Bool
	rc := deliverytest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	ep := api.createEndpoint(t, key, rc.URL, []string{registry.EventScanFailed}, nil)
	first := api.publish(t, key, registry.EventScanFailed, scanData())
	api.waitDelivery(t, key, ep.ID, first.ID, registry.DeliveryHeld)
	e := api.endpoint(t, key, ep.ID)
	if e.Status != registry.StatusDisabled || e.DisabledReason == nil ||
		*e.DisabledReason != registry.ReasonConsecutiveFailures || e.ConsecutiveFailures != 3 {
		t.Fatalf("endpoint = %+v, want disabled (consecutive_failures) after 3 failures", e)
	}
	second := api.publish(t, key, registry.EventScanFailed, scanData())
	api.waitDelivery(t, key, ep.ID, second.ID, registry.DeliveryHeld)
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got := rc.Count(); got != 3 {
		t.Fatalf("receiver got %d POSTs, want the 3 failed attempts only", got)
	}

	healthy.Store(true)
	var en endpointView
	api.call(t, key, http.MethodPatch, "/api/v1/webhooks/"+ep.ID, map[string]any{"enabled": true}).
		want(t, http.StatusOK, &en)
	if en.RequeuedDeliveries == nil || *en.RequeuedDeliveries != 2 || en.Status != registry.StatusActive {
		t.Fatalf("re-enabled endpoint = %+v, want active with 2 requeued deliveries", en)
	}
	api.waitDelivery(t, key, ep.ID, first.ID, registry.DeliverySucceeded)
	api.waitDelivery(t, key, ep.ID, second.ID, registry.DeliverySucceeded)
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got, want := rc.IDCounts(), map[string]int{first.ID: 4, second.ID: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("POSTs by webhook-id = %v, want %v", got, want)
	}
}

// TestClusterRateLimitAndQuota: two API processes share one key's rate limit and one
// tenant's monthly quota through the cluster.
func TestClusterRateLimitAndQuota(t *testing.T) {
	requireCluster(t)
	t.Parallel()
	st := newStack(t, nil)
	apis := []*service{st.start(t, "--role", "api"), st.start(t, "--role", "api")}
	ctx := t.Context()
	tenant, err := st.store.CreateTenant(ctx, "quota", 3)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := st.store.CreateAPIKey(ctx, registry.NewKeyParams{TenantID: tenant.ID, Name: "publisher",
		Scopes: registry.Scopes})
	if err != nil {
		t.Fatal(err)
	}
	_, slow, err := st.store.CreateAPIKey(ctx, registry.NewKeyParams{TenantID: tenant.ID, Name: "slow",
		Scopes: registry.Scopes, RateLimitPerMinute: 5})
	if err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		apis[i%2].publish(t, key, registry.EventScanCompleted, scanData())
	}
	for _, api := range apis {
		api.call(t, key, http.MethodPost, "/api/v1/events", map[string]any{"type": registry.EventScanCompleted,
			"data": scanData()}).wantError(t, http.StatusTooManyRequests, "QUOTA_EXCEEDED", "Monthly scan quota exceeded")
	}
	var u registry.Usage
	apis[1].call(t, key, http.MethodGet, "/api/v1/usage", nil).want(t, http.StatusOK, &u)
	if u.EventsPublished != 3 || u.Remaining == nil || *u.Remaining != 0 {
		t.Errorf("usage = %+v, want 3 published and 0 remaining", u)
	}

	for i := range 5 {
		apis[i%2].call(t, slow, http.MethodGet, "/api/v1/webhooks", nil).want(t, http.StatusOK, nil)
	}
	for _, api := range apis {
		r := api.call(t, slow, http.MethodGet, "/api/v1/webhooks", nil)
		n := r.Header.Get("Retry-After")
		r.wantError(t, http.StatusTooManyRequests, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded. Retry in "+n+" seconds.")
		if s, err := strconv.Atoi(n); err != nil || s < 1 || s > 60 {
			t.Errorf("Retry-After = %q, want 1..60 seconds", n)
		}
	}
	apis[0].call(t, key, http.MethodGet, "/api/v1/webhooks", nil).want(t, http.StatusOK, nil)
}
