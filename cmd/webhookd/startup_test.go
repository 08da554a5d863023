package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// TestConfigErrorsStopServe: a setting that cannot be honoured stops serve at once with a
// message naming it, before anything starts.
func TestConfigErrorsStopServe(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	tests := []struct{ env, value, inMsg string }{
		{"WEBHOOKD_MAX_ATTEMPTS", "0", "WEBHOOKD_MAX_ATTEMPTS"},
		{"WEBHOOKD_MAX_ATTEMPTS", "-3", "WEBHOOKD_MAX_ATTEMPTS"},
		{"WEBHOOKD_MAX_ATTEMPTS", "ten", "WEBHOOKD_MAX_ATTEMPTS"},
		{"WEBHOOKD_LOG_LEVEL", "loud", "WEBHOOKD_LOG_LEVEL"},
		{"WEBHOOKD_RETRY_INITIAL_INTERVAL", "0s", "WEBHOOKD_RETRY_INITIAL_INTERVAL"},
		{"WEBHOOKD_RETRY_MAX_INTERVAL", "0s", "WEBHOOKD_RETRY_MAX_INTERVAL"},
		{"WEBHOOKD_RETRY_MULTIPLIER", "0.5", "WEBHOOKD_RETRY_MULTIPLIER"},
		{"WEBHOOKD_CONCURRENCY", "0", "WEBHOOKD_CONCURRENCY"},
		{"WEBHOOKD_BODY_LIMIT", "10", "WEBHOOKD_BODY_LIMIT"},
		{"WEBHOOKD_ROLE", "both", "WEBHOOKD_ROLE"},
		{"WEBHOOKD_RETRY_MULTIPLIER", "Inf", "WEBHOOKD_RETRY_MULTIPLIER"},
		{"WEBHOOKD_ADDR", "notanaddr", "WEBHOOKD_ADDR"},
		{"WEBHOOKD_ADDR", "127.0.0.1:99999", "WEBHOOKD_ADDR"},
		{"WEBHOOKD_METRICS_ADDR", "bogus", "WEBHOOKD_METRICS_ADDR"},
		{"WEBHOOKD_PPROF_ADDR", "bogus", "WEBHOOKD_PPROF_ADDR"},
		{"WEBHOOKD_EXTRA_CA_FILE", "/dev/null", "WEBHOOKD_EXTRA_CA_FILE"},
		{"WEBHOOKD_EXTRA_CA_FILE", "/nonexistent/ca.pem", "WEBHOOKD_EXTRA_CA_FILE"},
		{"REDIS_CLUSTER_ADDRS", "foo", "REDIS_CLUSTER_ADDRS"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			env := func(k string) string {
				if k == tt.env {
					return tt.value
				}
				return st.getenv(k)
			}
			var stdout, stderr bytes.Buffer
			// A serve that accepted the setting would run until this context ends.
			ctx, cancel := context.WithTimeout(t.Context(), patience)
			defer cancel()
			err := run(ctx, []string{"serve"}, env, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("serve with %s=%s returned %v, want an error naming %s", tt.env, tt.value, err, tt.inMsg)
			}
			if stdout.Len() > 0 {
				t.Errorf("serve printed %q before refusing its configuration", stdout.String())
			}
		})
	}
}

// TestConfigErrorsAllNamed: serve names every wrong setting at once, one that does not parse
// beside one that parses but is out of range, each once.
func TestConfigErrorsAllNamed(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "WEBHOOKD_RETRY_MULTIPLIER": "abc",
		"WEBHOOKD_LOG_LEVEL": "loud", "WEBHOOKD_CONCURRENCY": "many", "WEBHOOKD_MAX_ATTEMPTS": "0"}
	_, err := parseServe(nil, func(k string) string { return env[k] }, new(bytes.Buffer))
	if err == nil {
		t.Fatal("parseServe accepted four wrong settings")
	}
	for name := range env {
		if n := strings.Count(err.Error(), name); name != "REDIS_URL" && n != 1 {
			t.Errorf("the error names %s %d times, want once:\n%v", name, n, err)
		}
	}
}

// TestServeHelp: `webhookd serve --help` prints every setting with its default and exits 0,
// through the real main.
func TestServeHelp(t *testing.T) {
	t.Parallel()
	out, err := asMain(t, nil, "serve", "--help").Output()
	if err != nil {
		t.Fatalf("webhookd serve --help: %v", err)
	}
	for _, want := range []string{"WEBHOOKD_MAX_ATTEMPTS", "(default 10)", "REDIS_URL", "WEBHOOKD_HOME", "usage: webhookd serve"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("help text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "flag: help requested") {
		t.Errorf("help text contains flag's error: %s", out)
	}
}

// asMain is a command running this test binary as webhookd with args (see TestMain); env
// adds variables.
func asMain(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	js, _ := json.Marshal(args)
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(append(os.Environ(), asMainEnv+"=1", asMainArgsEnv+"="+string(js)), env...)
	return cmd
}

// TestBusyPortFailsBeforeDemoKey: a port in use stops serve before the embedded Redis prints a
// demo key that would be useless.
func TestBusyPortFailsBeforeDemoKey(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	st := newStack(t, map[string]string{"REDIS_URL": "", "WEBHOOKD_ADDR": busy.Addr().String()})
	var stdout, stderr bytes.Buffer
	err = run(t.Context(), []string{"serve"}, st.getenv, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("serve on a busy port returned %v, want an error naming the address", err)
	}
	if strings.Contains(stdout.String(), registry.KeyPrefix) {
		t.Errorf("serve printed a demo key before failing: %q", stdout.String())
	}
}

// TestEmbeddedDemoListensOnLoopback: with the embedded Redis and its all-scopes demo key the
// API listens on loopback only, unless WEBHOOKD_ADDR (or --addr) says otherwise.
func TestEmbeddedDemoListensOnLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		want  string
	}{
		{"embedded, nothing set", map[string]string{"HOME": "/home/u"}, nil, "127.0.0.1:8080"},
		{"embedded, WEBHOOKD_ADDR set", map[string]string{"HOME": "/home/u", "WEBHOOKD_ADDR": ":8080"}, nil, ":8080"},
		{"embedded, --addr set", map[string]string{"HOME": "/home/u"}, []string{"--addr", "0.0.0.0:9000"}, "0.0.0.0:9000"},
		{"real Redis", map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0"}, nil, ":8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(tt.flags, func(k string) string { return tt.env[k] }, new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			if c.Addr != tt.want {
				t.Errorf("Addr = %q, want %q", c.Addr, tt.want)
			}
		})
	}
}

// TestKeysResumeRevoked: resuming or suspending a revoked key is refused with a message that
// says why, not DATABASE_ERROR.
func TestKeysResumeRevoked(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	tid, _ := st.tenant(t)
	var k struct {
		ID string `json:"id"`
	}
	mustCLI(t, st.getenv, &k, "keys", "create", "--tenant", tid, "--scopes", "webhooks:read")
	mustCLI(t, st.getenv, &map[string]any{}, "keys", "revoke", k.ID)
	for _, cmd := range []string{"resume", "suspend"} {
		_, err := cli(t, st.getenv, "keys", cmd, k.ID)
		if err == nil || strings.Contains(err.Error(), "DATABASE_ERROR") || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("keys %s of a revoked key: %v, want a clear refusal", cmd, err)
		}
		if !errors.Is(err, registry.ErrKeyRevoked) {
			t.Errorf("keys %s: error %v is not registry.ErrKeyRevoked", cmd, err)
		}
	}
}
