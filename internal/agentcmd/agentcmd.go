// Package agentcmd is the node agent's command line, shared by
// `wasmfleet agent` and the lean agent-only binary `wasmfleet-agent`: the
// flags, the configuration (flags, then WASMFLEET_* environment, then the
// YAML file named by --config) and the run. It imports only the node agent
// and the command-line libraries, so a binary built around it carries no
// control-plane code. LoadConfig and NewLogger serve every wasmfleet
// command.
package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/wasmfleet/wasmfleet/nodeagent"
	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// New returns the agent command named use ("agent" as a subcommand,
// "wasmfleet-agent" as a root command). It runs a node agent until ctx
// ends: the agent joins the control plane at --server with the join
// token, then works over its one NATS connection. Logs go to stderr.
// images opens the runc runtime; nil runs containerd's client in the
// helper process --containerd-helper (nodeagent.HelperImages), so that
// the binary need not link it.
func New(ctx context.Context, use string, stderr io.Writer, images nodeagent.ImageRuntimeFactory) *cobra.Command {
	d := nodeagent.Defaults()
	cmd := &cobra.Command{Use: use, Short: "Run a node agent that joins the control plane and runs the pods bound to this node", Args: cobra.NoArgs}
	fs := cmd.Flags()
	fs.String("config", "", "YAML config file (see configs/agent.yaml)")
	fs.String("server", "", "control plane URL, https://HOST:6443")
	fs.String("token-file", "", "file holding the node join token (the server's DATA_DIR/node-token)")
	fs.String("node-name", "", "the Node's name (default: the host name)")
	fs.String("data-dir", d.DataDir, "credentials, pod state, modules, compilation cache and logs")
	fs.String("labels", "", "extra Node labels, k=v,k2=v2")
	fs.Duration("lease-duration", d.LeaseDuration, "node Lease duration")
	fs.Duration("lease-renew-interval", d.LeaseRenewInterval, "how often the Lease is renewed")
	fs.Int("max-pods", d.MaxPods, "pod capacity")
	fs.String("reserved-cpu", d.ReservedCPU, "CPU kept from pods")
	fs.String("reserved-memory", d.ReservedMemory, "memory kept from pods")
	fs.Bool("allow-file-modules", d.AllowFileModules, "let wasm containers name modules as file:///…")
	fs.String("default-memory-limit", d.DefaultMemoryLimit, "memory cap of wasm guests without resources.limits.memory")
	fs.String("log-max-size", d.LogMaxSize, "rotate a container log past this size")
	fs.Int("log-max-files", d.LogMaxFiles, "container log files kept")
	fs.String("static-pod-path", d.StaticPodPath, "directory of static pod manifests (default DATA_DIR/manifests)")
	fs.Duration("file-check-frequency", d.FileCheckFrequency, "how often the static pod directory is read")
	fs.Bool("guest-host", d.GuestHost, "run wasm guests in a guest-host process that outlives the agent, so restarting the agent leaves them running (false: in the agent's process)")
	fs.String("containerd-address", d.ContainerdAddress, "containerd socket for pods of runtime class runc (empty: no runc)")
	fs.String("containerd-namespace", d.ContainerdNamespace, "containerd namespace of the node's images and containers")
	fs.String("containerd-snapshotter", d.ContainerdSnapshotter, "containerd snapshotter (empty: containerd's default; native where overlayfs cannot mount)")
	fs.String("containerd-helper", d.ContainerdHelper, "the executable running containerd's client for the lean agent, started when a runc pod needs it (a bare name: beside this executable, else on $PATH)")
	fs.String("containerd-logger", d.ContainerdLogger, "the executable containerd's shim runs to write each runc container's log (a bare name: beside this executable, else on $PATH; missing: the agent's or helper's own executable, at more memory per container)")
	fs.String("log-level", "info", "debug, info, warn or error")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := LoadConfig(fs)
		if err != nil {
			return err
		}
		// --labels and WASMFLEET_LABELS are k=v text; the config file's
		// labels are a map.
		if s, ok := v.Get("labels").(string); ok {
			labels, err := nodeagent.ParseLabels(s)
			if err != nil {
				return err
			}
			v.Set("labels", labels)
		}
		cfg := nodeagent.Defaults()
		if err := Unmarshal(v, &cfg); err != nil {
			return err
		}
		if cfg.NodeName == "" {
			cfg.NodeName, _ = os.Hostname()
		}
		if cfg.GuestHost {
			// The guest host is this executable's hidden guest-host
			// command, below this one.
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("guest-host: %w", err)
			}
			cfg.GuestHostCommand = []string{exe, guestHostUse}
			if cmd.HasParent() {
				cfg.GuestHostCommand = []string{exe, cmd.Name(), guestHostUse}
			}
		}
		log, err := NewLogger(stderr, v.GetString("log-level"))
		if err != nil {
			return err
		}
		var opts []nodeagent.Option
		if images != nil {
			opts = append(opts, nodeagent.WithImageRuntime(images))
		}
		a, err := nodeagent.NewAgent(cfg, log, opts...)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	}
	cmd.AddCommand(&cobra.Command{
		Use:    guestHostUse,
		Short:  "Serve the node's wasm guests in a process that outlives the agent (the agent starts it)",
		Hidden: true,
		// Its flags are wasmhost's; the agent writes them.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := wasmhost.ParseArgs(args)
			if err != nil {
				return err
			}
			return wasmhost.Main(ctx, cfg)
		},
	})
	return cmd
}

// guestHostUse is the hidden subcommand that runs the wasm guest host.
const guestHostUse = "guest-host"

// LoadConfig layers flags over WASMFLEET_* environment over the YAML file
// named by --config over the flags' defaults. The file may set only what
// the flags of fs, or of more, name.
func LoadConfig(fs *pflag.FlagSet, more ...*pflag.FlagSet) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("WASMFLEET")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(fs); err != nil {
		return nil, err
	}
	if f := v.GetString("config"); f != "" {
		v.SetConfigFile(f)
		// YAML whatever the file's name (viper goes by the extension).
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := checkConfigKeys(v, append([]*pflag.FlagSet{fs}, more...)); err != nil {
			return nil, fmt.Errorf("config file %s: %w", f, err)
		}
	}
	return v, nil
}

// Unmarshal decodes the settings of v into cfg. Its error names every bad
// setting on one line (viper's spreads them over several).
func Unmarshal(v *viper.Viper, cfg any) error {
	err := v.Unmarshal(cfg)
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var msgs []string
		for _, e := range joined.Unwrap() {
			msgs = append(msgs, e.Error())
		}
		return fmt.Errorf("config: %s", strings.Join(msgs, "; "))
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// checkConfigKeys refuses what the config file sets that no flag of sets
// names (a typo would be ignored) and durations written as bare numbers
// (which would be nanoseconds).
func checkConfigKeys(v *viper.Viper, sets []*pflag.FlagSet) error {
	for _, k := range v.AllKeys() {
		top, _, _ := strings.Cut(k, ".")
		var f *pflag.Flag
		for _, fs := range sets {
			if f = fs.Lookup(top); f != nil {
				break
			}
		}
		if f == nil {
			return fmt.Errorf("unknown setting %q", k)
		}
		// Flags and the environment give strings; YAML may give a number.
		if _, isString := v.Get(k).(string); f.Value.Type() == "duration" && !isString {
			return fmt.Errorf("%s: %v is not a duration; write it with a unit, as %q", k, v.Get(k), f.DefValue)
		}
	}
	return nil
}

// NewLogger is a text logger on w at level ("debug", "info", "warn",
// "error").
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
