package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cert-ix/webhookd/signing"
)

// receiverConfig is how one receiver behaves.
type receiverConfig struct {
	// Delay is spent before answering each delivery (the slow-receiver scenario).
	Delay time.Duration
	// Throttle, when set, answers 429 to the deliveries it does not admit (the throttled
	// scenario); they are not counted as delivered.
	Throttle *throttle
}

// receiver is an HTTPS webhook receiver on a loopback port. Endpoints are paths /e/<label>;
// each label has its signing secret and the status it answers with.
type receiver struct {
	cfg receiverConfig
	rec *recorder
	ln  net.Listener
	srv *http.Server
	mu  sync.RWMutex
	eps map[string]endpointBehaviour
}

// endpointBehaviour is what the receiver knows of one registered endpoint.
type endpointBehaviour struct {
	secret string
	status int // answered to every delivery: 200, or 500 for a failing endpoint
}

// startReceiver listens on 127.0.0.1:0 with the CA-signed certificate. It speaks HTTP/1.1
// only (keep-alive), like most webhook receivers.
func startReceiver(a *authority, rec *recorder, cfg receiverConfig) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{cfg: cfg, rec: rec, ln: ln, eps: make(map[string]endpointBehaviour)}
	r.srv = &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{a.leaf}, NextProtos: []string{"http/1.1"}},
		// Handshakes cut short when a scenario ends are expected; nothing to report.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = r.srv.ServeTLS(ln, "", "") }()
	return r, nil
}

// URL returns the endpoint URL for a label.
func (r *receiver) URL(label string) string {
	return "https://" + r.ln.Addr().String() + "/e/" + label
}

// expect tells the receiver the secret of a label's endpoint and the status it answers.
func (r *receiver) expect(label, secret string, status int) {
	r.mu.Lock()
	r.eps[label] = endpointBehaviour{secret: secret, status: status}
	r.mu.Unlock()
}

// Close stops the receiver at once: the scenario is over.
func (r *receiver) Close() { _ = r.srv.Close() }

// eventBody is the part of a delivered event the receiver reads.
type eventBody struct {
	ID   string `json:"id"`
	Data struct {
		ScanID         string `json:"scanId"`
		SentAtUnixNano int64  `json:"sentAtUnixNano"`
	} `json:"data"`
}

// ServeHTTP answers reachability probes (HEAD) with 200 and checks every delivery: endpoint
// known, signature valid, body carrying the publish time.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	now := time.Now()
	label := strings.TrimPrefix(req.URL.Path, "/e/")
	r.mu.RLock()
	ep, known := r.eps[label]
	r.mu.RUnlock()
	switch {
	case err != nil:
		r.rec.problem(&r.rec.badBody, "reading body: "+err.Error())
	case !known:
		r.rec.problem(&r.rec.unknown, "delivery to unknown endpoint "+label)
	default:
		r.accept(w, req, label, ep, body, now)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) accept(w http.ResponseWriter, req *http.Request, label string, ep endpointBehaviour,
	body []byte, now time.Time) {
	if err := signing.Verify(ep.secret, req.Header, body, now); err != nil {
		// Answered 200 all the same: a retry would only blur the counts.
		r.rec.problem(&r.rec.badSig, "signature of a delivery to "+label+": "+err.Error())
		w.WriteHeader(http.StatusOK)
		return
	}
	var ev eventBody
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.Data.SentAtUnixNano == 0 {
		r.rec.problem(&r.rec.badBody, "delivery body without id or data.sentAtUnixNano to "+label)
		w.WriteHeader(http.StatusOK)
		return
	}
	if id := req.Header.Get(signing.HeaderID); id != ev.ID {
		r.rec.problem(&r.rec.badBody, "webhook-id "+id+" differs from body id "+ev.ID)
	}
	if t := r.cfg.Throttle; t != nil && ep.status/100 == 2 {
		if !t.admit(now) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		defer t.done()
	}
	if ep.status/100 == 2 {
		r.rec.delivered(ev.ID, label, ev.Data.ScanID, time.Unix(0, ev.Data.SentAtUnixNano), now)
	} else {
		r.rec.failedAttempt(label)
	}
	if r.cfg.Delay > 0 {
		sleepCtx(req.Context(), r.cfg.Delay)
	}
	w.WriteHeader(ep.status)
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
