package registrytest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

// TestStartWithoutTestingTB: Start runs a redis-server a tool can use (answering, its pid
// known, its output in LogPath), Terminate stops it cleanly, and a server that cannot start
// is reported at once with its log, not after the start timeout.
func TestStartWithoutTestingTB(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "redis.log")
	s, err := registrytest.Start(registrytest.Config{Dir: dir, LogPath: logPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if s.Pid() == 0 || s.Exited() {
		t.Fatalf("pid %d, exited %v: want a running server", s.Pid(), s.Exited())
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer rdb.Close()
	if err := rdb.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET on the started server: %v", err)
	}
	if err := s.Terminate(); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if !s.Exited() || s.Pid() != 0 {
		t.Fatalf("after Terminate: exited %v, pid %d", s.Exited(), s.Pid())
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "Ready to accept connections") {
		t.Errorf("log %s = %q, %v; want redis-server's start-up lines", logPath, b, err)
	}

	badLog := filepath.Join(dir, "bad.log")
	_, err = registrytest.Start(registrytest.Config{Dir: dir, LogPath: badLog, Args: []string{"--no-such-directive", "1"}})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), badLog) {
		t.Fatalf("start with a bad directive = %v, want an exit at start naming the log", err)
	}
}

// asParentEnv makes TestHelperParent start a server and wait to be killed.
const asParentEnv = "REGISTRYTEST_AS_PARENT"

// TestStartedServerDiesWithItsParent: a redis-server started by Start goes when the process
// that started it is SIGKILLed, so a crashed test or benchmark leaves no server behind.
func TestStartedServerDiesWithItsParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux ties a child's life to its parent's")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperParent$")
	cmd.Env = append(os.Environ(), asParentEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var addr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the parent process printed no server address")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("server of the parent process: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(t.Context()).Err() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s still answers after its parent was killed", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHelperParent is the parent process of TestStartedServerDiesWithItsParent; it does
// nothing in an ordinary run.
func TestHelperParent(t *testing.T) {
	dir := os.Getenv(asParentEnv)
	if dir == "" {
		t.Skip("helper process of TestStartedServerDiesWithItsParent")
	}
	s, err := registrytest.Start(registrytest.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("addr %s\n", s.Addr)
	select {} // until killed
}
