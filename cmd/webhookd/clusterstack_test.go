package main

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
)

// clusterEnv set to 1 runs every stack on a real six-node Redis Cluster (REDIS_CLUSTER_ADDRS)
// started once per test binary, and enables the cluster-only tests.
const clusterEnv = "WEBHOOKD_TEST_CLUSTER"

func onCluster() bool { return os.Getenv(clusterEnv) == "1" }

// requireCluster skips the cluster-only tests unless WEBHOOKD_TEST_CLUSTER=1 (.ci/run sets it);
// the default suite stays on single-node Redis.
func requireCluster(t *testing.T) {
	t.Helper()
	if !onCluster() {
		t.Skip("a Redis Cluster test: runs with " + clusterEnv + "=1 (.ci/run does)")
	}
}

// A cluster has no database numbers, and webhookd's asynq queues have fixed names, so stacks
// on one cluster cannot run side by side: a worker of one test would run another test's tasks
// with its own settings (failure threshold, retry schedule, timeouts). Stacks on a cluster
// therefore take turns: a test holds the turn from its first newStack until its cleanup has
// stopped every service it started, and each turn starts on a flushed cluster, as each
// single-node stack starts on a flushed database.
var clusterTurn = struct {
	slot  chan struct{}
	mu    sync.Mutex
	owner string // top-level test holding the turn
}{slot: make(chan struct{}, 1)}

func takeClusterTurn(tb testing.TB) {
	tb.Helper()
	top, _, _ := strings.Cut(tb.Name(), "/")
	clusterTurn.mu.Lock()
	held := clusterTurn.owner == top
	clusterTurn.mu.Unlock()
	if held {
		return // a second stack of the same test
	}
	clusterTurn.slot <- struct{}{}
	clusterTurn.mu.Lock()
	clusterTurn.owner = top
	clusterTurn.mu.Unlock()
	tb.Cleanup(func() {
		clusterTurn.mu.Lock()
		clusterTurn.owner = ""
		clusterTurn.mu.Unlock()
		<-clusterTurn.slot
	})
}

// newClusterStack prepares a deployment on cluster c (flushed) with the settings of newStack.
// A test that sets REDIS_URL itself (e.g. empty, for the embedded Redis) gets no cluster.
func newClusterStack(tb testing.TB, c *registrytest.Cluster, env map[string]string) *stack {
	tb.Helper()
	takeClusterTurn(tb)
	if err := c.FlushAll(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	st := &stack{rdb: c.Client(tb), asynqOpt: asynq.RedisClusterClientOpt{Addrs: c.Addrs()}}
	st.configure(tb, map[string]string{"REDIS_CLUSTER_ADDRS": strings.Join(c.Addrs(), ",")}, env)
	if _, ok := env["REDIS_URL"]; ok {
		delete(st.env, "REDIS_CLUSTER_ADDRS")
	}
	return st
}
