package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// The receiver fault matrix, end to end: one endpoint per fault, all subscribed to one event,
// delivered by a real worker process with few workers, so an attempt that outlived its
// timeout would starve the healthy endpoint published while the faults hang.
const (
	faultAttemptTimeout = 2 * time.Second
	// faultMargin bounds what an attempt may add to its timeout (handshake, drain, a busy
	// machine): a bound on recorded durations, not a speed target.
	faultMargin      = 8 * time.Second
	faultMaxAttempts = 3
	faultRetryAfter  = 2 * time.Second
	faultHugeBody    = 100 << 20
	// faultRSSGrowth is how much a worker's peak RSS may grow over the whole fault round; one
	// buffered 100 MiB body alone would exceed it.
	faultRSSGrowth = 64 << 20
)

// faultReceiver serves each fault on its own TCP listener on 127.0.0.1. Until armed, every
// listener is a well-behaved HTTPS receiver answering 200, so the API's reachability probe
// accepts its URL; armed, each misbehaves its own way. Every answer closes its connection, so
// none opened before arming carries an attempt after it.
type faultReceiver struct {
	tlsCfg *tls.Config // the httptest certificate, which the stack trusts
	armed  atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	ports  []*faultPort
}

// faultPort is one listener and the fault it serves once armed.
type faultPort struct {
	URL    string
	ln     net.Listener
	serve  func(p *faultPort, c *net.TCPConn) // nil: refuse connections once armed
	conns  atomic.Int32                       // connections accepted while armed
	sent   atomic.Int64                       // body bytes written by the 100 MiB fault
	mu     sync.Mutex
	holds  []time.Duration // per connection: from the request read to the client hanging up
	afters []time.Time     // Retry-After dates sent
}

func newFaultReceiver(t *testing.T) *faultReceiver {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	srv.Close()
	fr := &faultReceiver{conns: map[net.Conn]bool{},
		tlsCfg: &tls.Config{Certificates: srv.TLS.Certificates, NextProtos: []string{"http/1.1"}}}
	t.Cleanup(func() {
		fr.mu.Lock()
		for _, p := range fr.ports {
			p.ln.Close()
		}
		for c := range fr.conns {
			c.Close()
		}
		fr.conns = nil
		fr.mu.Unlock()
		fr.wg.Wait()
	})
	return fr
}

// port starts a listener for one fault.
func (fr *faultReceiver) port(t *testing.T, name string, serve func(*faultPort, *net.TCPConn)) *faultPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultPort{URL: "https://" + ln.Addr().String() + "/hooks/" + name, ln: ln, serve: serve}
	fr.mu.Lock()
	fr.ports = append(fr.ports, p)
	fr.mu.Unlock()
	fr.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fr.mu.Lock()
			if fr.conns == nil { // the test is over
				c.Close()
			} else {
				fr.conns[c] = true
				fr.wg.Go(func() { fr.handle(p, c.(*net.TCPConn)) })
			}
			fr.mu.Unlock()
		}
	})
	return p
}

func (fr *faultReceiver) handle(p *faultPort, c *net.TCPConn) {
	defer func() {
		c.Close()
		fr.mu.Lock()
		delete(fr.conns, c)
		fr.mu.Unlock()
	}()
	if fr.armed.Load() {
		p.conns.Add(1)
		p.serve(p, c)
		return
	}
	if tc, err := fr.request(c); err == nil {
		_, _ = io.WriteString(tc, response(http.StatusOK))
	}
}

// arm turns every port to its fault; a refusing port stops listening.
func (fr *faultReceiver) arm() {
	fr.armed.Store(true)
	fr.mu.Lock()
	defer fr.mu.Unlock()
	for _, p := range fr.ports {
		if p.serve == nil {
			p.ln.Close()
		}
	}
}

