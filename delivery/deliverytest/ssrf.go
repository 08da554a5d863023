package deliverytest

import (
	"fmt"
	"net/netip"
	"strings"
)

// Stop says where a webhook URL that must not be reached is stopped.
type Stop string

// The places a URL of the SSRF matrix can be stopped.
const (
	// StopGuard: the delivery client's address guard refuses the resolved address before
	// connect(2).
	StopGuard Stop = "guard"
	// StopDNS: the host is no IP address Go parses and no name with an address: the resolver
	// refuses it or the test's DNS server answers NXDOMAIN.
	StopDNS Stop = "dns"
	// StopURL: Go's URL parser rejects the URL.
	StopURL Stop = "url"
)

// SSRFCase is one entry of the SSRF matrix: a webhook URL that must never lead to a
// connection off loopback.
type SSRFCase struct {
	Name string
	URL  string
	// Stop is where the delivery client stops URL; Dest, for StopGuard, is the address the
	// guard refuses as the dialer hands it over ("10.0.0.1:443", "[fc00::1]:443").
	Stop Stop
	Dest string
	// Loopback entries lead to loopback: they are stopped only where loopback is not allowed.
	Loopback bool
}

// PrivateTarget is a special-purpose address no webhook may reach unless allowed.
type PrivateTarget struct {
	Addr     string
	Loopback bool
}

// PrivateTargets are the destinations of the matrix: loopback, this-host, RFC 1918,
// link-local and cloud metadata, shared address space, benchmarking, multicast, broadcast,
// IPv6 ULA, link-local and multicast, and IPv4 addresses inside IPv6 (IPv4-mapped,
// IPv4-compatible, NAT64 well-known and local-use, 6to4, Teredo).
var PrivateTargets = []PrivateTarget{
	{"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
	{"0.0.0.0", false}, {"::", false},
	{"10.0.0.1", false}, {"10.255.255.254", false},
	{"172.16.0.1", false}, {"172.31.255.254", false},
	{"192.168.0.1", false}, {"192.168.255.254", false},
	{"169.254.0.1", false}, {"169.254.169.254", false},
	{"100.64.0.1", false}, {"100.127.255.254", false},
	{"198.18.0.1", false}, {"198.19.255.254", false},
	{"224.0.0.1", false}, {"239.255.255.250", false}, {"255.255.255.255", false},
	{"ff02::1", false}, {"ff05::1:3", false},
	{"fc00::1", false}, {"fd00::1", false}, {"fe80::1", false},
	{"::ffff:10.0.0.1", false}, {"::ffff:169.254.169.254", false},
	{"64:ff9b::a00:1", false}, {"64:ff9b::7f00:1", false}, {"64:ff9b::a9fe:a9fe", false},
	{"64:ff9b:1::a00:1", false},
	{"::10.0.0.1", false}, {"::127.0.0.1", false},
	{"2002:a00:1::1", false}, {"2002:7f00:1::1", false}, {"2002:a9fe:a9fe::", false},
	{"2001:0:a00:1::1", false},
}

// DialedAs is how the dialer hands addr and port to the guard: IPv4-mapped addresses unmapped.
func DialedAs(addr string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(addr).Unmap(), uint16(port)).String()
}

// URLHost is addr as a URL host.
func URLHost(addr string) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]"
	}
	return addr
}

// SSRFMatrix returns every PrivateTarget as an IP literal (on the default port and on 8443)
// and as a host name that dns resolves to it, then encodedCases.
func SSRFMatrix(dns *DNSServer) []SSRFCase {
	var cases []SSRFCase
	for i, t := range PrivateTargets {
		name := fmt.Sprintf("private-%d.example.com", i)
		dns.Set(name, netip.MustParseAddr(t.Addr))
		cases = append(cases,
			SSRFCase{Name: "literal " + t.Addr, URL: "https://" + URLHost(t.Addr) + "/hook", Stop: StopGuard,
				Dest: DialedAs(t.Addr, 443), Loopback: t.Loopback},
			SSRFCase{Name: "literal port " + t.Addr, URL: "https://" + URLHost(t.Addr) + ":8443/hook", Stop: StopGuard,
				Dest: DialedAs(t.Addr, 8443), Loopback: t.Loopback},
			SSRFCase{Name: "dns " + t.Addr, URL: "https://" + name + "/hook", Stop: StopGuard,
				Dest: DialedAs(t.Addr, 443), Loopback: t.Loopback})
	}
	return append(cases, encodedCases...)
}

