package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/registry"
	"golang.org/x/net/http/httpguts"
)

// The fuzz targets send what they are given to the real Echo server on a real Redis, through
// the harness's client, which also validates every answer against the OpenAPI document. For
// every input the answer must be below 500, be the error envelope of the one error table or a
// success document, and show no Go error text. Seeds are the files of
// ../testdata/fuzz/<target>/; .ci/fuzz runs each target for a while.

// fuzzSeeds returns the files of the repository's testdata/fuzz/<target>/. Go reads its own
// corpus format only from the package's testdata, so the shared seeds are raw files loaded
// here; a missing or empty directory fails the target.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	dir := filepath.Join("..", "testdata", "fuzz", f.Name())
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("seed corpus: %v", err)
	}
	var seeds [][]byte
	for _, ent := range ents {
		if ent.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			f.Fatalf("seed corpus: %v", err)
		}
		seeds = append(seeds, b)
	}
	if len(seeds) == 0 {
		f.Fatalf("seed corpus %s is empty", dir)
	}
	return seeds
}

// fuzzEnv is one API server for a fuzz target with a tenant, a key of every scope that may
// publish every scan type but sentinel, one endpoint on the receiver and one delivery of it.
// Every resetEvery inputs its Redis database is emptied and the fixture made again, so that
// long runs do not fill Redis with endpoints, events and queued tasks.
type fuzzEnv struct {
	*env
	key, hook, dlv string
	inputs         int
}

const resetEvery = 2000

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	return &fuzzEnv{env: newEnv(f, withProbe(func(api.Prober) api.Prober { return loopbackProbe }))}
}

// loopbackProbe stands in for the reachability probe: 127.0.0.1 answers, and any other host is
// unreachable without being resolved, so that no fuzzed URL reaches DNS or the network.
func loopbackProbe(_ context.Context, raw string) error {
	if u, err := url.Parse(raw); err != nil || u.Hostname() != "127.0.0.1" {
		return errors.New("unreachable")
	}
	return nil
}

// next readies the fixture for one input.
func (fe *fuzzEnv) next(t *testing.T) {
	t.Helper()
	if fe.inputs%resetEvery == 0 {
		if err := fe.rdb.FlushDB(t.Context()).Err(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		tid := fe.tenant(t, 0)
		scans := registry.ScanTypes[:len(registry.ScanTypes)-1]
		fe.key, _ = fe.env.key(t, registry.NewKeyParams{TenantID: tid, AllowedScanTypes: scans, RateLimitPerMinute: 1 << 30})
		fe.hook = fe.createWebhook(t, fe.key, registry.EventTypes...)["id"].(string)
		fe.dlv = fe.sendTest(t, fe.key, fe.hook)["id"].(string)
	}
	fe.inputs++
}

// fixture replaces {hook} and {delivery} in s with the fixture's ids.
func (fe *fuzzEnv) fixture(s string) string {
	return strings.NewReplacer("{hook}", fe.hook, "{delivery}", fe.dlv).Replace(s)
}

// send makes one request with the fixture's key and checks the answer; sent is what the
// client wrote that the answer may quote back (body, path, query, headers).
func (fe *fuzzEnv) send(t *testing.T, method, path string, body []byte, hdr ...string) map[string]any {
	t.Helper()
	var b any
	if body != nil {
		b = body
	}
	r := fe.do(t, method, path, fe.key, b, hdr...)
	sent := append([]string{string(body), path}, hdr...)
	return checkAnswer(t, r, append(sent, jsonStrings(body)...))
}

// checkAnswer asserts the invariants of any answer and returns the decoded body.
func checkAnswer(t *testing.T, r *response, sent []string) map[string]any {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d for a client's request: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.header.Get("X-Request-ID") == "" {
		t.Fatalf("Content-Type %q, X-Request-ID %q: want JSON and a request id", ct, r.header.Get("X-Request-ID"))
	}
	m := r.object(t)
	var shown []string
	if r.status >= 400 {
		shown = []string{checkEnvelope(t, r, m)}
	} else {
		if m["success"] != true || m["data"] == nil {
			t.Fatalf("status %d without success and data: %s", r.status, r.body)
		}
		// Secrets are random base64 and may spell a marker such as "EOF" by chance.
		for _, v := range jsonStrings(r.body) {
			if !strings.HasPrefix(v, "whsec_") {
				shown = append(shown, v)
			}
		}
	}
	for _, s := range shown {
		for _, marker := range append(decodeErrorText, goErrorText...) {
			if strings.Contains(s, marker) && !anyContains(sent, marker) {
				t.Fatalf("answer shows %q, which the request did not contain: %s", marker, r.body)
			}
		}
	}
	return m
}

