package registrytest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry/registrytest"
)

// TestClusterFailoverAndRestart: StartCluster gives three masters with a replica each, a
// real cluster that refuses cross-slot commands; killing a master promotes its replica with
// every write the replica acknowledged; the killed node restarts as a replica.
func TestClusterFailoverAndRestart(t *testing.T) {
	c := registrytest.StartCluster(t)
	ctx := t.Context()
	if got := c.Masters(t); len(got) != 3 {
		t.Fatalf("masters = %v, want 3 of the 6 nodes:\n%s", got, c.Describe(ctx))
	}
	rc := c.Client(t)
	if err := rc.MSet(ctx, "one", 1, "other", 2).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MSET over two slots = %v, want CROSSSLOT", err)
	}

	// Writes the replica acknowledged (WAIT) survive the failover.
	const n = 100
	victim := c.MasterOf(t, "{probe}")
	node := c.Node(victim)
	for i := range n {
		if err := node.Set(ctx, fmt.Sprintf("{probe}:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if acked, err := node.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || acked != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want the replica's acknowledgement", acked, err)
	}
	c.Kill(victim)
	c.WaitHealthy(t)
	promoted := c.MasterOf(t, "{probe}")
	if promoted == victim {
		t.Fatalf("slot of {probe} still served by killed node %d", victim)
	}
	for i := range n {
		if got, err := rc.Get(ctx, fmt.Sprintf("{probe}:%d", i)).Int(); err != nil || got != i {
			t.Fatalf("after failover {probe}:%d = %d, %v; want %d", i, got, err, i)
		}
	}

	c.Restart(t, victim)
	if got := c.Masters(t); len(got) != 3 || slices.Contains(got, victim) {
		t.Fatalf("after restart masters = %v, want 3 without the restarted node %d:\n%s", got, victim, c.Describe(ctx))
	}
	if err := rc.Set(ctx, "{probe}:after", "ok", 0).Err(); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
}
