package bench

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Targets of the control plane (the acceptance numbers).
const (
	TargetAPIRatio   = 0.60
	TargetEventP99   = 10 * time.Millisecond
	TargetIdleRSS    = 150 << 20
	TargetLoadedRSS  = 300 << 20
	TargetListMedian = 250 * time.Millisecond
)

// Check is one target and how the run did against it.
type Check struct {
	Name   string
	Result string
	Target string
	Pass   bool
}

// Checks evaluates the targets.
func (r *Result) Checks() []Check {
	ratio := func(api, raw phaseResult) (float64, string) {
		if raw.Rate() == 0 {
			return 0, "n/a"
		}
		q := api.Rate() / raw.Rate()
		return q, fmt.Sprintf("%.0f%% (%.0f/s vs %.0f/s)", 100*q, api.Rate(), raw.Rate())
	}
	q1, s1 := ratio(r.API1, r.Raw1)
	q32, s32 := ratio(r.API32Shared, r.Raw32)
	p1, ps1 := ratio(r.API1Plain, r.Raw1)
	p32, ps32 := ratio(r.API32Plain, r.Raw32)
	h32, hs32 := ratio(r.API32PlainH1, r.Raw32)
	e32, es32 := ratio(r.API32PlainH2, r.Raw32)
	lat := func(l LatencyResult, d Dist) string {
		s := fmt.Sprintf("%s (p50 %s, n=%d)", ms(d.P99), ms(d.P50), d.N)
		if l.Lost > 0 {
			s += fmt.Sprintf(", %d lost", l.Lost)
		}
		return s
	}
	latOK := func(l LatencyResult, d Dist) bool { return d.N > 0 && l.Lost == 0 && d.P99 <= TargetEventP99 }
	listMed := median(r.ListHTTP)
	return []Check{
		{"API pod creates / raw etcd create txns, 1 client (plain HTTPS)", ps1, fmt.Sprintf("≥ %.0f%%", 100*TargetAPIRatio), p1 >= TargetAPIRatio},
		{fmt.Sprintf("API pod creates / raw etcd create txns, %d clients (plain HTTPS, one HTTP/2 connection)", r.Options.Clients), ps32, fmt.Sprintf("≥ %.0f%%", 100*TargetAPIRatio), p32 >= TargetAPIRatio},
		{fmt.Sprintf("API pod creates / raw etcd create txns, %d clients (plain HTTPS, a connection each, HTTP/2)", r.Options.Clients), es32, fmt.Sprintf("≥ %.0f%%", 100*TargetAPIRatio), e32 >= TargetAPIRatio},
		{fmt.Sprintf("API pod creates / raw etcd create txns, %d clients (plain HTTPS, a connection each, HTTP/1.1)", r.Options.Clients), hs32, fmt.Sprintf("≥ %.0f%%", 100*TargetAPIRatio), h32 >= TargetAPIRatio},
		{"API pod creates / raw etcd create txns, 1 client (client-go)", s1, fmt.Sprintf("≥ %.0f%%", 100*TargetAPIRatio), q1 >= TargetAPIRatio},
		{fmt.Sprintf("API pod creates / raw etcd create txns, %d clients (client-go, one clientset)", r.Options.Clients), s32, fmt.Sprintf("≥ %.0f%%", 100*TargetAPIRatio), q32 >= TargetAPIRatio},
		{"Event latency p99, etcd commit → core NATS subscription", lat(r.EtcdToNATS, r.EtcdToNATS.Core), "≤ " + ms(TargetEventP99), latOK(r.EtcdToNATS, r.EtcdToNATS.Core)},
		{"Event latency p99, etcd commit → JetStream ordered consumer", lat(r.EtcdToNATS, r.EtcdToNATS.Ordered), "≤ " + ms(TargetEventP99), latOK(r.EtcdToNATS, r.EtcdToNATS.Ordered)},
		{"Server RSS, idle", mb(r.IdleMem.RSS), "≤ " + mb(TargetIdleRSS), r.IdleMem.RSS <= TargetIdleRSS},
		{fmt.Sprintf("Server RSS, %d pods", r.PodsStored), mb(r.LoadedMem.RSS), "≤ " + mb(TargetLoadedRSS), r.LoadedMem.RSS <= TargetLoadedRSS},
		{fmt.Sprintf("LIST %d pods, unpaginated JSON, median of %d", r.PodsStored, len(r.ListHTTP)), fmt.Sprintf("%s (max %s)", msInt(listMed), msInt(maxOf(r.ListHTTP))), "≤ " + msInt(TargetListMedian), len(r.ListHTTP) > 0 && listMed <= TargetListMedian},
	}
}

