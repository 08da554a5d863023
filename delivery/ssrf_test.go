package delivery

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"code.dny.dev/ssrf"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
)

// The SSRF matrix: every way a webhook URL can name a destination off the public internet,
// sent through the real client (Probe for registration, Send for delivery) with a spy chained
// after the guard. The spy sees every address that would reach connect(2) and itself refuses
// anything off loopback, so a guard that let one through would fail the test without a packet
// leaving the machine. Every host name is resolved by a DNS server the test runs on 127.0.0.1.

var errOffLoopback = errors.New("connect spy: address off loopback")

// connectSpy is a dialer Control that runs after the guard.
type connectSpy struct {
	mu   sync.Mutex
	seen []string
}

func (s *connectSpy) control(network, address string, _ syscall.RawConn) error {
	s.mu.Lock()
	s.seen = append(s.seen, network+" "+address)
	s.mu.Unlock()
	if !onLoopback(address) {
		return errOffLoopback
	}
	return nil
}

// take returns and forgets what the spy saw.
func (s *connectSpy) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.seen
	s.seen = nil
	return seen
}

func onLoopback(address string) bool {
	ap, err := netip.ParseAddrPort(address)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// blockedBy tells where err stopped a request; "" if it did not (an answer came, or an error
// of another kind).
func blockedBy(err error) deliverytest.Stop {
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrBlockedAddress):
		return deliverytest.StopGuard
	case errors.As(err, &dnsErr):
		return deliverytest.StopDNS
	case errors.Is(err, errInvalidRequestURL):
		return deliverytest.StopURL
	}
	return ""
}

