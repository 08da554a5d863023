package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// The SSRF matrix end to end. webhookd resolves every host through a DNS server the test runs
// on 127.0.0.1 (WEBHOOKD_DNS_SERVER), and every connect(2) of its webhook client first passes
// a spy, installed for the whole test binary (webhookd child processes included), that records
// and refuses any address off loopback: were the guard to let one through, the test fails and
// no packet leaves the machine.

// spyMark starts the line a webhookd child process writes when the spy refuses an address.
const spyMark = "TEST SPY: connect off loopback refused:"

var offLoopback = &offLoopbackSpy{}

func init() { dialCheck = offLoopback.control }

type offLoopbackSpy struct {
	mu   sync.Mutex
	seen []string
}

func (s *offLoopbackSpy) control(network, address string, _ syscall.RawConn) error {
	if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr().Unmap().IsLoopback() {
		return nil
	}
	s.mu.Lock()
	s.seen = append(s.seen, network+" "+address)
	s.mu.Unlock()
	fmt.Fprintln(os.Stderr, spyMark, network, address)
	return errors.New("test spy: connect off loopback refused")
}

// check fails the test if any address off loopback got past the guard in this process.
func (s *offLoopbackSpy) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) > 0 {
		t.Errorf("addresses off loopback got past the guard to connect(2): %q", s.seen)
	}
}

// refusedURL reports whether r is an answer a registration of a forbidden URL may get.
func refusedURL(r reply) bool {
	return r.Status == http.StatusBadRequest && !r.Env.Success &&
		(r.Env.Code == "INVALID_WEBHOOK_URL" && r.Env.Error == "Webhook URL must use HTTPS" ||
			r.Env.Code == "WEBHOOK_URL_UNREACHABLE" && r.Env.Error == "Could not reach webhook URL")
}

// ssrfStack is a deployment resolving through dns, allowing allow (may be empty), giving up a
// delivery after two attempts.
func ssrfStack(t *testing.T, dns *deliverytest.DNSServer, allow string) *stack {
	t.Helper()
	return newStack(t, map[string]string{"WEBHOOKD_ALLOW_PRIVATE_CIDRS": allow, "WEBHOOKD_DNS_SERVER": dns.Addr,
		"WEBHOOKD_MAX_ATTEMPTS": "2"})
}

