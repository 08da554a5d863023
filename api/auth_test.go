package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
)

// changeChar returns s with the character at i replaced by another base62 character.
func changeChar(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestMissingAPIKey(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct {
		name string
		path string
		hdr  []string
	}{
		{"no header", "/api/v1/webhooks", nil},
		{"empty header", "/api/v1/webhooks", []string{"X-API-Key", ""}},
		{"key in the query string", "/api/v1/webhooks?apiKey=" + key, nil},
		{"key in Authorization Bearer", "/api/v1/webhooks", []string{"Authorization", "Bearer " + key}},
		{"key in Authorization bare", "/api/v1/webhooks", []string{"Authorization", key}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodGet, tt.path, "", nil, tt.hdr...)
			assertError(t, r, http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
		})
	}
}

func TestInvalidAPIKey(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct{ name, key string }{
		{"garbage", "hello"},
		{"prefix only", registry.KeyPrefix},
		{"wrong prefix", "cix_pk_" + strings.TrimPrefix(key, registry.KeyPrefix)},
		{"right prefix, unknown", registry.KeyPrefix + strings.Repeat("a", 48)},
		{"right prefix, too short", registry.KeyPrefix + strings.Repeat("a", 31)},
		{"right prefix, not base62", registry.KeyPrefix + strings.Repeat("a", 47) + "-"},
		{"one secret character changed", changeChar(key, len(key)-1)},
		{"one id character changed", changeChar(key, len(registry.KeyPrefix))},
		{"one character more", key + "a"},
		{"upper-case prefix", strings.ToUpper(key[:7]) + key[7:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodGet, "/api/v1/webhooks", tt.key, nil)
			assertError(t, r, http.StatusUnauthorized, "INVALID_API_KEY", "Invalid API key")
		})
	}
	t.Run("the real key still works", func(t *testing.T) {
		listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	})
}

// TestKeyAndTenantStatus covers KEY_EXPIRED, KEY_REVOKED, KEY_SUSPENDED, TENANT_SUSPENDED and
// IP_NOT_ALLOWED, alone and combined, so that the contract's check order decides.
func TestKeyAndTenantStatus(t *testing.T) {
	e := newEnv(t)
	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(time.Hour)
	const (
		revoked   = 1 << iota // key revoked
		suspended             // key suspended
		tenantOff             // tenant suspended
	)
	tests := []struct {
		name    string
		state   int
		expires *time.Time
		ips     []string
		scopes  []string
		status  int
		code    string
		msg     string
	}{
		{"expired", 0, &past, nil, nil, 401, "KEY_EXPIRED", "API key has expired"},
		{"revoked", revoked, nil, nil, nil, 401, "KEY_REVOKED", "API key has been revoked"},
		{"suspended", suspended, nil, nil, nil, 401, "KEY_SUSPENDED", "API key has been suspended"},
		{"tenant suspended", tenantOff, nil, nil, nil, 403, "TENANT_SUSPENDED", "Tenant account is suspended"},
		{"ip not allowed", 0, nil, []string{"203.0.113.0/24"}, nil, 403, "IP_NOT_ALLOWED", "Source IP not in allowed list"},
		{"single ip not allowed", 0, nil, []string{"203.0.113.7"}, nil, 403, "IP_NOT_ALLOWED", "Source IP not in allowed list"},
		{"scope missing", 0, nil, nil, []string{registry.ScopeEventsWrite}, 403, "INSUFFICIENT_SCOPE",
			"Insufficient scope: requires webhooks:read"},
		// The contract's order: KEY_REVOKED, KEY_SUSPENDED, KEY_EXPIRED, TENANT_SUSPENDED,
		// IP_NOT_ALLOWED, RATE_LIMIT_EXCEEDED, INSUFFICIENT_SCOPE.
		{"revoked and expired", revoked, &past, nil, nil, 401, "KEY_REVOKED", "API key has been revoked"},
		{"revoked key of a suspended tenant", revoked | tenantOff, nil, nil, nil, 401, "KEY_REVOKED", "API key has been revoked"},
		{"suspended and expired", suspended, &past, nil, nil, 401, "KEY_SUSPENDED", "API key has been suspended"},
		{"suspended key of a suspended tenant", suspended | tenantOff, nil, nil, nil, 401, "KEY_SUSPENDED",
			"API key has been suspended"},
		{"expired key of a suspended tenant", tenantOff, &past, nil, nil, 401, "KEY_EXPIRED", "API key has expired"},
		{"suspended tenant and ip not allowed", tenantOff, nil, []string{"203.0.113.0/24"}, nil, 403,
			"TENANT_SUSPENDED", "Tenant account is suspended"},
		{"ip not allowed and scope missing", 0, nil, []string{"203.0.113.0/24"}, []string{registry.ScopeEventsWrite},
			403, "IP_NOT_ALLOWED", "Source IP not in allowed list"},
		{"expired and ip not allowed", 0, &past, []string{"203.0.113.0/24"}, nil, 401, "KEY_EXPIRED",
			"API key has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tid := e.tenant(t, 0)
			key, kid := e.key(t, registry.NewKeyParams{TenantID: tid, ExpiresAt: tt.expires,
				AllowedIPAddresses: tt.ips, Scopes: tt.scopes})
			setStatus(t, e, tid, kid, tt.state&revoked != 0, tt.state&suspended != 0, tt.state&tenantOff != 0)
			r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil)
			assertError(t, r, tt.status, tt.code, tt.msg)
		})
	}
	t.Run("allowed", func(t *testing.T) {
		tid := e.tenant(t, 0)
		key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, ExpiresAt: &future,
			AllowedIPAddresses: []string{"203.0.113.0/24", "127.0.0.1"}})
		listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	})
	t.Run("resumed key and tenant work again", func(t *testing.T) {
		tid := e.tenant(t, 0)
		key, kid := e.key(t, registry.NewKeyParams{TenantID: tid})
		setStatus(t, e, tid, kid, false, true, true)
		assertError(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil), 401, "KEY_SUSPENDED", "API key has been suspended")
		if _, err := e.store.SetAPIKeyStatus(t.Context(), kid, registry.StatusActive); err != nil {
			t.Fatal(err)
		}
		assertError(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil), 403, "TENANT_SUSPENDED", "Tenant account is suspended")
		if _, err := e.store.SetTenantStatus(t.Context(), tid, registry.StatusActive); err != nil {
			t.Fatal(err)
		}
		listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	})
}

