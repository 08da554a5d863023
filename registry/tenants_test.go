package registry_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func TestTenantLifecycle(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn, err := e.store.CreateTenant(ctx, "Acme", 1000)
		if err != nil {
			t.Fatalf("CreateTenant: %v", err)
		}
		if tn.ID == "" || tn.Name != "Acme" || tn.Status != registry.StatusActive || tn.MonthlyEventQuota != 1000 ||
			!tn.CreatedAt.Equal(start) || !tn.UpdatedAt.Equal(start) {
			t.Fatalf("CreateTenant = %+v, want active Acme with quota 1000 created at %v", tn, start)
		}
		got, err := e.store.Tenant(ctx, tn.ID)
		if err != nil {
			t.Fatalf("Tenant: %v", err)
		}
		if *got != *tn {
			t.Errorf("Tenant = %+v, want %+v", got, tn)
		}

		steps := []struct {
			status string
			at     time.Duration
		}{{registry.StatusSuspended, time.Minute}, {registry.StatusActive, 2 * time.Minute}}
		for _, s := range steps {
			e.clock.Set(start.Add(s.at))
			up, err := e.store.SetTenantStatus(ctx, tn.ID, s.status)
			if err != nil {
				t.Fatalf("SetTenantStatus(%s): %v", s.status, err)
			}
			got, err := e.store.Tenant(ctx, tn.ID)
			if err != nil {
				t.Fatalf("Tenant: %v", err)
			}
			if up.Status != s.status || got.Status != s.status || !got.UpdatedAt.Equal(start.Add(s.at)) ||
				!got.CreatedAt.Equal(start) || got.Name != "Acme" || got.MonthlyEventQuota != 1000 {
				t.Errorf("after SetTenantStatus(%s): returned %+v, stored %+v", s.status, up, got)
			}
		}
		if _, err := e.store.SetTenantStatus(ctx, tn.ID, "deleted"); err == nil {
			t.Error(`SetTenantStatus("deleted") succeeded, want an error`)
		}
	})
}

func TestTenantNotFound(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		if _, err := e.store.Tenant(ctx, "no-such-tenant"); !errors.Is(err, registry.ErrTenantNotFound) {
			t.Errorf("Tenant(unknown) err = %v, want ErrTenantNotFound", err)
		}
		if _, err := e.store.SetTenantStatus(ctx, "no-such-tenant", registry.StatusSuspended); !errors.Is(err, registry.ErrTenantNotFound) {
			t.Errorf("SetTenantStatus(unknown) err = %v, want ErrTenantNotFound", err)
		}
		if _, err := e.store.ListAPIKeys(ctx, "no-such-tenant"); !errors.Is(err, registry.ErrTenantNotFound) {
			t.Errorf("ListAPIKeys(unknown) err = %v, want ErrTenantNotFound", err)
		}
		_, _, err := e.store.CreateAPIKey(ctx, registry.NewKeyParams{TenantID: "no-such-tenant", Scopes: registry.Scopes})
		if !errors.Is(err, registry.ErrTenantNotFound) {
			t.Errorf("CreateAPIKey(unknown tenant) err = %v, want ErrTenantNotFound", err)
		}
		if _, err := e.store.CreateTenant(ctx, "Negative", -1); err == nil {
			t.Error("CreateTenant with quota -1 succeeded, want an error")
		}
	})
}

func TestTenantIDs(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ids, err := e.store.TenantIDs(t.Context())
		if err != nil || len(ids) != 0 {
			t.Fatalf("TenantIDs on an empty store = %v, %v; want none", ids, err)
		}
		var want []string
		for range 3 {
			want = append(want, e.tenant(t, 0).ID)
		}
		got, err := e.store.TenantIDs(t.Context())
		if err != nil {
			t.Fatalf("TenantIDs: %v", err)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("TenantIDs = %v, want %v", got, want)
		}
	})
}
