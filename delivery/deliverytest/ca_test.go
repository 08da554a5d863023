package deliverytest_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
)

// TestAuthorityCertificates: a client trusting an Authority's PEM certificate (as webhookd
// does through WEBHOOKD_EXTRA_CA_FILE) accepts the server certificates it issues, also after
// the CA was written out and read back (webhookbench --ca-dir), and refuses UntrustedCert.
func TestAuthorityCertificates(t *testing.T) {
	a, err := deliverytest.NewAuthority("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := a.PEM()
	if err != nil {
		t.Fatal(err)
	}
	reread, err := deliverytest.ParseAuthority(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatal("the CA's PEM holds no certificate")
	}
	issue := func(a *deliverytest.Authority) tls.Certificate {
		c, err := a.Issue()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name    string
		cert    tls.Certificate
		roots   *x509.CertPool
		trusted bool
	}{
		{"issued, trusted by PEM", issue(a), roots, true},
		{"issued, trusted by Pool", issue(a), a.Pool(), true},
		{"issued by the CA read back from PEM", issue(reread), roots, true},
		{"untrusted", deliverytest.UntrustedCert(t), roots, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
			srv.StartTLS()
			defer srv.Close()
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.roots}}}
			resp, err := hc.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			if got := err == nil; got != tc.trusted {
				t.Errorf("GET %s: %v; want trusted = %v", srv.URL, err, tc.trusted)
			}
		})
	}
}