// request does the TLS handshake on c with the trusted certificate and reads one request.
func (fr *faultReceiver) request(c net.Conn) (*tls.Conn, error) {
	tc := tls.Server(c, fr.tlsCfg)
	req, err := http.ReadRequest(bufio.NewReader(tc))
	if err == nil {
		_, err = io.Copy(io.Discard, req.Body)
	}
	return tc, err
}

// response is a bodiless answer that closes the connection, with extra header lines.
func response(status int, lines ...string) string {
	lines = append([]string{fmt.Sprintf("HTTP/1.1 %d %s", status, http.StatusText(status)), "Connection: close"}, lines...)
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "Content-Length:") }) {
		lines = append(lines, "Content-Length: 0")
	}
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

// The faults, as serve functions of a faultReceiver.

func (fr *faultReceiver) status(code int, lines ...string) func(*faultPort, *net.TCPConn) {
	return func(_ *faultPort, c *net.TCPConn) {
		if tc, err := fr.request(c); err == nil {
			_, _ = io.WriteString(tc, response(code, lines...))
		}
	}
}

// throttleDate answers 503 with a Retry-After HTTP-date at least faultRetryAfter ahead.
func (fr *faultReceiver) throttleDate(p *faultPort, c *net.TCPConn) {
	tc, err := fr.request(c)
	if err != nil {
		return
	}
	at := time.Now().Add(faultRetryAfter + time.Second).Truncate(time.Second)
	p.mu.Lock()
	p.afters = append(p.afters, at)
	p.mu.Unlock()
	_, _ = io.WriteString(tc, response(http.StatusServiceUnavailable, "Retry-After: "+at.UTC().Format(http.TimeFormat)))
}

// reset writes partial, then resets the connection (SO_LINGER 0) once the client had a moment
// to read it.
func (fr *faultReceiver) reset(partial string) func(*faultPort, *net.TCPConn) {
	return func(_ *faultPort, c *net.TCPConn) {
		tc, err := fr.request(c)
		if err != nil {
			return
		}
		_, _ = io.WriteString(tc, partial)
		time.Sleep(100 * time.Millisecond)
		_ = c.SetLinger(0)
	}
}

// hold writes prefix after the request, then nothing until the client hangs up; with trickle
// it writes one more byte every 100ms instead.
func (fr *faultReceiver) hold(prefix string, trickle bool) func(*faultPort, *net.TCPConn) {
	return func(p *faultPort, c *net.TCPConn) {
		tc, err := fr.request(c)
		if err != nil {
			return
		}
		read := time.Now()
		defer func() {
			p.mu.Lock()
			p.holds = append(p.holds, time.Since(read))
			p.mu.Unlock()
		}()
		if _, err := io.WriteString(tc, prefix); err != nil || !trickle {
			_, _ = io.Copy(io.Discard, tc) // until the client hangs up
			return
		}
		for ; ; time.Sleep(100 * time.Millisecond) {
			if _, err := tc.Write([]byte{'.'}); err != nil {
				return
			}
		}
	}
}

// huge announces a 100 MiB body and sends it from one small buffer.
func (fr *faultReceiver) huge(p *faultPort, c *net.TCPConn) {
	tc, err := fr.request(c)
	if err != nil {
		return
	}
	if _, err := io.WriteString(tc, response(http.StatusOK, "Content-Length: "+strconv.Itoa(faultHugeBody))); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for p.sent.Load() < faultHugeBody {
		n, err := tc.Write(chunk)
		if p.sent.Add(int64(n)); err != nil {
			return
		}
	}
}

// handshake reads the ClientHello and answers reply (a TLS alert) or, if nil, nothing at all.
func handshake(reply []byte) func(*faultPort, *net.TCPConn) {
	return func(_ *faultPort, c *net.TCPConn) {
		if _, err := c.Read(make([]byte, 4096)); err != nil {
			return
		}
		if reply != nil {
			_, _ = c.Write(reply)
			_ = c.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, c)
	}
}