// encodedCases write private addresses in forms some parsers take for IP addresses (Go's
// does not: they are looked up as names, or refused as names), and hide them behind URL
// syntax: userinfo, "@" after the host, backslashes, Unicode dots and digits (which Go's
// transport maps to ASCII with IDNA), percent-encoding and IPv6 zones.
var encodedCases = []SSRFCase{
	{Name: "decimal loopback", URL: "https://2130706433/", Stop: StopDNS, Loopback: true},
	{Name: "decimal 10.0.0.1", URL: "https://167772161/", Stop: StopDNS},
	{Name: "decimal metadata", URL: "https://2852039166/", Stop: StopDNS},
	{Name: "hex loopback", URL: "https://0x7f000001/", Stop: StopDNS, Loopback: true},
	{Name: "hex metadata", URL: "https://0xa9fea9fe/", Stop: StopDNS},
	{Name: "hex dotted loopback", URL: "https://0x7f.0x0.0x0.0x1/", Stop: StopDNS, Loopback: true},
	{Name: "octal loopback", URL: "https://0177.0.0.1/", Stop: StopDNS, Loopback: true},
	{Name: "octal 10.0.0.1", URL: "https://012.0.0.1/", Stop: StopDNS},
	{Name: "octal whole loopback", URL: "https://017700000001/", Stop: StopDNS, Loopback: true},
	{Name: "short loopback", URL: "https://127.1/", Stop: StopDNS, Loopback: true},
	{Name: "short 10.0.0.1", URL: "https://10.1/", Stop: StopDNS},
	{Name: "zero", URL: "https://0/", Stop: StopDNS},
	{Name: "trailing dot", URL: "https://10.0.0.1./", Stop: StopDNS},
	{Name: "unknown name", URL: "https://nxdomain.example.com/", Stop: StopDNS},
	{Name: "localhost", URL: "https://localhost/", Stop: StopGuard, Dest: "127.0.0.1:443", Loopback: true},
	{Name: "userinfo", URL: "https://user:pass@10.0.0.1/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "host-like userinfo", URL: "https://hooks.example.com@169.254.169.254/", Stop: StopGuard,
		Dest: "169.254.169.254:443"},
	{Name: "userinfo with port", URL: "https://hooks.example.com:443@10.0.0.1/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "at in path", URL: "https://10.0.0.1/@hooks.example.com", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "at after query", URL: "https://10.0.0.1?@hooks.example.com/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "at after fragment", URL: "https://10.0.0.1#@hooks.example.com/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "backslash before at", URL: `https://hooks.example.com\@10.0.0.1/`, Stop: StopURL},
	{Name: "backslash as slash", URL: `https://10.0.0.1\hooks.example.com/`, Stop: StopURL},
	{Name: "ideographic dots", URL: "https://10\u30020\u30020\u30021/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "fullwidth dots", URL: "https://169\uff0e254\uff0e169\uff0e254/", Stop: StopGuard, Dest: "169.254.169.254:443"},
	{Name: "fullwidth digits", URL: "https://\uff11\uff10.0.0.1/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "percent-encoded ascii host", URL: "https://10.0.0.%31/", Stop: StopURL},
	{Name: "percent-encoded dots", URL: "https://10%E3%80%820%E3%80%820%E3%80%821/", Stop: StopGuard, Dest: "10.0.0.1:443"},
	{Name: "ipv6 zone", URL: "https://[fe80::1%25lo]/", Stop: StopGuard, Dest: "[fe80::1%lo]:443"},
	{Name: "mapped hex", URL: "https://[::ffff:a00:1]/", Stop: StopGuard, Dest: "10.0.0.1:443"},
}
