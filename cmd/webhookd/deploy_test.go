package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

// TestDeploymentExample runs the README's deployment example, deploy/cluster/start.sh, as
// written: three masters with a replica each, two API and two worker processes of the real
// binary. Events published through both API processes are delivered once each, by workers
// scraped on their metrics addresses, through the 16 queue shards; then stop.sh stops it all.
func TestDeploymentExample(t *testing.T) {
	requireCluster(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "webhookd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ca := filepath.Join(dir, "receivers.pem")
	if err := os.WriteFile(ca, receiverCert(), 0o600); err != nil {
		t.Fatal(err)
	}
	redisPort, apiPort, metricsPort := freeRun(t, 6, 10000), freeRun(t, 2, 0), freeRun(t, 2, 0)
	env := append(os.Environ(), "WEBHOOKD="+bin, "REDIS_PORT="+strconv.Itoa(redisPort),
		"API_PORT="+strconv.Itoa(apiPort), "METRICS_PORT="+strconv.Itoa(metricsPort),
		"WEBHOOKD_ALLOW_PRIVATE_CIDRS=127.0.0.0/8", "WEBHOOKD_EXTRA_CA_FILE="+ca, "WEBHOOKD_LOG_LEVEL=warn")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOutput(err))
		}
		return string(out)
	}
	script := func(name string) string { return filepath.Join("..", "..", "deploy", "cluster", name) }
	t.Cleanup(func() { run(script("stop.sh"), dir) })
	out := run(script("start.sh"), dir, "2", "2")
	addrs := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "REDIS_CLUSTER_ADDRS=")
	env = append(env, "REDIS_CLUSTER_ADDRS="+addrs)

	var tenant, key struct{ ID, Key string }
	mustJSON(t, run(bin, "tenants", "create", "--name", "acme"), &tenant)
	mustJSON(t, run(bin, "keys", "create", "--tenant", tenant.ID, "--scopes", strings.Join(registry.Scopes, ",")), &key)
	apis := []*service{{URL: "http://127.0.0.1:" + strconv.Itoa(apiPort)}, {URL: "http://127.0.0.1:" + strconv.Itoa(apiPort+1)}}
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := apis[0].createEndpoint(t, key.Key, rc.URL, []string{registry.EventScanCompleted}, nil)
	const events = 20
	for i := range events {
		apis[i%2].publish(t, key.Key, registry.EventScanCompleted, scanData())
	}
	waitFor(t, patience, "every event delivered", func() bool { return rc.Count() >= events })
	waitFor(t, patience, "both workers' metrics to count every attempt", func() bool {
		sum := 0.0
		for i := range 2 {
			v, _ := metricValue(scrape(t, &service{URL: "http://127.0.0.1:" + strconv.Itoa(metricsPort+i)}),
				`webhookd_delivery_attempts_total{outcome="success"}`)
			sum += v
		}
		return sum == events
	})
	if got := len(rc.IDCounts()); got != events || rc.Count() != events {
		t.Errorf("the receiver got %d POSTs of %d events, want %d once each", rc.Count(), got, events)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	defer rdb.Close()
	queues, err := delivery.QueueInfos(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if shard := delivery.NewShards(16).Of(ep.ID); queues[shard] == nil {
		t.Errorf("no queue %s, the endpoint's shard of 16, among %v", shard, queues)
	}
}

// freeRun returns the first of n consecutive loopback ports that are free, with the ports
// offset above them free too when offset > 0 (a cluster node's bus port is its port + 10000).
func freeRun(t *testing.T, n, offset int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(20000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ok = registrytest.PortFree(p) && (offset == 0 || registrytest.PortFree(p+offset))
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0
}

func mustJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%q is not JSON: %v", out, err)
	}
}

// errOutput is what a failed command wrote to stderr.
func errOutput(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
