// Package deliverytest has test helpers for code that resolves and dials webhook receivers:
// a DNS server on loopback whose answers the test decides, so that no test asks a real one.
package deliverytest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer answers A and AAAA queries on 127.0.0.1, over UDP and TCP on the same port, from
// a table the test sets. Unknown names get NXDOMAIN; other query types an empty answer.
// Answers have a TTL of 0. It counts the queries it got per name, known or not.
type DNSServer struct {
	// Addr is the server's "127.0.0.1:port", e.g. for WEBHOOKD_DNS_SERVER.
	Addr string

	udp net.PacketConn
	tcp net.Listener
	wg  sync.WaitGroup

	mu      sync.Mutex
	names   map[string]*lookups
	queries map[string]int
}

// lookups is a name's answers: lookup n (from 0) gets answers[min(n, len-1)]. A and AAAA
// queries count lookups separately, so one resolution (an A and an AAAA query) is one lookup.
type lookups struct {
	answers [][]netip.Addr
	served  map[dnsmessage.Type]int
}

// NewDNSServer starts a server that stops when the test ends.
func NewDNSServer(tb testing.TB) *DNSServer {
	tb.Helper()
	s := &DNSServer{names: map[string]*lookups{}, queries: map[string]int{}}
	var err error
	// Take a UDP port, then the same TCP port; another process may hold that one.
	for range 20 {
		if s.udp, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			tb.Fatalf("dns server: %v", err)
		}
		if s.tcp, err = net.Listen("tcp4", s.udp.LocalAddr().String()); err == nil {
			break
		}
		s.udp.Close()
	}
	if err != nil {
		tb.Fatalf("dns server: no port free for both UDP and TCP: %v", err)
	}
	s.Addr = s.udp.LocalAddr().String()
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	tb.Cleanup(s.close)
	return s
}

func (s *DNSServer) close() {
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

// Set makes every lookup of name answer addrs (IPv4 as A, IPv6 including IPv4-mapped as
// AAAA). No addrs means the name exists with no address.
func (s *DNSServer) Set(name string, addrs ...netip.Addr) {
	s.Sequence(name, addrs)
}

// Sequence makes lookup n of name answer answers[n], and every later lookup the last one:
// Sequence(name, first, then) is a rebinding name.
func (s *DNSServer) Sequence(name string, answers ...[]netip.Addr) {
	if len(answers) == 0 {
		answers = [][]netip.Addr{nil}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[canonical(name)] = &lookups{answers: answers, served: map[dnsmessage.Type]int{}}
}

// Queries returns how many queries (of any type) the server got for name.
func (s *DNSServer) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[canonical(name)]
}

// TotalQueries returns how many queries the server got in all.
func (s *DNSServer) TotalQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.queries {
		n += c
	}
	return n
}

func canonical(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (s *DNSServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if out, ok := s.answer(buf[:n]); ok {
			_, _ = s.udp.WriteTo(out, from)
		}
	}
}

func (s *DNSServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return // closed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serveConn(c)
		}()
	}
}

// serveConn answers length-prefixed queries (RFC 1035 section 4.2.2) until the client stops.
func (s *DNSServer) serveConn(c net.Conn) {
	for {
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		out, ok := s.answer(msg)
		if !ok {
			return
		}
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out)))); err != nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// answer builds the response to one query; false if it is not a query worth answering.
func (s *DNSServer) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	addrs, known := s.lookup(q)
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	out, err := build(&b, q, addrs)
	return out, err == nil
}

func build(b *dnsmessage.Builder, q dnsmessage.Question, addrs []netip.Addr) ([]byte, error) {
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}
	for _, a := range addrs {
		var err error
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// lookup counts the query and returns the addresses of its lookup; false for unknown names.
func (s *DNSServer) lookup(q dnsmessage.Question) ([]netip.Addr, bool) {
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[name]++
	l := s.names[name]
	if l == nil {
		return nil, false
	}
	n := l.served[q.Type]
	l.served[q.Type]++
	return l.answers[min(n, len(l.answers)-1)], true
}