// roundRatios lists API/raw of each round of the create phases: how much
// a ratio moves within one run (each round is a short share of a phase).
func (r *Result) roundRatios() string {
	var b strings.Builder
	b.WriteString("\nAPI/raw by round, in the order run:\n\n")
	for _, p := range []struct {
		name     string
		api, raw phaseResult
	}{
		{"1 client, plain HTTPS", r.API1Plain, r.Raw1},
		{"1 client, client-go", r.API1, r.Raw1},
		{fmt.Sprintf("%d clients, one HTTP/2 connection", r.Options.Clients), r.API32Plain, r.Raw32},
		{fmt.Sprintf("%d clients, a connection each, HTTP/2", r.Options.Clients), r.API32PlainH2, r.Raw32},
		{fmt.Sprintf("%d clients, a connection each, HTTP/1.1", r.Options.Clients), r.API32PlainH1, r.Raw32},
		{fmt.Sprintf("%d clients, client-go", r.Options.Clients), r.API32Shared, r.Raw32},
	} {
		var qs []string
		for i := range min(len(p.api.RoundRates), len(p.raw.RoundRates)) {
			if raw := p.raw.RoundRates[i]; raw > 0 {
				qs = append(qs, fmt.Sprintf("%.0f%%", 100*p.api.RoundRates[i]/raw))
			}
		}
		fmt.Fprintf(&b, "- %s: %s\n", p.name, strings.Join(qs, ", "))
	}
	return b.String()
}

