package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wasmfleet/wasmfleet/internal/bench"
)

func benchCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Benchmarks (see BENCHMARKS.md)"}
	d := bench.Defaults()
	cp := &cobra.Command{
		Use:   "controlplane",
		Short: "Start a control plane as a child process and measure create throughput, event latency, memory and LIST",
		Long: `Starts ` + "`wasmfleet server`" + ` (fsync on, free loopback ports, a temporary data dir)
and measures, in one run: raw etcd create transactions vs pod creates through
the API (1 and 32 clients), etcd commit → NATS event latency with a raw
JetStream baseline, the server's RSS idle and with --pods pods, and the time
of an unpaginated LIST of them. Prints a Markdown report to stdout (and to
--out); progress goes to stderr.`,
		Args: cobra.NoArgs,
	}
	fs := cp.Flags()
	pods := fs.Int("pods", d.Pods, "pods that exist for the memory and LIST measurements")
	creates := fs.Int("creates", 0, "creates of each single-client phase, raw etcd and API (default min(2000, pods/5)); the concurrent API phases create the rest of --pods")
	clients := fs.Int("clients", d.Clients, "concurrency of the concurrent phases")
	rounds := fs.Int("rounds", d.Rounds, "rounds the create phases run in, each a share of every phase (raw etcd and API alternate)")
	samples := fs.Int("event-samples", d.EventSamples, "samples per event-latency measurement")
	listRuns := fs.Int("list-runs", d.ListRuns, "unpaginated LISTs over HTTPS")
	tmp := fs.String("tmp-dir", "", "where the server's temporary data dir is made (default: the system temp dir)")
	keep := fs.Bool("keep-data", false, "keep the server's data dir and log")
	cp.RunE = reportRun(ctx, fs, stdout, func(ctx context.Context) (string, error) {
		o := d
		o.Pods, o.Creates, o.Clients, o.Rounds, o.EventSamples, o.ListRuns = *pods, *creates, *clients, *rounds, *samples, *listRuns
		o.TempDir, o.KeepData, o.Progress = *tmp, *keep, stderr
		res, err := bench.Run(ctx, o)
		if err != nil {
			return "", fmt.Errorf("bench controlplane: %w", err)
		}
		return res.Markdown(), nil
	})
	cmd.AddCommand(cp, benchAgentCmd(ctx, stdout, stderr), benchSchedulerCmd(ctx, stdout, stderr))
	return cmd
}

func benchAgentCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	d := bench.AgentDefaults()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Start a control plane and a node agent as child processes and measure pod starts, bursts, restart and memory",
		Long: `Starts ` + "`wasmfleet server`" + ` and one node agent, the lean ` + "`wasmfleet-agent`" + ` binary
(--agent-bin; free loopback ports, a temporary dir) and measures, in one run: raw wazero starts of examples/hello (compiled,
and from a warm compilation cache in a new runtime); pod create → Running as a
watch sees it, one pod at a time (hello, module cached); the agent's RSS idle
and with --memory-go-pods hello pods; an agent restart until every hello pod
prints again; two bursts of --burst-pods examples/tiny pods; the agent's RSS
with all tiny pods. Run it from the repository's root (examples/hello is
built with the go tool). Prints a Markdown report to stdout (and to --out).`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	o := d
	fs.IntVar(&o.LatencyPods, "latency-pods", d.LatencyPods, "hello pods created one at a time (create → Running samples)")
	fs.IntVar(&o.MemoryGoPods, "memory-go-pods", d.MemoryGoPods, "read the agent's RSS after this many hello pods")
	fs.IntVar(&o.BurstPods, "burst-pods", d.BurstPods, "tiny pods per burst (two bursts)")
	fs.IntVar(&o.BurstClients, "burst-clients", d.BurstClients, "concurrent creators in a burst")
	fs.IntVar(&o.BaselineRuns, "baseline-runs", d.BaselineRuns, "raw wazero starts per baseline")
	fs.StringVar(&o.RepoDir, "repo", "", "the source tree holding examples/ (default: the working directory)")
	fs.StringVar(&o.AgentBinary, "agent-bin", "", "the node agent's executable (default: wasmfleet-agent beside this binary, else built from --repo); this binary's path runs `wasmfleet agent`")
	fs.StringVar(&o.TempDir, "tmp-dir", "", "where the run's temporary dir is made")
	fs.BoolVar(&o.KeepData, "keep-data", false, "keep the run's dir and logs")
	cmd.RunE = reportRun(ctx, fs, stdout, func(ctx context.Context) (string, error) {
		o.Progress = stderr
		res, err := bench.RunAgent(ctx, o)
		if err != nil {
			return "", fmt.Errorf("bench agent: %w", err)
		}
		return res.Markdown(), nil
	})
	return cmd
}

func benchSchedulerCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	d := bench.SchedDefaults()
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "Start a control plane as a child process and measure scheduling throughput with simulated nodes",
		Long: `Starts ` + "`wasmfleet server`" + ` (fsync on, scheduler and controller manager in it, free
loopback ports, a temporary data dir), creates --nodes simulated nodes whose
Leases it keeps renewing, and measures in one run: --pods pending pods bound
after the scheduler takes its Lease (pods/s, first → last binding), --pods
pods created while the scheduler runs (create rate, first create → last
bound, create → bound latency), a Deployment of --deployment-replicas
replicas from create to all pods bound, raw etcd create and update
transactions at the same concurrency, and the scheduler's pure core on the
same nodes in this process. Prints a Markdown report to stdout (and to
--out); progress goes to stderr.`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	o := d
	fs.IntVar(&o.Nodes, "nodes", d.Nodes, "simulated nodes")
	fs.IntVar(&o.Pods, "pods", d.Pods, "pods of each phase (pending backlog, created while scheduling, raw etcd writes, core)")
	fs.IntVar(&o.DeploymentReplicas, "deployment-replicas", d.DeploymentReplicas, "replicas of the Deployment")
	fs.IntVar(&o.Clients, "clients", d.Clients, "concurrency of the creates and of the raw etcd create baseline")
	fs.DurationVar(&o.LeaseRenewInterval, "lease-renew-interval", d.LeaseRenewInterval, "how often each node's Lease is renewed (the kubelet's 10s)")
	fs.StringVar(&o.TempDir, "tmp-dir", "", "where the server's temporary data dir is made (default: the system temp dir)")
	fs.BoolVar(&o.KeepData, "keep-data", false, "keep the server's data dir and log")
	fs.StringVar(&o.ServerCPUProfile, "server-cpuprofile", "", "write a CPU profile of the server during the backlog's bindings to this file")
	fs.IntVar(&o.ServerProfileSeconds, "server-profile-seconds", 10, "length of the --server-cpuprofile profile")
	cmd.RunE = reportRun(ctx, fs, stdout, func(ctx context.Context) (string, error) {
		o.Progress = stderr
		res, err := bench.RunScheduler(ctx, o)
		if err != nil {
			return "", fmt.Errorf("bench scheduler: %w", err)
		}
		return res.Markdown(), nil
	})
	return cmd
}

// reportRun adds --out, --timeout and --cpuprofile to fs and returns a
// RunE that runs bench under them and prints its Markdown report to stdout
// (and to --out).
func reportRun(ctx context.Context, fs *pflag.FlagSet, stdout io.Writer, bench func(context.Context) (string, error)) func(*cobra.Command, []string) error {
	out := fs.String("out", "", "also write the report (Markdown) to this file")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: no limit besides the bounded counts)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the benchmark process (the clients, not the server) to this file")
	return func(*cobra.Command, []string) error {
		ctx := ctx
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		report, err := bench(ctx)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, report)
		if *out != "" {
			return os.WriteFile(*out, []byte(report), 0o644)
		}
		return nil
	}
}
