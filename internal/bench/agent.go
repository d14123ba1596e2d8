package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/runtime/wasm"
	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// Agent targets (the node agent issue's acceptance numbers).
const (
	TargetCreateP50    = 20 * time.Millisecond
	TargetCreateP99    = 100 * time.Millisecond
	TargetBurstRate    = 200.0 // pods/s
	TargetRestart      = 200 * time.Millisecond
	TargetAgentIdleRSS = 25 << 20
	TargetTinyPerPod   = 100 << 10 // beyond the guest's linear memory
	tinyLinearMemory   = 64 << 10  // examples/tiny has one page
	benchNode          = "bench-node"
	benchNamespace     = "default"
	benchAppLabel      = "wasmfleet-bench"
	helloEveryHour     = "1h" // one line per start: a start is one log line
	agentReadyTimeout  = 2 * time.Minute
	podsRunningTimeout = 5 * time.Minute
	// restartSettle is how long the restart phase leaves the agent alone
	// before it reads the pods' logs.
	restartSettle        = 2 * time.Second
	agentMemorySettle    = 3 * time.Second
	agentExampleHelloDir = "./examples/hello"
	agentExampleTiny     = "examples/tiny/tiny.wasm"
)

// AgentOptions configure `wasmfleet bench agent`. Zero values mean the
// defaults of AgentDefaults.
type AgentOptions struct {
	// Binary is the wasmfleet executable ("": this process's), started
	// as the control plane and for `module push`.
	Binary string
	// AgentBinary is the node agent's executable: the lean
	// cmd/wasmfleet-agent ("": wasmfleet-agent beside Binary, else built
	// from RepoDir with the go tool). Set it to Binary to measure
	// `wasmfleet agent` instead.
	AgentBinary string
	// RepoDir is the source tree holding examples/ ("": the working dir);
	// examples/hello is built from it with the go tool.
	RepoDir string
	// LatencyPods are created one after another, each timed from create
	// to Running as a watch reports it (hello, module cached).
	LatencyPods int
	// MemoryGoPods is after how many of them the agent's RSS is read.
	MemoryGoPods int
	// BurstPods of tiny are created at once by BurstClients clients, twice:
	// the second burst ends with 2*BurstPods tiny pods, the memory point.
	BurstPods, BurstClients int
	// BaselineRuns is the number of raw wazero starts per baseline.
	BaselineRuns int
	TempDir      string
	KeepData     bool
	Progress     io.Writer
}

// AgentDefaults are the sizes.
func AgentDefaults() AgentOptions {
	return AgentOptions{LatencyPods: 200, MemoryGoPods: 100, BurstPods: 500, BurstClients: 32, BaselineRuns: 50}
}

// AgentResult is what one run measured.
type AgentResult struct {
	Options         AgentOptions
	Machine         Machine
	Started         time.Time
	Elapsed         time.Duration
	Baseline        wasm.Baseline
	CreateToRunning []time.Duration
	// RestartFirst/RestartAll: agent process start → the restarted agent
	// attached to the first / every one of the LatencyPods hello pods,
	// which ran on in the guest host. ColdFirst/ColdAll: the same pods
	// printing again after a restart of the agent and its guest host (a
	// reboot: every guest starts anew).
	RestartFirst, RestartAll time.Duration
	ColdFirst, ColdAll       time.Duration
	RestartPods              int
	// Bursts: time from the first create to all BurstPods Running.
	Bursts []time.Duration
	// The agent's RSS (VmRSS) idle, with MemoryGoPods hello pods, idle
	// again before the tiny bursts and with all tiny pods; the *Split
	// fields divide each into anonymous memory and file pages.
	IdleRSS, GoPodsRSS, TinyIdle, Tiny               int64
	IdleSplit, GoPodsSplit, TinyIdleSplit, TinySplit RSSSplit
	// AgentBinarySize is the size of AgentBinary on disk.
	AgentBinarySize int64
}

