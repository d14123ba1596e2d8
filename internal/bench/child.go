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

// child is a `wasmfleet server` process the benchmark started.
type child struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done closes

	dataDir    string
	logPath    string
	logFile    *os.File
	apiURL     string
	etcdURL    string
	kubeconfig string
	natsURL    string
}

// startChild starts `bin server` with fsync on, on free loopback ports, in
// dir/data, logging to dir/server.log, and waits until /readyz answers
// 200. On error nothing is left running.
func startChild(ctx context.Context, bin, dir string, readyTimeout time.Duration) (_ *child, err error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c := &child{
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "server.log"),
		done:    make(chan struct{}),
		apiURL:  "https://" + ports[0],
		etcdURL: "http://" + ports[1],
	}
	c.kubeconfig = filepath.Join(c.dataDir, "kubeconfig.yaml")
	c.logFile, err = os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"server",
		"--data-dir", c.dataDir,
		"--api-listen", ports[0],
		"--etcd-client-listen", ports[1],
		"--etcd-peer-listen", ports[2],
		// Port 0: the server picks one and writes it to DATA/nats-url.
		"--nats-listen", "127.0.0.1:0",
		"--log-level", "info",
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.logFile, c.logFile
	// The child gets no WASMFLEET_* settings from our environment: it runs
	// with the defaults (fsync on) and the flags above only.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WASMFLEET_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	c.cmd.SysProcAttr = childSysProcAttr()
	if err := c.cmd.Start(); err != nil {
		c.logFile.Close()
		return nil, fmt.Errorf("start %s server: %w", bin, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
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

func (c *child) pid() int { return c.cmd.Process.Pid }

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

// stop ends the child: SIGTERM, then SIGKILL after 10 s. It is safe to call
// more than once and waits until the process is gone.
func (c *child) stop() {
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

// exited reports whether the child is gone.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTail returns the last n lines of the server log.
func (c *child) logTail(n int) string {
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
