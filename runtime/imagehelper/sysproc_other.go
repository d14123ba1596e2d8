//go:build !linux

package imagehelper

import "syscall"

// sysProcAttr: without Pdeathsig, the helper sees the agent go away when
// its stdin closes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
