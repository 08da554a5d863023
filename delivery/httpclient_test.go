package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"code.dny.dev/ssrf"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func certPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// newTestClient returns a client that trusts srv's certificate and, if allow is set,
// may connect to those otherwise-blocked ranges.
func newTestClient(t *testing.T, srv *httptest.Server, allow []netip.Prefix) *http.Client {
	t.Helper()
	client, err := NewHTTPClient(ClientConfig{AllowPrivate: allow, ExtraRootCAs: certPEM(srv.Certificate())})
	if err != nil {
		t.Fatalf("NewHTTPClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return client
}

func TestDialControlMatrix(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "::1", "0.0.0.0", "10.0.0.1", "172.16.0.1", "192.168.1.1",
		"169.254.169.254", "100.64.0.1", "198.18.0.1", "224.0.0.1", "fc00::1", "fe80::1",
		"::ffff:127.0.0.1", "64:ff9b::a00:1",
	}
	tests := []struct {
		name  string
		allow []netip.Prefix
		addr  string
		want  bool // allowed
	}{
		{name: "public v4 passes", addr: "8.8.8.8", want: true},
		{name: "public v6 passes", addr: "2001:4860:4860::8888", want: true},
		{name: "allowed loopback passes", allow: loopback[:1], addr: "127.0.0.1", want: true},
		{name: "allowed loopback, other loopback ip", allow: loopback[:1], addr: "127.8.9.10", want: true},
		{name: "allowed loopback, private still blocked", allow: loopback[:1], addr: "10.0.0.1", want: false},
		{name: "allowed v4 loopback, v6 loopback still blocked", allow: loopback[:1], addr: "::1", want: false},
		{name: "allowed v6 loopback passes", allow: loopback[1:], addr: "::1", want: true},
		{name: "allowed unmasked prefix", allow: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}, addr: "10.1.200.1", want: true},
	}
	for _, a := range blocked {
		tests = append(tests, struct {
			name  string
			allow []netip.Prefix
			addr  string
			want  bool
		}{name: "blocks " + a, addr: a, want: false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.addr)
			network := "tcp4"
			if ip.Is6() {
				network = "tcp6"
			}
			address := netip.AddrPortFrom(ip, 8443).String()
			err := dialControl(tt.allow)(network, address, nil)
			if got := err == nil; got != tt.want {
				t.Fatalf("control(%s, %s) = %v, want allowed: %t", network, address, err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("control error %v does not wrap ErrBlockedAddress", err)
			}
		})
	}
}

func TestDialControlTCPOnly(t *testing.T) {
	for _, network := range []string{"udp4", "udp6", "udp", "unix", "ip4"} {
		t.Run(network, func(t *testing.T) {
			err := dialControl(nil)(network, "8.8.8.8:53", nil)
			if !errors.Is(err, ErrBlockedAddress) || !errors.Is(err, ssrf.ErrProhibitedNetwork) {
				t.Errorf("control(%s) = %v, want ErrBlockedAddress and ErrProhibitedNetwork", network, err)
			}
		})
	}
}

func TestNewHTTPClientConfig(t *testing.T) {
	client, err := NewHTTPClient(ClientConfig{MaxConnsPerHost: 8})
	if err != nil {
		t.Fatalf("NewHTTPClient: %v", err)
	}
	tr, ok := client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T, want *http.Transport", client.Transport)
	}
	if tr.Proxy != nil {
		t.Error("Transport.Proxy is set; a proxy would bypass the address guard")
	}
	if !tr.DisableCompression || !tr.ForceAttemptHTTP2 {
		t.Errorf("DisableCompression = %t, ForceAttemptHTTP2 = %t, want both true", tr.DisableCompression, tr.ForceAttemptHTTP2)
	}
	if got := tr.TLSClientConfig.MinVersion; got != tls.VersionTLS12 {
		t.Errorf("TLS MinVersion = %#x, want TLS 1.2", got)
	}
	if tr.MaxConnsPerHost != 8 || tr.MaxIdleConnsPerHost != 64 {
		t.Errorf("MaxConnsPerHost = %d, MaxIdleConnsPerHost = %d, want 8, 64", tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost)
	}
	if client.Timeout != 0 {
		t.Errorf("client Timeout = %s, want 0 (per-request contexts)", client.Timeout)
	}
	if err := client.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
}

func TestNewHTTPClientRootCAs(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	tests := []struct {
		name    string
		pem     []byte
		wantErr error
	}{
		{"none", nil, nil},
		{"certificate", certPEM(srv.Certificate()), nil},
		{"no pem", []byte("not a certificate"), errNoRootCerts},
		{"key only", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), errNoRootCerts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHTTPClient(ClientConfig{ExtraRootCAs: tt.pem})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("NewHTTPClient() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
