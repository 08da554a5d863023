//go:build !linux

package registrytest

import "os/exec"

// StartProcess starts cmd. Only Linux can tie a child's life to its parent's (Pdeathsig);
// elsewhere a crashed test or tool may leave the child running.
func StartProcess(cmd *exec.Cmd) error { return cmd.Start() }