// RSSSplit divides a process's RSS as /proc/PID/status does: Anon
// (RssAnon: heap, stacks, guests' linear memory), File (RssFile: pages of
// mapped files, the executable's above all) and Shmem (RssShmem: the
// modules' memory images, counted once per guest that maps a page); PSS
// counts each of those pages once.
type RSSSplit struct{ Anon, File, Shmem, PSS int64 }

// RunAgent starts a control plane and one node agent as child processes
// and measures the agent; see AgentResult.
func RunAgent(ctx context.Context, opts AgentOptions) (*AgentResult, error) {
	o := opts
	d := AgentDefaults()
	for _, p := range []struct {
		v *int
		d int
	}{{&o.LatencyPods, d.LatencyPods}, {&o.MemoryGoPods, d.MemoryGoPods}, {&o.BurstPods, d.BurstPods}, {&o.BurstClients, d.BurstClients}, {&o.BaselineRuns, d.BaselineRuns}} {
		if *p.v <= 0 {
			*p.v = p.d
		}
	}
	o.MemoryGoPods = min(o.MemoryGoPods, o.LatencyPods)
	ss, err := newSession(o.Binary, o.TempDir, "wasmfleet-bench-agent-", o.KeepData, o.Progress)
	if err != nil {
		return nil, err
	}
	defer ss.done()
	o.Binary = ss.binary
	res := &AgentResult{Options: o, Started: ss.started, Machine: ss.machine}
	a := &agentRun{o: o, res: res, dir: ss.dir, step: ss.step}
	if a.o.AgentBinary, err = agentBinary(ctx, o, ss.dir, ss.step); err == nil {
		res.Options.AgentBinary = a.o.AgentBinary
		var fi os.FileInfo
		if fi, err = os.Stat(a.o.AgentBinary); err == nil {
			res.AgentBinarySize = fi.Size()
		}
	}
	if err == nil {
		err = a.run(ctx)
	}
	if a.agent != nil {
		a.agent.stop()
		if kerr := a.killHost(); kerr != nil && err == nil {
			err = kerr
		}
	}
	if a.server != nil {
		a.server.stop()
	}
	if err != nil {
		if a.agent != nil {
			err = fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, a.agent.logPath, a.agent.logTail(20))
		}
		return nil, err
	}
	res.Elapsed = time.Since(res.Started)
	a.step("done")
	return res, nil
}

type agentRun struct {
	o      AgentOptions
	res    *AgentResult
	dir    string
	step   func(string, ...any)
	server *child
	agent  *proc
	cs     *kubernetes.Clientset
	starts int
}

