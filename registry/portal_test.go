package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func TestPortalSessionRoundTrip(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		k, _, err := e.store.CreateAPIKey(t.Context(), registry.NewKeyParams{TenantID: tn.ID, Scopes: registry.Scopes})
		if err != nil {
			t.Fatal(err)
		}
		p, token, err := e.store.CreatePortalSession(t.Context(), k, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if p.TenantID != tn.ID || p.KeyID != k.ID || !p.ExpiresAt.Equal(start.Add(time.Hour)) {
			t.Errorf("session = %+v, want tenant %s, key %s, expiring at %s", p, tn.ID, k.ID, start.Add(time.Hour))
		}
		got, err := e.store.LookupPortalSession(t.Context(), token)
		if err != nil || got.ID != p.ID || !got.ExpiresAt.Equal(p.ExpiresAt) {
			t.Fatalf("LookupPortalSession = %+v, %v; want %+v", got, err, p)
		}
		if got.Expired(start.Add(time.Hour-time.Millisecond)) || !got.Expired(start.Add(time.Hour)) {
			t.Errorf("Expired is wrong around %s", got.ExpiresAt)
		}
		last := "x"
		if strings.HasSuffix(token, last) {
			last = "y"
		}
		_, err = e.store.LookupPortalSession(t.Context(), token[:len(token)-1]+last)
		wantCode(t, err, registry.CodeInvalidPortalSession)
	})
}

func TestPortalSessionLifetimeBounds(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		soon := start.Add(time.Minute)
		k, _, err := e.store.CreateAPIKey(t.Context(), registry.NewKeyParams{TenantID: tn.ID, Scopes: registry.Scopes, ExpiresAt: &soon})
		if err != nil {
			t.Fatal(err)
		}
		for _, ttl := range []time.Duration{0, -time.Second, registry.MaxPortalSession + time.Millisecond} {
			if _, _, err := e.store.CreatePortalSession(t.Context(), k, ttl); err == nil {
				t.Errorf("CreatePortalSession(%s) succeeded, want an error", ttl)
			}
		}
		p, _, err := e.store.CreatePortalSession(t.Context(), k, registry.MaxPortalSession)
		if err != nil || !p.ExpiresAt.Equal(soon) {
			t.Errorf("session of a key expiring at %s = %+v, %v; want it to expire with the key", soon, p, err)
		}
	})
}
