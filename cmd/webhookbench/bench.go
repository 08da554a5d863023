package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

// bench is what every scenario run shares: the work directory, the receivers' CA, Redis and
// the webhookd binary.
type bench struct {
	opt      *options
	log      io.Writer // progress lines
	dir      string
	ca       *authority
	redis    *registrytest.Server // nil unless the bench started redis-server
	redisURL string
	rdb      *redis.Client // nil with --target and no --redis-url: no Redis figures then
	bin      string
	started  int // webhookd processes started, to name their logs
	// orderedRuns counts the ordered scenario's runs: which side goes first alternates.
	orderedRuns int
	// throttledRuns counts the throttled scenario's runs, for the same reason.
	throttledRuns int
	// stall is how long a run waits without a new delivery before it gives up on the rest.
	stall time.Duration
}

// errSkipped means a scenario cannot run in this configuration (e.g. memory with --target).
var errSkipped = errors.New("skipped")

func newBench(ctx context.Context, o *options, log io.Writer) (*bench, error) {
	dir, err := os.MkdirTemp("", "webhookbench-")
	if err != nil {
		return nil, err
	}
	b := &bench{opt: o, log: log, dir: dir, stall: 20 * time.Second}
	if err := b.init(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bench) init(ctx context.Context) error {
	var err error
	caDir := b.opt.CADir
	if caDir == "" {
		caDir = b.dir
	} else if err := os.MkdirAll(caDir, 0o700); err != nil {
		return err
	}
	if b.ca, err = loadOrCreateAuthority(caDir); err != nil {
		return fmt.Errorf("receiver CA: %w", err)
	}
	switch {
	case b.opt.RedisURL != "":
		b.redisURL = b.opt.RedisURL
	case b.opt.Target == "" && b.opt.needsServers():
		b.redis, err = registrytest.Start(registrytest.Config{Dir: b.dir, LogPath: filepath.Join(b.dir, "redis.log")})
		if err != nil {
			return fmt.Errorf("redis-server: %w", err)
		}
		b.redisURL = b.redis.URL(0)
	}
	if b.redisURL != "" {
		opt, err := redis.ParseURL(b.redisURL)
		if err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
		b.rdb = redis.NewClient(opt)
	}
	if b.opt.Target != "" || !b.opt.needsServers() {
		return nil
	}
	b.bin = b.opt.WebhookdBin
	if b.bin == "" {
		b.logf("building ./cmd/webhookd")
		b.bin, err = buildWebhookd(ctx, b.dir)
	}
	return err
}

// close stops what the bench started and removes its work directory unless --keep.
func (b *bench) close() {
	if b.rdb != nil {
		_ = b.rdb.Close()
	}
	if b.redis != nil {
		b.redis.Stop()
	}
	if b.opt.Keep {
		b.logf("work directory kept: %s", b.dir)
		return
	}
	_ = os.RemoveAll(b.dir)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "webhookbench: "+format+"\n", args...)
}

// runAll runs every selected scenario --runs times. A run that fails to set up is recorded
// as a problem and the next one goes on; an interrupt stops everything.
func (b *bench) runAll(ctx context.Context) []*scenarioResult {
	var out []*scenarioResult
	for _, name := range b.opt.scenarios() {
		sr := &scenarioResult{Name: name}
		for i := range b.opt.Runs {
			if ctx.Err() != nil {
				return out
			}
			b.logf("%s: run %d of %d", name, i+1, b.opt.Runs)
			r, err := b.runScenario(ctx, name)
			if errors.Is(err, errSkipped) {
				b.logf("%s: skipped in this configuration", name)
				break
			}
			if err != nil {
				r = &runResult{}
				r.problem("run failed: %v", err)
				b.logf("%s: run failed: %v", name, err)
			}
			sr.Runs = append(sr.Runs, r)
		}
		out = append(out, sr)
	}
	return out
}

func (b *bench) runScenario(ctx context.Context, name string) (*runResult, error) {
	switch name {
	case "flood":
		return b.flood(ctx)
	case "batch":
		return b.batch(ctx)
	case "paced":
		return b.paced(ctx)
	case "fanout":
		return b.fanout(ctx)
	case "slow":
		return b.slow(ctx)
	case "failing":
		return b.failing(ctx)
	case "baseline":
		return b.baseline(ctx)
	case "raw":
		return b.raw(ctx)
	case "memory":
		return b.memory(ctx)
	case "mixed":
		return b.mixed(ctx)
	case "ordered":
		return b.ordered(ctx)
	case "throttled":
		return b.throttled(ctx)
	case "idle":
		return b.idle(ctx)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// flush empties the bench's Redis so every run starts from nothing; never with --target,
// whose Redis holds someone's data.
func (b *bench) flush(ctx context.Context) error {
	if b.rdb == nil || b.opt.Target != "" {
		return nil
	}
	return b.rdb.FlushDB(ctx).Err()
}

// isLoopbackURL reports whether u names a loopback host.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	if p.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(p.Hostname())
	return ip != nil && ip.IsLoopback()
}
