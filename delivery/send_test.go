package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
)

// Secrets planted in request URLs and headers; no error message may contain them.
const (
	secretPath   = "/hooks/secret-path-7f3a"
	secretQuery  = "token=query-secret-91c2"
	secretHeader = "v1,header-secret-c0ffee"
)

func signedRequest(base string) Request {
	return Request{
		URL: base + secretPath + "?" + secretQuery,
		Header: http.Header{
			"Content-Type":      []string{"application/json"},
			"Webhook-Id":        []string{"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
			"Webhook-Timestamp": []string{"1674087231"},
			"Webhook-Signature": []string{secretHeader},
		},
		Body: []byte(`{"type":"scan.completed","data":{"id":42}}`),
	}
}

func assertRedacted(t *testing.T, err error) {
	t.Helper()
	for _, secret := range []string{"secret-path", "query-secret", "header-secret", "/hooks"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks %q", err, secret)
		}
	}
}

func TestSendSuccess(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusNoContent} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(status)
			}))
			defer srv.Close()
			res := Send(t.Context(), newTestClient(t, srv, loopback), signedRequest(srv.URL), time.Second)
			if res.Err != nil || res.StatusCode != status {
				t.Fatalf("Send() = status %d, err %v; want %d, nil", res.StatusCode, res.Err, status)
			}
			if res.Duration <= 0 {
				t.Errorf("Duration = %s, want > 0", res.Duration)
			}
		})
	}
}

func TestSendRoundTripsHeadersAndBody(t *testing.T) {
	type seen struct {
		method, path, query string
		header              http.Header
		body                []byte
	}
	got := make(chan seen, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header, body}
		w.Header().Set("X-Receiver", "acme")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()

	req := signedRequest(srv.URL)
	res := Send(t.Context(), newTestClient(t, srv, loopback), req, time.Second)
	if res.Err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("Send() = status %d, err %v; want 202, nil", res.StatusCode, res.Err)
	}
	if got, want := res.Header.Get("X-Receiver"), "acme"; got != want {
		t.Errorf("response header X-Receiver = %q, want %q", got, want)
	}
	if got, want := string(res.Body), `{"ok":true}`; got != want {
		t.Errorf("response body = %q, want %q", got, want)
	}

	s := <-got
	if s.method != http.MethodPost || s.path != secretPath || s.query != secretQuery {
		t.Errorf("server saw %s %s?%s, want POST %s?%s", s.method, s.path, s.query, secretPath, secretQuery)
	}
	for name, want := range req.Header {
		if got := s.header.Values(name); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("server saw header %s = %q, want %q", name, got, want)
		}
	}
	if !bytes.Equal(s.body, req.Body) {
		t.Errorf("server saw body %q, want %q", s.body, req.Body)
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()

	res := Send(t.Context(), newTestClient(t, srv, loopback), signedRequest(srv.URL), time.Second)
	if res.Err != nil || res.StatusCode != http.StatusFound {
		t.Fatalf("Send() = status %d, err %v; want 302, nil", res.StatusCode, res.Err)
	}
	if got := res.Header.Get("Location"); got != "/elsewhere" {
		t.Errorf("Location = %q, want /elsewhere", got)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect target was requested %d times, want 0", n)
	}
}

func TestSendKeepsOnlyTheStartOfALargeBody(t *testing.T) {
	const size = 10 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	done := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		// Fails part-way once the client closes the connection; either end is fine.
		_, _ = w.Write(payload)
	}))
	defer srv.Close()

	res := Send(t.Context(), newTestClient(t, srv, loopback), signedRequest(srv.URL), 5*time.Second)
	if res.Err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Send() = status %d, err %v; want 200, nil", res.StatusCode, res.Err)
	}
	if !bytes.Equal(res.Body, payload[:MaxResponseBody]) {
		t.Errorf("kept %d bytes, want the first %d of the payload", len(res.Body), MaxResponseBody)
	}
	<-done // the handler returns: its connection was closed or its write completed
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // not r.Context(): see TestProbeUnreachable
	}))
	defer srv.Close()
	defer close(release)

	res := Send(t.Context(), newTestClient(t, srv, loopback), signedRequest(srv.URL), 200*time.Millisecond)
	if res.Err == nil {
		t.Fatalf("Send() = status %d, want a timeout error", res.StatusCode)
	}
	if got, want := res.Err.Error(), "timeout after 200ms"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", res.Err)
	}
}

