package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// redisConn is the one Redis (or cluster) everything shares: go-redis for the registry and
// asynq's connection options for the queue.
type redisConn struct {
	client   redis.UniversalClient
	asynq    asynq.RedisConnOpt
	embedded *registry.Embedded
	describe string
}

func (r *redisConn) Close() {
	_ = r.client.Close()
	if r.embedded != nil {
		r.embedded.Close()
	}
}

// redisLogger routes go-redis's own messages (pool dial failures during an outage, cluster
// topology changes) into the structured log instead of bare lines on stderr.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "redis")
}

func connectRedis(ctx context.Context, c *Config, log *slog.Logger) (*redisConn, error) {
	redis.SetLogger(redisLogger{log})
	r := &redisConn{}
	switch {
	case c.RedisClusterAddrs != "":
		addrs := splitList(c.RedisClusterAddrs)
		r.client = newClusterClient(addrs)
		r.asynq = clusterConnOpt{addrs}
		r.describe = "redis cluster " + strings.Join(addrs, ",")
	case c.RedisURL != "":
		opt, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", redactURLError(err))
		}
		r.client = redis.NewClient(opt)
		r.asynq = asynq.RedisClientOpt{Network: opt.Network, Addr: opt.Addr, Username: opt.Username,
			Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig, PoolSize: opt.PoolSize}
		r.describe = "redis " + opt.Addr
	default:
		e, err := registry.StartEmbedded("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		r.embedded = e
		r.client = redis.NewClient(&redis.Options{Addr: e.Addr()})
		r.asynq = delivery.AsynqConnOpt(asynq.RedisClientOpt{Addr: e.Addr()})
		r.describe = "embedded redis " + e.Addr()
		log.Warn("REDIS_URL is unset: using an EMBEDDED in-process Redis. ALL DATA IS IN MEMORY ONLY and is lost when webhookd stops. Set REDIS_URL for anything but a trial.",
			"redisAddr", e.Addr())
		return r, nil
	}
	r.asynq = delivery.AsynqConnOpt(r.asynq)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := registry.CheckVersion(pctx, r.client)
	if err != nil {
		r.Close()
		return nil, err
	}
	log.Info("connected to redis", "redis", r.describe, "version", v)
	return r, nil
}

// clusterStateReloadInterval bounds how long a cluster client keeps sending a failed master's
// slots to the dead node. go-redis reloads its slot map on MOVED, but a master that crashed
// answers nothing, so with go-redis's default (60s) the promoted replica would go unused for
// up to a minute after a failover. A reload is one CLUSTER SLOTS, only while commands flow.
const clusterStateReloadInterval = time.Second

func newClusterClient(addrs []string) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClusterStateReloadInterval: clusterStateReloadInterval})
}

// clusterConnOpt is asynq.RedisClusterClientOpt with webhookd's cluster options (that type
// cannot carry ClusterStateReloadInterval), so the asynq server's own client reloads as often.
type clusterConnOpt struct{ addrs []string }

func (o clusterConnOpt) MakeRedisClient() any { return newClusterClient(o.addrs) }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// redactURLError keeps a password in REDIS_URL out of messages.
func redactURLError(err error) error {
	return fmt.Errorf("invalid Redis URL (%s)", strings.SplitN(err.Error(), ":", 2)[0])
}
