package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/imagehelper"
)

// The runc runtime (containerd) of the node. Its client is not linked into
// nodeagent: the containerd client's packages (gRPC, hundreds of protobuf
// types registered by their init) cost about 10 MB of RSS even when no OCI
// container runs. By default the agent runs it in a helper process,
// wasmfleet-containerd (runtime/imagehelper), started when the first runc
// pod needs it; a binary that links containerd anyway (wasmfleet) passes
// an in-process factory with WithImageRuntime.

// ImageRuntimeFactory opens the runtime of the node's runc pods from the
// agent's configuration (ContainerdAddress is set). An error means the
// node does not offer runc; it is logged and shown on the runc pods.
type ImageRuntimeFactory func(ctx context.Context, cfg Config, log *slog.Logger) (ImageRuntime, error)

// containerdNamespace is containerd's rule for namespace names
// (runtime/containerd checks it again).
var containerdNamespace = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// validateContainerd checks the containerd settings.
func (c *Config) validateContainerd() error {
	if n := c.ContainerdNamespace; n != "" && (len(n) > 76 || !containerdNamespace.MatchString(n)) {
		return fmt.Errorf("containerd-namespace %q: want letters, digits and inner '.', '_', '-', at most 76 characters", n)
	}
	return nil
}

// helperSocket is the helper's socket in the data dir, and helperMarker the
// file that says the helper has started containers (imagehelper.Config).
const (
	helperSocket = "containerd-helper.sock"
	helperMarker = "containerd-helper.used"
)

// HelperImages is the default ImageRuntimeFactory: containerd's client in
// a helper process (Config.ContainerdHelper) that is started when a runc
// pod first needs it, and again after it died. Here it only checks that
// the helper is there and that containerd's socket accepts connections,
// so the node offers runc without starting it.
//
// What a lean node gives up: its Node's containerRuntimeVersion says
// "containerd://unknown" (asking containerd takes its client), and runc is
// offered when containerd's socket answers, even if containerd then fails
// (its runc pods then wait with RuntimeClassUnsupported and the helper's
// error). The first runc pod also waits for the helper to start.
func HelperImages(ctx context.Context, cfg Config, log *slog.Logger) (ImageRuntime, error) {
	path, err := helperPath(cfg.ContainerdHelper)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "unix", cfg.ContainerdAddress)
	if err != nil {
		return nil, fmt.Errorf("containerd socket: %w", err)
	}
	conn.Close()
	args := []string{"--address", cfg.ContainerdAddress, "--namespace", cfg.ContainerdNamespace,
		"--snapshotter", cfg.ContainerdSnapshotter, "--owner", cfg.NodeName}
	if logger := ContainerdLogger(cfg, log); logger != "" {
		args = append(args, "--logger", logger)
	}
	return imagehelper.NewHelper(imagehelper.Config{
		Path:   path,
		Args:   args,
		Socket: filepath.Join(cfg.DataDir, helperSocket),
		Marker: filepath.Join(cfg.DataDir, helperMarker),
		Info:   runtime.Info{Name: RuntimeClassRunc, Version: "containerd://unknown", Mode: "io.containerd.runc.v2"},
		Log:    log,
	}), nil
}

// helperPath finds the helper executable (see findExecutable).
func helperPath(name string) (string, error) { return findExecutable("containerd-helper", name) }

// ContainerdLogger is the absolute path of the runc containers' logger
// (Config.ContainerdLogger, cmd/wasmfleet-logger), or "" when it is not
// found: the runtime then has its own executable log, at several times the
// memory per container, and a warning says so.
func ContainerdLogger(cfg Config, log *slog.Logger) string {
	p, err := findExecutable("containerd-logger", cfg.ContainerdLogger)
	if err != nil {
		log.Warn("runc containers' logs are written by the runtime's own executable, which costs more memory per container", "err", err)
		return ""
	}
	return p
}

// findExecutable finds the executable name that the setting key names: a
// name with a '/' as it is, a bare name beside the agent's own executable,
// else on $PATH. The path it returns is absolute.
func findExecutable(key, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%s is empty", key)
	}
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		return filepath.Abs(name)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s %s is neither beside the agent's executable nor on $PATH", key, name)
	}
	return filepath.Abs(p)
}
