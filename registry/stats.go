package registry

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Stats are service-wide counts for metrics.
type Stats struct {
	Tenants           int
	Endpoints         int
	DisabledEndpoints int
	HeldDeliveries    int64
}

// Stats counts tenants, endpoints, disabled endpoints and held deliveries. It reads every
// endpoint's status and held index (one pipeline per tenant), so callers should cache it.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	tids, err := s.TenantIDs(ctx)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Tenants: len(tids)}
	for _, tid := range tids {
		ids, err := s.rdb.ZRange(ctx, endpointsKey(tid), 0, -1).Result()
		if err != nil {
			return Stats{}, storeErr("stats", err)
		}
		status := make([]*redis.StringCmd, len(ids))
		held := make([]*redis.IntCmd, len(ids))
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, eid := range ids {
				status[i] = p.HGet(ctx, endpointKey(tid, eid), "status")
				held[i] = p.ZCard(ctx, endpointStatusKey(tid, eid, DeliveryHeld))
			}
			return nil
		})
		if err != nil && err != redis.Nil {
			return Stats{}, storeErr("stats", err)
		}
		for i := range ids {
			st.Endpoints++
			if status[i].Val() == StatusDisabled {
				st.DisabledEndpoints++
			}
			st.HeldDeliveries += held[i].Val()
		}
	}
	return st, nil
}
