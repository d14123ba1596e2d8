package imagehelper

import "syscall"

// sysProcAttr has the kernel send the helper SIGTERM when the agent's
// process dies, even by SIGKILL (its stdin closing tells it too, but only
// once every copy of the pipe's write end is closed). The kernel sends it
// when the thread that started the helper ends; Go ends threads only with
// the process or after a goroutine exits while locked to its thread, which
// the agent's code that starts the helper never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
