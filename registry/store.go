package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Store. Zero values mean defaults.
type Config struct {
	// Client is the Redis connection (single node, cluster or failover). Required.
	Client redis.UniversalClient
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Retention is how long events, deliveries and their attempts are kept. Default 30 days.
	Retention time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered. Default 24h.
	IdempotencyTTL time.Duration
	// InlineFanout is the most subscribers whose deliveries are created with the event itself;
	// larger fan-outs are left to a fan-out task. Default 32; negative: never inline.
	InlineFanout int
	// RecoveryBatch is how many events one recovery step walks. Default 500.
	RecoveryBatch int
}

// Store is the Redis-backed registry of tenants, keys, endpoints, events and deliveries.
type Store struct {
	rdb       redis.UniversalClient
	now       func() time.Time
	retention time.Duration
	idemTTL   time.Duration
	inline    int
	recBatch  int
	keys      keyRecords
	// clustered is a Redis Cluster, where a key's records are in another slot than its
	// tenant's (KnownKey).
	clustered bool
	auth      groups[*authCall]
	publishes groups[*publishCall]
}

// MinRedisVersion is the oldest Redis server the store supports (GETDEL, ZRANGE BYSCORE REV, ...).
const MinRedisVersion = "6.2.0"

// New validates cfg and returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("registry: Config.Client is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention == 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.IdempotencyTTL == 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.InlineFanout == 0 {
		cfg.InlineFanout = 32
	}
	if cfg.RecoveryBatch <= 0 {
		cfg.RecoveryBatch = 500
	}
	if cfg.Retention < 0 || cfg.IdempotencyTTL < 0 {
		return nil, errors.New("registry: retention and idempotency TTL must be positive")
	}
	// Times are stored in milliseconds; reading the clock at that precision makes every answer
	// agree with what a later read returns (an idempotent replay shows the same createdAt).
	clock := cfg.Now
	now := func() time.Time { return clock().UTC().Truncate(time.Millisecond) }
	_, clustered := cfg.Client.(*redis.ClusterClient)
	return &Store{rdb: cfg.Client, now: now, retention: cfg.Retention, idemTTL: cfg.IdempotencyTTL,
		inline: max(cfg.InlineFanout, -1), recBatch: cfg.RecoveryBatch, clustered: clustered}, nil
}

// Client returns the Redis connection the store uses.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Now returns the store's clock reading.
func (s *Store) Now() time.Time { return s.now() }

// Ping reports whether Redis answers; SERVICE_UNAVAILABLE when it does not.
func (s *Store) Ping(ctx context.Context) error {
	return storeErr("ping", s.rdb.Ping(ctx).Err())
}

// CheckVersion refuses Redis servers older than MinRedisVersion with a clear message.
func CheckVersion(ctx context.Context, rdb redis.UniversalClient) (string, error) {
	info, err := rdb.Info(ctx, "server").Result()
	var refused redis.Error
	if errors.As(err, &refused) { // the server answered, but not as redis-server does
		return "", fmt.Errorf("the server does not answer INFO server as redis-server does (%q): webhookd needs "+
			"redis-server %s or newer, and the embedded Redis of `webhookd serve` serves only that process", refused.Error(),
			MinRedisVersion)
	}
	if err != nil {
		return "", fmt.Errorf("reading Redis server info: %w", err)
	}
	v := infoField(info, "redis_version")
	if v == "" {
		return "", errors.New("cannot tell the Redis server version (INFO server has no redis_version)")
	}
	if versionLess(v, MinRedisVersion) {
		return v, fmt.Errorf("redis %s is too old: webhookd needs Redis %s or newer", v, MinRedisVersion)
	}
	return v, nil
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		x, y := 0, 0
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMs(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
