package api_test

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/registry"
)

// assertRateHeaders checks X-RateLimit-Limit, -Remaining and -Reset on an authenticated response.
func assertRateHeaders(t *testing.T, r *response) (limit, remaining int) {
	t.Helper()
	limit, err := strconv.Atoi(r.header.Get("X-RateLimit-Limit"))
	if err != nil || limit < 1 {
		t.Errorf("X-RateLimit-Limit = %q, want a positive integer", r.header.Get("X-RateLimit-Limit"))
	}
	remaining, err = strconv.Atoi(r.header.Get("X-RateLimit-Remaining"))
	if err != nil || remaining < 0 || remaining > limit {
		t.Errorf("X-RateLimit-Remaining = %q, want an integer in 0..%d", r.header.Get("X-RateLimit-Remaining"), limit)
	}
	reset, err := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || reset < 1_000_000_000 {
		t.Errorf("X-RateLimit-Reset = %q, want Unix seconds", r.header.Get("X-RateLimit-Reset"))
	}
	return limit, remaining
}

var retryIn = regexp.MustCompile(`^Rate limit exceeded\. Retry in ([0-9]+) seconds\.$`)

// assertRateLimited checks a 429 RATE_LIMIT_EXCEEDED whose N is the Retry-After header.
func assertRateLimited(t *testing.T, r *response) {
	t.Helper()
	m := r.object(t)
	msg, _ := m["error"].(string)
	match := retryIn.FindStringSubmatch(msg)
	if match == nil {
		t.Fatalf("error = %q, want %q", msg, retryIn)
	}
	assertError(t, r, http.StatusTooManyRequests, "RATE_LIMIT_EXCEEDED", msg)
	n, _ := strconv.Atoi(match[1])
	if n < 1 || n > 60 {
		t.Errorf("Retry in %d seconds, want 1..60 for a per-minute limit", n)
	}
	if got := r.header.Get("Retry-After"); got != match[1] {
		t.Errorf("Retry-After = %q, want %q (the N of the message)", got, match[1])
	}
	assertRateHeaders(t, r)
}

func TestRateLimitExceeded(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 0)
	key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 3})
	for i := 1; i <= 3; i++ {
		r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil)
		listData(t, r)
		limit, remaining := assertRateHeaders(t, r)
		if limit != 3 || remaining != 3-i {
			t.Errorf("request %d: limit, remaining = %d, %d; want 3, %d", i, limit, remaining, 3-i)
		}
	}
	r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil)
	assertRateLimited(t, r)
	if got := r.header.Get("X-RateLimit-Remaining"); got != "0" {
		t.Errorf("X-RateLimit-Remaining = %q, want 0", got)
	}

	t.Run("the budget is per key", func(t *testing.T) {
		other, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 3})
		listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", other, nil))
	})
	t.Run("rate limit comes before scope", func(t *testing.T) {
		k, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 1,
			Scopes: []string{registry.ScopeWebhooksRead}})
		r := e.do(t, http.MethodPost, "/api/v1/webhooks", k, "{}")
		assertError(t, r, http.StatusForbidden, "INSUFFICIENT_SCOPE", "Insufficient scope: requires webhooks:write")
		assertRateLimited(t, e.do(t, http.MethodPost, "/api/v1/webhooks", k, "{}"))
	})
	t.Run("ip check comes before rate limit", func(t *testing.T) {
		k, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 1,
			AllowedIPAddresses: []string{"203.0.113.0/24"}})
		for range 3 {
			r := e.do(t, http.MethodGet, "/api/v1/webhooks", k, nil)
			assertError(t, r, http.StatusForbidden, "IP_NOT_ALLOWED", "Source IP not in allowed list")
		}
	})
}

func TestDefaultRateLimit(t *testing.T) {
	e := newEnv(t, withConfig(func(c *api.Config) { c.DefaultRateLimit = 2 }))
	key, _ := e.newKey(t)
	for range 2 {
		r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil)
		listData(t, r)
		if got := r.header.Get("X-RateLimit-Limit"); got != "2" {
			t.Errorf("X-RateLimit-Limit = %q, want the default 2", got)
		}
	}
	assertRateLimited(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
}

// TestRateHeadersOnEveryAuthenticatedResponse covers successes and errors after authentication;
// TestRoutingErrorsCarryRateHeaders covers unknown routes and wrong methods.
func TestRateHeadersOnEveryAuthenticatedResponse(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	tests := []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"list", "GET", "/api/v1/webhooks", nil, 200},
		{"create", "POST", "/api/v1/webhooks", map[string]any{"url": e.hookURL("/h"), "events": []string{"scan.failed"}}, 201},
		{"get", "GET", "/api/v1/webhooks/" + id, nil, 200},
		{"test", "POST", "/api/v1/webhooks/" + id + "/test", nil, 202},
		{"publish", "POST", "/api/v1/events", map[string]any{"type": "scan.failed",
			"data": map[string]any{"scanId": "s", "scanType": "nmap"}}, 202},
		{"usage", "GET", "/api/v1/usage", nil, 200},
		{"invalid json", "POST", "/api/v1/webhooks", "{", 400},
		{"webhook not found", "GET", "/api/v1/webhooks/" + unknownID, nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, key, tt.body)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			assertRateHeaders(t, r)
		})
	}
}
