package bench

import "syscall"

// childSysProcAttr puts the server in its own process group, so a ctrl-C
// at the terminal reaches only the benchmark (which then stops the server
// in order), and has the kernel kill it should the benchmark die without
// stopping it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