// untrusted completes the handshake, if the client lets it, with a certificate nobody trusts.
func (fr *faultReceiver) untrusted(t *testing.T) func(*faultPort, *net.TCPConn) {
	cfg := &tls.Config{Certificates: []tls.Certificate{deliverytest.UntrustedCert(t)}}
	return func(_ *faultPort, c *net.TCPConn) {
		_ = tls.Server(c, cfg).Handshake()
	}
}

// faultWant is what the delivery log must show for one fault.
type faultWant struct {
	status   string // the delivery's final status
	attempts int
	code     int    // every attempt's statusCode
	errHas   string // in every attempt's error; empty: no error
	failures int    // the endpoint's consecutiveFailures at the end
	gone     bool   // the endpoint is disabled with reason gone
	holds    bool   // every attempt lasts the whole attempt timeout
	throttle bool   // every attempt is a 429/503 with Retry-After, honoured
	body     string // the first attempt's responseBody, if set
}

type faultCase struct {
	name string
	port *faultPort
	want faultWant
}

func faultMatrix(t *testing.T, fr *faultReceiver, redirectTarget string) []faultCase {
	failed := func(code int, errHas string) faultWant {
		return faultWant{status: registry.DeliveryFailed, attempts: faultMaxAttempts, code: code, errHas: errHas, failures: faultMaxAttempts}
	}
	timedOut := failed(0, "timeout after 2s")
	timedOut.holds = true
	throttled := func(code int) faultWant {
		return faultWant{status: registry.DeliveryFailed, attempts: faultMaxAttempts, code: code,
			errHas: "unexpected status HTTP " + strconv.Itoa(code), throttle: true}
	}
	delivered := faultWant{status: registry.DeliverySucceeded, attempts: 1, code: http.StatusOK}
	trickled, partial, hundredMiB := delivered, delivered, delivered
	trickled.holds = true
	partial.body = "partial"
	hundredMiB.body = strings.Repeat("0123456789abcdef", 4096/16)
	tlsAlert := []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28} // fatal handshake_failure
	cases := []struct {
		name  string
		serve func(*faultPort, *net.TCPConn)
		want  faultWant
	}{
		{"500", fr.status(500), failed(500, "unexpected status HTTP 500")},
		{"502", fr.status(502), failed(502, "unexpected status HTTP 502")},
		{"400", fr.status(400), failed(400, "unexpected status HTTP 400")},
		{"404", fr.status(404), failed(404, "unexpected status HTTP 404")},
		{"410", fr.status(410), faultWant{status: registry.DeliveryHeld, attempts: 1, code: 410,
			errHas: "unexpected status HTTP 410", failures: 1, gone: true}},
		{"429-retry-after-seconds", fr.status(429, "Retry-After: "+strconv.Itoa(int(faultRetryAfter.Seconds()))), throttled(429)},
		{"503-retry-after-date", fr.throttleDate, throttled(503)},
		{"connection-refused", nil, failed(0, "connect: connection refused")},
		{"reset-in-headers", fr.reset("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"), failed(0, "read: connection reset by peer")},
		{"reset-in-body", fr.reset(response(200, "Content-Length: 100") + "partial"), partial},
		{"tls-handshake-failure", handshake(tlsAlert), failed(0, "remote error: tls: handshake failure")},
		{"tls-silent-handshake", handshake(nil), timedOut},
		{"untrusted-certificate", fr.untrusted(t), failed(0, "tls: failed to verify certificate")},
		{"response-never-starts", fr.hold("", false), timedOut},
		{"headers-never-end", fr.hold("HTTP/1.1 200 OK\r\n", false), timedOut},
		{"body-trickles-forever", fr.hold(response(200, "Content-Length: 100000"), true), trickled},
		{"4KiB-then-trickle", fr.hold(response(200, "Content-Length: 100000")+strings.Repeat("x", 4096), true), trickled},
		{"body-100MiB", fr.huge, hundredMiB},
		{"redirect-private-http", fr.status(302, "Location: http://10.0.0.1/"), failed(302, "redirect not followed (HTTP 302)")},
		{"redirect-loopback-https", fr.status(302, "Location: "+redirectTarget), failed(302, "redirect not followed (HTTP 302)")},
	}
	out := make([]faultCase, len(cases))
	for i, c := range cases {
		out[i] = faultCase{name: c.name, port: fr.port(t, c.name, c.serve), want: c.want}
	}
	return out
}