func setStatus(t *testing.T, e *env, tid, kid string, revoke, suspend, tenantOff bool) {
	t.Helper()
	ctx := t.Context()
	if suspend {
		if _, err := e.store.SetAPIKeyStatus(ctx, kid, registry.StatusSuspended); err != nil {
			t.Fatal(err)
		}
	}
	if revoke {
		if _, err := e.store.SetAPIKeyStatus(ctx, kid, registry.StatusRevoked); err != nil {
			t.Fatal(err)
		}
	}
	if tenantOff {
		if _, err := e.store.SetTenantStatus(ctx, tid, registry.StatusSuspended); err != nil {
			t.Fatal(err)
		}
	}
}

func TestForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		proxies []string
		xff     string
		allowed bool
	}{
		{"no trusted proxies: X-Forwarded-For ignored", nil, "203.0.113.9", false},
		{"peer not a trusted proxy: X-Forwarded-For ignored", []string{"10.0.0.0/8"}, "203.0.113.9", false},
		{"peer is a trusted proxy: X-Forwarded-For honoured", []string{"127.0.0.0/8"}, "203.0.113.9", true},
		{"trusted proxy forwards a client outside the list", []string{"127.0.0.0/8"}, "198.51.100.1", false},
		{"spoofed left entry behind a trusted proxy", []string{"127.0.0.0/8"}, "203.0.113.9, 198.51.100.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withTrustedProxies(tt.proxies...))
			tid := e.tenant(t, 0)
			key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, AllowedIPAddresses: []string{"203.0.113.0/24"}})
			r := e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil, "X-Forwarded-For", tt.xff)
			if tt.allowed {
				listData(t, r)
				return
			}
			assertError(t, r, http.StatusForbidden, "IP_NOT_ALLOWED", "Source IP not in allowed list")
		})
	}
}

func TestInsufficientScope(t *testing.T) {
	e := newEnv(t)
	owner, tid := e.newKey(t)
	id := e.createWebhook(t, owner)["id"].(string)
	read, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksRead}})
	write, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksWrite}})
	events, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeEventsWrite}})
	webhooks, _ := e.key(t, registry.NewKeyParams{TenantID: tid,
		Scopes: []string{registry.ScopeWebhooksRead, registry.ScopeWebhooksWrite}})
	const w, rd, ev = "webhooks:write", "webhooks:read", "events:write"
	hook := "/api/v1/webhooks/" + id
	tests := []struct {
		key, method, path, scope string
	}{
		{read, "POST", "/api/v1/webhooks", w},
		{read, "PATCH", hook, w},
		{read, "DELETE", hook, w},
		{read, "GET", hook + "/secret", w},
		{read, "POST", hook + "/rotate-secret", w},
		{read, "POST", hook + "/test", w},
		{read, "POST", hook + "/deliveries/" + unknownID + "/retry", w},
		{read, "POST", "/api/v1/events", ev},
		{write, "GET", "/api/v1/webhooks", rd},
		{write, "GET", hook, rd},
		{write, "GET", hook + "/deliveries", rd},
		{write, "GET", hook + "/deliveries/" + unknownID, rd},
		{events, "GET", "/api/v1/webhooks", rd},
		{events, "POST", "/api/v1/webhooks", w},
		{webhooks, "POST", "/api/v1/events", ev},
		// The scope is checked before the id: an unknown id still answers 403.
		{read, "GET", "/api/v1/webhooks/" + unknownID + "/secret", w},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+strings.ReplaceAll(tt.path, id, "{id}")+" needs "+tt.scope, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, tt.key, "{}")
			assertError(t, r, http.StatusForbidden, "INSUFFICIENT_SCOPE", "Insufficient scope: requires "+tt.scope)
			assertRateHeaders(t, r)
		})
	}
}

