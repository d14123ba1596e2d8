//go:build unix && !linux

package main

import "syscall"

// sysProcAttr puts a child in its own process group (only Linux has a
// parent-death signal; elsewhere a SIGKILLed demo leaves its children).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
