package registrytest

import (
	"os"
	"strings"
	"sync"
	"testing"
)

// ClusterEnv set to 1 runs the integration tests of the packages that support it on a real
// six-node Redis Cluster (SharedCluster) instead of a single redis-server, and enables the
// cluster-only tests.
const ClusterEnv = "WEBHOOKD_TEST_CLUSTER"

// OnCluster reports whether ClusterEnv asks for a Redis Cluster.
func OnCluster() bool { return os.Getenv(ClusterEnv) == "1" }

// A cluster has no database numbers, and webhookd's asynq queues have fixed names, so tests on
// one cluster cannot run side by side: a worker of one test would run another test's tasks
// with its own settings (failure threshold, retry schedule, timeouts). Tests on a cluster
// therefore take turns: a test holds the turn from its first TakeClusterTurn until its cleanup
// has stopped everything it started after that call.
var clusterTurn = struct {
	slot  chan struct{}
	mu    sync.Mutex
	owner string // the test holding the turn
}{slot: make(chan struct{}, 1)}

// TakeClusterTurn waits until no other test holds the shared cluster and gives tb the turn
// until its cleanup. A test that holds it already (a second call) and its subtests go on;
// parallel subtests of one test take turns like any other tests.
func TakeClusterTurn(tb testing.TB) {
	tb.Helper()
	name := tb.Name()
	clusterTurn.mu.Lock()
	owner := clusterTurn.owner
	clusterTurn.mu.Unlock()
	if owner != "" && (name == owner || strings.HasPrefix(name, owner+"/")) {
		return
	}
	clusterTurn.slot <- struct{}{}
	clusterTurn.mu.Lock()
	clusterTurn.owner = name
	clusterTurn.mu.Unlock()
	tb.Cleanup(func() {
		clusterTurn.mu.Lock()
		clusterTurn.owner = ""
		clusterTurn.mu.Unlock()
		<-clusterTurn.slot
	})
}
