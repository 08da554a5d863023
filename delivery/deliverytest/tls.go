package deliverytest

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// UntrustedCert returns a server certificate for 127.0.0.1 and ::1 issued by a fresh CA
// that nothing trusts. Every httptest TLS server shares one certificate, so a test that
// trusts one of them trusts them all; this one stays untrusted.
func UntrustedCert(tb testing.TB) tls.Certificate {
	tb.Helper()
	a, err := NewAuthority("untrusted")
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := a.Issue()
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// UntrustedTLSServer serves h over TLS with an UntrustedCert on 127.0.0.1, closed at cleanup.
func UntrustedTLSServer(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{UntrustedCert(tb)}}
	// The failed handshakes are the point of this server; keep them out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

// ClosedAddr returns a loopback host:port that nothing listens on: connecting to it is refused.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}
