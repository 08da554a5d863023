package delivery

import (
	"context"
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

var (
	errNoRootCerts  = errors.New("extra root CAs: no PEM certificate found")
	errBadDNSServer = errors.New("dns server: want ip:port")
)

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
	// DNSServer is the ip:port of the DNS server that resolves receiver hosts
	// (WEBHOOKD_DNS_SERVER), asked over UDP and TCP by Go's own resolver after /etc/hosts.
	// Empty means the system resolver.
	DNSServer string
	// Control, if set, runs right before connect(2) on every address the guard lets through;
	// an error it returns fails that dial. It can only narrow the guard, never widen it.
	Control func(network, address string, c syscall.RawConn) error
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
	if cfg.DNSServer != "" {
		if _, err := netip.ParseAddrPort(cfg.DNSServer); err != nil {
			return nil, fmt.Errorf("%w, got %q", errBadDNSServer, cfg.DNSServer)
		}
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
	control := dialControl(cfg.AllowPrivate)
	if next := cfg.Control; next != nil {
		guard := control
		control = func(network, address string, c syscall.RawConn) error {
			if err := guard(network, address, c); err != nil {
				return err
			}
			return next(network, address, c)
		}
	}
	dialer := &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		// Control runs on the resolved address right before connect(2), so a DNS answer
		// cannot change between the check and the connection.
		Control:  control,
		Resolver: resolver(cfg.DNSServer, dialTimeout),
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

// resolver returns nil (the system resolver) when server is empty, else Go's resolver asking
// only server. Its own connections are not guarded: an internal DNS server is normal, and
// the guard checks every address the answers lead to.
func resolver(server string, timeout time.Duration) *net.Resolver {
	if server == "" {
		return nil
	}
	d := &net.Dialer{Timeout: timeout}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		},
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
// any port, special-purpose addresses denied unless in allow. code.dny.dev/ssrf does the
// checking: it denies the IANA special-purpose IPv4 ranges and every IPv6 address outside
// 2000::/3 (loopback, ULA, link-local, multicast, IPv4-mapped and -compatible, NAT64) or in
// the special-purpose ranges inside it (6to4, Teredo, documentation).
//
// On top of the library, an IPv6 address that carries an IPv4 address by a fixed rule
// (see embeddedIPv4) must also pass the IPv4 policy. The library checks such an address only
// by its IPv6 prefix, so allowing, say, 64:ff9b::/96 for DNS64/NAT64 would otherwise let
// 64:ff9b::a9fe:a9fe through to 169.254.169.254 on the NAT64 gateway's side.
//
// IPv4 prefixes are not duplicated in their IPv4-mapped IPv6 form: the dialer hands Control
// the unmapped "a.b.c.d:port" on tcp4 even for a URL written as [::ffff:a.b.c.d], and a
// mapped address that does reach the guard is judged by its IPv4 address as well.
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
		// Safe has parsed address already; a failure here is impossible.
		ap, _ := netip.ParseAddrPort(address)
		if v4, ok := embeddedIPv4(ap.Addr()); ok {
			if err := guard.SafeAddr(v4); err != nil {
				return fmt.Errorf("%w: %s carries %s: %w", ErrBlockedAddress, ap.Addr(), v4, err)
			}
		}
		return nil
	}
}

var (
	// mappedOrCompatible is ::/80: IPv4-mapped ::ffff:0:0/96 (RFC 4291) and the deprecated
	// IPv4-compatible ::/96 both keep the IPv4 address in the low 32 bits.
	mappedOrCompatible = netip.MustParsePrefix("::/80")
	// nat64 is the NAT64 well-known prefix (RFC 6052): IPv4 in the low 32 bits.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// sixToFour is 6to4 (RFC 3056): 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD.
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address carries in one of the fixed forms
// above. Network-specific NAT64 prefixes and Teredo are not recognised: the first are
// chosen by each network, the second obfuscates its address and is denied by the library.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	// :: and ::1 are the unspecified and loopback addresses, not IPv4-compatible ones.
	if !ip.Is6() || ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case mappedOrCompatible.Contains(ip) && (b[10] == 0xff && b[11] == 0xff || b[10] == 0 && b[11] == 0):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
