package registrytest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of every cluster node: a master that stops
// answering for this long is failed over to its replica (a few seconds in all).
const ClusterNodeTimeout = 2 * time.Second

// clusterPatience bounds the wait for the cluster to agree on its state after a start, a
// kill or a restart.
const clusterPatience = 30 * time.Second

// Cluster is a real Redis Cluster on loopback: six redis-server processes, each with its own
// directory and AOF, joined by redis-cli as three masters with one replica each.
type Cluster struct {
	dir   string
	nodes []*Server

	mu     sync.Mutex
	dead   []bool
	admins []*redis.Client // one plain connection per node, for CLUSTER and INFO
}

var (
	sharedCluster     *Cluster
	sharedClusterErr  error
	sharedClusterOnce sync.Once
)

// StartCluster starts a six-node cluster for this test and stops it at cleanup. It returns
// once every node reports cluster_state:ok and every replica is in sync with its master.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := startCluster(tb.TempDir())
	if err != nil {
		tb.Fatalf("start redis cluster: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// SharedCluster returns the test binary's cluster, started on first use and stopped by
// MainWithCluster. Tests must not kill its nodes: use StartCluster for that.
func SharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	sharedClusterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "webhookd-cluster-")
		if err != nil {
			sharedClusterErr = err
			return
		}
		if sharedCluster, sharedClusterErr = startCluster(dir); sharedClusterErr != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if sharedClusterErr != nil {
		tb.Fatalf("redis cluster: %v", sharedClusterErr)
	}
	return sharedCluster
}

// MainWithCluster is Main for packages that may use SharedCluster: when the tests end it
// stops the shared cluster as well as the shared server.
func MainWithCluster(m *testing.M) {
	code := m.Run()
	if sharedCluster != nil {
		sharedCluster.Stop()
		_ = os.RemoveAll(sharedCluster.dir)
	}
	if shared != nil {
		shared.Stop()
		_ = os.RemoveAll(shared.Dir)
	}
	os.Exit(code)
}

func startCluster(dir string) (*Cluster, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server): %w", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli is not installed (apt-get install redis-tools): %w", err)
	}
	c := &Cluster{dir: dir}
	used := map[int]bool{}
	for i := range 6 {
		s, err := startClusterNode(bin, fmt.Sprintf("%s/node%d", dir, i), used)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.nodes = append(c.nodes, s)
		c.dead = append(c.dead, false)
		c.admins = append(c.admins, redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.waitHealthy(clusterPatience); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// startClusterNode starts one cluster-mode redis-server on a free port whose cluster bus
// port (port+10000, the default, so Redis 6.2 works too) is free as well.
func startClusterNode(bin, dir string, used map[int]bool) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 20 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		if port+10000 > 65535 || used[port] || used[port+10000] || !PortFree(port+10000) {
			continue
		}
		args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir, "--save", "",
			"--appendonly", "yes", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--logfile", "redis.log",
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
			// Replicas sync at once instead of waiting 5s for more replicas to share a transfer.
			"--repl-diskless-sync-delay", "0"}
		s := newServer(bin, port, dir, "", args)
		if lastErr = s.start(); lastErr == nil {
			used[port], used[port+10000] = true, true
			return s, nil
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no free port pair for a cluster node")
	}
	return nil, lastErr
}

// PortFree reports whether a loopback TCP port can be listened on now.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Addrs returns every node's address (host:port), killed ones included: a seed list.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		out[i] = s.Addr
	}
	return out
}

// Pids returns the process id of every live node.
func (c *Cluster) Pids() []int {
	var out []int
	for _, i := range c.liveIndexes() {
		if p := c.nodes[i].Pid(); p != 0 {
			out = append(out, p)
		}
	}
	return out
}

// Log returns the last n bytes of node i's log file.
func (c *Cluster) Log(i, n int) string {
	b, err := os.ReadFile(c.nodes[i].Dir + "/redis.log")
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Client returns a cluster client on every node, closed at cleanup. It reloads the slot map
// every second: go-redis reloads it on MOVED, but a killed master answers nothing, so with
// go-redis's default (60s) a failover would go unnoticed for a minute.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
	tb.Cleanup(func() { rc.Close() })
	return rc
}

// Node returns a plain connection to node i (not following redirects), e.g. for WAIT.
func (c *Cluster) Node(i int) *redis.Client { return c.admins[i] }

// FlushAll empties every master (the replicas follow).
func (c *Cluster) FlushAll(ctx context.Context) error {
	for _, i := range c.liveIndexes() {
		role, err := c.role(ctx, i)
		if err != nil {
			return err
		}
		if role != "master" {
			continue
		}
		if err := c.admins[i].FlushAll(ctx).Err(); err != nil {
			return fmt.Errorf("FLUSHALL on %s: %w", c.nodes[i].Addr, err)
		}
	}
	return nil
}

// Kill SIGKILLs node i: a crash, no shutdown, whatever the AOF has not synced is lost.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	c.dead[i] = true
	c.mu.Unlock()
	c.nodes[i].Stop()
}

// Restart starts killed node i again on its port and directory (its AOF and nodes.conf are
// reloaded; a former master rejoins as a replica) and waits until the cluster is healthy.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	c.nodes[i].Restart(tb)
	c.mu.Lock()
	c.dead[i] = false
	c.mu.Unlock()
	c.WaitHealthy(tb)
}

// Masters returns the indexes of the live nodes that are masters now.
func (c *Cluster) Masters(tb testing.TB) []int {
	tb.Helper()
	var out []int
	for _, i := range c.liveIndexes() {
		role, err := c.role(tb.Context(), i)
		if err != nil {
			tb.Fatal(err)
		}
		if role == "master" {
			out = append(out, i)
		}
	}
	return out
}

