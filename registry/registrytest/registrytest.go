// Package registrytest gives tests a real Redis: a redis-server process on a free loopback
// port (started once per test binary), or the one named by WEBHOOKD_TEST_REDIS_URL, and an
// embedded in-process Redis for running the same tests against the no-install default.
// Each test gets a database of its own, flushed before use. Start (server.go) runs a
// redis-server without a testing.TB, for tools such as webhookbench.
package registrytest

import (
	"os"
	"sync"
	"testing"

	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
)

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	dbMu       sync.Mutex
	nextDB     = 0
)

// Shared returns the test binary's redis-server (started on first use, stopped by Main).
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "webhookd-redis-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = Start(Config{Dir: dir})
	})
	if sharedErr != nil {
		tb.Fatalf("redis-server (or set WEBHOOKD_TEST_REDIS_URL): %v", sharedErr)
	}
	return shared
}

// Main wraps testing.M.Run so the shared server is stopped when the package's tests end.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
		_ = os.RemoveAll(shared.Dir)
	}
	os.Exit(code)
}

// Options returns connection options for a fresh, flushed database of its own for this test,
// on WEBHOOKD_TEST_REDIS_URL when set, else on the shared redis-server.
func Options(tb testing.TB) *redis.Options {
	tb.Helper()
	var opt *redis.Options
	if u := os.Getenv("WEBHOOKD_TEST_REDIS_URL"); u != "" {
		o, err := redis.ParseURL(u)
		if err != nil {
			tb.Fatalf("WEBHOOKD_TEST_REDIS_URL: %v", err)
		}
		opt = o
	} else {
		opt = &redis.Options{Addr: Shared(tb).Addr}
		dbMu.Lock()
		nextDB = nextDB%63 + 1
		opt.DB = nextDB
		dbMu.Unlock()
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.FlushDB(tb.Context()).Err(); err != nil {
		tb.Fatalf("flush test database: %v", err)
	}
	return opt
}

// Client returns a client on a fresh database of its own (see Options), closed at cleanup.
func Client(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c := redis.NewClient(Options(tb))
	tb.Cleanup(func() { c.Close() })
	return c
}

// Embedded starts webhookd's embedded in-process Redis for this test and returns a client on it.
func Embedded(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	e, err := registry.StartEmbedded("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("embedded redis: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: e.Addr()})
	tb.Cleanup(func() { c.Close(); e.Close() })
	return c
}

// Backend is one kind of Redis the same tests run against.
type Backend struct {
	Name   string
	Client func(testing.TB) redis.UniversalClient
}

// Backends lists the real redis-server and the embedded default.
func Backends() []Backend {
	return []Backend{{Name: "redis-server", Client: Client}, {Name: "embedded", Client: Embedded}}
}

// Store builds a registry store on c with the real clock.
func Store(tb testing.TB, c redis.UniversalClient) *registry.Store {
	tb.Helper()
	s, err := registry.New(registry.Config{Client: c})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