func (a *agentRun) run(ctx context.Context) error {
	o, res := a.o, a.res
	helloWasm := filepath.Join(a.dir, "hello.wasm")
	a.step("building examples/hello (GOOS=wasip1)")
	build := exec.CommandContext(ctx, "go", "build", "-o", helloWasm, agentExampleHelloDir)
	build.Dir = o.RepoDir
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build examples/hello (run from the repository's root or pass --repo): %v\n%s", err, out)
	}
	hello, err := os.ReadFile(helloWasm)
	if err != nil {
		return err
	}

	a.step("raw wazero baseline: %d starts of hello each way", o.BaselineRuns)
	res.Baseline, err = wasm.MeasureBaseline(ctx, hello, filepath.Join(a.dir, "baseline-cache"), []string{"hello"}, map[string]string{"HELLO_COUNT": "1"}, o.BaselineRuns, o.LatencyPods)
	if err != nil {
		return err
	}

	a.step("starting %s server", o.Binary)
	if a.server, err = startChild(ctx, o.Binary, a.dir, 90*time.Second); err != nil {
		return err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", a.server.kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = -1, 0
	if a.cs, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	for name, file := range map[string]string{"hello:v1": helloWasm, "tiny:v1": filepath.Join(o.RepoDir, agentExampleTiny)} {
		push := exec.CommandContext(ctx, o.Binary, "module", "push", name, file, "--kubeconfig", a.server.kubeconfig)
		if out, err := push.CombinedOutput(); err != nil {
			return fmt.Errorf("module push %s: %v\n%s", name, err, out)
		}
	}

	if err := a.startAgent(ctx); err != nil {
		return err
	}
	if res.IdleRSS, res.IdleSplit, err = a.settledRSS(ctx); err != nil {
		return err
	}
	a.step("agent idle: %s (anon %s, file %s)", mb(res.IdleRSS), mb(res.IdleSplit.Anon), mb(res.IdleSplit.File))

	if err := a.latency(ctx); err != nil {
		return err
	}
	if err := a.restart(ctx); err != nil {
		return err
	}

	a.step("deleting the hello pods and restarting the agent for the tiny phases")
	if err := a.deleteAll(ctx); err != nil {
		return err
	}
	a.agent.stop()
	if err := a.startAgent(ctx); err != nil {
		return err
	}
	if res.TinyIdle, res.TinyIdleSplit, err = a.settledRSS(ctx); err != nil {
		return err
	}
	for i := range 2 {
		d, err := a.burst(ctx, i)
		if err != nil {
			return err
		}
		res.Bursts = append(res.Bursts, d)
		a.step("burst %d: %d tiny pods Running in %v (%.0f pods/s)", i+1, o.BurstPods, d.Round(time.Millisecond), float64(o.BurstPods)/d.Seconds())
	}
	if res.Tiny, res.TinySplit, err = a.settledRSS(ctx); err != nil {
		return err
	}
	a.step("agent with %d tiny pods: %s (anon %s, file %s)", 2*o.BurstPods, mb(res.Tiny), mb(res.TinySplit.Anon), mb(res.TinySplit.File))
	return a.deleteAll(ctx)
}

// startAgent starts the agent child and waits until its Node is Ready.
func (a *agentRun) startAgent(ctx context.Context) error { return a.startAgentAt(ctx, "warn") }

// startAgentAt is startAgent with the agent logging at level.
func (a *agentRun) startAgentAt(ctx context.Context, level string) error {
	var err error
	a.agent, err = startAgentChild(a.o.AgentBinary, a.o.AgentBinary == a.o.Binary, a.dir, a.server, a.starts, level)
	a.starts++
	if err != nil {
		return err
	}
	a.step("agent started (pid %d)", a.agent.pid())
	deadline := time.Now().Add(agentReadyTimeout)
	for {
		n, err := a.cs.CoreV1().Nodes().Get(ctx, benchNode, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(a.agent.started.Add(-time.Second)) {
					return nil
				}
			}
		}
		if a.agent.exited() {
			return fmt.Errorf("agent exited: %v", a.agent.waitErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready after %v", benchNode, agentReadyTimeout)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// settledRSS waits for the agent to settle and reads its RSS, together
// with its guest host's when one runs.
func (a *agentRun) settledRSS(ctx context.Context) (int64, RSSSplit, error) {
	if err := sleep(ctx, agentMemorySettle); err != nil {
		return 0, RSSSplit{}, err
	}
	m, err := readMem(a.agent.pid())
	if err != nil {
		return 0, RSSSplit{}, err
	}
	if pid := a.hostPID(); pid != 0 {
		h, err := readMem(pid)
		if err != nil {
			return 0, RSSSplit{}, err
		}
		m.RSS, m.RSSAnon, m.RSSFile, m.RSSShmem, m.PSS = m.RSS+h.RSS, m.RSSAnon+h.RSSAnon, m.RSSFile+h.RSSFile, m.RSSShmem+h.RSSShmem, m.PSS+h.PSS
	}
	return m.RSS, RSSSplit{Anon: m.RSSAnon, File: m.RSSFile, Shmem: m.RSSShmem, PSS: m.PSS}, nil
}

// agentBinary resolves o.AgentBinary: as given, else wasmfleet-agent
// beside o.Binary, else cmd/wasmfleet-agent built into dir.
func agentBinary(ctx context.Context, o AgentOptions, dir string, step func(string, ...any)) (string, error) {
	if o.AgentBinary != "" {
		return o.AgentBinary, nil
	}
	beside := filepath.Join(filepath.Dir(o.Binary), "wasmfleet-agent")
	if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() {
		return beside, nil
	}
	bin := filepath.Join(dir, "wasmfleet-agent")
	step("building cmd/wasmfleet-agent (no %s)", beside)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/wasmfleet-agent")
	build.Dir = o.RepoDir
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cmd/wasmfleet-agent (run from the repository's root, pass --repo or --agent-bin): %v\n%s", err, out)
	}
	return bin, nil
}

func benchWasmPod(name, image string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNamespace, Labels: map[string]string{"app": benchAppLabel}},
		Spec: corev1.PodSpec{
			NodeName:         benchNode,
			RuntimeClassName: ptr("wasm"),
			Containers:       []corev1.Container{{Name: "main", Image: image, Env: env}},
		},
	}
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}

// runningWatch reports, for each bench pod, when a watch first saw it
// Running (after it was armed).
type runningWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
	wake chan struct{}
	stop func()
	done chan struct{}
}

func (a *agentRun) watchRunning(ctx context.Context) (*runningWatch, error) {
	w, err := a.cs.CoreV1().Pods(benchNamespace).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + benchAppLabel})
	if err != nil {
		return nil, err
	}
	rw := &runningWatch{seen: map[string]time.Time{}, wake: make(chan struct{}, 1), stop: w.Stop, done: make(chan struct{})}
	go func() {
		defer close(rw.done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || !running(p) {
				continue
			}
			now := time.Now()
			rw.mu.Lock()
			if _, ok := rw.seen[p.Name]; !ok {
				rw.seen[p.Name] = now
			}
			rw.mu.Unlock()
			select {
			case rw.wake <- struct{}{}:
			default:
			}
		}
	}()
	return rw, nil
}

