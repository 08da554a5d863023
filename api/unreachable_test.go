package api_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
)

func TestWebhookURLUnreachable(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	original := e.hookURL("/hook")

	var hits atomic.Int64
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	plain := httptest.NewServer(counting)
	plain.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(plain.Close)
	untrusted := deliverytest.UntrustedTLSServer(t, counting)
	// The handler waits for the test's end, not r.Context(): the probe's close_notify ends
	// r.Context(), and an answer written then can still reach the closing transport.
	release := make(chan struct{})
	hanging := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) })

	const query = "/hook?token=query-secret-4711"
	tests := []struct{ name, url string }{
		{"closed loopback port", "https://" + deliverytest.ClosedAddr(t) + query},
		{"plain HTTP server behind an https URL", "https://" + plain.Listener.Addr().String() + query},
		{"untrusted certificate", untrusted.URL + query},
	}
	// One timeout case is enough: it costs the probe's whole timeout.
	t.Run("create/timeout", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": hanging.URL + query, "events": []string{"scan.completed"}})
		assertError(t, r, http.StatusBadRequest, "WEBHOOK_URL_UNREACHABLE", "Could not reach webhook URL")
	})
	for _, tt := range tests {
		t.Run("create/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": tt.url, "events": []string{"scan.completed"}})
			assertError(t, r, http.StatusBadRequest, "WEBHOOK_URL_UNREACHABLE", "Could not reach webhook URL")
		})
		t.Run("patch/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"url": tt.url, "description": "new"})
			assertError(t, r, http.StatusBadRequest, "WEBHOOK_URL_UNREACHABLE", "Could not reach webhook URL")
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("unreachable servers handled %d requests, want 0", n)
	}
	items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	if len(items) != 1 {
		t.Errorf("%d endpoints, want only the first: no unreachable URL may be registered", len(items))
	}
	d := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+id, key, nil), http.StatusOK)
	if d["url"] != original || d["description"] != "" {
		t.Errorf("after failed PATCHes url, description = %v, %v; want %s and unchanged", d["url"], d["description"], original)
	}
	if strings.Contains(e.logs.String(), "query-secret-4711") {
		t.Errorf("log contains the URL's query:\n%s", e.logs.String())
	}
}

func TestWebhookURLBlockedAddress(t *testing.T) {
	// The probe client of this server has no AllowPrivate: loopback is blocked, as in production.
	e := newEnv(t, withoutPrivateAllowance())
	key, _ := e.newKey(t)
	r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/hook"), "events": []string{"scan.completed"}})
	assertError(t, r, http.StatusBadRequest, "WEBHOOK_URL_UNREACHABLE", "Could not reach webhook URL")
	for _, u := range []string{"https://localhost" + strings.TrimPrefix(e.recv.URL, "https://127.0.0.1"),
		"https://[::ffff:127.0.0.1]" + strings.TrimPrefix(e.recv.URL, "https://127.0.0.1")} {
		r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": u, "events": []string{"scan.completed"}})
		assertError(t, r, http.StatusBadRequest, "WEBHOOK_URL_UNREACHABLE", "Could not reach webhook URL")
	}
	if n := e.hits.Load(); n != 0 {
		t.Errorf("receiver handled %d requests, want 0: a blocked address is never connected to", n)
	}
	if n := e.probes.Load(); n != 3 {
		t.Errorf("probes = %d, want 3", n)
	}
}

func TestAnyHTTPAnswerIsReachable(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	// httptest TLS servers share the receiver's certificate, so this one is trusted too.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if status == http.StatusMovedPermanently {
			w.Header().Set("Location", "https://127.0.0.1:1/")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	for _, status := range []int{200, 301, 401, 404, 405, 410, 500, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{
				"url": srv.URL + "/" + strconv.Itoa(status), "events": []string{"scan.completed"}})
			data(t, r, http.StatusCreated)
		})
	}
}
