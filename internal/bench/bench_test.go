package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestSmoke runs the whole benchmark with tiny counts against the real
// binary, so that `wasmfleet bench controlplane` keeps working. It asserts
// what was measured, never how fast.
func TestSmoke(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := Run(ctx, Options{
		Binary:         bin,
		Pods:           200,
		Creates:        50,
		Clients:        8,
		EventSamples:   30,
		EventPace:      time.Millisecond,
		ListRuns:       2,
		ClientListRuns: 1,
		IdleSettle:     500 * time.Millisecond,
		LoadedSettle:   500 * time.Millisecond,
		TempDir:        t.TempDir(),
		Progress:       &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if res.PodsStored != 200 {
		t.Errorf("PodsStored = %d, want 200", res.PodsStored)
	}
	api := map[string]phaseResult{"api1": res.API1, "api1plain": res.API1Plain, "api32": res.API32Shared, "api32sep": res.API32Separate, "api32plain": res.API32Plain, "api32plainh1": res.API32PlainH1, "api32plainh2": res.API32PlainH2}
	created := 0
	for name, p := range api {
		created += p.Ops
		if !p.Server.Valid {
			t.Errorf("%s: no server times from /metrics", name)
		}
	}
	api["raw1"], api["raw32"] = res.Raw1, res.Raw32
	for name, p := range api {
		if p.Ops == 0 || p.Rate() <= 0 || len(p.Latencies) != p.Ops {
			t.Errorf("%s: %d ops at %.0f/s with %d latencies", name, p.Ops, p.Rate(), len(p.Latencies))
		}
	}
	if created != 200 {
		t.Errorf("API phases created %d pods, want 200", created)
	}
	if res.IdleMem.RSS <= 0 || res.LoadedMem.RSS <= 0 {
		t.Errorf("RSS idle %d, loaded %d", res.IdleMem.RSS, res.LoadedMem.RSS)
	}
	// Each item is a stored pod without its kind and apiVersion (and with
	// its resourceVersion).
	item := res.PodBytes - len(`"kind":"Pod","apiVersion":"v1",`)
	if len(res.ListHTTP) != 2 || len(res.ListClient) != 1 || res.ListBytes < 200*item {
		t.Errorf("LIST: %d runs, %d client runs, %d bytes", len(res.ListHTTP), len(res.ListClient), res.ListBytes)
	}
	for name, l := range map[string]LatencyResult{"etcd": res.EtcdToNATS, "api": res.APIToNATS, "nats": res.NATSBaseline} {
		if l.Core.N+l.Lost != 30 || l.Core.N == 0 || l.Ordered.N != l.Core.N {
			t.Errorf("%s latency: %d core, %d ordered samples, %d lost", name, l.Core.N, l.Ordered.N, l.Lost)
		}
	}
	md := res.Markdown()
	if len(res.API32Plain.RoundRates) != res.Options.Rounds || len(res.Raw32.RoundRates) != res.Options.Rounds {
		t.Errorf("%d and %d round rates, want %d", len(res.API32Plain.RoundRates), len(res.Raw32.RoundRates), res.Options.Rounds)
	}
	for _, want := range []string{"## Targets", "## Create throughput", "## Event latency", "## Server memory", "## LIST", "Server RSS, 200 pods", "API/raw by round", "- 8 clients, one HTTP/2 connection: "} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "| PASS |") + strings.Count(md, "| FAIL |"); n != len(res.Checks()) {
		t.Errorf("report shows %d verdicts, want %d:\n%s", n, len(res.Checks()), md)
	}
}

// buildBinary builds cmd/wasmfleet for the smoke tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and starts a control plane")
	}
	return testenv.Wasmfleet(t)
}

// TestAgentSmoke runs `wasmfleet bench agent` with tiny counts against the
// real binary. It asserts what was measured, never how fast.
func TestAgentSmoke(t *testing.T) {
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := RunAgent(ctx, AgentOptions{
		Binary: bin, RepoDir: filepath.Join("..", ".."),
		LatencyPods: 4, MemoryGoPods: 2, BurstPods: 6, BurstClients: 3, BaselineRuns: 2,
		TempDir: t.TempDir(), Progress: &progress,
	})
	if err != nil {
		t.Fatalf("RunAgent: %v\nprogress:\n%s", err, progress.String())
	}
	if len(res.CreateToRunning) != 4 || len(res.Baseline.Instantiate) != 2 || len(res.Baseline.WarmCache) != 2 || res.Baseline.AllAtOnce <= 0 || len(res.Bursts) != 2 {
		t.Errorf("samples: %d latencies, %d+%d baseline (all at once: %v), %d bursts", len(res.CreateToRunning), len(res.Baseline.Instantiate), len(res.Baseline.WarmCache), res.Baseline.AllAtOnce, len(res.Bursts))
	}
	if res.RestartPods != 4 || res.RestartFirst <= 0 || res.RestartAll < res.RestartFirst || res.ColdFirst <= 0 || res.ColdAll < res.ColdFirst {
		t.Errorf("restart: %d pods, first %v, all %v; with the guest host: first %v, all %v", res.RestartPods, res.RestartFirst, res.RestartAll, res.ColdFirst, res.ColdAll)
	}
	if res.IdleRSS <= 0 || res.GoPodsRSS <= 0 || res.TinyIdle <= 0 || res.Tiny <= 0 || res.GoPodsSplit.PSS <= 0 {
		t.Errorf("RSS: %d %d %d %d, PSS %d", res.IdleRSS, res.GoPodsRSS, res.TinyIdle, res.Tiny, res.GoPodsSplit.PSS)
	}
	md := res.Markdown()
	if n := strings.Count(md, "| PASS |") + strings.Count(md, "| FAIL |"); n != len(res.Checks()) {
		t.Errorf("report shows %d verdicts, want %d:\n%s", n, len(res.Checks()), md)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, time.Duration(i))
	}
	// Shuffled input: summarize sorts a copy.
	ds[0], ds[999] = ds[999], ds[0]
	d := summarize(ds)
	if d.P50 != 500 || d.P99 != 990 || d.Min != 1 || d.Max != 1000 || d.N != 1000 {
		t.Errorf("summarize = %+v", d)
	}
	if ds[0] != 1000 {
		t.Error("summarize modified its input")
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("median of 1..4 = %v, want 2 (integer mean of 2 and 3)", got)
	}
	if got := summarize(nil); got.N != 0 {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestTable(t *testing.T) {
	got := table([]string{"a", "b"}, [][]string{{"≤ 1", "xyzw"}})
	want := "| a   | b    |\n| --- | ---- |\n| ≤ 1 | xyzw |\n"
	if got != want {
		t.Errorf("table =\n%s\nwant\n%s", got, want)
	}
}

func TestProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	m, err := readMem(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("readMem = %+v, %v", m, err)
	}
	if _, err := readCPU("self"); err != nil {
		t.Error(err)
	}
	if busy, steal, err := machineCPU(); err != nil || busy <= 0 || steal < 0 {
		t.Errorf("machineCPU = %v, %v, %v", busy, steal, err)
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{{Pods: 10, Creates: 9}, {Pods: -1}, {EventSamples: 1 << 30}} {
		if o.Validate() == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := Defaults().Validate(); err != nil {
		t.Error(err)
	}
}
