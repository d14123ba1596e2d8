package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/sync/errgroup"

	"github.com/wasmfleet/wasmfleet/controlplane/components"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
	"github.com/wasmfleet/wasmfleet/internal/gctune"
)

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "wasmfleet",
		Short:         "Kubernetes-style orchestrator for WebAssembly workloads on edge fleets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serverCmd(ctx, stderr, "server", "Run the control plane (embedded etcd and NATS unless told otherwise)"))
	root.AddCommand(serverCmd(ctx, stderr, "apiserver", "Run the API server and event publisher against external etcd and NATS"))
	root.AddCommand(componentCmd(ctx, stderr, "scheduler", "Run the scheduler against an API server (leader-elected on kube-system/kube-scheduler)", components.RunScheduler))
	root.AddCommand(componentCmd(ctx, stderr, "controller-manager", "Run the controllers against an API server (leader-elected on kube-system/kube-controller-manager)", components.RunControllerManager))
	root.AddCommand(agentCmd(ctx, stderr))
	root.AddCommand(upCmd(ctx, stdout, stderr))
	root.AddCommand(benchCmd(ctx, stdout, stderr))
	root.AddCommand(moduleCmd(stdout, stderr))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "wasmfleet:", err)
		return 1
	}
	return 0
}

func serverCmd(ctx context.Context, stderr io.Writer, name, short string) *cobra.Command {
	cmd := &cobra.Command{Use: name, Short: short, Args: cobra.NoArgs}
	fs := cmd.Flags()
	addServerFlags(fs, "info")
	fs.Bool("with-agent", false, "also run a node agent for this machine (state in DATA_DIR/agent)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, cfg, log, err := loadServerConfig(fs, stderr)
		if err != nil {
			return err
		}
		// with-agent is this command's own setting, decoded as strictly.
		var own struct {
			WithAgent bool `mapstructure:"with-agent"`
		}
		if err := agentcmd.Unmarshal(v, &own); err != nil {
			return err
		}
		if name == "apiserver" && (len(cfg.EtcdEndpoints) == 0 || cfg.NATSURL == "") {
			return fmt.Errorf("apiserver needs --etcd-endpoints and --nats-url (use `wasmfleet server` for the embedded ones)")
		}
		if own.WithAgent && cfg.NATSURL != "" {
			// Nodes join through the embedded NATS only.
			return fmt.Errorf("with-agent needs the embedded NATS: nodes cannot join a control plane with --nats-url")
		}
		serverRuntime(cfg)
		s, err := server.New(cfg, log)
		if err != nil {
			return err
		}
		if !own.WithAgent {
			return s.Run(ctx)
		}
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return s.Run(ctx) })
		_, err = startLocalAgent(ctx, g, s, cfg.DataDir, log)
		return errors.Join(err, g.Wait())
	}
	return cmd
}

// addServerFlags declares the control plane's settings (`wasmfleet
// server`, `apiserver` and `up`): the keys of configs/server.yaml.
func addServerFlags(fs *pflag.FlagSet, logLevel string) {
	d := server.Defaults()
	fs.String("config", "", "YAML config file (see configs/server.yaml)")
	fs.String("data-dir", d.DataDir, "directory for etcd, JetStream, TLS material, kubeconfig.yaml, node-token and nats-url")
	fs.String("api-listen", d.APIListen, "HTTPS address of the Kubernetes API")
	fs.String("nats-listen", d.NATSListen, "address of the embedded NATS server")
	fs.String("etcd-client-listen", d.EtcdClientListen, "client address of the embedded etcd")
	fs.String("etcd-peer-listen", d.EtcdPeerListen, "peer address of the embedded etcd")
	fs.StringSlice("etcd-endpoints", nil, "external etcd endpoints (instead of the embedded etcd)")
	fs.String("etcd-cafile", "", "CA of the external etcd's serving certificate (default: the system's roots)")
	fs.String("etcd-certfile", "", "client certificate for the external etcd")
	fs.String("etcd-keyfile", "", "client key for the external etcd")
	fs.String("nats-url", "", "external NATS URL with credentials (instead of the embedded NATS)")
	fs.String("nats-cafile", "", "CA of the external NATS's certificate (default: the system's roots)")
	fs.String("nats-certfile", "", "client certificate for the external NATS")
	fs.String("nats-keyfile", "", "client key for the external NATS")
	fs.String("nats-advertise-url", "", "NATS URL joining nodes are told to dial (default: the embedded NATS address; listening on every address, the host each node reached the API at)")
	fs.StringSlice("tls-san", nil, "extra DNS names and IPs for the serving certificate")
	fs.Duration("events-max-age", d.EventsMaxAge, "how long JetStream keeps published events")
	fs.Duration("compact-interval", d.CompactInterval, "how often old etcd history is compacted")
	fs.Duration("event-ttl", d.EventTTL, "how long events (core/v1 and events.k8s.io/v1) live before etcd deletes them")
	fs.Int64("module-max-size", d.ModuleMaxSize, "largest wasm module `wasmfleet module push` may store, in bytes")
	fs.Bool("disable-scheduler", false, "do not run the scheduler in this process")
	fs.Bool("disable-controller-manager", false, "do not run the controller manager in this process")
	addSchedulerFlags(fs, d)
	addLeaderElectFlags(fs, d)
	addControllerManagerFlags(fs, d)
	fs.Int64("default-toleration-seconds", d.DefaultTolerationSeconds, "how long pods without their own tolerations stay on an unreachable or not-ready node")
	fs.String("service-cluster-ip-range", d.ServiceClusterIPRange, "CIDR Services' cluster IPs are allocated from (at most 20 host bits)")
	fs.String("service-node-port-range", d.ServiceNodePortRange, "ports Services' node ports are allocated from (FIRST-LAST)")
	fs.Bool("profiling", d.Profiling, "serve Go's pprof profiles under /debug/pprof/ to admins")
	fs.Bool("etcd-unsafe-no-fsync", false, "turn off fsync in the embedded etcd (tests only)")
	fs.String("log-level", logLevel, "debug, info, warn or error")
}

