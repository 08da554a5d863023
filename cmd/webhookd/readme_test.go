package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quickstart is the README's "Quickstart" section: the two commands of its first steps and
// its shell block, verbatim.
type quickstart struct {
	serve, listen []string // arguments after `go run ./cmd/webhookd`
	block         string
}

func readQuickstart(t *testing.T) quickstart {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Quickstart\n")
	if !ok {
		t.Fatal("README.md has no ## Quickstart section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var q quickstart
	for _, step := range []struct {
		cmd  string
		args *[]string
	}{{"serve", &q.serve}, {"listen", &q.listen}} {
		m := regexp.MustCompile("`go run ./cmd/webhookd (" + step.cmd + "[^`]*)`").FindStringSubmatch(section)
		if m == nil {
			t.Fatalf("the quickstart does not say `go run ./cmd/webhookd %s`", step.cmd)
		}
		*step.args = strings.Fields(m[1])
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	block, _, ok2 := strings.Cut(block, "\n```")
	if !ok || !ok2 {
		t.Fatal("the quickstart has no ```sh block")
	}
	q.block = block
	return q
}

// background runs this test binary as webhookd with args until the test ends and returns
// its combined output.
func background(t *testing.T, env []string, args ...string) *syncBuffer {
	t.Helper()
	out := new(syncBuffer)
	cmd := asMain(t, env, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("webhookd %s:\n%s", strings.Join(args, " "), tail(out.String(), 4000))
		}
	})
	return out
}

// TestReadmeQuickstart runs the README's quickstart as a new user would: `serve` and `listen` as
// the README writes them (the real main, on free ports instead of 8080 and 9443, with a fresh
// per-user directory), then its shell block verbatim in bash, and checks that listen printed a
// verified delivery and the block showed it succeeded.
func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "sed", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quickstart needs %s: %v (.ci/test installs curl)", tool, err)
		}
	}
	q := readQuickstart(t)
	config := t.TempDir()
	dir := filepath.Join(config, "webhookd")
	env := []string{"XDG_CONFIG_HOME=" + config, "HOME=" + t.TempDir(), "WEBHOOKD_HOME=", "REDIS_URL=", "REDIS_CLUSTER_ADDRS=",
		"WEBHOOKD_ALLOW_PRIVATE_CIDRS=", "WEBHOOKD_EXTRA_CA_FILE=", "WEBHOOKD_ADDR=127.0.0.1:0",
		"WEBHOOKD_LISTEN_ADDR=127.0.0.1:0", "WEBHOOKD_LISTEN_SECRET="}
	serveOut := background(t, env, q.serve...)
	listenOut := background(t, env, q.listen...)
	for _, f := range []string{demoEnvFile, listenEnvFile} {
		waitFor(t, patience, f+" to be written", func() bool {
			_, err := os.Stat(filepath.Join(dir, f))
			return err == nil
		})
	}
	// The files are written once the ports listen; serve's log says when it is ready for requests.
	waitFor(t, patience, "serve to listen", func() bool { return strings.Contains(serveOut.String(), "webhookd API listening") })

	bash := exec.CommandContext(t.Context(), "bash", "-c", q.block)
	bash.Env = append(os.Environ(), env...)
	out, err := bash.CombinedOutput()
	if err != nil {
		t.Fatalf("the quickstart block failed: %v\n%s", err, out)
	}
	evt := regexp.MustCompile(`"eventId":"(evt_[0-9a-f]+)"`).FindSubmatch(out)
	if evt == nil || !strings.Contains(string(out), `"status":"succeeded"`) {
		t.Fatalf("the block did not show a succeeded delivery:\n%s", out)
	}
	verified := regexp.MustCompile(`(?m)^\S+  scan\.completed  ` + string(evt[1]) + `  verified$`)
	waitFor(t, patience, "listen to print the verified delivery", func() bool { return verified.MatchString(listenOut.String()) })
	if strings.Contains(listenOut.String(), "NOT verified") {
		t.Errorf("listen printed an unverified delivery:\n%s", listenOut)
	}
}
