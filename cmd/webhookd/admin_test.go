package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// cli runs one webhookd command in-process and returns its stdout.
func cli(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, getenv, &stdout, &stderr)
	return stdout.String(), err
}

// mustCLI runs a command that must succeed and decodes its JSON output into v.
func mustCLI(t *testing.T, getenv func(string) string, v any, args ...string) string {
	t.Helper()
	out, err := cli(t, getenv, args...)
	if err != nil {
		t.Fatalf("webhookd %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("webhookd %s printed %q, not JSON: %v", strings.Join(args, " "), out, err)
	}
	return out
}

// TestAdminCLI drives tenants and keys through the admin commands and checks the API obeys.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	var tenant struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	mustCLI(t, st.getenv, &tenant, "tenants", "create", "--name", "Acme Corp", "--monthly-event-quota", "1000")
	if tenant.ID == "" || tenant.Status != registry.StatusActive {
		t.Fatalf("tenants create printed %+v, want an id and status active", tenant)
	}

	type keyOut struct {
		ID     string   `json:"id"`
		Key    string   `json:"key"`
		Scopes []string `json:"scopes"`
		Status string   `json:"status"`
	}
	var k1, k2 keyOut
	out1 := mustCLI(t, st.getenv, &k1, "keys", "create", "--tenant", tenant.ID, "--scopes", "webhooks:read", "--name", "ci")
	if !strings.HasPrefix(k1.Key, registry.KeyPrefix) || k1.ID == "" || len(k1.Scopes) != 1 {
		t.Fatalf("keys create printed %s, want an id, the cix_sk_ key and one scope", out1)
	}
	if strings.Contains(out1, `"hash"`) {
		t.Errorf("keys create printed the key's hash: %s", out1)
	}
	mustCLI(t, st.getenv, &k2, "keys", "create", "--tenant", tenant.ID, "--scopes", "webhooks:read,webhooks:write")
	svc.call(t, k1.Key, http.MethodGet, "/api/v1/webhooks", nil).want(t, http.StatusOK, nil)
	svc.call(t, k1.Key, http.MethodPost, "/api/v1/webhooks", map[string]any{}).
		wantError(t, http.StatusForbidden, "INSUFFICIENT_SCOPE", "Insufficient scope: requires webhooks:write")

	var listed []map[string]any
	list := mustCLI(t, st.getenv, &listed, "keys", "list", "--tenant", tenant.ID)
	if len(listed) != 2 {
		t.Fatalf("keys list printed %d keys, want 2", len(listed))
	}
	for _, k := range []keyOut{k1, k2} {
		sum := sha256.Sum256([]byte(k.Key))
		for _, secret := range []string{k.Key, strings.TrimPrefix(k.Key, registry.KeyPrefix), hex.EncodeToString(sum[:])} {
			if strings.Contains(list, secret) {
				t.Errorf("keys list shows a key or its hash: %s", list)
			}
		}
	}
	for _, k := range listed {
		if _, ok := k["hash"]; ok {
			t.Errorf("keys list has a hash field: %v", k)
		}
		if _, ok := k["key"]; ok {
			t.Errorf("keys list has a key field: %v", k)
		}
	}

	var revoked keyOut
	mustCLI(t, st.getenv, &revoked, "keys", "revoke", k1.ID)
	if revoked.Status != registry.StatusRevoked || revoked.Key != "" {
		t.Errorf("keys revoke printed %+v, want status revoked and no key", revoked)
	}
	svc.call(t, k1.Key, http.MethodGet, "/api/v1/webhooks", nil).
		wantError(t, http.StatusUnauthorized, "KEY_REVOKED", "API key has been revoked")

	// A publisher's key, read once by the server: its publishes carry their own authentication,
	// and a revoke still applies to the very next one.
	var publisher keyOut
	mustCLI(t, st.getenv, &publisher, "keys", "create", "--tenant", tenant.ID, "--scopes", "events:write")
	for range 2 {
		svc.publish(t, publisher.Key, registry.EventScanCompleted, scanData())
	}
	mustCLI(t, st.getenv, &revoked, "keys", "revoke", publisher.ID)
	svc.call(t, publisher.Key, http.MethodPost, "/api/v1/events", map[string]any{"type": registry.EventScanCompleted,
		"data": scanData()}).wantError(t, http.StatusUnauthorized, "KEY_REVOKED", "API key has been revoked")

	mustCLI(t, st.getenv, &tenant, "tenants", "suspend", tenant.ID)
	if tenant.Status != registry.StatusSuspended {
		t.Errorf("tenants suspend printed status %q", tenant.Status)
	}
	svc.call(t, k2.Key, http.MethodGet, "/api/v1/webhooks", nil).
		wantError(t, http.StatusForbidden, "TENANT_SUSPENDED", "Tenant account is suspended")
	mustCLI(t, st.getenv, &tenant, "tenants", "resume", tenant.ID)
	svc.call(t, k2.Key, http.MethodGet, "/api/v1/webhooks", nil).want(t, http.StatusOK, nil)
}

