package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// TestPortalSessionExpires: the token works until expiresAt and answers PORTAL_SESSION_EXPIRED
// from then on (the API's clock is moved, nothing sleeps).
func TestPortalSessionExpires(t *testing.T) {
	clock := &testClock{now: time.Now()}
	e := newEnv(t, withClock(clock))
	key, _ := e.newKey(t)
	token, d := e.portalSession(t, key, map[string]any{"expiresInSeconds": 60})
	expiresAt, _ := time.Parse(time.RFC3339Nano, d["expiresAt"].(string))

	clock.Set(expiresAt.Add(-time.Millisecond))
	listData(t, e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil))
	clock.Set(expiresAt)
	r := e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil)
	assertError(t, r, http.StatusUnauthorized, "PORTAL_SESSION_EXPIRED", expiredSession)
	clock.Set(expiresAt.Add(23 * time.Hour))
	r = e.portal(t, http.MethodPost, "/api/v1/webhooks", token, map[string]any{"url": e.hookURL("/x"), "events": []string{"scan.failed"}})
	assertError(t, r, http.StatusUnauthorized, "PORTAL_SESSION_EXPIRED", expiredSession)
}

// TestPortalSessionNeverOutlivesItsKey: a key that expires sooner cuts the session short.
func TestPortalSessionNeverOutlivesItsKey(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 0)
	keyExp := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Millisecond)
	key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: registry.Scopes, ExpiresAt: &keyExp})
	_, d := e.portalSession(t, key, map[string]any{"expiresInSeconds": 86400})
	if got, _ := time.Parse(time.RFC3339Nano, d["expiresAt"].(string)); !got.Equal(keyExp) {
		t.Errorf("expiresAt = %s, want the key's expiry %s", got, keyExp)
	}
}

// TestPortalSessionEndsWithItsKeyAndTenant: revoking or suspending the key that made a session
// ends it; a suspended tenant's sessions answer TENANT_SUSPENDED like its keys.
func TestPortalSessionEndsWithItsKeyAndTenant(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 0)
	ctx := t.Context()
	for _, status := range []string{registry.StatusSuspended, registry.StatusRevoked} {
		t.Run("key "+status, func(t *testing.T) {
			key, kid := e.key(t, registry.NewKeyParams{TenantID: tid})
			token, _ := e.portalSession(t, key, nil)
			if _, err := e.store.SetAPIKeyStatus(ctx, kid, status); err != nil {
				t.Fatal(err)
			}
			r := e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil)
			assertError(t, r, http.StatusUnauthorized, "INVALID_PORTAL_SESSION", invalidSession)
		})
	}
	t.Run("tenant suspended", func(t *testing.T) {
		key, _ := e.key(t, registry.NewKeyParams{TenantID: tid})
		token, _ := e.portalSession(t, key, nil)
		if _, err := e.store.SetTenantStatus(ctx, tid, registry.StatusSuspended); err != nil {
			t.Fatal(err)
		}
		r := e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil)
		assertError(t, r, http.StatusForbidden, "TENANT_SUSPENDED", "Tenant account is suspended")
		if _, err := e.store.SetTenantStatus(ctx, tid, registry.StatusActive); err != nil {
			t.Fatal(err)
		}
		listData(t, e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil))
	})
}

// TestPortalSessionHasItsOwnRateBucket: a session is limited at its key's rate, but spending
// it leaves the key's own budget (the integration's) untouched.
func TestPortalSessionHasItsOwnRateBucket(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 0)
	key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 3})
	token, _ := e.portalSession(t, key, nil) // the key's first request
	for i := range 3 {
		if r := e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil); r.status != http.StatusOK {
			t.Fatalf("portal request %d = %d, want 200: %s", i+1, r.status, r.body)
		}
	}
	r := e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil)
	if r.status != http.StatusTooManyRequests || r.object(t)["code"] != "RATE_LIMIT_EXCEEDED" || r.header.Get("Retry-After") == "" {
		t.Fatalf("4th portal request = %d %s, want 429 RATE_LIMIT_EXCEEDED with Retry-After", r.status, r.body)
	}
	if limit, _ := assertRateHeaders(t, r); limit != 3 {
		t.Errorf("X-RateLimit-Limit = %d, want the key's 3", limit)
	}
	listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil)) // the key's second
}

// TestPortalTokenNeverLogged: neither the token nor its secret part reaches the log, whatever
// the request; the session id (not a credential) does, for audits.
func TestPortalTokenNeverLogged(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	token, d := e.portalSession(t, key, nil)
	e.portal(t, http.MethodGet, "/api/v1/webhooks", token, nil)
	e.portal(t, http.MethodGet, "/api/v1/webhooks/"+unknownID, token, nil)
	e.portal(t, http.MethodGet, "/api/v1/webhooks", changeChar(token, len(token)-1), nil)
	e.portal(t, http.MethodPost, "/api/v1/events", token, "{")
	logs := e.logs.String()
	if strings.Contains(logs, token[len(registry.PortalTokenPrefix)+16:]) {
		t.Errorf("the log holds a portal token's secret:\n%s", logs)
	}
	if !strings.Contains(logs, `"portalSessionId":"`+d["id"].(string)+`"`) {
		t.Errorf("the access log does not name the portal session %s:\n%s", d["id"], logs)
	}
}
