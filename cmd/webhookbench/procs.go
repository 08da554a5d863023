package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/cert-ix/webhookd/registry/registrytest"
)

// child is a webhookd subprocess the bench started and must stop. (Its redis-server is a
// registrytest.Server.)
type child struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	logPath string
}

// startChild starts name with args and env (nil: the bench's own), its output in logPath.
// The child gets SIGKILL if the bench dies (registrytest.StartProcess, which also starts the
// bench's redis-server), so no run leaves servers behind.
func startChild(name string, args, env []string, logPath string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := registrytest.StartProcess(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child is gone already.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tail returns the last lines of the child's log, for error messages.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// poll calls f every 20ms until it is done, fails, or limit passes.
func poll(ctx context.Context, limit time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// moduleRoot is the directory of the go.mod of the module being benchmarked.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run webhookbench inside the webhookd module (or pass --webhookd-bin)")
	}
	return strings.TrimSuffix(gomod, "/go.mod"), nil
}

// buildWebhookd builds ./cmd/webhookd of this module into dir once.
func buildWebhookd(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := dir + "/webhookd"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/webhookd")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/webhookd: %w\n%s", err, stderr.String())
	}
	return bin, nil
}