// loadServerConfig reads the settings of addServerFlags from the flags,
// the environment and the config file (which may also set what the flags
// of more name), with the control plane's components configured, and the
// logger they ask for.
func loadServerConfig(fs *pflag.FlagSet, stderr io.Writer, more ...*pflag.FlagSet) (*viper.Viper, server.Config, *slog.Logger, error) {
	cfg := server.Defaults()
	v, err := agentcmd.LoadConfig(fs, more...)
	if err != nil {
		return nil, cfg, nil, err
	}
	if err := agentcmd.Unmarshal(v, &cfg); err != nil {
		return nil, cfg, nil, err
	}
	log, err := agentcmd.NewLogger(stderr, v.GetString("log-level"))
	if err != nil {
		return nil, cfg, nil, err
	}
	cfg.Components = components.For(cfg)
	return v, cfg, log, nil
}

// addSchedulerFlags declares the scheduler's own settings (`wasmfleet
// server` and `wasmfleet scheduler`).
func addSchedulerFlags(fs *pflag.FlagSet, d server.Config) {
	fs.Bool("scheduler-image-arch-lookup", d.SchedulerImageArchLookup, "read container images' manifests from their registries to place runc pods on nodes of a matching architecture")
}

// serverRuntime tunes the Go runtime for the control plane, each setting
// unless its environment variable is set.
//
// GOGC follows the live heap (gctune): the heap may grow by 128 MiB over
// its live data between collections, as a GOGC between 200 and 400. The
// API server allocates per request and the in-process informers per watch
// event; at Go's default GOGC (100) collection took about a tenth of the
// server's CPU under load. A fixed GOGC=200 gave the heap twice its live
// data (20–50 MB while pods were created) as headroom, and collection took
// 27–33 µs of CPU per create; 128 MiB took it to 15–17 µs, with the
// server's RSS 242–252 MB with 10,000 pods (BENCHMARKS.md). A heap of
// 64 MiB or more live keeps GOGC=200.
//
// GOMAXPROCS goes two above the runtime's default (serverProcs).
func serverRuntime(cfg server.Config) {
	if os.Getenv("GOGC") == "" {
		gctune.Start(128<<20, 200, 400)
	}
	if n := serverProcs(cfg, os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}

// serverProcs is the GOMAXPROCS the control plane sets, or 0 to keep procs
// (the runtime's default, or the GOMAXPROCS environment variable env).
// With the embedded etcd syncing its WAL, it is procs+2: each fdatasync
// (about once per batch of writes, 0.2 ms on a virtio disk) blocks etcd's
// raft goroutine and its OS thread in the kernel, and Go's runtime lets
// that thread keep its P until sysmon takes it back (golang/go#29734), so
// on 2 cores half the Go code waits while etcd syncs. Two spare Ps keep the
// cores busy then: 32 clients creating pods got 11% more through (5,340–
// 5,640/s → 5,900–6,290/s; raw etcd transactions the same) in BENCHMARKS.md's
// A/B runs, and without fsync no gain at all. Setting GOMAXPROCS turns off
// the runtime's own updates when the cgroup's CPU limit changes.
func serverProcs(cfg server.Config, env string, procs int) int {
	if env != "" || len(cfg.EtcdEndpoints) > 0 || cfg.EtcdUnsafeNoFsync {
		return 0
	}
	return procs + 2
}