// decodeErrorText is text of decoding errors that, like goErrorText, no answer may show unless
// the client sent it.
var decodeErrorText = []string{"json:", "strconv.", "invalid character", "cannot unmarshal", "unexpected end of JSON",
	"looking for beginning", "net/url", "http: ", "ERR ", "context canceled", "deadline exceeded", "EOF", "<nil>", "%!"}

// checkEnvelope asserts the error envelope: exactly success:false, error, code and requestId,
// a code of the error table with its status, and the table's message with its placeholders
// filled. It returns the message.
func checkEnvelope(t *testing.T, r *response, m map[string]any) string {
	t.Helper()
	code, _ := m["code"].(string)
	msg, _ := m["error"].(string)
	if len(m) != 4 || m["success"] != false || m["requestId"] != r.header.Get("X-Request-ID") {
		t.Fatalf("not the error envelope: %s", r.body)
	}
	status, template, ok := api.ErrorSpec(code)
	if !ok || status != r.status {
		t.Fatalf("code %q with status %d; the error table says %d (known: %v): %s", code, r.status, status, ok, r.body)
	}
	if !templateRe(template).MatchString(msg) {
		t.Fatalf("message %q does not fill the template %q of %s", msg, template, code)
	}
	return msg
}

var placeholder = regexp.MustCompile(`\{[^}]*\}`)

