package delivery

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
)

// The receiver fault matrix at the level of one attempt: each fault gets one signed POST
// through the real client, the result is classified as the worker does, and no attempt may
// outlast its timeout by more than faultMargin. Every fault's connection must then be closed by
// the client: at once once Send returns, except in the TLS handshake, which net/http lets finish
// in the background (bounded by the transport's TLS handshake timeout) for a later request.

const (
	faultTimeout = 2 * time.Second
	// faultMargin covers handshakes, the body drain and scheduling on a busy machine. It is
	// a bound on a recorded duration, not a speed target.
	faultMargin = 8 * time.Second
	// hugeBody is the size a receiver announces and starts sending for the large-body fault.
	hugeBody = 100 << 20
)

// tcpFault is a TCP listener on 127.0.0.1 whose connections are handled raw, for faults an
// http.Handler cannot make: resets, stalls, bytes that are not TLS.
type tcpFault struct {
	url      string
	accepted atomic.Int32
	ended    atomic.Int32 // handlers returned, so their connection is closed
	sent     atomic.Int64 // body bytes written by the large-body fault
}

// newTCPFault starts a listener whose every connection runs handle; the connection is closed
// when handle returns, and all of them when the test ends.
func newTCPFault(t *testing.T, handle func(f *tcpFault, c *net.TCPConn)) *tcpFault {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tcpFault{url: "https://" + ln.Addr().String() + "/hooks/fault"}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer f.ended.Add(1)
				defer c.Close()
				handle(f, c.(*net.TCPConn))
			})
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepting
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

// faultTLS is the server side of the certificate the fault client trusts; it offers HTTP/1.1
// only, so the faults below can write the protocol by hand.
var faultTLS = sync.OnceValue(func() *tls.Config {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return &tls.Config{Certificates: srv.TLS.Certificates, NextProtos: []string{"http/1.1"}}
})

// readPOST does the TLS handshake on c and reads one whole request.
func readPOST(c *net.TCPConn) (*tls.Conn, error) {
	tc := tls.Server(c, faultTLS())
	req, err := http.ReadRequest(bufio.NewReader(tc))
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return tc, err
}

// head is a response head that ends the connection after the answer.
func head(status int, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nConnection: close\r\n", status, http.StatusText(status))
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	return b.String() + "\r\n"
}

// respond writes raw after the request, then runs then (if set) before the connection closes.
func respond(raw string, then func(c *net.TCPConn, tc *tls.Conn)) func(*tcpFault, *net.TCPConn) {
	return func(_ *tcpFault, c *net.TCPConn) {
		tc, err := readPOST(c)
		if err != nil {
			return
		}
		if _, err := io.WriteString(tc, raw); err == nil && then != nil {
			then(c, tc)
		}
	}
}

func answer(raw string) func(*tcpFault, *net.TCPConn) { return respond(raw, nil) }

// resetAfter writes the start of an answer, then resets the connection (SO_LINGER 0).
func resetAfter(partial string) func(*tcpFault, *net.TCPConn) {
	return respond(partial, func(c *net.TCPConn, _ *tls.Conn) {
		// Let the client read what was written before the reset reaches it.
		time.Sleep(100 * time.Millisecond)
		_ = c.SetLinger(0)
	})
}

// stall writes prefix (if any) after the request, then reads until the client hangs up.
func stall(prefix string) func(*tcpFault, *net.TCPConn) {
	return respond(prefix, func(_ *net.TCPConn, tc *tls.Conn) { _, _ = io.Copy(io.Discard, tc) })
}

// trickle answers 200 and then one body byte every 100ms until the client hangs up.
var trickle = respond(head(http.StatusOK, "Content-Type: text/plain"), dribble)