func (rw *runningWatch) close() { rw.stop(); <-rw.done }

// wait blocks until every name was seen Running and returns the latest.
func (rw *runningWatch) wait(ctx context.Context, names []string) (time.Time, error) {
	deadline := time.After(podsRunningTimeout)
	for {
		rw.mu.Lock()
		var last time.Time
		missing := 0
		for _, n := range names {
			t, ok := rw.seen[n]
			if !ok {
				missing++
			} else if t.After(last) {
				last = t
			}
		}
		rw.mu.Unlock()
		if missing == 0 {
			return last, nil
		}
		select {
		case <-rw.wake:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline:
			return time.Time{}, fmt.Errorf("%d of %d pods not Running after %v", missing, len(names), podsRunningTimeout)
		case <-time.After(time.Second):
		}
	}
}

// latency creates the hello pods one at a time, each timed from create to
// the watch seeing it Running.
func (a *agentRun) latency(ctx context.Context) error {
	o, res := a.o, a.res
	a.step("create → Running: %d hello pods, one at a time", o.LatencyPods)
	rw, err := a.watchRunning(ctx)
	if err != nil {
		return err
	}
	defer rw.close()
	env := corev1.EnvVar{Name: "HELLO_INTERVAL", Value: helloEveryHour}
	for i := range o.LatencyPods {
		name := fmt.Sprintf("hello-%03d", i)
		start := time.Now()
		if _, err := a.cs.CoreV1().Pods(benchNamespace).Create(ctx, benchWasmPod(name, "hello:v1", env), metav1.CreateOptions{}); err != nil {
			return err
		}
		at, err := rw.wait(ctx, []string{name})
		if err != nil {
			return err
		}
		res.CreateToRunning = append(res.CreateToRunning, at.Sub(start))
		if i+1 == o.MemoryGoPods {
			if res.GoPodsRSS, res.GoPodsSplit, err = a.settledRSS(ctx); err != nil {
				return err
			}
			a.step("agent with %d hello pods: %s", o.MemoryGoPods, mb(res.GoPodsRSS))
		}
	}
	dist := summarize(res.CreateToRunning)
	a.step("create → Running p50 %v p99 %v", dist.P50, dist.P99)
	return nil
}

