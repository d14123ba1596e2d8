package main

import "syscall"

// sysProcAttr puts a child in its own process group and has the kernel
// SIGKILL it when the demo dies, so no child outlives the demo even after
// a SIGKILL of the demo itself.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
