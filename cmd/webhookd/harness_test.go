package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Environment variables that turn this test binary into webhookd itself (see TestMain).
const (
	asMainEnv     = "WEBHOOKD_TEST_AS_MAIN"
	asMainArgsEnv = "WEBHOOKD_TEST_ARGS" // a JSON array of webhookd's arguments
)

// TestMain runs the tests on a shared redis-server. With WEBHOOKD_TEST_AS_MAIN=1 the binary is
// webhookd instead: the crash test re-executes it as a worker process it can SIGKILL, so the
// real main (signal handling included) runs.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv(asMainArgsEnv)), &args); err != nil {
			fmt.Fprintln(os.Stderr, "webhookd test binary:", asMainArgsEnv, err)
			os.Exit(2)
		}
		os.Args = append([]string{"webhookd"}, args...)
		main()
		os.Exit(0)
	}
	registrytest.MainWithCluster(m)
}

// patience bounds every wait for something the service does on its own.
const patience = 30 * time.Second

// waitFor polls cond until it holds; it fails the test after timeout. Tests wait for
// conditions, never for durations.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the service's goroutines and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// receiverCert is the PEM of the certificate every httptest TLS server presents.
var receiverCert = sync.OnceValue(func() []byte {
	s := httptest.NewTLSServer(http.NotFoundHandler())
	defer s.Close()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
})

// stack is one isolated deployment: a fresh Redis database (or, with WEBHOOKD_TEST_CLUSTER=1,
// a flushed Redis Cluster: see clusterstack_test.go), the registry store on it and the
// settings (as WEBHOOKD_* variables) of every service started on it.
type stack struct {
	redisURL string // empty on a cluster
	rdb      redis.UniversalClient
	asynqOpt asynq.RedisConnOpt
	store    *registry.Store
	env      map[string]string
}

// newStack prepares a deployment with fast retries; env overrides or adds variables (an
// empty value unsets one).
func newStack(tb testing.TB, env map[string]string) *stack {
	tb.Helper()
	if registrytest.OnCluster() {
		return newClusterStack(tb, registrytest.SharedCluster(tb), env)
	}
	opt := registrytest.Options(tb)
	st := &stack{redisURL: fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB), rdb: redis.NewClient(opt),
		asynqOpt: asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB}}
	tb.Cleanup(func() { st.rdb.Close() })
	st.configure(tb, map[string]string{"REDIS_URL": st.redisURL}, env)
	return st
}

// configure builds the registry store on st.rdb and the settings of every service: redisEnv
// names the Redis, env overrides or adds variables.
func (st *stack) configure(tb testing.TB, redisEnv, env map[string]string) {
	tb.Helper()
	ca := filepath.Join(tb.TempDir(), "receivers.pem")
	if err := os.WriteFile(ca, receiverCert(), 0o600); err != nil {
		tb.Fatal(err)
	}
	st.store = registrytest.Store(tb, st.rdb)
	st.env = map[string]string{
		"WEBHOOKD_ADDR":                   "127.0.0.1:0",
		"WEBHOOKD_ALLOW_PRIVATE_CIDRS":    "127.0.0.0/8,::1/128",
		"WEBHOOKD_EXTRA_CA_FILE":          ca,
		"WEBHOOKD_RETRY_INITIAL_INTERVAL": "50ms",
		"WEBHOOKD_RETRY_MULTIPLIER":       "2",
		"WEBHOOKD_RETRY_MAX_INTERVAL":     "400ms",
		"WEBHOOKD_ATTEMPT_TIMEOUT":        "2s",
		"WEBHOOKD_PROBE_TIMEOUT":          "2s",
		"WEBHOOKD_CONCURRENCY":            "8",
		"WEBHOOKD_SHUTDOWN_TIMEOUT":       "5s",
		"WEBHOOKD_RATE_LIMIT_PER_MINUTE":  "1000000",
		"WEBHOOKD_HOME":                   tb.TempDir(),
	}
	maps.Copy(st.env, redisEnv)
	maps.Copy(st.env, env)
}

func (st *stack) getenv(k string) string { return st.env[k] }

// tenant creates a tenant and an all-scopes key through the registry store.
func (st *stack) tenant(tb testing.TB) (tid, key string) {
	tb.Helper()
	t, err := st.store.CreateTenant(tb.Context(), "acme", 0)
	if err != nil {
		tb.Fatal(err)
	}
	_, key, err = st.store.CreateAPIKey(tb.Context(), registry.NewKeyParams{TenantID: t.ID, Name: "e2e",
		Scopes: registry.Scopes})
	if err != nil {
		tb.Fatal(err)
	}
	return t.ID, key
}

// drained reports whether webhookd's queues have nothing left to run: no pending, active,
// scheduled or retry task (and none archived, which webhookd never does on purpose).
func (st *stack) drained(tb testing.TB) bool {
	tb.Helper()
	info, err := delivery.Backlog(st.rdb)
	if err != nil {
		tb.Fatalf("queue info: %v", err)
	}
	if info.Archived > 0 {
		tb.Fatalf("queues archived %d task(s)", info.Archived)
	}
	return info.Pending+info.Active+info.Scheduled+info.Retry == 0
}

// service is one `webhookd serve` running in-process through parseServe and serve.
type service struct {
	URL            string // the API's base URL; empty for --role worker
	Stdout, Stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan struct{}
	err            error
}

// start runs serve with the stack's environment and flags; it returns once the API listens
// (at once for a worker). The service stops when the test ends, or earlier with stop.
func (st *stack) start(tb testing.TB, flags ...string) *service {
	tb.Helper()
	s := &service{Stdout: new(syncBuffer), Stderr: new(syncBuffer), done: make(chan struct{})}
	cfg, err := parseServe(flags, st.getenv, s.Stderr)
	if err != nil {
		tb.Fatalf("parseServe(%q): %v", flags, err)
	}
	ctx, cancel := context.WithCancel(tb.Context())
	s.cancel = cancel
	ready := make(chan string, 1)
	go func() {
		defer close(s.done)
		s.err = serve(ctx, cfg, s.Stdout, s.Stderr, func(addr string) { ready <- addr })
	}()
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("serve returned %v", err)
		}
		if tb.Failed() {
			tb.Logf("webhookd log (%s):\n%s", cfg.Role, tail(s.Stderr.String(), 6000))
		}
	})
	if cfg.Role == "worker" {
		return s
	}
	select {
	case addr := <-ready:
		s.URL = "http://" + addr
	case <-s.done:
		tb.Fatalf("serve returned %v before listening:\n%s", s.err, s.Stderr)
	case <-time.After(patience):
		tb.Fatal("serve did not listen")
	}
	return s
}

// stop cancels serve's context and returns what serve returned.
func (s *service) stop() error {
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(time.Minute):
		return errors.New("serve did not return within a minute of its context ending")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