// dribble writes one byte every 100ms until the client hangs up.
func dribble(_ *net.TCPConn, tc *tls.Conn) {
	for i := 0; ; i++ {
		if _, err := tc.Write([]byte{'a' + byte(i%26)}); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hundredMegabytes announces a 100 MiB body and sends it from one small buffer until done or
// until the client hangs up.
func hundredMegabytes(f *tcpFault, c *net.TCPConn) {
	tc, err := readPOST(c)
	if err != nil {
		return
	}
	if _, err := io.WriteString(tc, head(http.StatusOK, fmt.Sprintf("Content-Length: %d", hugeBody))); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048)
	for f.sent.Load() < hugeBody {
		n, err := tc.Write(chunk)
		f.sent.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// handshakeFault reads the ClientHello, answers reply instead of a ServerHello (nothing if
// empty), then ends its side and waits for the client to hang up.
func handshakeFault(reply []byte, hold bool) func(*tcpFault, *net.TCPConn) {
	return func(_ *tcpFault, c *net.TCPConn) {
		if _, err := c.Read(make([]byte, 4096)); err != nil {
			return
		}
		if len(reply) > 0 {
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
		if !hold {
			_ = c.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, c)
	}
}

// tlsHandshakeFailureAlert is a TLS 1.2 record carrying a fatal handshake_failure alert.
var tlsHandshakeFailureAlert = []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}

// faultClient trusts faultTLS's certificate and may connect to loopback.
func faultClient(t *testing.T) *http.Client {
	t.Helper()
	client, err := NewHTTPClient(ClientConfig{AllowPrivate: loopback,
		ExtraRootCAs: certPEM(faultTLS().Certificates[0].Leaf)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

// faultNow is the clock Classify is given, so HTTP-date Retry-After values are exact.
var faultNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type faultCase struct {
	name   string
	handle func(*tcpFault, *net.TCPConn) // nil: url is set instead
	url    func(t *testing.T) string
	kind   OutcomeKind
	status int
	errHas string // substring of the error stored for the attempt; empty: no error
	after  time.Duration
	hangs  bool // holds the attempt until the timeout
}

func faultCases(redirectTarget string) []faultCase {
	const retryDate = "Wed, 02 Jan 2030 03:05:35 GMT" // faultNow + 90s
	return []faultCase{
		{name: "500", handle: answer(head(500, "Content-Length: 4") + "oops"), kind: Failure, status: 500, errHas: "unexpected status HTTP 500"},
		{name: "502", handle: answer(head(502, "Content-Length: 0")), kind: Failure, status: 502, errHas: "unexpected status HTTP 502"},
		{name: "400", handle: answer(head(400, "Content-Length: 0")), kind: Failure, status: 400, errHas: "unexpected status HTTP 400"},
		{name: "404", handle: answer(head(404, "Content-Length: 0")), kind: Failure, status: 404, errHas: "unexpected status HTTP 404"},
		{name: "410", handle: answer(head(410, "Content-Length: 0")), kind: Gone, status: 410, errHas: "unexpected status HTTP 410"},
		{name: "429 Retry-After seconds", handle: answer(head(429, "Retry-After: 7", "Content-Length: 0")),
			kind: Throttled, status: 429, errHas: "unexpected status HTTP 429", after: 7 * time.Second},
		{name: "429 without Retry-After", handle: answer(head(429, "Content-Length: 0")), kind: Failure, status: 429, errHas: "HTTP 429"},
		{name: "503 Retry-After HTTP-date", handle: answer(head(503, "Retry-After: "+retryDate, "Content-Length: 0")),
			kind: Throttled, status: 503, errHas: "unexpected status HTTP 503", after: 90 * time.Second},
		{name: "connection refused", url: func(t *testing.T) string { return "https://" + deliverytest.ClosedAddr(t) }, kind: Failure, errHas: "connect: connection refused"},
		// A line cut by the reset is parsed as it stands; a reset between lines is a read error.
		{name: "reset in the status line", handle: resetAfter("HTTP/1.1 20"), kind: Failure, errHas: `malformed HTTP status code "20"`},
		{name: "reset in the headers", handle: resetAfter("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"), kind: Failure, errHas: "read: connection reset by peer"},
		// The status arrived: the reset only cuts the body short, which Send ignores.
		{name: "reset in the body", handle: resetAfter(head(200, "Content-Length: 100") + "partial"), kind: Success, status: 200},
		{name: "TLS handshake_failure alert", handle: handshakeFault(tlsHandshakeFailureAlert, false), kind: Failure, errHas: "tls: handshake failure"},
		{name: "TLS garbage", handle: handshakeFault([]byte("garbage that is not TLS\r\n"), false), kind: Failure, errHas: "tls: "},
		{name: "TLS closed in handshake", handle: handshakeFault(nil, false), kind: Failure, errHas: "connection closed by receiver"},
		{name: "TLS silent in handshake", handle: handshakeFault(nil, true), kind: Failure, errHas: "timeout after 2s", hangs: true},
		{name: "untrusted certificate", url: func(t *testing.T) string {
			return deliverytest.UntrustedTLSServer(t, http.NotFoundHandler()).URL
		}, kind: Failure, errHas: "tls: failed to verify certificate"},
		{name: "response never starts", handle: stall(""), kind: Failure, errHas: "timeout after 2s", hangs: true},
		{name: "headers never end", handle: stall("HTTP/1.1 200 OK\r\n"), kind: Failure, errHas: "timeout after 2s", hangs: true},
		// The status arrived; the body read ends at the deadline and its error is ignored.
		{name: "body trickles forever", handle: trickle, kind: Success, status: 200, hangs: true},
		// The kept 4 KiB arrive at once; the drain that follows waits out the deadline, and the
		// recorded duration says so.
		{name: "4 KiB then a trickle", handle: respond(head(http.StatusOK)+strings.Repeat("x", MaxResponseBody), dribble),
			kind: Success, status: 200, hangs: true},
		{name: "302 to a private http URL", handle: answer(head(302, "Location: http://10.0.0.1/", "Content-Length: 0")),
			kind: Failure, status: 302, errHas: "redirect not followed (HTTP 302)"},
		{name: "302 to a loopback https URL", handle: answer(head(302, "Location: "+redirectTarget, "Content-Length: 0")),
			kind: Failure, status: 302, errHas: "redirect not followed (HTTP 302)"},
	}
}

func TestSendFaultMatrix(t *testing.T) {
	client := faultClient(t)
	target := newTCPFault(t, answer(head(200, "Content-Length: 0")))
	for _, tc := range faultCases(target.url) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var f *tcpFault
			url := ""
			if tc.handle != nil {
				f = newTCPFault(t, tc.handle)
				url = f.url
			} else {
				url = tc.url(t)
			}
			began := time.Now()
			res := Send(t.Context(), client, signedRequest(url), faultTimeout)
			took := time.Since(began)
			out := Classify(res.StatusCode, res.Header, res.Err, faultNow)
			t.Logf("%s: outcome %s, status %d, error %q, duration %s, Send returned after %s",
				tc.name, out.Kind, res.StatusCode, attemptError(res), res.Duration.Round(time.Millisecond), took.Round(time.Millisecond))

			if out.Kind != tc.kind || out.RetryAfter != tc.after || res.StatusCode != tc.status {
				t.Errorf("outcome %s (retry after %s), status %d; want %s (%s), %d",
					out.Kind, out.RetryAfter, res.StatusCode, tc.kind, tc.after, tc.status)
			}
			if got := attemptError(res); (tc.errHas == "") != (got == "") || !strings.Contains(got, tc.errHas) {
				t.Errorf("attempt error = %q, want one containing %q", got, tc.errHas)
			}
			if res.Err != nil {
				assertRedacted(t, res.Err)
			}
			if bound := faultTimeout + faultMargin; res.Duration > bound || took > bound {
				t.Errorf("attempt took %s (recorded %s), beyond the %s timeout plus %s", took, res.Duration, faultTimeout, faultMargin)
			}
			// Send's clock starts a little before the timeout's: nine tenths of it is held enough.
			if tc.hangs && res.Duration < faultTimeout*9/10 {
				t.Errorf("recorded duration %s, want about the whole %s timeout: the fault did not hold the attempt",
					res.Duration, faultTimeout)
			}
			if f != nil {
				// The receiver's side ends only when the client has closed the connection.
				eventually(t, "the receiver's connection to close", func() bool {
					return f.accepted.Load() > 0 && f.ended.Load() == f.accepted.Load()
				})
				t.Logf("%s: receiver's connection closed %s after Send returned", tc.name, time.Since(began.Add(took)).Round(10*time.Millisecond))
			}
		})
	}
	t.Cleanup(func() {
		if n := target.accepted.Load(); n != 0 {
			t.Errorf("redirect target got %d connections, want 0", n)
		}
	})
}

// TestSendTrickledBodyKeepsWhatArrived: the body that trickled in before the deadline is kept.
func TestSendTrickledBodyKeepsWhatArrived(t *testing.T) {
	t.Parallel()
	f := newTCPFault(t, trickle)
	res := Send(t.Context(), faultClient(t), signedRequest(f.url), faultTimeout)
	if res.Err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Send() = status %d, err %v; want 200, nil", res.StatusCode, res.Err)
	}
	// One byte per 100ms over 2s: about 20; at least one, never the 4 KiB limit.
	if n := len(res.Body); n < 1 || n >= MaxResponseBody || !strings.HasPrefix("abcdefghijklmnopqrstuvwxyz", string(res.Body[:min(n, 26)])) {
		t.Errorf("kept body %q (%d bytes), want the first trickled bytes", res.Body, n)
	}
}

// TestSendHundredMegabyteBody: a 100 MiB answer keeps 4 KiB and costs the client no more than
// a few MiB of allocation, however much the receiver manages to push. Not parallel, so the
// allocation counter sees this attempt alone.
func TestSendHundredMegabyteBody(t *testing.T) {
	f := newTCPFault(t, hundredMegabytes)
	client := faultClient(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := Send(t.Context(), client, signedRequest(f.url), faultTimeout)
	runtime.ReadMemStats(&after)
	eventually(t, "the receiver to stop sending", func() bool { return f.ended.Load() == 1 })
	runtime.GC()
	var settled runtime.MemStats
	runtime.ReadMemStats(&settled)

	if res.Err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Send() = status %d, err %v; want 200, nil", res.StatusCode, res.Err)
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), MaxResponseBody/16)
	if !bytes.Equal(res.Body, want) {
		t.Errorf("kept %d bytes, want the first %d of the body", len(res.Body), MaxResponseBody)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("100 MiB body: receiver sent %d bytes before the client hung up; allocated during Send %d KiB; "+
		"heap in use %d KiB before, %d KiB after", f.sent.Load(), alloc>>10, before.HeapInuse>>10, settled.HeapInuse>>10)
	if alloc > 16<<20 {
		t.Errorf("Send allocated %d MiB for a 100 MiB body, want under 16 MiB (the body must not be buffered)", alloc>>20)
	}
	if f.sent.Load() >= hugeBody {
		t.Errorf("the receiver sent all %d bytes: the client read the whole body", f.sent.Load())
	}
}