func TestSendCallerCancelled(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	res := Send(ctx, newTestClient(t, srv, loopback), signedRequest(srv.URL), time.Second)
	if !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("Send() error = %v, want context.Canceled", res.Err)
	}
	assertRedacted(t, res.Err)
}

func TestSendErrors(t *testing.T) {
	trusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer trusted.Close()
	var untrustedCalls atomic.Int32
	untrusted := deliverytest.UntrustedTLSServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		untrustedCalls.Add(1)
	}))

	tests := []struct {
		name    string
		url     string
		allow   []netip.Prefix
		want    string // substring of the error
		wantErr error  // nil: only the message is checked
	}{
		{"connection refused", "https://" + deliverytest.ClosedAddr(t), loopback, "connection refused", nil},
		{"untrusted certificate", untrusted.URL, loopback, "tls: failed to verify certificate", nil},
		{"plain http server", "https://" + plainHTTPAddr(t), loopback, "http", nil},
		{"blocked without allow list", untrusted.URL, nil, "blocked address 127.0.0.1", ErrBlockedAddress},
		{"unsupported scheme", "ftp://127.0.0.1", loopback, "unsupported protocol scheme", nil},
		{"bad url", "https://127.0.0.1/%zz?token=query-secret", loopback, "invalid request url", errInvalidRequestURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newTestClient(t, trusted, tt.allow)
			res := Send(t.Context(), client, signedRequest(tt.url), 2*time.Second)
			if res.Err == nil {
				t.Fatalf("Send() = status %d, want an error", res.StatusCode)
			}
			if !strings.Contains(res.Err.Error(), tt.want) {
				t.Errorf("error = %q, want it to mention %q", res.Err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(res.Err, tt.wantErr) {
				t.Errorf("error = %v, want errors.Is %v", res.Err, tt.wantErr)
			}
			if !errors.Is(tt.wantErr, ErrBlockedAddress) && errors.Is(res.Err, ErrBlockedAddress) {
				t.Errorf("error = %v, unexpectedly blocked", res.Err)
			}
			assertRedacted(t, res.Err)
		})
	}
	if n := untrustedCalls.Load(); n != 0 {
		t.Errorf("untrusted server handled %d requests, want 0", n)
	}
}

func TestSendBlockedNeverReachesServer(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	mapped := "https://" + net.JoinHostPort("::ffff:127.0.0.1", strconv.Itoa(port))

	tests := []struct {
		name  string
		url   string
		allow []netip.Prefix
	}{
		{"no allow list", srv.URL, nil},
		{"IPv4-mapped loopback", mapped, nil},
		{"other range allowed", srv.URL, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{"only v6 loopback allowed", srv.URL, loopback[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Send(t.Context(), newTestClient(t, srv, tt.allow), signedRequest(tt.url), time.Second)
			if !errors.Is(res.Err, ErrBlockedAddress) {
				t.Fatalf("Send() = status %d, err %v; want ErrBlockedAddress", res.StatusCode, res.Err)
			}
			assertRedacted(t, res.Err)
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("server handled %d requests, want 0", n)
	}
}

// TestSendIPv4MappedAllowed shows an IPv4 allow-list entry needs no IPv4-mapped twin: the
// dialer hands the guard the plain IPv4 address.
func TestSendIPv4MappedAllowed(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	mapped := "https://" + net.JoinHostPort("::ffff:127.0.0.1", strconv.Itoa(port))

	res := Send(t.Context(), newTestClient(t, srv, loopback[:1]), signedRequest(mapped), time.Second)
	if res.Err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Send() = status %d, err %v; want 200, nil", res.StatusCode, res.Err)
	}
}

// plainHTTPAddr returns the address of a server that speaks HTTP without TLS.
func plainHTTPAddr(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