// receiverAt returns rc's URL with its host replaced by name.
func receiverAt(t *testing.T, rc *deliverytest.Receiver, name string) string {
	t.Helper()
	u, err := url.Parse(rc.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = name + ":" + u.Port()
	return u.String()
}

// TestSSRFRegistrationMatrix: creating an endpoint with, or changing one's URL to, any entry
// of the matrix answers 400 INVALID_WEBHOOK_URL or WEBHOOK_URL_UNREACHABLE, never 201 or 200,
// with nothing allowed and with 127.0.0.0/8 allowed (then loopback entries are left out).
func TestSSRFRegistrationMatrix(t *testing.T) {
	t.Parallel()
	dns := deliverytest.NewDNSServer(t)
	cases := deliverytest.SSRFMatrix(dns)
	dns.Set("hooks.example.com", netip.MustParseAddr("127.0.0.1"))
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	hook := receiverAt(t, rc, "hooks.example.com")
	for _, run := range []struct{ name, allow string }{
		{"nothing allowed", ""},
		{"127.0.0.0/8 allowed", "127.0.0.0/8"},
	} {
		t.Run(run.name, func(t *testing.T) {
			st := ssrfStack(t, dns, run.allow)
			svc := st.start(t, "--role", "api")
			tid, key := st.tenant(t)
			events := []string{registry.EventScanCompleted}
			var eid string
			if run.allow == "" {
				// The receiver is on loopback, which is not allowed: register it behind the API's back.
				svc.call(t, key, http.MethodPost, "/api/v1/webhooks", map[string]any{"url": hook, "events": events}).
					wantError(t, http.StatusBadRequest, "WEBHOOK_URL_UNREACHABLE", "Could not reach webhook URL")
				e, err := st.store.CreateEndpoint(t.Context(), tid, registry.NewEndpoint{URL: hook, Events: events,
					Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
				if err != nil {
					t.Fatal(err)
				}
				eid = e.ID
			} else {
				// Allowed loopback through a name of the test's DNS server: the setting works.
				eid = svc.createEndpoint(t, key, hook, events, nil).ID
			}
			tried, atPost, atPatch, codes := 0, 0, 0, map[string]int{}
			for _, tc := range cases {
				if tc.Loopback && run.allow != "" {
					continue
				}
				tried++
				post := svc.call(t, key, http.MethodPost, "/api/v1/webhooks", map[string]any{"url": tc.URL, "events": events})
				patch := svc.call(t, key, http.MethodPatch, "/api/v1/webhooks/"+eid, map[string]any{"url": tc.URL})
				for _, r := range []struct {
					op string
					r  reply
					n  *int
				}{{"POST", post, &atPost}, {"PATCH", patch, &atPatch}} {
					if !refusedURL(r.r) {
						t.Errorf("%s: %s url %q = %d %s, want 400 INVALID_WEBHOOK_URL or WEBHOOK_URL_UNREACHABLE",
							tc.Name, r.op, tc.URL, r.r.Status, r.r.Body)
						continue
					}
					*r.n++
					codes[r.r.Env.Code]++
				}
			}
			if got := svc.endpoint(t, key, eid).URL; got != hook {
				t.Errorf("endpoint URL = %q after the refused changes, want %q", got, hook)
			}
			var list []endpointView
			svc.call(t, key, http.MethodGet, "/api/v1/webhooks?limit=100", nil).want(t, http.StatusOK, &list)
			if len(list) != 1 {
				t.Errorf("tenant has %d endpoints, want the 1 registered before the matrix", len(list))
			}
			t.Logf("SSRF registration, %s: tried %d, blocked %d at POST and %d at PATCH (%v); %d DNS queries answered by the test's server",
				run.name, tried, atPost, atPatch, codes, dns.TotalQueries())
			if atPost != tried || atPatch != tried {
				t.Errorf("blocked %d POST and %d PATCH of %d tried", atPost, atPatch, tried)
			}
			offLoopback.check(t)
		})
	}
}

// hostile is an endpoint whose name answered the loopback receiver at registration and now
// answers a forbidden address.
type hostile struct {
	name, addr string
	ep         endpointView
}

// registerHostile registers, for each target off loopback, one name whose answer the test
// changes after registration and one rebinding name (the test's DNS server answers 127.0.0.1
// on the first lookup, the probe's, and the target on every later one). It returns them once
// every name answers its target.
func registerHostile(t *testing.T, svc *service, key string, dns *deliverytest.DNSServer, rc *deliverytest.Receiver,
	targets []string) []hostile {
	t.Helper()
	loop := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	var out []hostile
	for i, addr := range targets {
		target := []netip.Addr{netip.MustParseAddr(addr)}
		changed, rebind := fmt.Sprintf("changed-%d.example.com", i), fmt.Sprintf("rebind-%d.example.com", i)
		dns.Set(changed, loop...)
		dns.Sequence(rebind, loop, target)
		for _, name := range []string{changed, rebind} {
			ep := svc.createEndpoint(t, key, receiverAt(t, rc, name), []string{registry.EventScanCompleted}, nil)
			out = append(out, hostile{name: name, addr: addr, ep: ep})
		}
		dns.Set(changed, target...)
	}
	return out
}

// wantBlockedDeliveries waits for each hostile endpoint's delivery of evid to fail and checks
// that every attempt is recorded with the blocked address; it returns how many were.
func wantBlockedDeliveries(t *testing.T, svc *service, key, evid string, port int, hs []hostile) int {
	t.Helper()
	blocked := 0
	for _, h := range hs {
		d := svc.waitDelivery(t, key, h.ep.ID, evid, registry.DeliveryFailed)
		want := "blocked address " + deliverytest.DialedAs(h.addr, port)
		ok := len(d.Attempts) == 2
		for _, a := range d.Attempts {
			ok = ok && a.Error == want && a.StatusCode == 0
		}
		if !ok {
			t.Errorf("%s (%s): attempts %+v, want 2 failed with error %q", h.name, h.addr, d.Attempts, want)
			continue
		}
		blocked++
	}
	return blocked
}

func receiverPort(t *testing.T, rc *deliverytest.Receiver) int {
	t.Helper()
	u, err := url.Parse(rc.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestSSRFDeliveryAfterRegistration: names registered while they answered the (allowed)
// loopback receiver, then answering each forbidden address, by a changed record or by DNS
// rebinding. Every delivery fails with "blocked address ..." in its delivery log and the
// receiver gets no POST. The API and the worker run as separate services, each with its own
// connection pool, as in a deployment with --role api and --role worker.
func TestSSRFDeliveryAfterRegistration(t *testing.T) {
	t.Parallel()
	dns := deliverytest.NewDNSServer(t)
	st := ssrfStack(t, dns, "127.0.0.0/8")
	svc := st.start(t, "--role", "api")
	st.start(t, "--role", "worker")
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	var targets []string
	for _, pt := range deliverytest.PrivateTargets {
		if !pt.Loopback {
			targets = append(targets, pt.Addr)
		}
	}
	hs := registerHostile(t, svc, key, dns, rc, targets)
	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	blocked := wantBlockedDeliveries(t, svc, key, ev.ID, receiverPort(t, rc), hs)
	if n := rc.Count(); n != 0 {
		t.Errorf("receiver got %d POSTs, want 0", n)
	}
	for _, h := range hs {
		if q := dns.Queries(h.name); q < 4 { // A and AAAA for the probe and for each attempt
			t.Errorf("the test's DNS server got %d queries for %s, want at least 4", q, h.name)
		}
	}
	t.Logf("SSRF delivery: tried %d, blocked %d (%d targets, each by a changed record and by rebinding); receiver got %d POSTs",
		len(hs), blocked, len(targets), rc.Count())
	offLoopback.check(t)
}

// TestSSRFRebindingRealBinary: the same with webhookd's API and worker as child processes
// configured only by their environment.
func TestSSRFRebindingRealBinary(t *testing.T) {
	t.Parallel()
	dns := deliverytest.NewDNSServer(t)
	st := ssrfStack(t, dns, "127.0.0.0/8")
	apiProc, svc := st.startAPIProcess(t)
	worker := st.startProcess(t, "serve", "--role", "worker")
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	targets := []string{"169.254.169.254", "10.0.0.1", "fd00::1", "::ffff:192.168.0.1"}
	hs := registerHostile(t, svc, key, dns, rc, targets)
	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	blocked := wantBlockedDeliveries(t, svc, key, ev.ID, receiverPort(t, rc), hs)
	if n := rc.Count(); n != 0 {
		t.Errorf("receiver got %d POSTs, want 0", n)
	}
	for name, p := range map[string]*process{"api": apiProc, "worker": worker} {
		if out := p.output.String(); strings.Contains(out, spyMark) {
			t.Errorf("an address off loopback got past the %s process's guard:\n%s", name, tail(out, 4000))
		}
	}
	t.Logf("SSRF delivery, child processes: tried %d, blocked %d", len(hs), blocked)
}

func TestDNSServerSetting(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "WEBHOOKD_DNS_SERVER" {
				return v
			}
			return ""
		}
	}
	for _, good := range []string{"", "127.0.0.1:5353", "[::1]:53", "10.0.0.2:53"} {
		c, err := parseServe(nil, env(good), new(strings.Builder))
		if err != nil || c.DNSServer != good {
			t.Errorf("WEBHOOKD_DNS_SERVER=%q: config %+v, error %v; want it kept", good, c, err)
		}
	}
	for _, bad := range []string{"127.0.0.1", "dns.example.com:53", "127.0.0.1:dns", "[::1]"} {
		_, err := parseServe(nil, env(bad), new(strings.Builder))
		if err == nil || !strings.Contains(err.Error(), "WEBHOOKD_DNS_SERVER") {
			t.Errorf("WEBHOOKD_DNS_SERVER=%q: error %v, want one naming the setting", bad, err)
		}
	}
	c, err := parseServe([]string{"--dns-server", "127.0.0.1:53"}, env(""), new(strings.Builder))
	if err != nil || c.DNSServer != "127.0.0.1:53" {
		t.Errorf("--dns-server: config %+v, error %v", c, err)
	}
}
