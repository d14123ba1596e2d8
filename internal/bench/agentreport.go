package bench

import (
	"fmt"
	"strings"
	"time"
)

// Checks evaluates the agent targets.
func (r *AgentResult) Checks() []Check {
	lat := summarize(r.CreateToRunning)
	var worstBurst time.Duration
	for _, d := range r.Bursts {
		worstBurst = max(worstBurst, d)
	}
	burstRate := 0.0
	if worstBurst > 0 {
		burstRate = float64(r.Options.BurstPods) / worstBurst.Seconds()
	}
	tiny := r.tinyPerPod() - tinyLinearMemory
	return []Check{
		{"create → Running p50", ms(lat.P50), "≤ " + msInt(TargetCreateP50), lat.N > 0 && lat.P50 <= TargetCreateP50},
		{"create → Running p99", ms(lat.P99), "≤ " + msInt(TargetCreateP99), lat.N > 0 && lat.P99 <= TargetCreateP99},
		{fmt.Sprintf("burst of %d pods (slower of two)", r.Options.BurstPods), fmt.Sprintf("%.0f pods/s", burstRate), fmt.Sprintf("≥ %.0f pods/s", TargetBurstRate), burstRate >= TargetBurstRate},
		{"agent restart → first pod running under the new agent (guest kept running)", msInt(r.RestartFirst), "≤ " + msInt(TargetRestart), r.RestartFirst > 0 && r.RestartFirst <= TargetRestart},
		{fmt.Sprintf("agent restart → all %d pods running under the new agent (none started again)", r.RestartPods), msInt(r.RestartAll), "≤ " + msInt(TargetRestart), r.RestartAll > 0 && r.RestartAll <= TargetRestart},
		{"agent RSS idle", mb(r.IdleRSS), "≤ " + mb(TargetAgentIdleRSS), r.IdleRSS > 0 && r.IdleRSS <= TargetAgentIdleRSS},
		{"RSS per tiny pod beyond its 64 KiB linear memory", kib(tiny), "≤ " + kib(TargetTinyPerPod), r.Tiny > 0 && tiny <= TargetTinyPerPod},
	}
}

func (r *AgentResult) tinyPerPod() int64 {
	n := int64(2 * r.Options.BurstPods)
	if n == 0 {
		return 0
	}
	return (r.Tiny - r.TinyIdle) / n
}

func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }

// Markdown renders the report.
func (r *AgentResult) Markdown() string {
	var b strings.Builder
	o, m := r.Options, r.Machine
	writeHeader(&b, "node agent", fmt.Sprintf("wasmfleet bench agent --latency-pods %d --burst-pods %d", o.LatencyPods, o.BurstPods), r.Started, r.Elapsed, m)
	agent := "`wasmfleet-agent` (the lean agent binary)"
	if o.AgentBinary == o.Binary {
		agent = "`wasmfleet agent`"
	}
	fmt.Fprintf(&b, "- Setup: `wasmfleet server` and one %s as child processes on this machine; pods are created through the API with spec.nodeName set, so the scheduler is not involved.\n", agent)
	fmt.Fprintf(&b, "- Agent binary: %s, %s on disk.\n", o.AgentBinary, mb(r.AgentBinarySize))
	b.WriteString("\n## Targets\n\n")
	b.WriteString(checksTable(r.Checks()))

	b.WriteString("\n## Starts, against raw wazero in the same run\n\n")
	lat, inst, warm := summarize(r.CreateToRunning), summarize(r.Baseline.Instantiate), summarize(r.Baseline.WarmCache)
	b.WriteString(table([]string{"What", "N", "p50", "p99", "max"}, [][]string{
		{"raw wazero: instantiate + run hello (compiled in the runtime)", fmt.Sprint(inst.N), ms(inst.P50), ms(inst.P99), ms(inst.Max)},
		{"raw wazero: new runtime + warm cache + instantiate + run hello", fmt.Sprint(warm.N), ms(warm.P50), ms(warm.P99), ms(warm.Max)},
		{"wasmfleet: pod create → Running seen by a watch (hello, cached)", fmt.Sprint(lat.N), ms(lat.P50), ms(lat.P99), ms(lat.Max)},
	}))
	if inst.P50 > 0 {
		fmt.Fprintf(&b, "\ncreate → Running p50 is %.1f× raw wazero's instantiate + run p50 (the API create, the etcd write, the NATS event to the agent, the status update and the watch event are the rest).\n", float64(lat.P50)/float64(inst.P50))
	}
	fmt.Fprintf(&b, "\nAgent restart (SIGTERM, start again) with %d hello pods: the guests run in the guest host, which outlives the agent, as containers outlive a kubelet restart; they never stopped. The new agent attached to the first after %s and to all after %s (from the new process's start to its \"container attached\" log lines), and the API shows every pod with its first start time and no restart.\n",
		r.RestartPods, msInt(r.RestartFirst), msInt(r.RestartAll))
	fmt.Fprintf(&b, "\nAgent and guest host restart (both killed, as a reboot would; local state, warm compilation cache): every guest starts anew. First pod printing again after %s, all after %s (from the new agent's start to each pod's first log line).",
		msInt(r.ColdFirst), msInt(r.ColdAll))
	if at := r.Baseline.AllAtOnce; at > 0 {
		fmt.Fprintf(&b, " Raw wazero, in the benchmark's process, takes %s for a new runtime to load hello from the warm cache and run %d instances of it, %d at a time (GOMAXPROCS): the reboot-like restart took %.1f× that.",
			msInt(at), r.RestartPods, r.Baseline.Workers, float64(r.ColdAll)/float64(at))
	}
	b.WriteString("\n")
	b.WriteString("\n## Bursts of tiny pods\n\n")
	var rows [][]string
	for i, d := range r.Bursts {
		rows = append(rows, []string{fmt.Sprint(i + 1), fmt.Sprint(o.BurstPods), fmt.Sprint(o.BurstClients), msInt(d), fmt.Sprintf("%.0f pods/s", float64(o.BurstPods)/d.Seconds())})
	}
	b.WriteString(table([]string{"Burst", "Pods", "Clients", "All Running after", "Rate"}, rows))

	b.WriteString("\n## Agent memory (RSS of the agent and its guest host together)\n\n")
	row := func(state string, rss int64, s RSSSplit) []string {
		return []string{state, mb(rss), mb(s.Anon), mb(s.File), mb(s.Shmem), mb(s.PSS)}
	}
	b.WriteString(table([]string{"State", "RSS", "RssAnon", "RssFile", "RssShmem", "PSS"}, [][]string{
		row("idle, just joined (no guest host yet)", r.IdleRSS, r.IdleSplit),
		row(fmt.Sprintf("%d hello pods (Go, wasip1)", o.MemoryGoPods), r.GoPodsRSS, r.GoPodsSplit),
		row("idle again (restarted, before the tiny bursts)", r.TinyIdle, r.TinyIdleSplit),
		row(fmt.Sprintf("%d tiny pods", 2*o.BurstPods), r.Tiny, r.TinySplit),
	}))
	b.WriteString("\nRssAnon is heap, stacks and the guests' linear memory; RssFile the pages of mapped files, mostly the agent's executable; RssShmem the modules' memory images (their data, shared by the guests until written), counted once per guest that maps a page. PSS counts such a page once.\n")
	fmt.Fprintf(&b, "\nPer tiny pod: %s of RSS, %s beyond its 64 KiB page of linear memory (which is not all resident).\n", kib(r.tinyPerPod()), kib(r.tinyPerPod()-tinyLinearMemory))
	return b.String()
}