// restart stops the agent (SIGTERM) and starts it again, twice. The
// agent runs its guests in the guest host, which outlives it: the first
// restart leaves the host and its guests running, and times the new agent
// attaching to each of them again (its "container attached" log lines),
// then checks through the API that none was started again. The second
// restart also kills the host, as a reboot would: every pod starts again
// from local state and the warm compilation cache, and prints one line per
// start (HELLO_INTERVAL is an hour), so each pod's first log line after the
// new process started is when it runs again.
func (a *agentRun) restart(ctx context.Context) error {
	res := a.res
	res.RestartPods = a.o.LatencyPods
	before, err := a.helloStarts(ctx)
	if err != nil {
		return err
	}
	a.step("restarting the agent with %d hello pods (the guest host keeps them)", res.RestartPods)
	a.agent.stop()
	if a.hostPID() == 0 {
		return fmt.Errorf("no wasm guest host runs the hello pods: the agent runs guests in process (guest-host: false?)")
	}
	if err := a.startAgentAt(ctx, "info"); err != nil {
		return err
	}
	if err := sleep(ctx, restartSettle); err != nil {
		return err
	}
	attached, err := attachTimes(a.agent.logPath)
	if err != nil {
		return err
	}
	if len(attached) != res.RestartPods {
		return fmt.Errorf("the restarted agent attached to %d containers, want %d (see %s)", len(attached), res.RestartPods, a.agent.logPath)
	}
	res.RestartFirst, res.RestartAll = attached[0].Sub(a.agent.started), attached[len(attached)-1].Sub(a.agent.started)
	after, err := a.helloStarts(ctx)
	if err != nil {
		return err
	}
	for name, t := range before {
		if !after[name].Equal(t) {
			return fmt.Errorf("pod %s was started again by the agent restart (started %v, now %v)", name, t, after[name])
		}
	}
	a.step("restart: all %d pods attached again %v after the new agent started, none started again", res.RestartPods, res.RestartAll.Round(time.Millisecond))

	a.step("restarting the agent and killing its guest host, as a reboot would")
	a.agent.stop()
	if err := a.killHost(); err != nil {
		return err
	}
	if err := a.startAgent(ctx); err != nil {
		return err
	}
	start := a.agent.started
	// The log lines carry the time the guest wrote them, so they are read
	// afterwards: each read is an API request that asks the agent over
	// NATS, and reads while the pods start took CPU from what is measured.
	if err := sleep(ctx, restartSettle); err != nil {
		return err
	}
	var first, all time.Duration
	deadline := time.Now().Add(podsRunningTimeout)
	for i := range res.RestartPods {
		name := fmt.Sprintf("hello-%03d", i)
		for {
			at, err := a.firstLineAfter(ctx, name, start)
			if err != nil {
				return err
			}
			if !at.IsZero() {
				d := at.Sub(start)
				if first == 0 || d < first {
					first = d
				}
				all = max(all, d)
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pod %s printed nothing within %v of the agent restart", name, podsRunningTimeout)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	res.ColdFirst, res.ColdAll = first, all
	a.step("reboot-like restart: first pod running again after %v, all %d after %v", first.Round(time.Millisecond), res.RestartPods, all.Round(time.Millisecond))
	return nil
}

// helloStarts maps each hello pod to its container's start time, and
// fails unless every one is Running.
func (a *agentRun) helloStarts(ctx context.Context) (map[string]time.Time, error) {
	l, err := a.cs.CoreV1().Pods(benchNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + benchAppLabel})
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for i := range l.Items {
		p := &l.Items[i]
		if !strings.HasPrefix(p.Name, "hello-") {
			continue
		}
		if !running(p) || p.Status.ContainerStatuses[0].RestartCount != 0 {
			return nil, fmt.Errorf("pod %s is not Running without restarts: %+v", p.Name, p.Status.ContainerStatuses)
		}
		out[p.Name] = p.Status.ContainerStatuses[0].State.Running.StartedAt.Time
	}
	if len(out) != a.res.RestartPods {
		return nil, fmt.Errorf("%d hello pods, want %d", len(out), a.res.RestartPods)
	}
	return out, nil
}

// attachTimes reads the times of the agent's "container attached" log
// lines (slog's text format, time=… first), in order.
func attachTimes(logPath string) ([]time.Time, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="container attached"`) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", logPath, line, err)
		}
		out = append(out, t)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out, nil
}

// hostPID is the pid of the agent's wasm guest host, 0 if none runs.
func (a *agentRun) hostPID() int {
	pid, err := wasmhost.PID(filepath.Join(a.dir, "agent"))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// killHost kills the guest host with SIGKILL and waits until it is gone.
func (a *agentRun) killHost() error {
	pid := a.hostPID()
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("guest host %d still there 10s after SIGKILL", pid)
		}
	}
	return nil
}

// firstLineAfter returns the timestamp of pod's first log line written
// after t (zero if none yet), through the API's pods/log.
func (a *agentRun) firstLineAfter(ctx context.Context, pod string, t time.Time) (time.Time, error) {
	since := metav1.NewTime(t.Add(-time.Second))
	rc, err := a.cs.CoreV1().Pods(benchNamespace).GetLogs(pod, &corev1.PodLogOptions{Timestamps: true, SinceTime: &since}).Stream(ctx)
	if err != nil {
		if apierrors.IsBadRequest(err) { // not started yet
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("logs of %s: %w", pod, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		ts, _, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && at.After(t) {
			return at, nil
		}
	}
	return time.Time{}, sc.Err()
}

// burst creates BurstPods tiny pods from BurstClients clients and returns
// the time from the first create until the watch saw all Running.
func (a *agentRun) burst(ctx context.Context, round int) (time.Duration, error) {
	o := a.o
	rw, err := a.watchRunning(ctx)
	if err != nil {
		return 0, err
	}
	defer rw.close()
	names := make([]string, o.BurstPods)
	for i := range names {
		names[i] = fmt.Sprintf("tiny-%d-%03d", round, i)
	}
	start := time.Now()
	if _, err := runPhase(ctx, &meter{pid: a.agent.pid()}, o.BurstClients, o.BurstPods, func(ctx context.Context, _, i int) error {
		_, err := a.cs.CoreV1().Pods(benchNamespace).Create(ctx, benchWasmPod(names[i], "tiny:v1"), metav1.CreateOptions{})
		return err
	}); err != nil {
		return 0, err
	}
	last, err := rw.wait(ctx, names)
	if err != nil {
		return 0, err
	}
	return last.Sub(start), nil
}

// deleteAll removes the bench pods (at once: the agent stops their guests)
// and waits until they are gone.
func (a *agentRun) deleteAll(ctx context.Context) error {
	pods := a.cs.CoreV1().Pods(benchNamespace)
	sel := metav1.ListOptions{LabelSelector: "app=" + benchAppLabel}
	if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}, sel); err != nil {
		return err
	}
	deadline := time.Now().Add(podsRunningTimeout)
	for {
		l, err := pods.List(ctx, sel)
		if err != nil {
			return err
		}
		if len(l.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d bench pods still there after %v", len(l.Items), podsRunningTimeout)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// startAgentChild starts the agent bin (`bin agent` when sub) for
// benchNode against server, with its state in dir/agent (kept across
// restarts) and its log in dir/agent-<n>.log.
func startAgentChild(bin string, sub bool, dir string, server *child, n int, level string) (*proc, error) {
	args := []string{"--server", server.apiURL,
		"--token-file", filepath.Join(server.dataDir, "node-token"), "--node-name", benchNode,
		"--data-dir", filepath.Join(dir, "agent"), "--max-pods", "5000", "--log-level", level}
	if sub {
		args = append([]string{"agent"}, args...)
	}
	return startProc(bin, args, filepath.Join(dir, fmt.Sprintf("agent-%d.log", n)))
}
