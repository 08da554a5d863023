package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
)

const (
	invalidSession = "Invalid portal session"
	expiredSession = "Portal session has expired"
)

var portalURL = regexp.MustCompile(`^http://127\.0\.0\.1:\d+/portal#(cix_ps_[0-9A-Za-z]{48})$`)

// portalSession makes a portal link with key and returns its token and data.
func (e *env) portalSession(t *testing.T, key string, body any) (string, map[string]any) {
	t.Helper()
	r := e.do(t, http.MethodPost, "/api/v1/portal/sessions", key, body)
	d := data(t, r, http.StatusCreated)
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store: the answer holds a credential", got)
	}
	m := portalURL.FindStringSubmatch(d["url"].(string))
	if m == nil {
		t.Fatalf("url = %q, want http://<this server>/portal#cix_ps_<48 base62>", d["url"])
	}
	return m[1], d
}

// portal makes a request with a portal token instead of an API key.
func (e *env) portal(t *testing.T, method, path, token string, body any) *response {
	t.Helper()
	return e.do(t, method, path, "", body, "X-Portal-Token", token)
}

func TestPortalSessionLifetime(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	tests := []struct {
		name string
		body any
		want time.Duration
	}{
		{"no body: one hour", nil, time.Hour},
		{"empty object: one hour", map[string]any{}, time.Hour},
		{"one second", map[string]any{"expiresInSeconds": 1}, time.Second},
		{"the longest", map[string]any{"expiresInSeconds": 86400}, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			token, d := e.portalSession(t, key, tt.body)
			got, err := time.Parse(time.RFC3339Nano, d["expiresAt"].(string))
			if err != nil {
				t.Fatalf("expiresAt %q: %v", d["expiresAt"], err)
			}
			if lo, hi := before.Add(tt.want-time.Second), time.Now().Add(tt.want+time.Second); got.Before(lo) || got.After(hi) {
				t.Errorf("expiresAt = %s, want about %s from now", got, tt.want)
			}
			p, err := e.store.LookupPortalSession(t.Context(), token)
			if err != nil || p.TenantID != tid || p.ID != d["id"] {
				t.Fatalf("stored session = %+v, %v; want tenant %s and id %v", p, err, tid, d["id"])
			}
		})
	}
}

func TestPortalSessionBadLifetime(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	const rangeMsg = "Field expiresInSeconds must be of type integer between 1 and 86400"
	tests := []struct {
		name      string
		body      any
		code, msg string
	}{
		{"zero", `{"expiresInSeconds": 0}`, "INVALID_FIELD_TYPE", rangeMsg},
		{"negative", `{"expiresInSeconds": -5}`, "INVALID_FIELD_TYPE", rangeMsg},
		{"over a day", `{"expiresInSeconds": 86401}`, "INVALID_FIELD_TYPE", rangeMsg},
		{"huge", `{"expiresInSeconds": 1e30}`, "INVALID_FIELD_TYPE", "Field expiresInSeconds must be of type integer"},
		{"fraction", `{"expiresInSeconds": 1.5}`, "INVALID_FIELD_TYPE", "Field expiresInSeconds must be of type integer"},
		{"string", `{"expiresInSeconds": "60"}`, "INVALID_FIELD_TYPE", "Field expiresInSeconds must be of type integer"},
		{"not JSON", `{"expiresInSeconds": `, "INVALID_JSON", "Request body is not valid JSON"},
		{"an array", `[60]`, "INVALID_JSON", "Request body is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/portal/sessions", key, tt.body)
			assertError(t, r, http.StatusBadRequest, tt.code, tt.msg)
		})
	}
}

// TestPortalSessionUnknownFields: a misspelt or unknown field is refused by name, as on every
// other route with a body, rather than giving the default lifetime; an empty body, blank space or
// {} still does.
func TestPortalSessionUnknownFields(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct{ name, body, field string }{
		{"a typo", `{"expiresinseconds": 60}`, "expiresinseconds"},
		{"scopes", `{"expiresInSeconds": 60, "scopes": ["events:write"]}`, "scopes"},
		{"read-only id", `{"id": "ps_0123456789abcdef"}`, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/portal/sessions", key, tt.body)
			assertError(t, r, http.StatusBadRequest, "UNKNOWN_FIELD", "Unknown field: "+tt.field)
		})
	}
	for _, body := range []any{nil, "", " \n", "{}"} {
		_, d := e.portalSession(t, key, body)
		if exp := parseTime(t, d["expiresAt"]); exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
			t.Errorf("body %q: expiresAt = %v, want the default hour", body, exp)
		}
	}
}