// TestStatusChangesApplyToTheNextRequest: the API keeps no copy of a key between requests, so
// a key revoked, suspended or past its expiry, or a tenant suspended, fails on the very next
// request, on every API server sharing the Redis, however often the key was used before.
func TestStatusChangesApplyToTheNextRequest(t *testing.T) {
	type state struct {
		e        *env
		clock    *testClock
		tid, kid string
		expires  time.Time
		second   *env // another API server on the same Redis
	}
	tests := []struct {
		name      string
		change    func(t *testing.T, s *state)
		status    int
		code, msg string
	}{
		{"key revoked", func(t *testing.T, s *state) { setStatus(t, s.e, s.tid, s.kid, true, false, false) },
			401, "KEY_REVOKED", "API key has been revoked"},
		{"key suspended", func(t *testing.T, s *state) { setStatus(t, s.e, s.tid, s.kid, false, true, false) },
			401, "KEY_SUSPENDED", "API key has been suspended"},
		{"key expired", func(t *testing.T, s *state) { s.clock.Set(s.expires) },
			401, "KEY_EXPIRED", "API key has expired"},
		{"tenant suspended", func(t *testing.T, s *state) { setStatus(t, s.e, s.tid, s.kid, false, false, true) },
			403, "TENANT_SUSPENDED", "Tenant account is suspended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &state{clock: &testClock{now: time.Now().UTC()}}
			s.e = newEnv(t, withClock(s.clock))
			s.second = newEnv(t, withRedis(s.e.rdb), withClock(s.clock))
			s.tid = s.e.tenant(t, 0)
			s.expires = s.clock.Now().Add(time.Hour)
			key, kid := s.e.key(t, registry.NewKeyParams{TenantID: s.tid, ExpiresAt: &s.expires})
			s.kid = kid
			other, _ := s.e.key(t, registry.NewKeyParams{TenantID: s.tid})
			servers := []*env{s.e, s.second}
			for range 3 {
				for _, srv := range servers {
					listData(t, srv.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
				}
			}
			s.clock.Set(s.expires.Add(-time.Nanosecond)) // the last instant the key is valid
			listData(t, s.e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
			tt.change(t, s)
			for _, srv := range servers {
				assertError(t, srv.do(t, http.MethodGet, "/api/v1/webhooks", key, nil), tt.status, tt.code, tt.msg)
			}
			// The tenant's other key fails with the tenant; a change of one key leaves it alone.
			r := s.e.do(t, http.MethodGet, "/api/v1/webhooks", other, nil)
			if tt.code == "TENANT_SUSPENDED" {
				assertError(t, r, tt.status, tt.code, tt.msg)
			} else {
				listData(t, r)
			}
		})
	}
}

// TestAPIKeysStoredAsHashesOnly uses keys on every route, publishing included (asynq tasks,
// events, deliveries), then reads every key and value in Redis: no plain key and no secret
// part is anywhere, and each key's SHA-256 hash is.
func TestAPIKeysStoredAsHashesOnly(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	readOnly, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksRead}})
	otherTenant, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	did := e.sendTest(t, key, id)["id"].(string)
	for _, op := range webhookOps(id, did) {
		e.do(t, op.method, op.path, readOnly, opBody(op.method))
		e.do(t, op.method, op.path, otherTenant, opBody(op.method))
		if op.name != "delete" {
			e.do(t, op.method, op.path, key, opBody(op.method))
		}
	}
	data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "idem-"+key[len(key)-8:]), http.StatusAccepted)
	usage(t, e, readOnly)
	db := registrytest.Dump(t, e.rdb)
	if len(db) < 5 {
		t.Fatalf("the database holds %d keys: the traffic stored nothing to scan", len(db))
	}
	registrytest.CheckKeysHashedOnly(t, db, key, readOnly, otherTenant)
}