// Markdown renders the report.
func (r *Result) Markdown() string {
	var b strings.Builder
	o, m := r.Options, r.Machine
	writeHeader(&b, "control plane", fmt.Sprintf("wasmfleet bench controlplane --pods %d --creates %d --rounds %d", o.Pods, o.Creates, o.Rounds), r.Started, r.Elapsed, m)
	fmt.Fprintf(&b, "- Pod as stored: %d bytes of JSON\n", r.PodBytes)
	writeInterference(&b, r.LoadBefore, r.OtherCPU, r.Steal, r.Elapsed, m.Cores)

	b.WriteString("\n## Targets\n\n")
	b.WriteString(checksTable(r.Checks()))
	b.WriteString(r.roundRatios())

	b.WriteString("\n## Create throughput\n\n")
	var rows [][]string
	for _, p := range []struct {
		name string
		r    phaseResult
	}{
		{"raw etcd create txn (gRPC)", r.Raw1},
		{"raw etcd create txn (gRPC)", r.Raw32},
		{"API pod create (client-go)", r.API1},
		{"API pod create (plain HTTPS)", r.API1Plain},
		{"API pod create, one shared clientset", r.API32Shared},
		{"API pod create, a clientset per client", r.API32Separate},
		{"API pod create, plain HTTPS (one HTTP/2 connection)", r.API32Plain},
		{"API pod create, plain HTTPS, a connection each (HTTP/2)", r.API32PlainH2},
		{"API pod create, plain HTTPS, a connection each (HTTP/1.1)", r.API32PlainH1},
	} {
		d := summarize(p.r.Latencies)
		rows = append(rows, []string{p.name, fmt.Sprint(p.r.Clients), fmt.Sprint(p.r.Ops), fmt.Sprintf("%.0f/s", p.r.Rate()),
			ms(d.P50), ms(d.P99), perOp(p.r.ServerCPU, p.r.Ops), perOp(p.r.BenchCPU, p.r.Ops),
			share(p.r.ServerCPU, p.r.Elapsed, m.Cores), share(p.r.BenchCPU, p.r.Elapsed, m.Cores), share(p.r.OtherCPU, p.r.Elapsed, m.Cores), share(p.r.Steal, p.r.Elapsed, m.Cores)})
	}
	b.WriteString(table([]string{"Phase", "Clients", "Ops", "Rate", "p50", "p99", "Server CPU/op", "Bench CPU/op", "Server CPU", "Bench CPU", "Other CPU", "Steal"}, rows))
	b.WriteString("\nCPU columns: CPU time per operation, then the share of the machine's CPUs (all cores = 100%) used by the server, this benchmark process and everything else during the phase, and the share the hypervisor took (steal: the VM's CPUs ran someone else).\n")
	b.WriteString("\nWhere a create's time goes, from the server's own metrics (means; the handler time excludes TLS and HTTP/2 framing):\n\n")
	rows = nil
	for _, p := range []struct {
		name string
		r    phaseResult
	}{
		{"API, 1 client", r.API1},
		{"API, 1 plain HTTPS client", r.API1Plain},
		{fmt.Sprintf("API, %d clients, one clientset", o.Clients), r.API32Shared},
		{fmt.Sprintf("API, %d clients, a clientset each", o.Clients), r.API32Separate},
		{fmt.Sprintf("API, %d plain HTTPS clients (one HTTP/2 connection)", o.Clients), r.API32Plain},
		{fmt.Sprintf("API, %d plain HTTPS clients, a connection each (HTTP/2)", o.Clients), r.API32PlainH2},
		{fmt.Sprintf("API, %d plain HTTPS clients, a connection each (HTTP/1.1)", o.Clients), r.API32PlainH1},
	} {
		st := p.r.Server
		if !st.Valid {
			continue
		}
		var ops []string
		for _, e := range st.Etcd {
			ops = append(ops, fmt.Sprintf("%s %s × %.2f", e.Op, ms(e.Mean), e.PerCreate))
		}
		rows = append(rows, []string{p.name, ms(summarize(p.r.Latencies).Mean), ms(st.Handler), strings.Join(ops, ", ")})
	}
	b.WriteString(table([]string{"Phase", "Client sees", "API handler", "etcd operations (mean × per create)"}, rows))
	if raw := r.Raw32.Rate(); raw > 0 {
		fmt.Fprintf(&b, "\nWith a clientset per client, API/raw at %d clients is %.0f%%.\n", o.Clients, 100*r.API32Separate.Rate()/raw)
	}

	b.WriteString("\n## Event latency\n\n")
	rows = nil
	for _, l := range []struct {
		name string
		r    LatencyResult
	}{
		{"etcd Put → event", r.EtcdToNATS},
		{"API create → event", r.APIToNATS},
		{"JetStream publish → message (baseline)", r.NATSBaseline},
	} {
		for _, d := range []struct {
			recv      string
			ret, call Dist
		}{{"core subscription", l.r.Core, l.r.CoreFromCall}, {"ordered consumer", l.r.Ordered, l.r.OrderedFromCall}} {
			rows = append(rows, []string{l.name, d.recv, fmt.Sprint(d.ret.N), fmt.Sprint(l.r.Lost), fmt.Sprint(l.r.Early),
				ms(d.ret.P50), ms(d.ret.P99), ms(d.ret.Max), ms(d.call.P50), ms(d.call.P99)})
		}
	}
	b.WriteString(table([]string{"Path", "Receiver", "Samples", "Lost", "Early", "p50", "p99", "max", "p50 from call", "p99 from call"}, rows))
	b.WriteString("\np50/p99/max count from the write call returning (an event that arrives earlier counts as 0; Early says how many did); \"from call\" counts from the call starting, an upper bound that includes the write's round trip. For the baseline the call returns once JetStream acknowledged the message.\n")

	b.WriteString("\n## Server memory\n\n")
	rows = [][]string{
		{"idle, after " + o.IdleSettle.String(), mb(r.IdleMem.RSS), mb(r.IdleMem.RSSAnon), mb(r.IdleMem.RSSFile), mb(r.IdleMem.HWM)},
		{fmt.Sprintf("%d pods, %s after the last create", r.PodsStored, o.LoadedSettle), mb(r.LoadedMem.RSS), mb(r.LoadedMem.RSSAnon), mb(r.LoadedMem.RSSFile), mb(r.LoadedMem.HWM)},
	}
	b.WriteString(table([]string{"When", "VmRSS", "RssAnon", "RssFile", "VmHWM (peak)"}, rows))

	b.WriteString("\n## LIST\n\n")
	rows = [][]string{
		{"GET …/pods over HTTPS, whole JSON body read", fmt.Sprint(len(r.ListHTTP)), msInt(median(r.ListHTTP)), msInt(minOf(r.ListHTTP)), msInt(maxOf(r.ListHTTP)), fmt.Sprintf("%.1f MB", float64(r.ListBytes)/(1<<20))},
		{"client-go List (decoded)", fmt.Sprint(len(r.ListClient)), msInt(median(r.ListClient)), msInt(minOf(r.ListClient)), msInt(maxOf(r.ListClient)), ""},
	}
	b.WriteString(table([]string{"Client", "Runs", "Median", "Min", "Max", "Body"}, rows))

	b.WriteString(`
## How it is measured

- The control plane is a child process (` + "`wasmfleet server`" + `, defaults: fsync on) on
  free loopback ports with a fresh data dir. The benchmark process (client-go,
  etcd and NATS clients) runs on the same machine and shares its CPUs: on a
  small machine the concurrent phases are bounded by the CPU of both.
- Order: idle memory; creates until the pod count is reached: the
  single-client phases (API with client-go, API with plain HTTPS, raw etcd),
  then the concurrent ones (API with one clientset, a clientset each,
  plain HTTPS over HTTP/2 and over HTTP/1.1, raw etcd), each group in ` + "`--rounds`" + ` rounds that run a share of
  every phase of the group in turn, so that a slow or fast spell of a
  shared machine weighs on raw etcd and the API alike; each phase's figures
  sum its rounds. Then loaded memory; LIST; latencies.
- Raw etcd: the API server's create transaction (If key absent and namespace
  present, Then Put, Else Get count) over gRPC to the embedded etcd's client
  port, with the JSON of a pod the API server stored. Keys are outside
  /registry/, so the event publisher does not see them. It runs between the
  API phases, on the same growing etcd.
- API: client-go typed pod creates (QPS unlimited; client-go sends protobuf
  and the server answers writes in protobuf too); one clientset shares one HTTP/2 connection, a
  clientset per client has its own. Plain HTTPS: the same pod's JSON,
  encoded once with the name spliced in (as the raw etcd client sends a
  pre-encoded value), POSTed over the shared clientset's HTTP/2 connection,
  the JSON answer read but not decoded; and the same from clients with a
  kept-alive connection each that speaks HTTP/1.1, as devices or scripts
  would. The time breakdown comes from the server's /metrics before and
  after each phase.
- Event latency: one write at a time, paced; from the write call returning
  (an etcd Put of a valid ConfigMap under /registry/configmaps/, or a client-go
  ConfigMap create) to the event arriving on a core NATS subscription and on a
  JetStream ordered consumer of WASMFLEET_EVENTS. The baseline publishes to a
  file-storage stream of its own.
- Memory: VmRSS of the server process from /proc/<pid>/status.
- LIST: GET /api/v1/namespaces/bench/pods with Accept: application/json, timed
  until the whole body is read; client-go List for information.
`)
	return b.String()
}

