package delivery

import (
	"errors"
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

func TestProbeAnyStatusIsReachable(t *testing.T) {
	type seen struct{ method, userAgent string }
	got := make(chan seen, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.UserAgent()}
		status, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(status)
	}))
	defer srv.Close()
	client := newTestClient(t, srv, loopback)

	for _, status := range []int{200, 204, 301, 404, 405, 410, 500, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			url := srv.URL + "/" + strconv.Itoa(status) + "?" + secretQuery
			if err := Probe(t.Context(), client, url, "webhookd-test/1.0", time.Second); err != nil {
				t.Fatalf("Probe() = %v, want nil", err)
			}
			s := <-got
			if s.method != http.MethodHead || s.userAgent != "webhookd-test/1.0" {
				t.Errorf("server saw %s with User-Agent %q, want HEAD with webhookd-test/1.0", s.method, s.userAgent)
			}
		})
	}
}

func TestProbeUnreachable(t *testing.T) {
	trusted := httptest.NewTLSServer(http.NotFoundHandler())
	defer trusted.Close()
	var calls atomic.Int32
	counting := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) })
	untrusted := deliverytest.UntrustedTLSServer(t, counting)
	reachable := httptest.NewTLSServer(counting)
	defer reachable.Close()
	// The handler must not return when the client gives up: the client's close_notify ends
	// r.Context(), and an answer written then can still reach a transport that is closing.
	release := make(chan struct{})
	hanging := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer hanging.Close()
	defer close(release)

	tests := []struct {
		name        string
		url         string
		allow       []netip.Prefix
		timeout     time.Duration
		wantBlocked bool
	}{
		{"connection refused", "https://" + deliverytest.ClosedAddr(t), loopback, time.Second, false},
		{"untrusted certificate", untrusted.URL, loopback, time.Second, false},
		{"blocked address", reachable.URL, nil, time.Second, true},
		{"timeout", hanging.URL, loopback, 100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newTestClient(t, trusted, tt.allow)
			err := Probe(t.Context(), client, tt.url+secretPath+"?"+secretQuery, "webhookd-test/1.0", tt.timeout)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Probe() = %v, want ErrUnreachable", err)
			}
			if got := errors.Is(err, ErrBlockedAddress); got != tt.wantBlocked {
				t.Errorf("Probe() = %v, errors.Is ErrBlockedAddress = %t, want %t", err, got, tt.wantBlocked)
			}
			assertRedacted(t, err)
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("servers handled %d requests, want 0", n)
	}
}
