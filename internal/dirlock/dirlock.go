// Package dirlock keeps a second process off a directory another one
// serves: an exclusive flock on a file in it, which the kernel drops when
// the holder exits, however it exits.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned (wrapped) when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock takes the exclusive lock on the file path (created if missing,
// mode 0600), waiting up to wait for a holder that is going away: a killed
// process's sockets close before its other files. The returned file holds
// the lock until it is closed.
func Lock(path string, wait time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				err = ErrLocked
			}
			return nil, err
		}
	}
}

// Dir takes the lock of the lock file name in dir for a holder called
// who: when another one holds it, the error (wrapping ErrLocked) reads
// "DIR is in use by another WHO".
func Dir(dir, name, who string, wait time.Duration) (*os.File, error) {
	f, err := Lock(filepath.Join(dir, name), wait)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("%s is in use by another %s: %w", dir, who, err)
	}
	return f, err
}