// TestReceiverFaultMatrix: each receiver fault is classified in the delivery log as SPEC.md
// says (status, error, attempts, the endpoint's failure streak; 410 disables at once; 429 and
// 503 with Retry-After are honoured and are no failures); no attempt outlasts the attempt
// timeout by more than faultMargin; a healthy endpoint published while the faults hang is
// delivered by a worker process running only four attempts at once; redirects are not
// followed; a 100 MiB answer leaves the worker's memory flat.
func TestReceiverFaultMatrix(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_ATTEMPT_TIMEOUT": faultAttemptTimeout.String(),
		"WEBHOOKD_CONCURRENCY": "4", "WEBHOOKD_MAX_ATTEMPTS": strconv.Itoa(faultMaxAttempts),
		// Retry-After is capped at the longest retry delay, so that must exceed it.
		"WEBHOOKD_RETRY_MAX_INTERVAL": "10s"})
	api := st.start(t, "--role", "api")
	_, key := st.tenant(t)
	fr := newFaultReceiver(t)
	target := fr.port(t, "redirect-target", fr.status(http.StatusOK))
	cases := faultMatrix(t, fr, target.URL)
	begunAtHealthy := atomic.Int32{}
	healthy := deliverytest.NewReceiver(t, func(n int, _ http.ResponseWriter, _ *http.Request) {
		if n == 2 {
			begunAtHealthy.Store(int32(holdingAttempts(cases, false)))
		}
	})
	eps := make([]endpointView, len(cases))
	for i, c := range cases {
		eps[i] = api.createEndpoint(t, key, c.port.URL, []string{registry.EventScanCompleted}, nil)
	}
	hep := api.createEndpoint(t, key, healthy.URL, []string{registry.EventScanStarted}, nil)
	fr.arm()

	worker := st.startProcess(t, "serve", "--role", "worker")
	warm := api.publish(t, key, registry.EventScanStarted, scanData())
	api.waitDelivery(t, key, hep.ID, warm.ID, registry.DeliverySucceeded)
	rssBefore, _ := procMemory(t, worker.cmd.Process.Pid)

	ev := api.publish(t, key, registry.EventScanCompleted, scanData())
	waitFor(t, patience, "every holding fault to hold an attempt", func() bool {
		return holdingAttempts(cases, true) == 0
	})
	published := time.Now()
	hev := api.publish(t, key, registry.EventScanStarted, scanData())
	hd := api.waitDelivery(t, key, hep.ID, hev.ID, registry.DeliverySucceeded)
	holdingTotal := 0
	for _, c := range cases {
		if c.want.holds {
			holdingTotal += c.want.attempts
		}
	}
	t.Logf("healthy endpoint: delivered %s after its publish, when %d of the %d holding attempts had begun",
		healthy.Hits()[1].At.Sub(published).Round(time.Millisecond), begunAtHealthy.Load(), holdingTotal)
	if len(hd.Attempts) != 1 {
		t.Errorf("healthy delivery took %d attempts, want 1", len(hd.Attempts))
	}
	// Published while every worker may be held, it waits at most for the first of them to be
	// freed by the attempt timeout, then for its own attempt: a bound, with room for a busy machine.
	if took, bound := healthy.Hits()[1].At.Sub(published), 2*faultAttemptTimeout+faultMargin; took > bound {
		t.Errorf("healthy endpoint delivered %s after its publish, want within %s: a held worker outlived the attempt timeout", took, bound)
	}

	checkThrottledRetry(t, api, key, ev.ID, cases, eps)
	for i, c := range cases {
		d := api.waitDelivery(t, key, eps[i].ID, ev.ID, c.want.status)
		checkFault(t, c, d, api.endpoint(t, key, eps[i].ID))
	}
	if begunAtHealthy.Load() >= int32(holdingTotal) {
		t.Errorf("the healthy endpoint was delivered after all %d holding attempts had begun: it waited for the faults", holdingTotal)
	}
	waitFor(t, patience, "the queue to drain", func() bool { return st.drained(t) })
	rssAfter, peak := procMemory(t, worker.cmd.Process.Pid)
	var hugeSent int64
	for _, c := range cases {
		hugeSent += c.port.sent.Load()
	}
	t.Logf("worker memory: RSS %d MiB before the fault round, %d MiB after, peak %d MiB; the 100 MiB receiver got to send %d KiB",
		rssBefore>>20, rssAfter>>20, peak>>20, hugeSent>>10)
	if peak-rssBefore > faultRSSGrowth {
		t.Errorf("worker peak RSS grew %d MiB over the fault round, want under %d MiB", (peak-rssBefore)>>20, faultRSSGrowth>>20)
	}
	if n := target.conns.Load(); n != 0 {
		t.Errorf("redirect target got %d connections, want 0", n)
	}
	if err := worker.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("worker exited with %v after SIGTERM, want status 0", err)
	}
}

