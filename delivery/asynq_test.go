package delivery

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestAsynqServerClientIgnoresCancel: asynq retries a failed "task done" or "retry later" write
// with a context it has already cancelled (see uncancelHook). The asynq server's client runs
// such commands anyway; any other client still fails them.
func TestAsynqServerClientIgnoresCancel(t *testing.T) {
	t.Parallel()
	opt := registrytest.Options(t)
	c, ok := AsynqConnOpt(asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB}).MakeRedisClient().(redis.UniversalClient)
	if !ok {
		t.Fatal("the asynq server's connection option does not make a go-redis client")
	}
	defer c.Close()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Set(cancelled, "synced", "1", 0).Err(); err != nil {
		t.Errorf("SET with a cancelled context on the asynq server's client: %v", err)
	}
	if _, err := c.Pipelined(cancelled, func(p redis.Pipeliner) error {
		p.Incr(cancelled, "synced:n")
		return nil
	}); err != nil {
		t.Errorf("pipeline with a cancelled context on the asynq server's client: %v", err)
	}
	plain := redis.NewClient(opt)
	defer plain.Close()
	if err := plain.Get(cancelled, "synced").Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("GET with a cancelled context on another client = %v, want context.Canceled", err)
	}
	if got := plain.Get(t.Context(), "synced:n").Val(); got != "1" {
		t.Errorf("synced:n = %q, want 1", got)
	}
}

// TestAsynqVersionPinned fails when asynq is upgraded: asynq.go relies on its private Redis
// layout, timings and syncer, checked against asynqVersion only.
func TestAsynqVersionPinned(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Version}}", "github.com/hibiken/asynq").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/hibiken/asynq: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != asynqVersion {
		t.Fatalf("asynq is %s, but delivery/asynq.go was written against %s: check each of its assumptions "+
			"(key names, lease and heartbeat timings, the syncer's cancelled context) against the new version's "+
			"internal/rdb and internal/base, then update asynqVersion", got, asynqVersion)
	}
}
