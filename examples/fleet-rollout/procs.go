package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// console serialises the demo's output: its own lines, the kubectl output
// and the lines of the NATS subscribers, which arrive concurrently, never
// mix within a line.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format, args...)
}

// lines returns a writer that prints every complete line written to it
// with prefix and hands it to tap (when not nil). Flush prints a last line
// without a newline. It is safe for concurrent use.
func (c *console) lines(prefix string, tap func(string)) *lineWriter {
	return &lineWriter{c: c, prefix: prefix, tap: tap}
}

type lineWriter struct {
	c      *console
	prefix string
	tap    func(string)
	mu     sync.Mutex
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.emit(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

// Flush prints what is left of an unterminated last line.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
}

func (l *lineWriter) emit(line string) {
	l.c.printf("%s%s\n", l.prefix, line)
	if l.tap != nil {
		l.tap(line)
	}
}

// proc is a long-running child process (the server, an agent, a NATS
// subscriber). It runs in its own process group, so stopping it stops
// whatever it started, and on Linux it is SIGKILLed by the kernel should
// the demo itself die without cleaning up.
type proc struct {
	name string
	log  string // the file holding its output, or ""
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and been reaped
	err  error         // its exit status; read after done
	// stopping says its exit is intended (cleanup, or the device going
	// offline); any other exit fails the demo.
	stopping atomic.Bool
}

// startProc starts argv in dir with output to logPath (when not "") or to
// stdout and stderr. onExit is called, on the goroutine that reaps it, when
// it exits without stopping having been set.
func startProc(name, dir, logPath string, stdout, stderr io.Writer, onExit func(error), argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	var logFile *os.File
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		logFile, cmd.Stdout, cmd.Stderr = f, f, f
	} else {
		cmd.Stdout, cmd.Stderr = stdout, stderr
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		p.err = err
		close(p.done)
		if !p.stopping.Load() {
			where := ""
			if logPath != "" {
				where = " (its log: " + logPath + ")"
			}
			onExit(fmt.Errorf("%s exited unexpectedly: %v%s", name, err, where))
		}
	}()
	return p, nil
}

// pid is the process id (and process group id).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process's group.
func (p *proc) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.pid(), sig)
}

// kill SIGKILLs the process (a device losing power) and waits for it.
func (p *proc) kill() {
	p.stopping.Store(true)
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stopProcs stops ps together: SIGTERM, and SIGKILL for those still
// running after grace. It returns once all have exited.
func stopProcs(ps []*proc, grace time.Duration) {
	for _, p := range ps {
		p.stopping.Store(true)
		p.signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, p := range ps {
		select {
		case <-p.done:
			continue
		case <-timer.C:
		}
		for _, q := range ps {
			select {
			case <-q.done:
			default:
				q.signal(syscall.SIGKILL)
			}
		}
		break
	}
	for _, p := range ps {
		<-p.done
	}
}

// runCmd runs argv to completion in dir with env added, output to w. It is
// killed when ctx ends.
func runCmd(ctx context.Context, dir string, env []string, w io.Writer, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// shellQuote renders args as a user would type them.
func shellQuote(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r))
		}) < 0 {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}