func templateRe(template string) *regexp.Regexp {
	parts := placeholder.Split(template, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)^` + strings.Join(parts, `.*`) + `$`)
}

// jsonStrings returns every string key and value in a JSON document (nothing if it is not one).
func jsonStrings(b []byte) []string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			for k, e := range x {
				out = append(out, k)
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

func anyContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// requestTarget makes s usable in a request line, as a client would send it: bytes that may
// not appear raw are percent-encoded, and so is a '%' that starts no escape.
func requestTarget(s string, also string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		escape := c <= ' ' || c >= 0x7f || c == '#' || strings.IndexByte(also, c) >= 0 ||
			c == '%' && !(i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]))
		if escape {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// fuzzBodies fuzzes the body of one request; path may name the fixture, and then, when not
// nil, checks more of a decoded answer.
func fuzzBodies(f *testing.F, method string, path func(*fuzzEnv) string, then func(*testing.T, map[string]any)) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fe.next(t)
		m := fe.send(t, method, path(fe), body)
		checkStrictAnswer(t, body, m)
		if then != nil {
			then(t, m)
		}
	})
}

// checkStrictAnswer asserts that a body which is JSON by syntax but repeats a name in one
// object, holds a number outside float64 or a lone surrogate escape was answered INVALID_JSON.
func checkStrictAnswer(t *testing.T, body []byte, m map[string]any) {
	t.Helper()
	if why := strictViolation(body); why != "" && m["code"] != "INVALID_JSON" {
		t.Fatalf("body with %s answered %v, want INVALID_JSON", why, m)
	}
}

// strictViolation names what makes a syntactically valid JSON document unacceptable to the
// API's strict reading ("" for nothing): a name twice in one object (compared unescaped), a
// number no float64 can hold or a lone surrogate escape (loneSurrogate). It walks tokens with an
// explicit stack, independently of the server's code.
func strictViolation(b []byte) string {
	if !json.Valid(b) {
		return ""
	}
	if loneSurrogate(b) {
		return "a lone surrogate escape"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type level struct {
		names  map[string]bool // nil in an array
		atName bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.names != nil && top.atName {
			if name, ok := tok.(string); ok {
				if top.names[name] {
					return "a duplicate name"
				}
				top.names[name], top.atName = true, false
				continue
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &level{names: map[string]bool{}, atName: true})
				continue
			case '[':
				stack = append(stack, &level{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case json.Number:
			if _, err := strconv.ParseFloat(v.String(), 64); err != nil {
				return "a number outside float64"
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].names != nil {
			stack[len(stack)-1].atName = true // a value ended: a name or '}' comes next
		}
	}
}

func FuzzCreateWebhook(f *testing.F) {
	fuzzBodies(f, http.MethodPost, func(*fuzzEnv) string { return "/api/v1/webhooks" }, func(t *testing.T, m map[string]any) {
		if m["success"] != true {
			return
		}
		stored, _ := m["data"].(map[string]any)["url"].(string)
		if again, err := api.ValidateURL(stored); err != nil || again != stored {
			t.Fatalf("stored url %q validates to %q, %v; want itself", stored, again, err)
		}
	})
}

func FuzzPatchWebhook(f *testing.F) {
	fuzzBodies(f, http.MethodPatch, func(fe *fuzzEnv) string { return "/api/v1/webhooks/" + fe.hook }, nil)
}

func FuzzRotateSecret(f *testing.F) {
	fuzzBodies(f, http.MethodPost, func(fe *fuzzEnv) string { return "/api/v1/webhooks/" + fe.hook + "/rotate-secret" }, nil)
}

func FuzzPublishEvent(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s, "")
	}
	for _, k := range []string{"order-4711", strings.Repeat("k", 255), strings.Repeat("k", 256), "caf\xc3\xa9", "\x7f"} {
		f.Add(seeds[0], k)
	}
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, idem string) {
		fe.next(t)
		var hdr []string
		if idem != "" && httpguts.ValidHeaderFieldValue(idem) && strings.TrimSpace(idem) == idem {
			hdr = []string{"Idempotency-Key", idem} // what a client can send: net/http trims the rest
		}
		m := fe.send(t, http.MethodPost, "/api/v1/events", body, hdr...)
		checkStrictAnswer(t, body, m)
	})
}

// FuzzDeliveryActions posts to /api/v1/webhooks/<path>, where {hook} and {delivery} in the
// path are the fixture's ids: the test ping and retry routes, with any ids, and whatever else
// the path reaches.
func FuzzDeliveryActions(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(string(bytes.TrimRight(s, "\n")), []byte(nil))
		f.Add(string(bytes.TrimRight(s, "\n")), []byte(`{"force":true}`))
	}
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		fe.next(t)
		fe.send(t, http.MethodPost, "/api/v1/webhooks/"+requestTarget(fe.fixture(path), "?"), body)
	})
}

// FuzzListQueries sends a query string to the two paginated lists (even route: endpoints, odd:
// the fixture endpoint's deliveries).
func FuzzListQueries(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(uint8(0), string(bytes.TrimRight(s, "\n")))
		f.Add(uint8(1), string(bytes.TrimRight(s, "\n")))
	}
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		fe.next(t)
		path := "/api/v1/webhooks"
		if route%2 == 1 {
			path += "/" + fe.hook + "/deliveries"
		}
		m := fe.send(t, http.MethodGet, path+"?"+requestTarget(query, ""), nil)
		if m["success"] == true {
			if _, ok := m["data"].([]any); !ok {
				t.Fatalf("list data is %T, want an array", m["data"])
			}
		}
	})
}

// FuzzValidateURL checks validateURL alone: what it accepts is an absolute https URL without
// userinfo, at most 2048 characters, whose host is a DNS name or a canonical IP literal, and
// which validates again to itself.
func FuzzValidateURL(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(string(bytes.TrimRight(s, "\n")))
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := api.ValidateURL(raw)
		if err != nil {
			if registry.CodeOf(err) != registry.CodeInvalidWebhookURL {
				t.Fatalf("ValidateURL(%q): error %v, want INVALID_WEBHOOK_URL", raw, err)
			}
			return
		}
		checkAcceptedURL(t, raw, out)
		again, err := api.ValidateURL(out)
		if err != nil || again != out {
			t.Fatalf("ValidateURL(%q) = %q, but that validates to %q, %v", raw, out, again, err)
		}
	})
}

func checkAcceptedURL(t *testing.T, raw, out string) {
	t.Helper()
	u, err := url.Parse(out)
	if err != nil || u.Scheme != "https" || !u.IsAbs() || u.Opaque != "" || u.User != nil || u.Host == "" ||
		u.Fragment != "" || len(out) > 2048 || !strings.HasPrefix(out, "https://"+u.Host) {
		t.Fatalf("ValidateURL(%q) accepted %q (parse error %v)", raw, out, err)
	}
	host := u.Hostname()
	if strings.ContainsAny(host, "%@\\[]") || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
		t.Fatalf("ValidateURL(%q) accepted host %q", raw, host)
	}
	if p := u.Port(); p != "" && (p[0] == '0' || len(p) > 5) {
		t.Fatalf("ValidateURL(%q) accepted port %q", raw, p)
	}
	// Anything a resolver could read as an IP address must be the canonical literal.
	labels := strings.Split(host, ".")
	if isNumber(labels[len(labels)-1]) || inetAton(host) || strings.Contains(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || a.String() != host || a.Zone() != "" {
			t.Fatalf("ValidateURL(%q) accepted the IP literal %q in a non-canonical form", raw, host)
		}
	}
}

// isNumber reports whether a label is a number to the WHATWG URL host parser: decimal, or
// 0x/0X and hex digits.
func isNumber(l string) bool {
	digits := "0123456789"
	if len(l) >= 2 && (l[:2] == "0x" || l[:2] == "0X") {
		l, digits = l[2:], "0123456789abcdefABCDEF"
	}
	return strings.Trim(l, digits) == ""
}

// inetAton reports whether the C library's inet_aton would read h as an IPv4 address: one to
// four parts, each decimal, octal (leading 0) or hex (0x).
func inetAton(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		base := 10
		switch {
		case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		if _, err := strconv.ParseUint(p, base, 32); err != nil && !(base == 16 && p == "") {
			return false
		}
	}
	return true
}
