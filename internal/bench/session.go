package bench

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"
)

// session is what every benchmark run starts with: the binary to start as
// children, a fresh directory, where and when it runs, and a progress line
// printer.
type session struct {
	binary  string
	dir     string
	started time.Time
	machine Machine
	step    func(format string, args ...any)
	// done removes dir unless it is kept.
	done func()
}

// newSession resolves binary ("" is this process's executable) and makes a
// directory named prefix* under tempDir ("" is the system's), kept after
// the run when keep.
func newSession(binary, tempDir, prefix string, keep bool, progress io.Writer) (*session, error) {
	if progress == nil {
		progress = io.Discard
	}
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the wasmfleet binary: %w", err)
		}
		binary = exe
	}
	dir, err := os.MkdirTemp(tempDir, prefix)
	if err != nil {
		return nil, err
	}
	s := &session{binary: binary, dir: dir, started: time.Now(), machine: machineInfo(dir), done: func() { os.RemoveAll(dir) }}
	if keep {
		fmt.Fprintf(progress, "bench: keeping %s\n", dir)
		s.done = func() {}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				s.machine.Revision = kv.Value
			}
		}
	}
	s.step = func(format string, args ...any) {
		fmt.Fprintf(progress, "bench: %6.1fs  %s\n", time.Since(s.started).Seconds(), fmt.Sprintf(format, args...))
	}
	return s, nil
}