// MasterOf returns the index of the node serving key's hash slot, as a live node sees it.
func (c *Cluster) MasterOf(tb testing.TB, key string) int {
	tb.Helper()
	ctx := tb.Context()
	live := c.liveIndexes()
	if len(live) == 0 {
		tb.Fatal("no live cluster node")
	}
	admin := c.admins[live[0]]
	slot, err := admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		tb.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	ranges, err := admin.ClusterSlots(ctx).Result()
	if err != nil {
		tb.Fatalf("CLUSTER SLOTS: %v", err)
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			for i, s := range c.nodes {
				if s.Addr == r.Nodes[0].Addr {
					return i
				}
			}
			tb.Fatalf("slot %d is served by %s, not a node of this cluster", slot, r.Nodes[0].Addr)
		}
	}
	tb.Fatalf("slot %d of %s is not served", slot, key)
	return -1
}

// WaitHealthy waits until every live node reports cluster_state:ok, every live node's view
// agrees with the others' roles, every slot is served by a live master and every live replica
// is in sync with its master: after a start, after a failover, after a restart.
func (c *Cluster) WaitHealthy(tb testing.TB) {
	tb.Helper()
	if err := c.waitHealthy(clusterPatience); err != nil {
		tb.Fatal(err)
	}
}

// AwaitHealthy is WaitHealthy for other goroutines than the test's: it returns an error.
func (c *Cluster) AwaitHealthy() error { return c.waitHealthy(clusterPatience) }

func (c *Cluster) waitHealthy(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var why error
	for {
		if why = c.healthy(ctx); why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis cluster not healthy after %s: %w", timeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// healthy checks, on every live node, that the cluster is ok, that the node sees every other
// live node connected in its true role and no dead or failed node serving slots, and that a
// replica is in sync.
func (c *Cluster) healthy(ctx context.Context) error {
	roles := map[int]string{}
	for _, i := range c.liveIndexes() {
		role, err := c.role(ctx, i)
		if err != nil {
			return err
		}
		roles[i] = role
	}
	for _, i := range c.liveIndexes() {
		if err := c.nodeHealthy(ctx, i, roles); err != nil {
			return err
		}
	}
	return nil
}

// nodeHealthy is healthy's check of node i; roles holds every live node's role.
func (c *Cluster) nodeHealthy(ctx context.Context, i int, roles map[int]string) error {
	addr := c.nodes[i].Addr
	info, err := c.admins[i].ClusterInfo(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER INFO on %s: %w", addr, err)
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return fmt.Errorf("%s: cluster_state is not ok", addr)
	}
	nodes, err := c.admins[i].ClusterNodes(ctx).Result()
	if err != nil {
		return fmt.Errorf("CLUSTER NODES on %s: %w", addr, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		if err := c.peerSeen(addr, strings.Fields(line), roles); err != nil {
			return err
		}
	}
	if roles[i] != "slave" {
		return nil
	}
	repl, err := c.admins[i].Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication on %s: %w", addr, err)
	}
	if !strings.Contains(repl, "master_link_status:up") {
		return fmt.Errorf("replica %s is not in sync with its master", addr)
	}
	return nil
}

// peerSeen checks one line f of CLUSTER NODES as the node at addr sees it.
func (c *Cluster) peerSeen(addr string, f []string, roles map[int]string) error {
	if len(f) < 8 {
		return nil
	}
	j := slices.IndexFunc(c.nodes, func(s *Server) bool { return s.Addr == strings.SplitN(f[1], "@", 2)[0] })
	if j < 0 {
		return fmt.Errorf("%s knows a node %s that is not ours", addr, f[1])
	}
	flags := f[2]
	master := strings.Contains(flags, "master")
	if len(f) > 8 && master && (c.isDead(j) || strings.Contains(flags, "fail")) {
		return fmt.Errorf("%s sees slots served by %s (%s)", addr, f[1], flags)
	}
	if c.isDead(j) {
		return nil
	}
	if strings.Contains(flags, "fail") || f[7] != "connected" {
		return fmt.Errorf("%s sees live node %s as %s/%s", addr, f[1], flags, f[7])
	}
	if want := roles[j]; (want == "master") != master {
		return fmt.Errorf("%s sees %s as %s, it is a %s", addr, f[1], flags, want)
	}
	return nil
}

// role is ROLE's first field: master or slave.
func (c *Cluster) role(ctx context.Context, i int) (string, error) {
	v, err := c.admins[i].Do(ctx, "ROLE").Slice()
	if err != nil || len(v) == 0 {
		return "", fmt.Errorf("ROLE on %s: %v", c.nodes[i].Addr, err)
	}
	s, _ := v[0].(string)
	return s, nil
}

func (c *Cluster) isDead(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead[i]
}

func (c *Cluster) liveIndexes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, d := range c.dead {
		if !d {
			out = append(out, i)
		}
	}
	return out
}

// Stop kills every node (SIGKILL) and closes the admin connections.
func (c *Cluster) Stop() {
	for _, s := range c.nodes {
		s.Stop()
	}
	for _, a := range c.admins {
		_ = a.Close()
	}
}

// Describe lists each node with its role, for test logs.
func (c *Cluster) Describe(ctx context.Context) string {
	var b bytes.Buffer
	for i, s := range c.nodes {
		role := "killed"
		if !c.isDead(i) {
			if r, err := c.role(ctx, i); err == nil {
				role = r
			} else {
				role = err.Error()
			}
		}
		fmt.Fprintf(&b, "node %d %s %s\n", i, s.Addr, role)
	}
	return b.String()
}
