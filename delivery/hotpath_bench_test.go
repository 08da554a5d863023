package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
)

// BenchmarkDeliveryHotPath measures the CPU work of one delivery attempt around the network
// call and the registry write: Worker.attempt's prepare phase (parsing the endpoint's secrets,
// signing a 1 KiB body, adding the headers) and its judge phase (classifying the answer,
// deciding the next step and building the outcome).
func BenchmarkDeliveryHotPath(b *testing.B) {
	mustSecret := func() string {
		s, err := signing.NewSecret()
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	now := time.Now()
	evid := NewEventID()
	body := oneKiBBody(b, evid, now)
	it := registry.QueueItem{DeliveryID: registry.DeliveryID(evid, "ep"), Body: body,
		QueueEntry: registry.QueueEntry{EventID: evid, EventType: registry.EventScanCompleted, Run: 2}}
	w := &Worker{cfg: WorkerConfig{Policy: RetryPolicy{}.WithDefaults(), UserAgent: "webhookd/bench"}}
	answerBody := bytes.Repeat([]byte("e"), 512)

	for _, bc := range []struct {
		name     string
		rotating bool
		res      Result
	}{
		{"success", false, Result{StatusCode: http.StatusOK, Header: http.Header{}, Duration: 30 * time.Millisecond}},
		{"failure", false, Result{StatusCode: http.StatusInternalServerError, Header: http.Header{}, Body: answerBody,
			Duration: 30 * time.Millisecond}},
		{"throttled rotating", true, Result{StatusCode: http.StatusTooManyRequests,
			Header: http.Header{"Retry-After": []string{"30"}}, Duration: 30 * time.Millisecond}},
	} {
		e := &registry.Endpoint{ID: "ep", Enabled: true, Secret: mustSecret(),
			Headers: map[string]string{"X-Receiver-Token": "tok", "X-Env": "bench"}}
		if bc.rotating {
			e.PrevSecret, e.PrevSecretExpiresAt = mustSecret(), now.Add(time.Hour)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var out registry.Outcome
			for b.Loop() {
				if _, err := w.prepare(e, it, now); err != nil {
					b.Fatal(err)
				}
				out = w.judge(it, now, bc.res, now)
			}
			if out.Outcome == "" || out.Status == "" {
				b.Fatal("no outcome")
			}
		})
	}
}

// oneKiBBody is an event body of exactly 1024 bytes.
func oneKiBBody(b *testing.B, evid string, now time.Time) []byte {
	event := func(pad int) []byte {
		data, _ := json.Marshal(map[string]string{"scanId": "4b1d0c4e-2f7a-4f7e-9d55-1f1f0b6c7a10",
			"scanType": "zap", "pad": string(bytes.Repeat([]byte("x"), pad))})
		body, err := EventBody(evid, registry.EventScanCompleted, now, data)
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	body := event(1024 - len(event(0)))
	if len(body) != 1024 {
		b.Fatalf("body is %d bytes", len(body))
	}
	return body
}

// BenchmarkSend measures what BenchmarkDeliveryHotPath leaves out: one signed 1 KiB POST by Send
// over a pooled TLS connection to a receiver on loopback that answers 204, from two senders at
// once (the receiver's work is in the same process and counts too, in time and in cpu-ns/op).
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	client := srv.Client()
	body := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(1)
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := signing.Headers([]signing.Key{benchKey}, "evt_bench", time.Now(), body)
			h.Set("Content-Type", "application/json")
			res := Send(context.Background(), client, Request{URL: srv.URL, Header: h, Body: body}, 5*time.Second)
			if res.StatusCode != http.StatusNoContent {
				b.Fatalf("Send = %d, %v", res.StatusCode, res.Err)
			}
		}
	})
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

var benchKey = func() signing.Key {
	s, err := signing.NewSecret()
	if err != nil {
		panic(err)
	}
	k, err := signing.ParseSecret(s)
	if err != nil {
		panic(err)
	}
	return k
}()
