package api

import (
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cert-ix/webhookd/registry"
	"golang.org/x/net/http/httpguts"
)

const (
	maxURLLength   = 2048
	maxHeaders     = 20
	maxHeaderName  = 256
	maxHeaderValue = 2048
	// maxScanID is the longest data.scanId publish accepts, in characters (code points): the
	// portal's scan search takes no more (api/portal/assets/js/events.js, maxlength 200).
	maxScanID = 200
)

// validateScanID refuses an event's scanId that could not be looked up: GET
// /api/v1/events?scanId= refuses an empty filter (and white space alone names no scan), and the
// portal searches at most maxScanID characters. INVALID_FIELD_TYPE naming field. Everything
// accepted here can be given to that filter, which takes any non-empty value, so that events
// published before this rule stay findable.
func validateScanID(field, id string) error {
	if strings.TrimSpace(id) == "" || utf8.RuneCountInString(id) > maxScanID {
		return registry.E(registry.CodeInvalidFieldType, field, "non-blank string of at most "+strconv.Itoa(maxScanID)+" characters")
	}
	return nil
}

// validateURL accepts an absolute https:// URL with a host, no userinfo, at most 2048
// characters; anything else is INVALID_WEBHOOK_URL. It returns the URL in the form it is stored
// and called in, which validates again to itself. Where it may connect is decided later, at
// connect time, by the delivery client's address guard.
//
// The authority is checked as written, before any parser interprets it, so that every parser
// reads the same host from it: a DNS name of letters, digits, '-' and '_' in non-empty labels,
// or an IP literal in its canonical form. Hosts that resolvers read as IPv4 in other forms
// (2130706433, 0x7f000001, 0177.0.0.1, 127.1), percent-escapes, userinfo, zone ids, backslashes
// and a trailing dot are refused.
func validateURL(raw string) (string, error) {
	bad := registry.E(registry.CodeInvalidWebhookURL)
	const scheme = "https://"
	if len(raw) > maxURLLength || !isPrintableASCII(raw) || strings.ContainsAny(raw, "\\#") ||
		len(raw) < len(scheme) || !strings.EqualFold(raw[:len(scheme)], scheme) {
		return "", bad
	}
	authority := raw[len(scheme):]
	if i := strings.IndexAny(authority, "/?"); i >= 0 {
		authority = authority[:i]
	}
	if !validAuthority(authority) {
		return "", bad
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host != authority {
		return "", bad
	}
	out := u.String()
	if len(out) > maxURLLength {
		return "", bad
	}
	return out, nil
}

// validAuthority reports whether a is host or host:port with a valid host and a port of
// 1..65535 written without leading zeros.
func validAuthority(a string) bool {
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return false
		}
		host, port = a[:end+1], a[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	if port != "" {
		n, err := strconv.Atoi(port[1:])
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port[1:] {
			return false
		}
	}
	return validHost(host)
}

// validHost accepts a DNS name or a canonical IP literal ([v6] in brackets, as netip writes it).
func validHost(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		return err == nil && a.Is6() && a.Zone() == "" && a.String() == h[1:len(h)-1]
	}
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.TrimLeft(l, hostChars) != "" {
			return false
		}
	}
	// A host whose last label is a number is an IPv4 address to URL parsers and resolvers
	// (the WHATWG "ends in a number" rule); only the dotted-decimal form is accepted.
	if last := labels[len(labels)-1]; isNumberLabel(last) {
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is4() && a.String() == h
	}
	return true
}

const hostChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

// isNumberLabel reports whether l is decimal digits, or 0x/0X followed by hex digits.
func isNumberLabel(l string) bool {
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		return strings.TrimLeft(l[2:], "0123456789abcdefABCDEF") == ""
	}
	return strings.TrimLeft(l, "0123456789") == ""
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validateEvents requires a non-empty list of the four scan events; INVALID_WEBHOOK_EVENT names
// the first bad one ("[]" for an empty list). Duplicates are folded.
func validateEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, registry.E(registry.CodeInvalidWebhookEvent, "[]")
	}
	out := make([]string, 0, len(events))
	for _, e := range events {
		if !registry.IsSubscribable(e) {
			return nil, registry.E(registry.CodeInvalidWebhookEvent, e)
		}
		if !containsString(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true, "proxy-authorization": true,
	"proxy-connection": true, "te": true, "trailer": true, "trailers": true, "transfer-encoding": true, "upgrade": true,
}

// validateHeaders rejects more than 20 headers, reserved names (webhook-*, host, content-*,
// user-agent, expect, hop-by-hop), invalid names or values, names over 256 characters, values
// over 2 KiB, and two names that differ only in case (HTTP would send them as one): INVALID_HEADER
// naming the header. Names are checked in sorted order so the one named does not vary.
func validateHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return registry.E(registry.CodeInvalidHeader, "too many headers (at most 20)")
	}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := make(map[string]bool, len(h))
	for _, name := range names {
		lower := strings.ToLower(name)
		if reservedHeader(lower) || seen[lower] || len(name) > maxHeaderName || !httpguts.ValidHeaderFieldName(name) ||
			!httpguts.ValidHeaderFieldValue(h[name]) || len(h[name]) > maxHeaderValue {
			return registry.E(registry.CodeInvalidHeader, safeName(name))
		}
		seen[lower] = true
	}
	return nil
}

// reservedHeader reports whether a lower-case name is set by the delivery itself or would
// change how HTTP carries it.
func reservedHeader(lower string) bool {
	return strings.HasPrefix(lower, "webhook-") || strings.HasPrefix(lower, "content-") ||
		lower == "host" || lower == "user-agent" || lower == "expect" || hopByHop[lower]
}

// safeName keeps an invalid header name printable in the error message.
func safeName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	if !isPrintableASCII(s) {
		return strconv.Quote(s)
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
