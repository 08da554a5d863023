package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// MaxResponseBody is how much of a receiver's answer is kept for the delivery log.
const MaxResponseBody = 4 << 10

const (
	defaultSendTimeout = 15 * time.Second
	// Draining a little more lets a keep-alive connection be reused after a chatty answer;
	// beyond this, closing the connection is cheaper than reading on.
	maxResponseDrain = 64 << 10
)

var errInvalidRequestURL = errors.New("invalid request url")

// Request is one signed POST, already built by the caller (headers include the Standard
// Webhooks signature). Send hands Header to the HTTP client as it is: the caller must not
// change or reuse it during the call.
type Request struct {
	URL    string
	Header http.Header
	Body   []byte
}

// Result is what one attempt produced. Err is set only when no response arrived; it is
// safe to store and show to the tenant (no URL path or query, no header values).
type Result struct {
	StatusCode int
	Header     http.Header
	Body       []byte // at most MaxResponseBody bytes
	Duration   time.Duration
	Err        error
}

// Send POSTs req with client, bounded by ctx and a per-attempt timeout (default 15s). It
// keeps the first MaxResponseBody bytes of the answer. An error while reading the body is
// ignored: the status line already tells the outcome.
func Send(ctx context.Context, client *http.Client, req Request, timeout time.Duration) Result {
	if timeout <= 0 {
		timeout = defaultSendTimeout
	}
	return attempt(ctx, client, http.MethodPost, req.URL, req.Header, req.Body, timeout)
}

// attemptTimeoutError is the cancellation cause of an attempt's own deadline, so a timeout
// can be told apart from the caller's context ending and reported with its length.
type attemptTimeoutError struct{ timeout time.Duration }

func (e *attemptTimeoutError) Error() string   { return fmt.Sprintf("timeout after %s", e.timeout) }
func (e *attemptTimeoutError) Timeout() bool   { return true }
func (e *attemptTimeoutError) Is(t error) bool { return t == context.DeadlineExceeded }

// redactedError shows a message known to be free of URL and header contents while keeping
// the underlying chain for errors.Is and errors.As.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func attempt(ctx context.Context, client *http.Client, method, rawURL string,
	header http.Header, body []byte, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, &attemptTimeoutError{timeout: timeout})
	defer cancel()

	var bodyReader io.Reader
	if body != nil {
		bodyReader = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, rawURL, bodyReader)
	if err != nil {
		// The parse error quotes the URL, query included.
		return Result{Err: errInvalidRequestURL}
	}
	if header != nil {
		hreq.Header = header // the request's own: every attempt builds its headers anew
	}

	start := time.Now()
	resp, err := roundTrip(client, hreq)
	if err != nil {
		return Result{Duration: time.Since(start), Err: redact(ctx, err)}
	}
	var kept []byte
	if resp.ContentLength != 0 {
		kept, _ = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	}
	// The drain is bounded by the same deadline and can wait it out on a slow receiver, so
	// the duration is taken after it: it is the time the attempt held a worker.
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponseDrain)
	_ = resp.Body.Close()
	return Result{StatusCode: resp.StatusCode, Header: resp.Header, Body: kept, Duration: time.Since(start)}
}

// roundTrip sends one request with the client's transport alone. Client.Do would copy the
// headers and keep track of redirects for every request, for a policy (never follow one) that
// the transport keeps by itself; the client has no timeout and no cookie jar to apply either
// (NewHTTPClient), every request being bounded by its context. A plain HTTP answer to a TLS
// handshake is told as Client.Do tells it.
func roundTrip(client *http.Client, req *http.Request) (*http.Response, error) {
	t := client.Transport
	if t == nil {
		t = http.DefaultTransport
	}
	resp, err := t.RoundTrip(req)
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) && string(rec.RecordHeader[:]) == "HTTP/" {
		err = http.ErrSchemeMismatch
	}
	return resp, err
}

// redact turns a transport's error into one whose message cannot leak the request: a url.Error
// (what a client, or a transport wrapping another, returns) quotes the full URL, so only its
// inner error is described, and only by known parts.
func redact(ctx context.Context, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var timeout *attemptTimeoutError
	if cause := context.Cause(ctx); errors.As(cause, &timeout) {
		return cause
	}
	if ctx.Err() != nil {
		return &redactedError{msg: "aborted: " + ctx.Err().Error(), cause: ctx.Err()}
	}
	return &redactedError{msg: describe(err), cause: err}
}

func describe(err error) string {
	var (
		opErr     *net.OpError
		dnsErr    *net.DNSError
		verifyErr *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		if errors.As(err, &opErr) && opErr.Addr != nil {
			return fmt.Sprintf("blocked address %s", opErr.Addr)
		}
		return "blocked address"
	case errors.As(err, &verifyErr):
		return verifyErr.Error()
	case errors.As(err, &dnsErr):
		// DNSError.Error also names our resolver, an internal address tenants need not see.
		return fmt.Sprintf("dns lookup %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.As(err, &opErr) && opErr.Err != nil:
		// OpError.Error adds addresses we do not need; a SyscallError already names its
		// call ("connect: connection refused"), anything else gets the operation.
		var sysErr *os.SyscallError
		if errors.As(opErr.Err, &sysErr) {
			return sysErr.Error()
		}
		return opErr.Op + ": " + opErr.Err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by receiver before a response"
	}
	return err.Error()
}
