// Package netns runs code in another network namespace of the node: a
// container's, or a new one.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Run calls fn on an OS thread that entered the network namespace at path,
// or a new one when path is "", and returns fn's error. Sockets fn makes
// belong to that namespace for good. The thread goes back to its own
// namespace after, or, if it cannot, ends with the goroutine.
func Run(path string, fn func() error) error {
	var target *os.File
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open network namespace: %w", err)
		}
		defer f.Close()
		target = f
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer own.Close()
		if target != nil {
			err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		} else {
			err = unix.Unshare(unix.CLONE_NEWNET)
		}
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		err = fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}
