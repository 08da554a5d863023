package main

import (
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
)

// requireCluster skips the cluster-only tests unless WEBHOOKD_TEST_CLUSTER=1 (.ci/run sets it);
// the default suite stays on single-node Redis.
func requireCluster(t *testing.T) {
	t.Helper()
	if !registrytest.OnCluster() {
		t.Skip("a Redis Cluster test: runs with " + registrytest.ClusterEnv + "=1 (.ci/run does)")
	}
}

// newClusterStack prepares a deployment on cluster c with the settings of newStack. Stacks on
// a cluster take turns (registrytest.TakeClusterTurn), and each starts on a flushed cluster, as
// each single-node stack starts on a flushed database. A test that sets REDIS_URL itself (e.g.
// empty, for the embedded Redis) gets no cluster.
func newClusterStack(tb testing.TB, c *registrytest.Cluster, env map[string]string) *stack {
	tb.Helper()
	registrytest.TakeClusterTurn(tb)
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
