package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry/registrytest"
)

// webhookd is one webhookd subprocess; base is its API's URL (empty for --role worker).
type webhookd struct {
	*child
	base string
}

// startWebhookd runs `webhookd serve --role role --concurrency N` on a free loopback port
// with the bench's Redis and receiver CA; settings adds or overrides WEBHOOKD_* variables.
// It returns once the API answers /readyz (a worker-only process at once).
func (b *bench) startWebhookd(ctx context.Context, role string, settings map[string]string) (*webhookd, error) {
	port, err := registrytest.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	vars := map[string]string{
		"WEBHOOKD_ADDR":                  addr,
		"WEBHOOKD_ALLOW_PRIVATE_CIDRS":   "127.0.0.0/8",
		"WEBHOOKD_EXTRA_CA_FILE":         b.ca.PEMPath,
		"WEBHOOKD_RATE_LIMIT_PER_MINUTE": "1000000000",
		"WEBHOOKD_LOG_LEVEL":             "warn",
	}
	for k, v := range settings {
		vars[k] = v
	}
	b.started++
	logPath := fmt.Sprintf("%s/webhookd-%d-%s.log", b.dir, b.started, role)
	c, err := startChild(b.bin, []string{"serve", "--role", role, "--concurrency", strconv.Itoa(b.opt.Concurrency)},
		b.childEnv(vars), logPath)
	if err != nil {
		return nil, err
	}
	w := &webhookd{child: c}
	if role == "worker" {
		return w, nil
	}
	w.base = "http://" + addr
	if err := w.waitReady(ctx); err != nil {
		c.stop(5 * time.Second)
		return nil, err
	}
	return w, nil
}

func (w *webhookd) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	err := poll(ctx, 30*time.Second, func() (bool, error) {
		if w.exited() {
			return false, errors.New("webhookd exited: " + w.tail())
		}
		resp, err := client.Get(w.base + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("webhookd not ready: %w", err)
	}
	return nil
}

// childEnv is the bench's environment without any REDIS_* or WEBHOOKD_* variable of the
// caller's (a stray REDIS_CLUSTER_ADDRS would redirect webhookd), plus REDIS_URL and vars.
func (b *bench) childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDIS_") && !strings.HasPrefix(kv, "WEBHOOKD_") {
			env = append(env, kv)
		}
	}
	env = append(env, "REDIS_URL="+b.redisURL)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// admin runs a webhookd admin command against the bench's Redis and decodes its JSON.
func (b *bench) admin(ctx context.Context, out any, args ...string) error {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = b.childEnv(nil)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("webhookd %s: %w: %s", strings.Join(args[:2], " "), err, strings.TrimSpace(stderr.String()))
	}
	return json.Unmarshal(stdout, out)
}

// newTenantKey creates a tenant and an all-scopes key with the admin CLI.
func (b *bench) newTenantKey(ctx context.Context) (tenantID, key string, err error) {
	var t struct {
		ID string `json:"id"`
	}
	if err := b.admin(ctx, &t, "tenants", "create", "--name", "webhookbench"); err != nil {
		return "", "", err
	}
	var k struct {
		Key string `json:"key"`
	}
	err = b.admin(ctx, &k, "keys", "create", "--tenant", t.ID, "--name", "webhookbench",
		"--scopes", "webhooks:read,webhooks:write,events:write")
	if err == nil && (t.ID == "" || k.Key == "") {
		err = errors.New("admin CLI printed no tenant id or key")
	}
	return t.ID, k.Key, err
}
