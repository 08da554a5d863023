package deliverytest

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

// Hit is one POST a Receiver got.
type Hit struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// Responder answers the n-th POST (from 1). r's context also ends when the test ends, so a
// responder that holds a request can wait on it.
type Responder func(n int, w http.ResponseWriter, r *http.Request)

// Receiver is an HTTPS webhook receiver on loopback that records every POST and answers by
// script. It serves httptest's certificate, which every httptest TLS server shares: a client
// trusting one (httptest.Server.Certificate) trusts them all. Reachability probes (HEAD) get
// 200 and are not recorded.
type Receiver struct {
	URL     string
	Server  *httptest.Server
	respond Responder
	mu      sync.Mutex
	hits    []Hit
}

// NewReceiver starts a Receiver, closed at the test's cleanup.
func NewReceiver(tb testing.TB, respond Responder) *Receiver {
	tb.Helper()
	rc := &Receiver{respond: respond}
	testCtx := tb.Context()
	rc.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, Hit{Header: r.Header.Clone(), Body: body, At: time.Now()})
		n := len(rc.hits)
		rc.mu.Unlock()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(testCtx, cancel)()
		rc.respond(n, w, r.WithContext(ctx))
	}))
	tb.Cleanup(rc.Server.Close)
	rc.URL = rc.Server.URL + "/hooks/" + uuid.NewString()[:8]
	return rc
}

// Status always answers code.
func Status(code int) Responder {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// Hits returns every POST so far.
func (rc *Receiver) Hits() []Hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Hit(nil), rc.hits...)
}

// Count is how many POSTs arrived.
func (rc *Receiver) Count() int { return len(rc.Hits()) }

// HitsFor returns the POSTs that carried webhook-id evid.
func (rc *Receiver) HitsFor(evid string) []Hit {
	var out []Hit
	for _, h := range rc.Hits() {
		if h.Header.Get("webhook-id") == evid {
			out = append(out, h)
		}
	}
	return out
}

// IDCounts counts the POSTs by webhook-id.
func (rc *Receiver) IDCounts() map[string]int {
	out := map[string]int{}
	for _, h := range rc.Hits() {
		out[h.Header.Get("webhook-id")]++
	}
	return out
}