// holdingAttempts counts the attempts the holding faults have begun, or with missing, the
// holding faults that have begun none.
func holdingAttempts(cases []faultCase, missing bool) int {
	n := 0
	for _, c := range cases {
		if !c.want.holds {
			continue
		}
		switch got := int(c.port.conns.Load()); {
		case missing && got == 0:
			n++
		case !missing:
			n += got
		}
	}
	return n
}

// checkThrottledRetry: after a throttled first attempt the delivery is retrying no sooner than
// the Retry-After allows: its nextAttemptAt while it waits, or its second attempt when a slow
// run gets here after the retry was made.
func checkThrottledRetry(t *testing.T, api *service, key, evid string, cases []faultCase, eps []endpointView) {
	t.Helper()
	for i, c := range cases {
		if !c.want.throttle {
			continue
		}
		var d deliveryView
		waitFor(t, patience, c.name+": the first attempt", func() bool {
			d = api.delivery(t, key, eps[i].ID, registry.DeliveryID(evid, eps[i].ID))
			return d.AttemptCount > 0
		})
		// The HTTP-date is whole seconds, so the date form is held to its date less one second;
		// the next attempt itself is checked against the date in checkFault.
		after := d.Attempts[0].StartedAt.Add(faultRetryAfter)
		if dates := c.port.retryDates(); len(dates) > 0 {
			after = dates[0].Add(-time.Second)
		}
		switch {
		case d.AttemptCount > 1 && len(d.Attempts) > 1:
			if d.Attempts[1].StartedAt.Before(after) {
				t.Errorf("%s: second attempt at %s, want no sooner than %s", c.name, d.Attempts[1].StartedAt, after)
			}
		// Retrying until its timer fires, then pending (queued again) until a worker is free for
		// its second attempt, which on a busy machine with every worker held by a fault can come
		// after this look: either way nextAttemptAt is the time the timer was set for.
		case d.Status != registry.DeliveryRetrying && d.Status != registry.DeliveryPending || d.NextAttemptAt == nil:
			t.Errorf("%s: after the first attempt: status %s, %d attempts, nextAttemptAt %v; want retrying or pending, and set",
				c.name, d.Status, d.AttemptCount, d.NextAttemptAt)
		case d.NextAttemptAt.Before(after):
			t.Errorf("%s: nextAttemptAt %s, want no sooner than %s", c.name, d.NextAttemptAt, after)
		}
	}
}

func (p *faultPort) retryDates() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.afters)
}

func (p *faultPort) holdTimes() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.holds)
}

