package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

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
	samples := fs.Int("event-samples", d.EventSamples, "samples per event-latency measurement")
	listRuns := fs.Int("list-runs", d.ListRuns, "unpaginated LISTs over HTTPS")
	out := fs.String("out", "", "also write the report (Markdown) to this file")
	tmp := fs.String("tmp-dir", "", "where the server's temporary data dir is made (default: the system temp dir)")
	keep := fs.Bool("keep-data", false, "keep the server's data dir and log")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: no limit besides the bounded counts)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the benchmark process (the clients, not the server) to this file")
	cp.RunE = func(cmd *cobra.Command, _ []string) error {
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
		o := d
		o.Pods, o.Creates, o.Clients, o.EventSamples, o.ListRuns = *pods, *creates, *clients, *samples, *listRuns
		o.TempDir, o.KeepData, o.Progress = *tmp, *keep, stderr
		res, err := bench.Run(ctx, o)
		if err != nil {
			return fmt.Errorf("bench controlplane: %w", err)
		}
		report := res.Markdown()
		fmt.Fprint(stdout, report)
		if *out != "" {
			if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	cmd.AddCommand(cp)
	return cmd
}
