package registrytest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// StartProcess starts cmd so that it dies with the calling process: the kernel sends it
// SIGKILL (Pdeathsig) when its parent goes, so a test binary or tool that crashes or is
// killed leaves no server behind. The kernel sends Pdeathsig when the thread that forked the
// child ends, not the process, and Go may end threads (go.dev/issue/27505): every child is
// therefore forked from one goroutine locked to its OS thread for the process's lifetime.
func StartProcess(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() { go spawner() })
	req := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	spawnc <- req
	return <-req.done
}

// spawnc carries start requests to the one goroutine that starts children.
var (
	spawnc    = make(chan spawnRequest)
	spawnOnce sync.Once
)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func spawner() {
	runtime.LockOSThread() // never unlocked: the thread lives as long as the process
	for req := range spawnc {
		req.done <- req.cmd.Start()
	}
}
