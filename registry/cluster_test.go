package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

func TestKeySlotVectors(t *testing.T) {
	cases := []struct {
		key  string
		want int
	}{
		{"123456789", 12739}, // the CRC-16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"bar", 5061},
		{"{foo}.bar", 12182},
	}
	for _, c := range cases {
		if got := registry.KeySlot(c.key); got != c.want {
			t.Errorf("KeySlot(%q) = %d, want %d", c.key, got, c.want)
		}
	}
}

// checkKeyLayout fails for every key that is not under a tenant's tag {t:<id>}, an API key's
// {k:<id>} (the key record and its rate limiter), or the global tenant set, and for every key
// whose slot differs from its tag's.
func checkKeyLayout(t *testing.T, keys []string, res scenarioResult) {
	t.Helper()
	perTenant := map[string]int{}
	for _, key := range keys {
		tag := registry.HashTag(key)
		switch {
		case key == "wh:tenants":
			continue
		case strings.HasPrefix(tag, "t:") && contains(res.tenants, tag[2:]):
			if !strings.HasPrefix(key, "wh:{t:"+tag[2:]+"}:") {
				t.Errorf("key %s has its tenant tag in the wrong place", key)
			}
			perTenant[tag[2:]]++
		case strings.HasPrefix(tag, "k:") && contains(res.apiKeys, tag[2:]):
			if key != "wh:{"+tag+"}:key" && key != "rate:wh:{"+tag+"}" {
				t.Errorf("unexpected API key record %s", key)
			}
		default:
			t.Errorf("key %s is under no tenant or API key hash tag", key)
			continue
		}
		if registry.KeySlot(key) != registry.KeySlot("{"+tag+"}") {
			t.Errorf("key %s hashes to slot %d, its tag {%s} to %d", key, registry.KeySlot(key), tag, registry.KeySlot("{"+tag+"}"))
		}
	}
	for _, tid := range res.tenants {
		if perTenant[tid] < 5 {
			t.Errorf("tenant %s owns %d keys after the scenario; the scan saw too little", tid, perTenant[tid])
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func dbKeys(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	var keys []string
	for k := range dumpDB(t, rdb) {
		keys = append(keys, k)
	}
	return keys
}

// TestKeysShareHashTag runs a full scenario and checks every key left in the database.
func TestKeysShareHashTag(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		res := fullScenario(t, e)
		checkKeyLayout(t, dbKeys(t, e.rdb), res)
	})
}

// shebangHook marks every script "#!lua" so Redis 7 in cluster mode refuses any key a script
// touches outside the slot of its declared keys (plain EVAL scripts are exempt for
// compatibility). go-redis falls back from EVALSHA to EVAL on NOSCRIPT, and the marked script
// has another SHA, so every script runs through EVAL and this hook.
type shebangHook struct{}

func (shebangHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (shebangHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); strings.EqualFold(cmd.Name(), "eval") && len(args) > 1 {
			if src, ok := args[1].(string); ok && !strings.HasPrefix(src, "#!") {
				args[1] = "#!lua\n" + src
			}
		}
		return next(ctx, cmd)
	}
}

func (shebangHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// startCluster starts a redis-server in cluster mode that serves every slot by itself: it
// refuses multi-key commands, transactions and marked scripts that span slots with CROSSSLOT.
func startCluster(t *testing.T) redis.UniversalClient {
	t.Helper()
	srv := registrytest.StartServer(t, "--cluster-enabled", "yes")
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		if time.Now().After(deadline) {
			t.Fatalf("cluster never became ok: %s", c.ClusterInfo(ctx).Val())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.AddHook(shebangHook{})
	return c
}

// TestClusterSlots runs the full scenario on a real cluster-mode Redis, which refuses any
// operation whose keys, declared or derived inside a script, span two slots.
func TestClusterSlots(t *testing.T) {
	rdb := startCluster(t)
	ctx := t.Context()
	err := rdb.Eval(ctx, "redis.call('GET', KEYS[1]) redis.call('GET', 'other') return 1", []string{"one"}).Err()
	if err == nil || !strings.Contains(err.Error(), "same slot") {
		t.Fatalf("a script touching two slots ran (%v): the cluster would not catch a bad key layout", err)
	}
	if err := rdb.Del(ctx, "one", "other").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("DEL over two slots = %v, want CROSSSLOT", err)
	}

	e := newEnv(t, rdb, registry.Config{})
	res := fullScenario(t, e)
	keys := dbKeys(t, rdb)
	checkKeyLayout(t, keys, res)
	// Edge cases of the tag rule, checked against the server too.
	for _, k := range append(keys, "foo{}{bar}", "{}foo", "{a}{b}", "{{a}}", "a{b") {
		got, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %s: %v", k, err)
		}
		if int(got) != registry.KeySlot(k) {
			t.Errorf("CLUSTER KEYSLOT %s = %d, our keySlot = %d", k, got, registry.KeySlot(k))
		}
	}
}
