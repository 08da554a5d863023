// Package registrytest gives tests a real Redis: a redis-server process on a free loopback
// port (started once per test binary), or the one named by WEBHOOKD_TEST_REDIS_URL, and an
// embedded in-process Redis for running the same tests against the no-install default.
// Each test gets a database of its own, flushed before use.
package registrytest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by a test.
type Server struct {
	Addr string
	Dir  string
	cmd  *exec.Cmd
	args []string
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	dbMu       sync.Mutex
	nextDB     = 0
)

// StartServer starts a new redis-server on a free loopback port with extra arguments
// (e.g. "--appendonly", "yes"). It is stopped by Stop or by the test's cleanup.
func StartServer(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	s, err := startServer(tb.TempDir(), extra...)
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func startServer(dir string, extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server), and WEBHOOKD_TEST_REDIS_URL is unset: %w", err)
	}
	var lastErr error
	for i := 0; i < 5; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir}
		s.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
			"--appendonly", "no", "--dir", dir, "--databases", "64"}, extra...)
		s.cmd = exec.Command(bin, s.args...)
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) start() error {
	s.cmd = exec.Command(s.cmd.Path, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if line == "+PONG\r\n" {
				return nil
			}
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("redis-server on %s did not answer", s.Addr)
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Terminate stops the server cleanly and waits for it to exit: SIGTERM, on which Redis writes
// and fsyncs its AOF before exiting, as on a graceful restart.
func (s *Server) Terminate() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return s.cmd.Wait()
}

// Restart starts the server again on the same port and directory (AOF files are reloaded).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("restart redis-server: %v", err)
	}
}

// URL returns redis://addr/db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Shared returns the test binary's redis-server (started on first use, stopped by Main).
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "webhookd-redis-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = startServer(dir)
	})
	if sharedErr != nil {
		tb.Fatalf("redis-server: %v", sharedErr)
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