// ssrfClient is a delivery client resolving through dns with spy chained after its guard.
func ssrfClient(t *testing.T, dns *deliverytest.DNSServer, spy *connectSpy, allow []netip.Prefix, extraCA []byte) *http.Client {
	t.Helper()
	c, err := NewHTTPClient(ClientConfig{AllowPrivate: allow, DNSServer: dns.Addr, Control: spy.control,
		ExtraRootCAs: extraCA, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("NewHTTPClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestSSRFMatrix sends every entry both ways, with nothing allowed and with 127.0.0.0/8
// allowed (the local-testing setting, which must open loopback IPv4 and nothing else).
func TestSSRFMatrix(t *testing.T) {
	for _, run := range []struct {
		name  string
		allow []netip.Prefix
	}{
		{"nothing allowed", nil},
		{"127.0.0.0/8 allowed", loopback[:1]},
	} {
		t.Run(run.name, func(t *testing.T) {
			dns := deliverytest.NewDNSServer(t)
			spy := &connectSpy{}
			client := ssrfClient(t, dns, spy, run.allow, nil)
			tried, atProbe, atSend := 0, 0, 0
			for _, tc := range deliverytest.SSRFMatrix(dns) {
				if tc.Loopback && run.allow != nil {
					continue
				}
				tried++
				t.Run(tc.Name, func(t *testing.T) {
					err := Probe(t.Context(), client, tc.URL, "webhookd-test/1.0", 5*time.Second)
					if checkBlocked(t, "Probe", tc, err, dns) && errors.Is(err, ErrUnreachable) {
						atProbe++
					}
					res := Send(t.Context(), client, Request{URL: tc.URL, Body: []byte(`{}`)}, 5*time.Second)
					if checkBlocked(t, "Send", tc, res.Err, dns) && res.StatusCode == 0 {
						atSend++
					}
					if seen := spy.take(); len(seen) > 0 {
						t.Errorf("addresses reached connect(2): %q, want none", seen)
					}
				})
			}
			t.Logf("SSRF matrix, %s: tried %d, blocked %d at registration (Probe), tried %d, blocked %d at delivery (Send); "+
				"%d DNS queries answered by the test's server", run.name, tried, atProbe, tried, atSend, dns.TotalQueries())
			if atProbe != tried || atSend != tried {
				t.Errorf("blocked %d at registration and %d at delivery of %d tried", atProbe, atSend, tried)
			}
		})
	}
}

// checkBlocked reports whether err stopped tc the way it should, failing the test if not.
func checkBlocked(t *testing.T, op string, tc deliverytest.SSRFCase, err error, dns *deliverytest.DNSServer) bool {
	t.Helper()
	if got := blockedBy(err); got != tc.Stop {
		t.Errorf("%s(%s) = %v: stopped by %q, want %q", op, tc.URL, err, got, tc.Stop)
		return false
	}
	if tc.Stop == deliverytest.StopGuard && !strings.Contains(err.Error(), "blocked address "+tc.Dest) {
		t.Errorf("%s(%s) = %q, want it to name blocked address %s", op, tc.URL, err, tc.Dest)
		return false
	}
	if u, perr := url.Parse(tc.URL); perr == nil && strings.HasSuffix(u.Hostname(), ".example.com") &&
		dns.Queries(u.Hostname()) == 0 {
		t.Errorf("%s(%s): the test's DNS server got no query for %s", op, tc.URL, u.Hostname())
		return false
	}
	return true
}

// TestSSRFDNSRebinding: a name answers a loopback receiver while it is registered (the probe
// reaches it), then a forbidden address on every later lookup. The delivery's fresh lookup
// is refused at connect time and the receiver never sees the POST.
func TestSSRFDNSRebinding(t *testing.T) {
	var heads, posts atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
		} else {
			posts.Add(1)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	dns := deliverytest.NewDNSServer(t)
	spy := &connectSpy{}
	rebindTo := []string{"10.0.0.1", "169.254.169.254", "::1", "fd00::1", "::ffff:192.168.0.1", "64:ff9b::a9fe:a9fe"}
	blocked := 0
	tried := 0
	for _, shared := range []bool{false, true} {
		process := "separate processes"
		if shared {
			process = "one process"
		}
		for i, to := range rebindTo {
			tried++
			t.Run(process+"/"+to, func(t *testing.T) {
				name := fmt.Sprintf("rebind-%d-%t.example.com", i, shared)
				dns.Sequence(name, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, []netip.Addr{netip.MustParseAddr(to)})
				hook := fmt.Sprintf("https://%s:%d/hook", name, port)
				// With --role api and worker the two have separate connection pools; with --role
				// all they share one, and the probe must not leave its connection to be reused.
				registration := ssrfClient(t, dns, spy, loopback[:1], certPEM(srv.Certificate()))
				worker := ssrfClient(t, dns, spy, loopback[:1], certPEM(srv.Certificate()))
				if shared {
					worker = registration
				}
				headsBefore := heads.Load()
				if err := Probe(t.Context(), registration, hook, "webhookd-test/1.0", 5*time.Second); err != nil {
					t.Fatalf("Probe while the name answers 127.0.0.1 = %v, want nil", err)
				}
				if heads.Load() != headsBefore+1 {
					t.Fatalf("receiver got %d probes, want 1", heads.Load()-headsBefore)
				}
				res := Send(t.Context(), worker, Request{URL: hook, Body: []byte(`{}`)}, 5*time.Second)
				dest := deliverytest.DialedAs(to, port)
				if blockedBy(res.Err) != deliverytest.StopGuard || !strings.Contains(res.Err.Error(), "blocked address "+dest) {
					t.Fatalf("Send after rebinding = %d, %v; want blocked address %s", res.StatusCode, res.Err, dest)
				}
				blocked++
				if got := Classify(res.StatusCode, res.Header, res.Err, time.Now()); got.Kind != Failure {
					t.Errorf("Classify = %s, want failure", got.Kind)
				}
				if q := dns.Queries(name); q < 2 {
					t.Errorf("the test's DNS server got %d queries for %s, want the probe's and the delivery's", q, name)
				}
			})
		}
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("receiver got %d deliveries, want 0", n)
	}
	for _, a := range spy.take() {
		if !onLoopback(strings.Fields(a)[1]) {
			t.Errorf("%s reached connect(2)", a)
		}
	}
	t.Logf("DNS rebinding: tried %d, blocked %d at delivery; the receiver got %d probes and %d deliveries",
		tried, blocked, heads.Load(), posts.Load())
}

// TestEmbeddedIPv4Guard covers the deny rule added on top of code.dny.dev/ssrf: an IPv6
// address carrying an IPv4 address is judged by that address too, even when the operator
// allowed its IPv6 prefix (NAT64 on an IPv6-only host, say).
func TestEmbeddedIPv4Guard(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("2002::/16"),
		netip.MustParsePrefix("::ffff:0:0/96"), netip.MustParsePrefix("::/96"), netip.MustParsePrefix("::1/128")}
	library := ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV6Prefixes(allow...))
	tests := []struct {
		addr string
		want bool // allowed
	}{
		{"64:ff9b::a00:1", false}, {"64:ff9b::7f00:1", false}, {"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b::808:808", true},
		{"2002:a00:1::1", false}, {"2002:a9fe:a9fe::1", false}, {"2002:7f00:1::", false},
		{"2002:808:808::1", true},
		{"::ffff:10.0.0.1", false}, {"::ffff:8.8.8.8", true},
		{"::10.0.0.1", false}, {"::8.8.8.8", true},
		{"::1", true}, // loopback, allowed above, not the IPv4-compatible 0.0.0.1
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			address := netip.AddrPortFrom(netip.MustParseAddr(tt.addr), 443).String()
			err := dialControl(allow)("tcp6", address, nil)
			if got := err == nil; got != tt.want {
				t.Errorf("control(tcp6, %s) = %v, want allowed: %t", address, err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrBlockedAddress) {
				t.Errorf("control error %v does not wrap ErrBlockedAddress", err)
			}
			if !tt.want {
				t.Logf("code.dny.dev/ssrf alone: %v", library.Safe("tcp6", address, nil))
			}
		})
	}
}

func TestNewHTTPClientDNSServer(t *testing.T) {
	for _, bad := range []string{"127.0.0.1", "dns.example.com:53", "127.0.0.1:x", ":53"} {
		if _, err := NewHTTPClient(ClientConfig{DNSServer: bad}); !errors.Is(err, errBadDNSServer) {
			t.Errorf("NewHTTPClient(DNSServer %q) error = %v, want errBadDNSServer", bad, err)
		}
	}
	for _, good := range []string{"", "127.0.0.1:53", "[::1]:5353"} {
		if _, err := NewHTTPClient(ClientConfig{DNSServer: good}); err != nil {
			t.Errorf("NewHTTPClient(DNSServer %q) = %v, want nil", good, err)
		}
	}
}