func TestPortalSessionNeedsBothWebhookScopes(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 0)
	tests := []struct {
		scopes []string
		want   string
	}{
		{[]string{registry.ScopeWebhooksRead}, "webhooks:write"},
		{[]string{registry.ScopeEventsWrite}, "webhooks:write"},
		{[]string{registry.ScopeWebhooksWrite}, "webhooks:read"},
		{[]string{registry.ScopeWebhooksWrite, registry.ScopeEventsWrite}, "webhooks:read"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.scopes, "+"), func(t *testing.T) {
			key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: tt.scopes})
			r := e.do(t, http.MethodPost, "/api/v1/portal/sessions", key, nil)
			assertError(t, r, http.StatusForbidden, "INSUFFICIENT_SCOPE", "Insufficient scope: requires "+tt.want)
		})
	}
}

// TestPortalSessionStoredHashed: only the token's SHA-256 is in Redis, and the key lives under a
// hash tag of its own with a TTL.
func TestPortalSessionStoredHashed(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	token, d := e.portalSession(t, key, map[string]any{"expiresInSeconds": 600})
	registrytest.CheckKeysHashedOnly(t, registrytest.Dump(t, e.rdb), token)
	name := "wh:{ps:" + d["id"].(string) + "}:session"
	ttl, err := e.rdb.PTTL(t.Context(), name).Result()
	if err != nil || ttl < 24*time.Hour || ttl > 24*time.Hour+601*time.Second {
		t.Errorf("PTTL %s = %s, %v; want its 600 s plus the 24 h in which it only answers expired", name, ttl, err)
	}
}

// TestPortalTokenActsOnItsTenantsWebhooks walks through what the page does with a token.
func TestPortalTokenActsOnItsTenantsWebhooks(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	token, _ := e.portalSession(t, key, nil)
	r := e.portal(t, http.MethodPost, "/api/v1/webhooks", token, map[string]any{"url": e.hookURL("/p"),
		"events": []string{"scan.completed"}, "description": "<img src=x onerror=alert(1)>"})
	id := data(t, r, http.StatusCreated)["id"].(string)
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control on a portal answer = %q, want no-store", got)
	}
	assertRateHeaders(t, r)
	evid := data(t, e.publish(t, key, "scan.completed"), http.StatusAccepted)["id"].(string)
	ev := data(t, e.portal(t, http.MethodGet, "/api/v1/events/"+evid, token, nil), http.StatusOK)
	scanID := ev["data"].(map[string]any)["scanId"].(string)
	rcv := data(t, e.portal(t, http.MethodPost, "/api/v1/webhooks/"+id+"/recover", token,
		map[string]any{"since": "2026-01-01T00:00:00Z"}), http.StatusAccepted)["id"].(string)
	steps := []struct {
		method, path string
		body         any
		status       int
	}{
		{http.MethodGet, "/api/v1/webhooks", nil, http.StatusOK},
		{http.MethodGet, "/api/v1/webhooks/" + id, nil, http.StatusOK},
		{http.MethodPatch, "/api/v1/webhooks/" + id, map[string]any{"description": "SOC"}, http.StatusOK},
		{http.MethodGet, "/api/v1/webhooks/" + id + "/secret", nil, http.StatusOK},
		{http.MethodPost, "/api/v1/webhooks/" + id + "/rotate-secret", map[string]any{"gracePeriodSeconds": 60}, http.StatusOK},
		{http.MethodPost, "/api/v1/webhooks/" + id + "/test", nil, http.StatusAccepted},
		{http.MethodGet, "/api/v1/webhooks/" + id + "/deliveries?status=pending", nil, http.StatusOK},
		{http.MethodGet, "/api/v1/webhooks/" + id + "/stats?window=24h", nil, http.StatusOK},
		{http.MethodGet, "/api/v1/webhooks/" + id + "/recoveries/" + rcv, nil, http.StatusOK},
		{http.MethodGet, "/api/v1/events?scanId=" + scanID, nil, http.StatusOK},
		{http.MethodPatch, "/api/v1/webhooks/" + id, map[string]any{"enabled": false}, http.StatusOK},
		{http.MethodPatch, "/api/v1/webhooks/" + id, map[string]any{"enabled": true}, http.StatusOK},
		{http.MethodDelete, "/api/v1/webhooks/" + id, nil, http.StatusOK},
	}
	for _, s := range steps {
		if r := e.portal(t, s.method, s.path, token, s.body); r.status != s.status {
			t.Errorf("%s %s with a portal token = %d, want %d: %s", s.method, s.path, r.status, s.status, r.body)
		}
	}
}

