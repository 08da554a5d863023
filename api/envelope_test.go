package api_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest writes raw bytes to the API's port, as a careless or hostile client might, and
// reads one HTTP response.
func (e *env) rawRequest(t *testing.T, raw string) *response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", raw, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	doc, _ := openAPI(t)
	req, _ := http.NewRequest(http.MethodGet, e.base+"/raw", nil)
	checkErrorSchema(t, doc, req, b)
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

// TestUnparsableRequestsGetTheEnvelope: requests net/http refuses before any handler runs
// still get the JSON error envelope with a request id.
func TestUnparsableRequestsGetTheEnvelope(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	const malformed = "Request is not valid HTTP"
	tests := []struct {
		name, raw string
		status    int
		code, msg string
	}{
		{"bad percent-encoding in the path", "GET /api/v1/webhooks/%zz HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key + "\r\n\r\n",
			400, "MALFORMED_REQUEST", malformed},
		{"control character in Idempotency-Key", "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key +
			"\r\nIdempotency-Key: a\x01b\r\nContent-Length: 2\r\n\r\n{}", 400, "MALFORMED_REQUEST", malformed},
		{"garbage request line", "\x16\x03\x01 hello there\r\n\r\n", 400, "MALFORMED_REQUEST", malformed},
		{"no version", "GET /healthz\r\n\r\n", 400, "MALFORMED_REQUEST", malformed},
		{"missing Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "MALFORMED_REQUEST", malformed},
		{"header without colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n", 400, "MALFORMED_REQUEST", malformed},
		{"unsupported version", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "MALFORMED_REQUEST", malformed},
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n",
			431, "HEADERS_TOO_LARGE", "Request headers too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertError(t, e.rawRequest(t, tt.raw), tt.status, tt.code, tt.msg)
		})
	}
	t.Run("the connection still serves well-formed requests", func(t *testing.T) {
		data(t, e.do(t, http.MethodGet, "/healthz", "", nil), http.StatusOK)
	})
}

// TestBadPercentEncodingInQuery: a page or limit that cannot be decoded is refused, not ignored.
func TestBadPercentEncodingInQuery(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + id + "/deliveries"} {
		tests := []struct{ query, code, msg string }{
			{"page=%zz", "INVALID_PAGE", "Page must be a positive integer"},
			{"page=%", "INVALID_PAGE", "Page must be a positive integer"},
			{"limit=5&page=1%z", "INVALID_PAGE", "Page must be a positive integer"},
			{"limit=%zz", "INVALID_LIMIT", "Limit must be between 1 and 100"},
			{"status=%zz", "INVALID_FIELD_TYPE", ""},
		}
		for _, tt := range tests {
			t.Run(path+"?"+tt.query, func(t *testing.T) {
				r := e.do(t, http.MethodGet, path+"?"+tt.query, key, nil)
				msg := tt.msg
				if msg == "" {
					msg, _ = r.object(t)["error"].(string)
					if !strings.HasPrefix(msg, "Field status must be of type ") {
						t.Errorf("error = %q, want the status field named", msg)
					}
				}
				assertError(t, r, http.StatusBadRequest, tt.code, msg)
			})
		}
	}
}

// TestHeadWhereverGet: HEAD works wherever GET does, the same status and headers and no body.
func TestHeadWhereverGet(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	did := e.sendTest(t, key, id)["id"].(string)
	for _, path := range []string{"/healthz", "/readyz", "/api/v1/webhooks", "/api/v1/webhooks/" + id,
		"/api/v1/webhooks/" + id + "/secret", "/api/v1/webhooks/" + id + "/deliveries",
		"/api/v1/webhooks/" + id + "/deliveries/" + did, "/api/v1/usage", "/api/v1/webhooks/" + unknownID} {
		t.Run(path, func(t *testing.T) {
			get := e.do(t, http.MethodGet, path, key, nil)
			head := e.do(t, http.MethodHead, path, key, nil)
			if head.status != get.status || len(head.body) != 0 {
				t.Errorf("HEAD = %d with %d bytes, want GET's %d and no body", head.status, len(head.body), get.status)
			}
			for _, h := range []string{"Content-Type", "X-RateLimit-Limit"} {
				if (head.header.Get(h) == "") != (get.header.Get(h) == "") {
					t.Errorf("HEAD %s = %q, GET %q", h, head.header.Get(h), get.header.Get(h))
				}
			}
		})
	}
	t.Run("/openapi.yaml", func(t *testing.T) {
		head := e.do(t, http.MethodHead, "/openapi.yaml", "", nil)
		if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("Content-Type") != "application/yaml" {
			t.Errorf("HEAD = %d, %d bytes, Content-Type %q; want 200, none, application/yaml",
				head.status, len(head.body), head.header.Get("Content-Type"))
		}
	})
	t.Run("HEAD of a POST-only route is 405", func(t *testing.T) {
		r := e.do(t, http.MethodHead, "/api/v1/webhooks/"+e.createWebhook(t, key)["id"].(string)+"/test", key, nil)
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", r.status)
		}
	})
}

// TestAuthBeforeBodySize: a body over the limit without a valid key is an authentication
// error; with a valid key it is 413 with the key's rate-limit headers.
func TestAuthBeforeBodySize(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	big := strings.Repeat(" ", 300<<10)
	assertError(t, e.do(t, http.MethodPost, "/api/v1/events", "", big), http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
	assertError(t, e.do(t, http.MethodPost, "/api/v1/events", "cix_sk_"+strings.Repeat("x", 40), big),
		http.StatusUnauthorized, "INVALID_API_KEY", "Invalid API key")
	r := e.do(t, http.MethodPost, "/api/v1/events", key, big)
	assertError(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "Request body too large")
	assertRateHeaders(t, r)
}

// TestRoutingErrorsCarryRateHeaders: 404 and 405 answered to a valid key carry its
// X-RateLimit-* headers; without a key they carry none.
func TestRoutingErrorsCarryRateHeaders(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/v1/nope", 404},
		{"GET", "/nope", 404},
		{"PUT", "/api/v1/webhooks", 405},
		{"DELETE", "/api/v1/events", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, key, nil)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d", r.status, tt.status)
			}
			assertRateHeaders(t, r)
			if r := e.do(t, tt.method, tt.path, "", nil); r.header.Get("X-RateLimit-Limit") != "" {
				t.Errorf("without a key: X-RateLimit-Limit = %q, want none", r.header.Get("X-RateLimit-Limit"))
			}
		})
	}
}