// writeHeader writes a report's title and where and when it ran.
func writeHeader(b *strings.Builder, what, command string, started time.Time, elapsed time.Duration, m Machine) {
	fmt.Fprintf(b, "# wasmfleet %s benchmark\n\n", what)
	fmt.Fprintf(b, "- Command: `%s`\n", command)
	fmt.Fprintf(b, "- Date: %s (run took %s)\n", started.Format("2006-01-02 15:04 MST"), elapsed.Round(time.Second))
	fmt.Fprintf(b, "- CPU: %s, %d cores; memory %s\n", m.CPU, m.Cores, gb(m.MemTotal))
	fmt.Fprintf(b, "- OS: %s, kernel %s; %s\n", m.OS, m.Kernel, m.GoVersion)
	fmt.Fprintf(b, "- Server data dir on: %s, fsync on\n", m.DataDirFS)
	if m.Revision != "" {
		fmt.Fprintf(b, "- wasmfleet revision: %s\n", m.Revision)
	}
}

// writeInterference writes what else ran on the machine during a run.
func writeInterference(b *strings.Builder, load string, other, steal, elapsed time.Duration, cores int) {
	fmt.Fprintf(b, "- Interference: load average %s before the run; other processes used %s of the machine's CPU during it, and the hypervisor took %s (steal)\n",
		load, share(other, elapsed, cores), share(steal, elapsed, cores))
}

// checksTable renders checks as a Markdown table with a tally.
func checksTable(checks []Check) string {
	var rows [][]string
	pass := 0
	for _, c := range checks {
		v := "FAIL"
		if c.Pass {
			v, pass = "PASS", pass+1
		}
		rows = append(rows, []string{c.Name, c.Result, c.Target, v})
	}
	return table([]string{"Measure", "Result", "Target", ""}, rows) + fmt.Sprintf("\n%d of %d targets met.\n", pass, len(checks))
}

// table renders a Markdown table with padded columns.
func table(header []string, rows [][]string) string {
	w := make([]int, len(header))
	for i, h := range header {
		w[i] = max(3, utf8.RuneCountInString(h))
	}
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", w[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", w[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func msInt(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func gb(b int64) string { return fmt.Sprintf("%.1f GB", float64(b)/(1<<30)) }

func perOp(cpu time.Duration, ops int) string {
	if ops == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f µs", float64(cpu)/float64(ops)/float64(time.Microsecond))
}

// share is cpu as a percentage of the capacity of cores over elapsed.
func share(cpu, elapsed time.Duration, cores int) string {
	if elapsed <= 0 || cores <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(cpu)/float64(elapsed)/float64(cores))
}

func minOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return summarize(ds).Min
}

func maxOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return summarize(ds).Max
}
