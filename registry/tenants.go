package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ErrTenantNotFound is returned by the admin operations for an unknown tenant id.
var ErrTenantNotFound = errors.New("tenant not found")

// ErrKeyNotFound is returned by the admin operations for an unknown key id.
var ErrKeyNotFound = errors.New("api key not found")

// ErrKeyRevoked is returned when a revoked key would be resumed or suspended: revoking is final.
var ErrKeyRevoked = errors.New("the api key is revoked, and a revoked key cannot be resumed or suspended: create a new key")

// CreateTenant stores a new active tenant. quota 0 means unlimited.
func (s *Store) CreateTenant(ctx context.Context, name string, quota int64) (*Tenant, error) {
	if quota < 0 {
		return nil, errors.New("monthly event quota must be 0 (unlimited) or positive")
	}
	now := s.now().UTC()
	t := &Tenant{ID: uuid.NewString(), Name: name, Status: StatusActive, MonthlyEventQuota: quota, CreatedAt: now, UpdatedAt: now}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	if err := s.rdb.Set(ctx, tenantKey(t.ID), b, 0).Err(); err != nil {
		return nil, storeErr("create tenant", err)
	}
	// The global set only feeds background sweeps; a tenant missing from it is still fully usable.
	if err := s.rdb.SAdd(ctx, tenantsKey(), t.ID).Err(); err != nil {
		return nil, storeErr("index tenant", err)
	}
	return t, nil
}

// Tenant returns one tenant; ErrTenantNotFound when unknown.
func (s *Store) Tenant(ctx context.Context, id string) (*Tenant, error) {
	var t Tenant
	if err := s.getJSON(ctx, tenantKey(id), &t); err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, ErrTenantNotFound
		}
		return nil, storeErr("get tenant", err)
	}
	return &t, nil
}

// TenantIDs returns every tenant id, for background sweeps.
func (s *Store) TenantIDs(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, tenantsKey()).Result()
	return ids, storeErr("list tenants", err)
}

// SetTenantStatus suspends or resumes a tenant.
func (s *Store) SetTenantStatus(ctx context.Context, id, status string) (*Tenant, error) {
	if status != StatusActive && status != StatusSuspended {
		return nil, fmt.Errorf("invalid tenant status %q", status)
	}
	var t Tenant
	err := s.updateJSON(ctx, tenantKey(id), &t, func() error {
		t.Status = status
		t.Version++
		t.UpdatedAt = s.now().UTC()
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil, ErrTenantNotFound
	}
	if err != nil {
		return nil, storeErr("update tenant", err)
	}
	return &t, s.copyTenantToKeys(ctx, &t)
}

// errUnchanged ends an updateJSON without a write: the record already holds what the change
// would write, or something newer.
var errUnchanged = errors.New("record unchanged")

// copyTenantToKeys rewrites the tenant's status and quota in each of its keys, unless a key
// already holds a newer version (two status changes overlapping). A failure part-way is
// reported; running the same command again completes it.
func (s *Store) copyTenantToKeys(ctx context.Context, t *Tenant) error {
	ids, err := s.rdb.SMembers(ctx, tenantAPIKeysKey(t.ID)).Result()
	if err != nil {
		return storeErr("list api keys", err)
	}
	for _, id := range ids {
		var k APIKey
		err := s.updateJSON(ctx, apiKeyKey(id), &k, func() error {
			if !k.copyTenant(t) {
				return errUnchanged
			}
			return nil
		})
		if errors.Is(err, errUnchanged) {
			continue
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return storeErr("update api key", err)
		}
	}
	return nil
}

func (s *Store) getJSON(ctx context.Context, key string, v any) error {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// updateJSON is an optimistic read-modify-write of one JSON record (WATCH/MULTI on one key,
// so it is valid on Redis Cluster). It returns redis.Nil when the key does not exist.
func (s *Store) updateJSON(ctx context.Context, key string, v any, change func() error) error {
	for i := 0; i < 10; i++ {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, v); err != nil {
				return err
			}
			if err := change(); err != nil {
				return err
			}
			nb, err := json.Marshal(v)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, nb, redis.KeepTTL)
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return redis.TxFailedErr
}
