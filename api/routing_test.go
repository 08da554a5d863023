package api_test

import (
	"bytes"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestNotFoundRoute(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct{ name, method, path, key string }{
		{"unknown /api/v1 route", "GET", "/api/v1/nope", key},
		{"unknown /api/v1 route without a key", "GET", "/api/v1/nope", ""},
		{"unknown top-level route", "GET", "/nope", ""},
		{"unknown top-level route with a key", "POST", "/nope", key},
		{"unknown sub-resource", "GET", "/api/v1/webhooks/" + unknownID + "/nope", key},
		{"api root", "GET", "/api/v1", key},
		{"root", "GET", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertError(t, e.do(t, tt.method, tt.path, tt.key, nil), http.StatusNotFound, "NOT_FOUND", "Resource not found")
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct{ method, path, allow string }{
		{"PUT", "/api/v1/webhooks", "GET, HEAD, POST"},
		{"DELETE", "/api/v1/webhooks", "GET, HEAD, POST"},
		{"PUT", "/api/v1/webhooks/" + unknownID, "DELETE, GET, HEAD, PATCH"},
		{"POST", "/api/v1/webhooks/" + unknownID + "/secret", "GET, HEAD"},
		{"DELETE", "/api/v1/events", "GET, HEAD, POST"},
		{"POST", "/healthz", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, k := range []string{key, ""} {
				r := e.do(t, tt.method, tt.path, k, nil)
				assertError(t, r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method not allowed")
				if got := sortedAllow(r.header.Get("Allow")); got != tt.allow {
					t.Errorf("Allow = %q, want %q", got, tt.allow)
				}
			}
		})
	}
}

// sortedAllow normalises an Allow header: methods sorted, OPTIONS (always allowed) left out.
func sortedAllow(h string) string {
	var out []string
	for _, m := range strings.Split(h, ",") {
		if m = strings.TrimSpace(m); m != "" && m != "OPTIONS" {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func TestPayloadTooLarge(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	// A valid JSON object of 300 KiB, so only its size is wrong.
	big := `{"url": "` + e.hookURL("/hook") + `", "events": ["scan.completed"], "description": "` +
		strings.Repeat("d", 300<<10) + `"}`
	tests := []struct {
		name, method, path string
		chunked            bool
	}{
		{"create with Content-Length", "POST", "/api/v1/webhooks", false},
		{"create chunked", "POST", "/api/v1/webhooks", true},
		{"patch with Content-Length", "PATCH", "/api/v1/webhooks/" + id, false},
		{"patch chunked", "PATCH", "/api/v1/webhooks/" + id, true},
		{"publish with Content-Length", "POST", "/api/v1/events", false},
		{"publish chunked", "POST", "/api/v1/events", true},
		{"rotate chunked", "POST", "/api/v1/webhooks/" + id + "/rotate-secret", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any = big
			if tt.chunked {
				body = bytes.NewReader([]byte(big))
			}
			r := e.do(t, tt.method, tt.path, key, body)
			assertError(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "Request body too large")
			if r.header.Get("X-Request-ID") == "" {
				t.Error("413 has no X-Request-ID")
			}
		})
	}
	t.Run("a body of exactly the limit is read", func(t *testing.T) {
		pad := (256 << 10) - len(`{"url":"`+e.hookURL("/hook")+`","events":["scan.completed"]}`)
		ok := `{"url":"` + e.hookURL("/hook") + `",` + strings.Repeat(" ", pad) + `"events":["scan.completed"]}`
		if len(ok) != 256<<10 {
			t.Fatalf("body is %d bytes, want exactly 256 KiB", len(ok))
		}
		data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, bytes.NewReader([]byte(ok))), http.StatusCreated)
	})
	lists, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	if len(lists) != 2 {
		t.Errorf("%d endpoints, want 2: no oversized request may have created one", len(lists))
	}
}

func TestInvalidPageAndLimit(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/" + id + "/deliveries"} {
		for _, v := range []string{"0", "-1", "abc", "1.5", "", "1e2", "99999999999999999999"} {
			t.Run(path+"?page="+v, func(t *testing.T) {
				r := e.do(t, http.MethodGet, path+"?page="+v, key, nil)
				assertError(t, r, http.StatusBadRequest, "INVALID_PAGE", "Page must be a positive integer")
			})
		}
		for _, v := range []string{"0", "101", "abc", "-5", "1.5", "", "99999999999999999999"} {
			t.Run(path+"?limit="+v, func(t *testing.T) {
				r := e.do(t, http.MethodGet, path+"?limit="+v, key, nil)
				assertError(t, r, http.StatusBadRequest, "INVALID_LIMIT", "Limit must be between 1 and 100")
			})
		}
		for _, q := range []string{"page=1&limit=1", "page=3&limit=100", "limit=100"} {
			t.Run(path+"?"+q, func(t *testing.T) {
				listData(t, e.do(t, http.MethodGet, path+"?"+q, key, nil))
			})
		}
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	long := strings.Repeat("r", 129)
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"absent", "", false},
		{"sane", "req-123_abc.DEF:9", true},
		{"uuid", "5b3c6a1e-0f5e-4c2a-9d1b-2f6e8c7a9b10", true},
		{"128 characters", strings.Repeat("r", 128), true},
		{"too long", long, false},
		{"space", "bad id", false},
		{"markup", "<script>", false},
		{"slash", "a/b", false},
		{"quote", `a"b`, false},
		{"non-ascii", "réq", false},
	}
	routes := []struct {
		name, method, path, key string
		body                    any
		status                  int
	}{
		{"success", "GET", "/api/v1/webhooks", key, nil, 200},
		{"health", "GET", "/healthz", "", nil, 200},
		{"unauthenticated", "GET", "/api/v1/webhooks", "", nil, 401},
		{"not found", "GET", "/nope", "", nil, 404},
		{"method not allowed", "PUT", "/api/v1/webhooks", key, nil, 405},
		{"too large", "POST", "/api/v1/webhooks", key, strings.Repeat(" ", 300<<10), 413},
	}
	for _, rt := range routes {
		for _, tt := range tests {
			t.Run(rt.name+"/"+tt.name, func(t *testing.T) {
				var hdr []string
				if tt.sent != "" {
					hdr = []string{"X-Request-ID", tt.sent}
				}
				r := e.do(t, rt.method, rt.path, rt.key, rt.body, hdr...)
				if r.status != rt.status {
					t.Fatalf("status = %d, want %d", r.status, rt.status)
				}
				got := r.header.Get("X-Request-ID")
				if tt.echoed {
					if got != tt.sent {
						t.Errorf("X-Request-ID = %q, want the sane %q echoed", got, tt.sent)
					}
				} else if _, err := uuid.Parse(got); err != nil || len(got) != 36 {
					t.Errorf("X-Request-ID = %q, want a generated UUID", got)
				}
				if r.status >= 400 {
					if rid := r.object(t)["requestId"]; rid != got {
						t.Errorf("body requestId = %v, want the header's %q", rid, got)
					}
				}
			})
		}
	}
	t.Run("logged with the request", func(t *testing.T) {
		e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil, "X-Request-ID", "trace-me-42")
		if !strings.Contains(e.logs.String(), `"requestId":"trace-me-42"`) {
			t.Errorf("log has no line with requestId trace-me-42:\n%s", e.logs.String())
		}
	})
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ path, status string }{{"/healthz", "ok"}, {"/readyz", "ready"}} {
		t.Run(tt.path, func(t *testing.T) {
			d := data(t, e.do(t, http.MethodGet, tt.path, "", nil), http.StatusOK)
			if d["status"] != tt.status {
				t.Errorf("status = %v, want %q", d["status"], tt.status)
			}
		})
	}
}