// TestAdminCLIUsageErrors: malformed commands are usage errors (exit code 2) and touch nothing;
// a command that cannot reach Redis is an ordinary failure (exit code 1).
func TestAdminCLIUsageErrors(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"tenants without a subcommand", []string{"tenants"}},
		{"tenants create without a name", []string{"tenants", "create"}},
		{"negative quota", []string{"tenants", "create", "--name", "x", "--monthly-event-quota", "-1"}},
		{"unknown flag", []string{"tenants", "create", "--name", "x", "--colour", "red"}},
		{"suspend without an id", []string{"tenants", "suspend"}},
		{"keys create without a tenant", []string{"keys", "create", "--scopes", "webhooks:read"}},
		{"unknown scope", []string{"keys", "create", "--tenant", "t1", "--scopes", "webhooks:admin"}},
		{"bad expiry", []string{"keys", "create", "--tenant", "t1", "--scopes", "webhooks:read", "--expires", "tomorrow"}},
		{"expiry in the past", []string{"keys", "create", "--tenant", "t1", "--scopes", "webhooks:read", "--expires",
			"2020-01-01T00:00:00Z"}},
		{"a stray argument to keys create", []string{"keys", "create", "--tenant", "t1", "--scopes", "webhooks:read", "extra"}},
		{"a stray argument to tenants create", []string{"tenants", "create", "--name", "x", "extra"}},
		{"a blank tenant name", []string{"tenants", "create", "--name", "  "}},
		{"keys list without a tenant", []string{"keys", "list"}},
		{"a stray argument to keys list", []string{"keys", "list", "--tenant", "t1", "extra"}},
		{"revoke with two ids", []string{"keys", "revoke", "a", "b"}},
		{"serve with a bad role", []string{"serve", "--role", "everything"}},
		{"serve with a bad duration", []string{"serve", "--retry-initial-interval", "soon"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := cli(t, st.getenv, tc.args...)
			var ue usageError
			if !errors.As(err, &ue) || exitCode(err) != 2 {
				t.Fatalf("webhookd %q = %v (exit %d), want a usage error (exit 2)", tc.args, err, exitCode(err))
			}
			if out != "" {
				t.Errorf("a usage error printed %q on stdout", out)
			}
			if strings.Contains(err.Error(), "parsing time") || strings.Contains(err.Error(), "cannot parse") {
				t.Errorf("a usage error shows Go's parse error: %v", err)
			}
		})
	}
	t.Run("no redis", func(t *testing.T) {
		_, err := cli(t, func(string) string { return "" }, "tenants", "create", "--name", "x")
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("tenants create without REDIS_URL = %v (exit %d), want a failure naming REDIS_URL (exit 1)",
				err, exitCode(err))
		}
	})
	if ids, err := st.store.TenantIDs(t.Context()); err != nil || len(ids) != 0 {
		t.Errorf("usage errors created tenants %v (%v)", ids, err)
	}
}
