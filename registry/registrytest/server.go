package registrytest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds the wait for a started redis-server to answer PING.
const startTimeout = 10 * time.Second

// Server is a redis-server process on a loopback port, owned by a test or by a tool such as
// webhookbench.
type Server struct {
	Addr string
	Dir  string
	// LogPath receives the server's standard output and error (appended across restarts);
	// empty discards them.
	LogPath string
	bin     string
	args    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited; err is then its exit status
	err  error
}

// Config says how Start runs a redis-server.
type Config struct {
	// Dir is its working directory (--dir, where an AOF or RDB file goes); it must exist.
	Dir string
	// LogPath receives its standard output and error; empty discards them.
	LogPath string
	// Args are extra arguments, e.g. "--appendonly", "yes"; they override the defaults.
	Args []string
}

// Start starts a redis-server from PATH on a free loopback port (no persistence unless
// cfg.Args ask for it, 64 databases) and returns once it answers PING. It needs no
// testing.TB, so tools use it as well as tests. The server dies with the calling process
// (see StartProcess); the caller stops it with Stop or Terminate.
func Start(cfg Config) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server): %w", err)
	}
	var lastErr error
	// A free port can be taken between FreePort and the server's bind: try a few.
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
			"--appendonly", "no", "--dir", cfg.Dir, "--databases", "64"}, cfg.Args...)
		s := newServer(bin, port, cfg.Dir, cfg.LogPath, args)
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func newServer(bin string, port int, dir, logPath string, args []string) *Server {
	return &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, LogPath: logPath, bin: bin, args: args}
}

// StartServer starts a new redis-server on a free loopback port with extra arguments
// (e.g. "--appendonly", "yes") in a directory of the test's. It is stopped by Stop or by the
// test's cleanup.
func StartServer(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	s, err := Start(Config{Dir: tb.TempDir(), Args: extra})
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// start runs the server process and waits until it answers PING.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args...)
	if s.LogPath != "" {
		f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		// The child writes to its own copy of the descriptor: ours can go at once.
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := StartProcess(cmd); err != nil {
		return err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.err = cmd, done, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()
	if err := s.awaitPong(done); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// awaitPong waits until the server answers PING, or fails at once if it exits.
func (s *Server) awaitPong(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if ping(s.Addr) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start: %v%s", s.Addr, s.exitErr(), s.logHint())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server on %s did not answer within %s%s", s.Addr, startTimeout, s.logHint())
}

func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprint(c, "PING\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line == "+PONG\r\n"
}

func (s *Server) logHint() string {
	if s.LogPath == "" {
		return ""
	}
	return " (log: " + s.LogPath + ")"
}

func (s *Server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// running returns the current process and its exit channel; nil when never started.
func (s *Server) running() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.done
}

// Stop kills the server (SIGKILL: a crash, not a clean shutdown) and waits for it to exit.
func (s *Server) Stop() {
	cmd, done := s.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Terminate stops the server cleanly and waits for it to exit: SIGTERM, on which Redis writes
// and fsyncs its AOF before exiting, as on a graceful restart.
func (s *Server) Terminate() error {
	cmd, done := s.running()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-done
	return s.exitErr()
}

// Restart starts the server again on the same port and directory (AOF files are reloaded).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("restart redis-server: %v", err)
	}
}

// Exited reports whether the server's process has exited (or never ran).
func (s *Server) Exited() bool {
	_, done := s.running()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Pid returns the server's process id (for CPU sampling), 0 when it is not running.
func (s *Server) Pid() int {
	cmd, _ := s.running()
	if cmd == nil || s.Exited() {
		return 0
	}
	return cmd.Process.Pid
}

// URL returns redis://addr/db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
