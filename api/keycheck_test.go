package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/registry"
)

// TestPublishCarriesItsAuthentication: once a key has been read, its publishes are checked and
// counted by the publish itself (registry.KeyCheck), and answer as every other request does:
// each counted once, with its rate headers; a body that fails validation after the key's
// checks, RATE_LIMIT_EXCEEDED before the body's code; and a key changed since it was read
// (revoked, its tenant suspended) with that change's code, whatever the body.
func TestPublishCarriesItsAuthentication(t *testing.T) {
	counted := &countingRegistry{}
	e := newEnv(t, withRegistry(func(s *registry.Store) api.Registry {
		counted.Store = s
		return counted
	}))
	authentications := func(want int64) {
		t.Helper()
		if got := counted.auths.Load(); got != want {
			t.Errorf("%d round trips of their own to authenticate, want %d", got, want)
		}
	}
	tid := e.tenant(t, 0)
	key, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 5})
	e.createWebhook(t, key, registry.EventScanCompleted) // read and counted: 4 left
	remaining := func(r *response, want int) {
		t.Helper()
		if _, got := assertRateHeaders(t, r); got != want {
			t.Errorf("X-RateLimit-Remaining = %d, want %d", got, want)
		}
	}
	r := e.publish(t, key, registry.EventScanCompleted)
	data(t, r, http.StatusAccepted)
	remaining(r, 3)
	authentications(1) // the webhook's
	r = e.do(t, http.MethodPost, "/api/v1/events", key, "{")
	assertError(t, r, http.StatusBadRequest, "INVALID_JSON", invalidJSON)
	remaining(r, 2)
	authentications(2)
	r = e.do(t, http.MethodPost, "/api/v1/events/batch", key, map[string]any{"events": []any{
		map[string]any{"type": registry.EventScanCompleted, "data": map[string]any{"scanId": "s-1", "scanType": "zap"}}}})
	data(t, r, http.StatusAccepted)
	remaining(r, 1)
	authentications(2)
	data(t, e.publish(t, key, registry.EventScanCompleted), http.StatusAccepted)
	assertRateLimited(t, e.publish(t, key, registry.EventScanCompleted))
	assertRateLimited(t, e.do(t, http.MethodPost, "/api/v1/events", key, "{"))
	if u, err := e.store.Usage(t.Context(), tid); err != nil || u.EventsPublished != 3 {
		t.Errorf("usage %+v, %v; want 3 events published (none refused)", u, err)
	}

	revoked, rid := e.key(t, registry.NewKeyParams{TenantID: tid})
	data(t, e.publish(t, revoked, registry.EventScanCompleted), http.StatusAccepted)
	if _, err := e.store.SetAPIKeyStatus(t.Context(), rid, registry.StatusRevoked); err != nil {
		t.Fatal(err)
	}
	assertError(t, e.publish(t, revoked, registry.EventScanCompleted), http.StatusUnauthorized, "KEY_REVOKED", "API key has been revoked")
	assertError(t, e.do(t, http.MethodPost, "/api/v1/events", revoked, "{"), http.StatusUnauthorized, "KEY_REVOKED",
		"API key has been revoked")

	other, _ := e.key(t, registry.NewKeyParams{TenantID: tid})
	data(t, e.publish(t, other, registry.EventScanCompleted), http.StatusAccepted)
	if _, err := e.store.SetTenantStatus(t.Context(), tid, registry.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	assertError(t, e.publish(t, other, registry.EventScanCompleted), http.StatusForbidden, "TENANT_SUSPENDED",
		"Tenant account is suspended")
}

// countingRegistry counts the authentications that make a round trip of their own.
type countingRegistry struct {
	*registry.Store
	auths atomic.Int64
}

func (c *countingRegistry) Authenticate(ctx context.Context, plain string, defaultPerMinute int) (*registry.APIKey,
	registry.RateResult, error) {
	c.auths.Add(1)
	return c.Store.Authenticate(ctx, plain, defaultPerMinute)
}