// checkFault compares one fault's delivery and endpoint with what it should have produced.
func checkFault(t *testing.T, c faultCase, d deliveryView, e endpointView) {
	t.Helper()
	w, bound := c.want, faultAttemptTimeout+faultMargin
	if d.AttemptCount != w.attempts || len(d.Attempts) != w.attempts || d.NextAttemptAt != nil {
		t.Errorf("%s: %s after %d attempts (%d listed), nextAttemptAt %v; want %d attempts, none next",
			c.name, d.Status, d.AttemptCount, len(d.Attempts), d.NextAttemptAt, w.attempts)
	}
	dates := c.port.retryDates()
	for i, a := range d.Attempts {
		if a.StatusCode != w.code || (w.errHas == "") != (a.Error == "") || !strings.Contains(a.Error, w.errHas) {
			t.Errorf("%s attempt %d: statusCode %d, error %q; want %d, %q", c.name, i+1, a.StatusCode, a.Error, w.code, w.errHas)
		}
		if a.DurationMs > bound.Milliseconds() || w.holds && a.DurationMs < (faultAttemptTimeout-50*time.Millisecond).Milliseconds() {
			t.Errorf("%s attempt %d: durationMs %d, want at most %s (and the whole timeout if it holds: %t)",
				c.name, i+1, a.DurationMs, bound, w.holds)
		}
		if w.throttle && i > 0 && a.StartedAt.Sub(d.Attempts[i-1].StartedAt) < faultRetryAfter {
			t.Errorf("%s attempt %d: started %s after the previous one, want at least %s", c.name, i+1,
				a.StartedAt.Sub(d.Attempts[i-1].StartedAt), faultRetryAfter)
		}
		if i > 0 && i <= len(dates) && a.StartedAt.Before(dates[i-1]) {
			t.Errorf("%s attempt %d: started at %s, before the Retry-After date %s", c.name, i+1, a.StartedAt, dates[i-1])
		}
	}
	if w.body != "" && d.Attempts[0].ResponseBody != w.body {
		t.Errorf("%s: responseBody has %d bytes, want %d: %.40q", c.name, len(d.Attempts[0].ResponseBody), len(w.body), w.body)
	}
	checkFaultEndpoint(t, c, e)
	for _, h := range c.port.holdTimes() {
		if h > bound {
			t.Errorf("%s: the worker held a connection %s after sending its request, want at most %s", c.name, h, bound)
		}
	}
	if n := int(c.port.conns.Load()); c.port.serve != nil && n != w.attempts {
		t.Errorf("%s: receiver got %d connections, want one per attempt (%d)", c.name, n, w.attempts)
	}
	maxMs := int64(0)
	for _, a := range d.Attempts {
		maxMs = max(maxMs, a.DurationMs)
	}
	first := d.Attempts[0]
	t.Logf("| %s | %s | %d | %d | %q | %d ms | %d body bytes | failures %d, %s |", c.name, d.Status, d.AttemptCount,
		first.StatusCode, first.Error, maxMs, len(first.ResponseBody), e.ConsecutiveFailures, e.Status)
}

func checkFaultEndpoint(t *testing.T, c faultCase, e endpointView) {
	t.Helper()
	wantStatus, wantReason, reason := registry.StatusActive, "", ""
	if c.want.gone {
		wantStatus, wantReason = registry.StatusDisabled, registry.ReasonGone
	}
	if e.DisabledReason != nil {
		reason = *e.DisabledReason
	}
	if e.ConsecutiveFailures != c.want.failures || e.Status != wantStatus || reason != wantReason {
		t.Errorf("%s: endpoint has %d consecutive failures, status %s, reason %q; want %d, %s, %q",
			c.name, e.ConsecutiveFailures, e.Status, reason, c.want.failures, wantStatus, wantReason)
	}
}

// procMemory returns a process's resident set size and its peak, in bytes.
func procMemory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the worker's memory: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		t.Fatalf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return rss, peak
}
