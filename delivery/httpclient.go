package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrBlockedAddress is wrapped by every dial the SSRF guard refuses, so callers can tell a
// private or otherwise forbidden destination apart from one that merely refused the connection.
var ErrBlockedAddress = errors.New("blocked address")

var errNoRootCerts = errors.New("extra root CAs: no PEM certificate found")

const (
	defaultDialTimeout         = 5 * time.Second
	defaultMaxIdleConnsPerHost = 64
	// Deliveries fan out over many tenants' hosts; the total idle pool is larger than
	// the per-host one so a few busy receivers do not evict everyone else's connections.
	clientMaxIdleConns = 512
	// Receivers are untrusted; bound what one may make us buffer before the body.
	clientMaxResponseHeaderBytes = 64 << 10
)

// ClientConfig configures NewHTTPClient. Zero values mean defaults.
type ClientConfig struct {
	// AllowPrivate lists otherwise-blocked ranges to permit, e.g. 127.0.0.0/8 and ::1/128 in
	// development (WEBHOOKD_ALLOW_PRIVATE_CIDRS).
	AllowPrivate []netip.Prefix
	// ExtraRootCAs is PEM, trusted in addition to the system roots (WEBHOOKD_EXTRA_CA_FILE).
	ExtraRootCAs []byte
	// DialTimeout bounds one TCP connect; default 5s.
	DialTimeout time.Duration
	// MaxConnsPerHost caps connections per receiver host; default 0 (unlimited).
	MaxConnsPerHost int
}

// NewHTTPClient returns the client used for deliveries and reachability probes. It refuses
// to connect to private, loopback, link-local and other special-purpose addresses (unless
// allowed by cfg.AllowPrivate), never uses a proxy, never follows redirects and has no
// client-level timeout: callers bound every request with a context deadline.
func NewHTTPClient(cfg ClientConfig) (*http.Client, error) {
	roots, err := rootCAs(cfg.ExtraRootCAs)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Transport: newTransport(cfg, roots),
		// A redirect could point anywhere, including at a host the tenant never registered.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

func newTransport(cfg ClientConfig, roots *x509.CertPool) *http.Transport {
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = defaultDialTimeout
	}
	dialer := &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		// Control runs on the resolved address right before connect(2), so a DNS answer
		// cannot change between the check and the connection.
		Control: dialControl(cfg.AllowPrivate),
	}
	return &http.Transport{
		// A proxy would make the guard check the proxy's address instead of the receiver's.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           clientMaxIdleConns,
		MaxIdleConnsPerHost:    defaultMaxIdleConnsPerHost,
		MaxConnsPerHost:        max(cfg.MaxConnsPerHost, 0),
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: clientMaxResponseHeaderBytes,
		// We only keep a few KiB of the answer; transparent gzip would just cost CPU.
		DisableCompression: true,
	}
}

// rootCAs returns nil (meaning the system roots) when there is nothing extra to trust.
func rootCAs(extraPEM []byte) (*x509.CertPool, error) {
	if len(extraPEM) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("load system root CAs: %w", err)
	}
	if !pool.AppendCertsFromPEM(extraPEM) {
		return nil, errNoRootCerts
	}
	return pool, nil
}

// dialControl builds the net.Dialer Control function enforcing the SSRF policy: TCP only,
// any port, special-purpose addresses denied unless in allow.
//
// IPv4 prefixes are not duplicated in their IPv4-mapped IPv6 form: the dialer hands Control
// the unmapped "a.b.c.d:port" on tcp4 even for a URL written as [::ffff:a.b.c.d], and a
// mapped address that does reach the guard stays blocked, which errs on the safe side.
func dialControl(allow []netip.Prefix) func(network, address string, c syscall.RawConn) error {
	var v4, v6 []netip.Prefix
	for _, p := range allow {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		} else {
			v6 = append(v6, p.Masked())
		}
	}
	guard := ssrf.New(
		ssrf.WithAnyPort(),
		ssrf.WithNetworks("tcp4", "tcp6"),
		ssrf.WithAllowedV4Prefixes(v4...),
		ssrf.WithAllowedV6Prefixes(v6...),
	)
	return func(network, address string, c syscall.RawConn) error {
		if err := guard.Safe(network, address, c); err != nil {
			return fmt.Errorf("%w: %w", ErrBlockedAddress, err)
		}
		return nil
	}
}
