package deliverytest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
)

// resolverOver asks only s, over network ("udp" or "tcp") whatever Go's resolver would use.
func resolverOver(s *DNSServer, network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}

func lookup(t *testing.T, r *net.Resolver, name string) []string {
	t.Helper()
	addrs, err := r.LookupNetIP(t.Context(), "ip", name)
	if err != nil {
		t.Fatalf("LookupNetIP(%s): %v", name, err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func TestDNSServer(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := NewDNSServer(t)
			r := resolverOver(s, network)
			s.Set("both.example.com", netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1"),
				netip.MustParseAddr("::ffff:192.168.0.1"))
			if got, want := lookup(t, r, "both.example.com"), []string{"10.0.0.1", "::ffff:192.168.0.1", "fd00::1"}; !slices.Equal(got, want) {
				t.Errorf("both.example.com = %v, want %v", got, want)
			}
			loop, meta := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("169.254.169.254")
			s.Sequence("Rebind.Example.com", []netip.Addr{loop}, []netip.Addr{meta})
			for i, want := range []string{"127.0.0.1", "169.254.169.254", "169.254.169.254"} {
				if got := lookup(t, r, "rebind.example.com"); !slices.Equal(got, []string{want}) {
					t.Errorf("lookup %d of rebind.example.com = %v, want [%s]", i, got, want)
				}
			}
			_, err := r.LookupNetIP(t.Context(), "ip", "unknown.example.com")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				t.Errorf("unknown.example.com: error %v, want not found", err)
			}
			// One lookup is an A and an AAAA query.
			if got := s.Queries("rebind.example.com."); got != 6 {
				t.Errorf("Queries(rebind.example.com) = %d, want 6", got)
			}
			if got := s.TotalQueries(); got != 2+6+2 {
				t.Errorf("TotalQueries = %d, want 10", got)
			}
		})
	}
}
