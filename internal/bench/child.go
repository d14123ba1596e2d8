package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a child process of the benchmark, logging to a file.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done closes
	logPath string
	logFile *os.File
}

// startProc starts bin with args, stdout and stderr going to logPath. The
// child gets no WASMFLEET_* settings from our environment: only args.
func startProc(bin string, args []string, logPath string) (*proc, error) {
	p := &proc{logPath: logPath, done: make(chan struct{})}
	var err error
	if p.logFile, err = os.Create(logPath); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WASMFLEET_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.SysProcAttr = childSysProcAttr()
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, fmt.Errorf("start %s %s: %w", bin, args[0], err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// child is a `wasmfleet server` process the benchmark started.
type child struct {
	*proc
	dataDir    string
	apiURL     string
	etcdURL    string
	kubeconfig string
	natsURL    string
}

// startChild starts `bin server` with fsync on, on free loopback ports, in
// dir/data, logging to dir/server.log, and waits until /readyz answers
// 200. The server runs the API alone (no scheduler, no controller
// manager). On error nothing is left running.
func startChild(ctx context.Context, bin, dir string, readyTimeout time.Duration) (*child, error) {
	return startServerChild(ctx, bin, dir, readyTimeout, false)
}

// startServerChild is startChild, with the scheduler and the controller
// manager running in the server when components is set.
func startServerChild(ctx context.Context, bin, dir string, readyTimeout time.Duration, components bool) (_ *child, err error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c := &child{
		dataDir: filepath.Join(dir, "data"),
		apiURL:  "https://" + ports[0],
		etcdURL: "http://" + ports[1],
	}
	c.kubeconfig = filepath.Join(c.dataDir, "kubeconfig.yaml")
	args := []string{"server",
		"--data-dir", c.dataDir,
		"--api-listen", ports[0],
		"--etcd-client-listen", ports[1],
		"--etcd-peer-listen", ports[2],
		// Port 0: the server picks one and writes it to DATA/nats-url.
		"--nats-listen", "127.0.0.1:0",
		"--log-level", "info",
	}
	if !components {
		// The API server alone, as kube-apiserver is measured: the
		// scheduler would add status writes for the benchmark's pods.
		args = append(args, "--disable-scheduler", "--disable-controller-manager")
	}
	// fsync stays on: the child runs with the defaults and these flags.
	if c.proc, err = startProc(bin, args, filepath.Join(dir, "server.log")); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.stop()
			err = fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, c.logPath, c.logTail(20))
		}
	}()
	if err := c.waitReady(ctx, readyTimeout); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(c.dataDir, "nats-url"))
	if err != nil {
		return nil, fmt.Errorf("read nats-url: %w", err)
	}
	c.natsURL = strings.TrimSpace(string(b))
	return c, nil
}

func (c *proc) pid() int { return c.cmd.Process.Pid }

// waitReady polls /readyz until it answers 200, the child exits, ctx ends
// or timeout passes.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Only readiness is probed here; the real clients verify the CA.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		select {
		case <-c.done:
			return fmt.Errorf("server exited before it was ready: %v", c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("server not ready (%s): %w", last, context.Cause(ctx))
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.apiURL+"/readyz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if _, err := os.Stat(c.kubeconfig); err == nil {
				return nil
			}
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s. It is safe to call
// more than once and waits until the process is gone.
func (c *proc) stop() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	c.logFile.Close()
}

// exited reports whether the process is gone.
func (c *proc) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTail returns the last n lines of the log.
func (c *proc) logTail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct loopback addresses that were free a moment
// ago.
func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(errors.New("find a free port"), err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