// TestPortalTokenGrantsNothingElse: no events:write, no usage, no new sessions, no other
// tenant, and nowhere but X-Portal-Token.
func TestPortalTokenGrantsNothingElse(t *testing.T) {
	e := newEnv(t)
	w := newTwoTenants(t, e)
	token, _ := e.portalSession(t, w.keyA, nil)
	missing := []struct{ name, method, path string }{
		{"publish", http.MethodPost, "/api/v1/events"},
		{"usage", http.MethodGet, "/api/v1/usage"},
		{"a new portal session", http.MethodPost, "/api/v1/portal/sessions"},
	}
	for _, tt := range missing {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{"type": "scan.completed", "data": map[string]any{"scanId": "s", "scanType": "zap"}}
			r := e.portal(t, tt.method, tt.path, token, body)
			assertError(t, r, http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
		})
	}
	t.Run("another tenant's event", func(t *testing.T) {
		evid := data(t, e.publish(t, w.keyB, "scan.completed"), http.StatusAccepted)["id"].(string)
		r := e.portal(t, http.MethodGet, "/api/v1/events/"+evid, token, nil)
		assertError(t, r, http.StatusNotFound, "EVENT_NOT_FOUND", "Event not found")
		items, _ := listData(t, e.portal(t, http.MethodGet, "/api/v1/events?limit=100", token, nil))
		for _, it := range items {
			if id := it.(map[string]any)["id"]; id == evid {
				t.Errorf("A's portal lists B's event %s", id)
			}
		}
	})
	t.Run("another tenant's endpoint", func(t *testing.T) {
		r := e.portal(t, http.MethodGet, "/api/v1/webhooks/"+w.hookB, token, nil)
		assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
		r = e.portal(t, http.MethodGet, "/api/v1/webhooks/"+w.hookB+"/deliveries/"+w.didB, token, nil)
		assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
		items, _ := listData(t, e.portal(t, http.MethodGet, "/api/v1/webhooks?limit=100", token, nil))
		for _, it := range items {
			if id := it.(map[string]any)["id"]; id == w.hookB {
				t.Errorf("A's portal lists B's endpoint %s", id)
			}
		}
	})
	for _, hdr := range [][]string{{"Authorization", "Bearer " + token}, {"Authorization", token}, {"Cookie", "token=" + token}} {
		t.Run("token in "+hdr[0], func(t *testing.T) {
			r := e.do(t, http.MethodGet, "/api/v1/webhooks", "", nil, hdr...)
			assertError(t, r, http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
		})
	}
	t.Run("token in the query string", func(t *testing.T) {
		r := e.do(t, http.MethodGet, "/api/v1/webhooks?token="+token, "", nil)
		assertError(t, r, http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
	})
}

func TestInvalidPortalToken(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	token, _ := e.portalSession(t, key, nil)
	tests := []struct{ name, token string }{
		{"garbage", "hello"},
		{"prefix only", registry.PortalTokenPrefix},
		{"an API key", key},
		{"right prefix, unknown", registry.PortalTokenPrefix + strings.Repeat("a", 48)},
		{"one secret character changed", changeChar(token, len(token)-1)},
		{"one id character changed", changeChar(token, len(registry.PortalTokenPrefix))},
		{"one character more", token + "a"},
		{"not base62", token[:len(token)-1] + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.portal(t, http.MethodGet, "/api/v1/webhooks", tt.token, nil)
			assertError(t, r, http.StatusUnauthorized, "INVALID_PORTAL_SESSION", invalidSession)
		})
	}
	t.Run("an API key beside it wins", func(t *testing.T) {
		r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil, "X-Portal-Token", "hello")
		listData(t, r)
	})
}
