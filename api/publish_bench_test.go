package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// BenchmarkPublish measures one single-event publish through the API server, the delivery
// service and the registry on a real Redis, to one subscribed endpoint: time, bytes and
// allocations per event (the server's and this client's, in one process).
func BenchmarkPublish(b *testing.B) {
	benchPublish(b, "/api/v1/events", mustJSON(b, batchEvent(0, registry.EventScanCompleted)), 1)
}

// BenchmarkPublishBatch is BenchmarkPublish with 100 events a request; figures are per event.
func BenchmarkPublishBatch(b *testing.B) {
	benchPublish(b, "/api/v1/events/batch", mustJSON(b, batchOf(100)), 100)
}

// BenchmarkBareRequest is what an API request costs before webhookd does anything with it: the
// same client POSTs BenchmarkPublish's body to a bare net/http server whose handler reads it
// and answers 202 with a body the size of a publish's answer. BenchmarkPublish's cpu-ns/op less
// this one's is the API's own work (routing, checks, JSON) and its two Redis round trips.
func BenchmarkBareRequest(b *testing.B) {
	body := mustJSON(b, batchEvent(0, registry.EventScanCompleted))
	answer := bytes.Repeat([]byte("a"), 130)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, srv.URL+"/api/v1/events", bytes.NewReader(body))
		req.Header.Set("X-API-Key", "cix_sk_"+strings.Repeat("a", 48))
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

func benchPublish(b *testing.B, path string, body []byte, perRequest int) {
	e := newEnv(b)
	key, _ := e.key(b, registry.NewKeyParams{TenantID: e.tenant(b, 0), RateLimitPerMinute: 1 << 30})
	var ep map[string]any
	req, _ := http.NewRequest(http.MethodPost, e.base+"/api/v1/webhooks", bytes.NewReader(mustJSON(b,
		map[string]any{"url": e.hookURL("/hook"), "events": []string{registry.EventScanCompleted}})))
	req.Header.Set("X-API-Key", key)
	if res, err := e.http.Do(req); err != nil || res.StatusCode != http.StatusCreated {
		b.Fatalf("create endpoint: %v %v", res, err)
	} else {
		_ = json.NewDecoder(res.Body).Decode(&ep)
		res.Body.Close()
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i += perRequest {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, e.base+path, bytes.NewReader(body))
		req.Header.Set("X-API-Key", key)
		res, err := e.http.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			b.Fatalf("publish answered %d", res.StatusCode)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time (user and system) this process has used: the API server's and
// the client's, not Redis's.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustJSON(b *testing.B, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return js
}
