package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// hit is one POST a receiver got.
type hit struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// responder answers the n-th POST (from 1). r's context also ends when the test ends, so a
// responder that holds a request can wait on it.
type responder func(n int, w http.ResponseWriter, r *http.Request)

// receiver is an HTTPS webhook receiver that records every POST and answers by script.
// Reachability probes (HEAD) get 200 and are not recorded.
type receiver struct {
	URL     string
	respond responder
	mu      sync.Mutex
	hits    []hit
}

func newReceiver(tb testing.TB, respond responder) *receiver {
	tb.Helper()
	rc := &receiver{respond: respond}
	testCtx := tb.Context()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(rc.hits)
		rc.mu.Unlock()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(testCtx, cancel)()
		rc.respond(n, w, r.WithContext(ctx))
	}))
	tb.Cleanup(srv.Close)
	rc.URL = srv.URL + "/hooks/" + uuid.NewString()[:8]
	return rc
}

// statusResponder always answers code.
func statusResponder(code int) responder {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func (rc *receiver) Hits() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func (rc *receiver) count() int { return len(rc.Hits()) }

// hitsFor returns the POSTs that carried webhook-id evid.
func (rc *receiver) hitsFor(evid string) []hit {
	var out []hit
	for _, h := range rc.Hits() {
		if h.Header.Get("webhook-id") == evid {
			out = append(out, h)
		}
	}
	return out
}

// idCounts counts the receiver's POSTs by webhook-id.
func (rc *receiver) idCounts() map[string]int {
	out := map[string]int{}
	for _, h := range rc.Hits() {
		out[h.Header.Get("webhook-id")]++
	}
	return out
}
