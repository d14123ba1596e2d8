// Package nodeagent is the node agent: it joins the cluster, registers its
// Node, renews its Lease, runs the pods bound to it through the runtimes
// and reports their status. This file holds its configuration; node.go
// builds the Node object it registers.
package nodeagent

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is the agent's configuration. Start from Defaults.
type Config struct {
	// Server is the control plane's HTTPS URL, used once to join.
	Server string `mapstructure:"server"`
	// TokenFile holds the node join token (the server's DIR/node-token).
	TokenFile string `mapstructure:"token-file"`
	// NodeName is the Node's name; default the host name.
	NodeName string `mapstructure:"node-name"`
	// DataDir holds the node's credentials (0600), pod state, modules, the
	// compilation cache and container logs.
	DataDir string `mapstructure:"data-dir"`
	// Labels are added to the Node's labels.
	Labels map[string]string `mapstructure:"labels"`
	// LeaseDuration is the Lease's duration; the agent renews it every
	// LeaseRenewInterval. The node lifecycle controller marks a node whose
	// lease is older than its grace period unreachable.
	LeaseDuration      time.Duration `mapstructure:"lease-duration"`
	LeaseRenewInterval time.Duration `mapstructure:"lease-renew-interval"`
	// MaxPods is the Node's pod capacity.
	MaxPods int `mapstructure:"max-pods"`
	// ReservedCPU and ReservedMemory are kept from pods: allocatable is
	// capacity minus them (Kubernetes quantities, e.g. 100m, 64Mi).
	ReservedCPU    string `mapstructure:"reserved-cpu"`
	ReservedMemory string `mapstructure:"reserved-memory"`
	// AllowFileModules lets wasm containers name modules as file:///….
	AllowFileModules bool `mapstructure:"allow-file-modules"`
	// DefaultMemoryLimit caps a wasm guest without resources.limits.memory.
	DefaultMemoryLimit string `mapstructure:"default-memory-limit"`
	// LogMaxSize and LogMaxFiles bound each container's log on disk.
	LogMaxSize  string `mapstructure:"log-max-size"`
	LogMaxFiles int    `mapstructure:"log-max-files"`
	// StaticPodPath is the directory of static pod manifests (one Pod per
	// .yaml, .yml or .json file) the agent runs on its own, with or without
	// a control plane; empty means DataDir/manifests.
	StaticPodPath string `mapstructure:"static-pod-path"`
	// FileCheckFrequency is how often StaticPodPath is read again.
	FileCheckFrequency time.Duration `mapstructure:"file-check-frequency"`
	// ContainerdAddress is containerd's socket, for the pods of runtime
	// class runc; empty disables runc. An agent that cannot reach it runs
	// without runc (and says so in its log).
	ContainerdAddress string `mapstructure:"containerd-address"`
	// ContainerdNamespace is the containerd namespace of the node's images
	// and containers.
	ContainerdNamespace string `mapstructure:"containerd-namespace"`
	// ContainerdSnapshotter unpacks images; "" is containerd's default
	// (overlayfs), "native" works where overlayfs cannot be mounted.
	ContainerdSnapshotter string `mapstructure:"containerd-snapshotter"`
	// GuestHost runs the wasm guests in a guest-host process of their own
	// (runtime/wasmhost) that outlives the agent: restarting or upgrading
	// the agent leaves them running, as containers outlive a kubelet
	// restart, and the agent attaches to them again. false runs them in the
	// agent's process, and they stop with it. It takes GuestHostCommand,
	// which the agent commands set; without it guests run in process.
	GuestHost bool `mapstructure:"guest-host"`
	// GuestHostCommand runs the guest host (runtime/wasmhost.Main): the
	// agent's own executable and its hidden guest-host subcommand.
	GuestHostCommand []string `mapstructure:"-"`
	// ContainerdHelper is the executable that runs containerd's client for
	// the lean agent (cmd/wasmfleet-containerd, see HelperImages): a bare
	// name is looked for beside the agent's executable, then on $PATH. An
	// agent that links the client itself (`wasmfleet agent`) ignores it.
	ContainerdHelper string `mapstructure:"containerd-helper"`
	// ContainerdLogger is the executable containerd's shim runs to write
	// each runc container's log (cmd/wasmfleet-logger), found as
	// ContainerdHelper is; when it is missing, the helper (or the agent's
	// own executable) does that job, at several times the memory per
	// container.
	ContainerdLogger string `mapstructure:"containerd-logger"`
}

// ManifestsDir is the static pod directory in effect.
func (c *Config) ManifestsDir() string {
	if c.StaticPodPath != "" {
		return c.StaticPodPath
	}
	return filepath.Join(c.DataDir, "manifests")
}

// Defaults returns the documented defaults (configs/agent.yaml).
func Defaults() Config {
	return Config{
		DataDir:            "/var/lib/wasmfleet/agent",
		LeaseDuration:      40 * time.Second,
		LeaseRenewInterval: 10 * time.Second,
		MaxPods:            110,
		ReservedCPU:        "0",
		ReservedMemory:     "0",
		DefaultMemoryLimit: "128Mi",
		LogMaxSize:         "10Mi",
		LogMaxFiles:        5,
		FileCheckFrequency: 5 * time.Second,
		GuestHost:          true,

		ContainerdAddress:   "/run/containerd/containerd.sock",
		ContainerdNamespace: "wasmfleet",
		ContainerdHelper:    "wasmfleet-containerd",
		ContainerdLogger:    "wasmfleet-logger",
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Server); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("server %q: want https://HOST:PORT", c.Server))
	}
	if c.TokenFile == "" {
		errs = append(errs, errors.New("token-file is required"))
	}
	if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("node-name %q: %s", c.NodeName, strings.Join(msgs, "; ")))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	for k, v := range c.Labels {
		for _, m := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			errs = append(errs, fmt.Errorf("label %s=%s: %s", k, v, m))
		}
	}
	if c.LeaseDuration <= 0 || c.LeaseRenewInterval <= 0 || c.LeaseRenewInterval >= c.LeaseDuration {
		errs = append(errs, fmt.Errorf("lease-renew-interval (%s) must be positive and shorter than lease-duration (%s)", c.LeaseRenewInterval, c.LeaseDuration))
	}
	if c.MaxPods <= 0 {
		errs = append(errs, fmt.Errorf("max-pods must be positive, got %d", c.MaxPods))
	}
	for name, q := range map[string]string{"reserved-cpu": c.ReservedCPU, "reserved-memory": c.ReservedMemory, "default-memory-limit": c.DefaultMemoryLimit, "log-max-size": c.LogMaxSize} {
		if v, err := resource.ParseQuantity(q); err != nil || v.Sign() < 0 {
			errs = append(errs, fmt.Errorf("%s %q: not a non-negative quantity", name, q))
		}
	}
	if c.FileCheckFrequency <= 0 {
		errs = append(errs, fmt.Errorf("file-check-frequency must be positive, got %s", c.FileCheckFrequency))
	}
	if c.ContainerdAddress != "" {
		if err := c.validateContainerd(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.LogMaxFiles < 2 {
		errs = append(errs, fmt.Errorf("log-max-files must be at least 2, got %d", c.LogMaxFiles))
	}
	return errors.Join(errs...)
}

// ParseLabels reads k=v,k2=v2 as the --labels flag gives them.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
