package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// process is webhookd running as a child process: this test binary re-executed as main.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	waited chan struct{}
	err    error
}

// startProcess runs `webhookd args...` with the stack's settings as its environment.
func (st *stack) startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv, _ := json.Marshal(args)
	p := &process{cmd: exec.Command(exe), output: new(syncBuffer), waited: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEBHOOKD_") && !strings.HasPrefix(kv, "REDIS_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	for k, v := range st.env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Env = append(p.cmd.Env, asMainEnv+"=1", asMainArgsEnv+"="+string(argv))
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() {
		select {
		case <-p.waited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.waited
		}
		if t.Failed() {
			t.Logf("webhookd %s (pid %d) output:\n%s", args, p.cmd.Process.Pid, tail(p.output.String(), 6000))
		}
	})
	return p
}

// signal sends sig and waits for the process to exit; it returns how it exited.
func (p *process) signal(t *testing.T, sig os.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", sig, err)
	}
	select {
	case <-p.waited:
		return p.err
	case <-time.After(time.Minute):
		t.Fatalf("webhookd did not exit within a minute of %s", sig)
		return nil
	}
}

// TestWorkerSIGKILLRecovery: a worker process killed with SIGKILL in the middle of an attempt
// loses nothing: once its lease has gone 15s without a heartbeat, a surviving worker's dead-worker
// sweep requeues the task and the event is delivered again with the same webhook-id.
func TestWorkerSIGKILLRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the dead-worker sweep (about 15 seconds)")
	}
	t.Parallel()
	// A long attempt timeout, so the held attempt is still in flight when the worker dies.
	st := newStack(t, map[string]string{"WEBHOOKD_ATTEMPT_TIMEOUT": "60s"})
	api := st.start(t, "--role", "api")
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // hold the attempt until its connection dies with the worker
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)

	first := st.startProcess(t, "serve", "--role", "worker")
	ev := api.publish(t, key, registry.EventScanCompleted, scanData())
	waitFor(t, patience, "the first attempt", func() bool { return rc.Count() == 1 })
	killedAt := time.Now()
	var exit *exec.ExitError
	if err := first.signal(t, syscall.SIGKILL); !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("killed worker exited with %v, want death by signal", err)
	}
	second := st.startProcess(t, "serve", "--role", "worker")

	waitFor(t, 3*time.Minute, "redelivery after SIGKILL", func() bool { return rc.Count() >= 2 })
	hits := rc.Hits()
	t.Logf("recovery after SIGKILL: %s", hits[1].At.Sub(killedAt).Round(100*time.Millisecond))
	for i, h := range hits {
		if got := h.Header.Get("webhook-id"); got != ev.ID {
			t.Errorf("attempt %d: webhook-id = %q, want %q", i+1, got, ev.ID)
		}
	}
	d := api.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliverySucceeded)
	deliverytest.CheckSigned(t, hits[1], ev.ID, ep.Secret)
	if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusOK {
		t.Errorf("attempts = %+v, want the one completed attempt (the killed one never finished)", d.Attempts)
	}
	// SIGTERM is a clean shutdown of the real main: exit status 0.
	if err := second.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("worker exited with %v after SIGTERM, want status 0", err)
	}
}
