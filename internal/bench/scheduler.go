package bench

// This file is `wasmfleet bench scheduler`: scheduling throughput with
// simulated nodes. See RunScheduler.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/wasmfleet/wasmfleet/controlplane/scheduler"
)

// Scheduler targets (the scheduling issue's acceptance numbers).
const (
	// TargetBindRate is pods bound per second end to end at 5,000 nodes
	// (Kubernetes' scheduler_perf threshold is 680 pods/s).
	TargetBindRate = 1000.0
	// TargetDeployment is apply → every replica bound for the Deployment.
	TargetDeployment = 5 * time.Second
)

const (
	// schedulerBinders is the scheduler's default number of concurrent
	// bindings; the raw etcd update baseline runs at this concurrency.
	schedulerBinders = scheduler.DefaultBinders
	// schedulerLease is the Lease the scheduler in the server holds.
	schedulerLease = "kube-scheduler"
	// benchHolder is the identity the benchmark holds that Lease with.
	benchHolder = "wasmfleet-bench"
	// phaseLabel groups the benchmark's pods by phase.
	phaseLabel = "bench.wasmfleet.io/phase"
	// nodeLeaseSeconds is the simulated nodes' lease duration (the
	// kubelet's default, 40 s).
	nodeLeaseSeconds = 40
	// pod groups (values of phaseLabel)
	groupBacklog    = "backlog"
	groupConcurrent = "concurrent"
	groupDeployment = "deployment"
	deploymentName  = "bench-deploy"
)

// SchedOptions configure `wasmfleet bench scheduler`. Zero values mean
// the defaults of SchedDefaults.
type SchedOptions struct {
	// Binary is the wasmfleet executable ("": this process's).
	Binary string
	// Nodes is how many simulated nodes exist.
	Nodes int
	// Pods is the size of each pod phase: the pending backlog, the pods
	// created while the scheduler runs, the raw etcd baseline's writes and
	// the pods the in-process core places.
	Pods int
	// DeploymentReplicas is the Deployment's size.
	DeploymentReplicas int
	// Clients is the concurrency of the benchmark's creates (nodes,
	// leases, pods) and of the raw etcd create baseline.
	Clients int
	// LeaseRenewInterval is how often every node's Lease is renewed (the
	// kubelet renews every 10 s).
	LeaseRenewInterval time.Duration
	// PhaseTimeout bounds the wait for a phase's pods to be bound.
	PhaseTimeout time.Duration
	// ServerCPUProfile, when set, is where a CPU profile of the server
	// (from its /debug/pprof/profile) covering the backlog's first
	// ServerProfileSeconds of bindings is written.
	ServerCPUProfile     string
	ServerProfileSeconds int
	TempDir              string
	KeepData             bool
	Progress             io.Writer
}

// SchedDefaults are the sizes.
func SchedDefaults() SchedOptions {
	return SchedOptions{
		Nodes:              5000,
		Pods:               10000,
		DeploymentReplicas: 1000,
		Clients:            32,
		LeaseRenewInterval: 10 * time.Second,
		PhaseTimeout:       10 * time.Minute,
	}
}

func (o SchedOptions) withDefaults() SchedOptions {
	d := SchedDefaults()
	for _, p := range []struct{ v, d *int }{{&o.Nodes, &d.Nodes}, {&o.Pods, &d.Pods}, {&o.DeploymentReplicas, &d.DeploymentReplicas}, {&o.Clients, &d.Clients}} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	if o.LeaseRenewInterval == 0 {
		o.LeaseRenewInterval = d.LeaseRenewInterval
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = d.PhaseTimeout
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Validate reports options that cannot run.
func (o SchedOptions) Validate() error {
	var errs []error
	if o.Nodes < 0 || o.Pods < 0 || o.DeploymentReplicas < 0 || o.Clients < 0 || o.LeaseRenewInterval < 0 || o.PhaseTimeout < 0 {
		errs = append(errs, errors.New("counts and durations must not be negative"))
	}
	if o.Nodes > 100_000 || o.Pods > 1_000_000 || o.DeploymentReplicas > 100_000 || o.Clients > 1024 {
		errs = append(errs, errors.New("counts are capped (nodes 100,000, pods 1,000,000, replicas 100,000, clients 1024) to keep a run bounded"))
	}
	if o.LeaseRenewInterval > 0 && o.LeaseRenewInterval > nodeLeaseSeconds*time.Second/2 {
		errs = append(errs, fmt.Errorf("--lease-renew-interval %s leaves no margin before the node monitor grace period (40s)", o.LeaseRenewInterval))
	}
	return errors.Join(errs...)
}

// BindPhase is one set of pods from their creation to all bound. Times are
// when this process saw them (the create call returning; the watch event
// with spec.nodeName set).
type BindPhase struct {
	Pods int
	// Start is when the phase's clock started: the first create, the
	// Lease release or the Deployment create.
	Start time.Time
	// Created is when the last create returned (zero for the Deployment:
	// its pods are created by the controllers; see AllCreated).
	Created time.Time
	// AllCreated is when the watch had seen every pod.
	AllCreated time.Time
	// FirstBound and LastBound are the first and last binding seen.
	FirstBound, LastBound time.Time
	// PerSecond are the pods bound in each whole second from FirstBound.
	PerSecond []int
	// CreateToBound are the per-pod times from the create call returning
	// to the binding (concurrent phase only; 0 when the binding was seen
	// first).
	CreateToBound []time.Duration
	// CPU used by the server, this process and the rest of the machine
	// from Start to LastBound.
	ServerCPU, BenchCPU, OtherCPU time.Duration
	// Server is what the server's metrics say about the phase.
	Server []RequestStat
	Etcd   []EtcdOp
}

// BindRate is pods per second from the first to the last binding.
func (p BindPhase) BindRate() float64 { return rate(p.Pods, p.LastBound.Sub(p.FirstBound)) }

// EndToEnd is from Start to the last binding.
func (p BindPhase) EndToEnd() time.Duration { return p.LastBound.Sub(p.Start) }

// EndToEndRate is pods per second from Start to the last binding.
func (p BindPhase) EndToEndRate() float64 { return rate(p.Pods, p.EndToEnd()) }

// CreateRate is pods per second from Start to the last create returning.
func (p BindPhase) CreateRate() float64 { return rate(p.Pods, p.Created.Sub(p.Start)) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 || n == 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// RequestStat is one kind of API request the server served during a phase.
type RequestStat struct {
	Verb, Resource, Subresource string
	Count                       float64
	Mean                        time.Duration
}

// LeaseStats is what the lease renewer did during the run.
type LeaseStats struct {
	Renewals, Conflicts, Errors int64
	// MaxGap is the longest time between two renewals of one lease (or
	// from its creation to the first renewal, or to the end of the run).
	MaxGap time.Duration
	// FirstError is the first error, if any.
	FirstError string
}

// SchedResult is what one run measured.
type SchedResult struct {
	Options SchedOptions
	Machine Machine
	Started time.Time
	Elapsed time.Duration

	// NodesSetup is the time to create the nodes and their leases.
	NodesSetup time.Duration
	// TakeOver is how long the scheduler took to stop after the
	// benchmark took its Lease.
	TakeOver time.Duration
	// Backlog: Pods created while the scheduler was stopped, then bound
	// after it took its Lease again (Start = the Lease release).
	Backlog BindPhase
	// BacklogCreates is the create phase of the backlog (no scheduler).
	BacklogCreates phaseResult
	// Concurrent: Pods created while the scheduler runs.
	Concurrent BindPhase
	// Deployment: DeploymentReplicas from the Deployment's create.
	Deployment BindPhase

	// RawCreate: Pods create transactions at Clients; RawUpdate: Pods
	// get+update transactions at schedulerBinders, pod-sized values,
	// straight to the server's etcd.
	RawCreate, RawUpdate phaseResult
	PodBytes             int

	// Core: the scheduler's Core placing Pods of the stored pods on a
	// Snapshot of the same nodes, in this process.
	CoreElapsed time.Duration
	CorePods    int

	Leases LeaseStats
	// NodesReady is how many nodes were Ready and untainted at the end.
	NodesReady int

	LoadBefore      string
	OtherCPU, Steal time.Duration
}

// RunScheduler starts `wasmfleet server` (fsync on, scheduler and
// controller manager in it) as a child process, creates Nodes simulated
// nodes whose Leases it renews for the whole run, and measures:
//
//   - Backlog: the scheduler is stopped (the benchmark takes its Lease),
//     Pods pending pods are created, the Lease is released; from the
//     release to every pod bound, as a watch sees it;
//   - Concurrent: Pods more are created with Clients clients while the
//     scheduler runs; create rate, first create → last bound, create →
//     bound per pod;
//   - Deployment: DeploymentReplicas replicas, create → all bound;
//   - raw etcd: the API server's create and update transactions with
//     pod-sized values straight to the server's etcd, Pods each;
//   - Core: the scheduler's pure core placing Pods pods on the same nodes
//     in this process.
//
// The child is stopped when RunScheduler returns, and every goroutine it
// started has ended.
func RunScheduler(ctx context.Context, opts SchedOptions) (*SchedResult, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	ss, err := newSession(o.Binary, o.TempDir, "wasmfleet-bench-scheduler-", o.KeepData, o.Progress)
	if err != nil {
		return nil, err
	}
	defer ss.done()
	o.Binary = ss.binary
	dir, step := ss.dir, ss.step
	res := &SchedResult{Options: o, Started: ss.started, Machine: ss.machine, LoadBefore: loadAvg()}
	step("starting %s server (fsync on, scheduler and controller manager in it) in %s", o.Binary, dir)
	c, err := startServerChild(ctx, o.Binary, dir, 90*time.Second, true)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	s := &schedRun{o: o, c: c, res: res, step: step, m: &meter{pid: c.pid()}}
	before := s.m.sample()
	err = s.run(ctx)
	if err == nil && c.exited() {
		err = errors.New("the server exited during the run")
	}
	if err != nil {
		if c.exited() {
			err = fmt.Errorf("%w (the server exited: %v)\n--- last lines of %s ---\n%s", err, c.waitErr, c.logPath, c.logTail(20))
		}
		return nil, err
	}
	after := s.m.sample()
	res.Elapsed = time.Since(res.Started)
	res.OtherCPU, res.Steal = after.other(before)
	step("done")
	return res, nil
}

// schedRun holds the clients of one run.
type schedRun struct {
	o    SchedOptions
	c    *child
	res  *SchedResult
	m    *meter
	step func(string, ...any)

	rest  *rest.Config
	hc    *http.Client
	cs    *kubernetes.Clientset
	etcd  *clientv3.Client
	pods  *podTracker
	nodes []*corev1.Node
}

func (s *schedRun) run(ctx context.Context) error {
	o, res, step := s.o, s.res, s.step
	var err error
	if s.rest, err = clientcmd.BuildConfigFromFlags("", s.c.kubeconfig); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	s.rest.QPS, s.rest.Burst = -1, 0
	s.rest.Timeout = 30 * time.Second
	if s.hc, err = rest.HTTPClientFor(s.rest); err != nil {
		return err
	}
	defer s.hc.CloseIdleConnections()
	if s.cs, err = kubernetes.NewForConfigAndClient(s.rest, s.hc); err != nil {
		return err
	}
	s.etcd, err = clientv3.New(clientv3.Config{Endpoints: []string{s.c.etcdURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer s.etcd.Close()
	if _, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}

	// The watch of the benchmark's pods, on a connection of its own so
	// that its stream does not share HTTP/2 flow control with the creates.
	wcs, whc, err := s.ownClientset()
	if err != nil {
		return err
	}
	defer whc.CloseIdleConnections()
	s.pods = newPodTracker()
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	rw, err := s.pods.watch(wctx, wcs)
	if err != nil {
		stopWatch()
		return err
	}
	go func() { watchDone <- s.pods.consume(wctx, rw) }()
	defer func() {
		stopWatch()
		<-watchDone
	}()

	// Nodes and their leases. The renewer runs from the start: a lease is
	// renewed from one interval after its creation on, so no node goes
	// unheard from for the node monitor grace period while the rest are
	// still being created.
	lcs, lhc, err := s.ownClientset()
	if err != nil {
		return err
	}
	defer lhc.CloseIdleConnections()
	renewer := newLeaseRenewer(lcs, o.Nodes, o.LeaseRenewInterval)
	rctx, stopRenew := context.WithCancel(ctx)
	renewDone := make(chan struct{})
	go func() { renewer.run(rctx); close(renewDone) }()
	defer func() {
		stopRenew()
		<-renewDone
	}()
	step("creating %d nodes and their leases (%d clients)", o.Nodes, o.Clients)
	t := time.Now()
	if err := s.createNodes(ctx, renewer); err != nil {
		return err
	}
	res.NodesSetup = time.Since(t)
	step("%d nodes in %v", o.Nodes, res.NodesSetup.Round(time.Millisecond))

	if err := s.backlog(ctx); err != nil {
		return err
	}
	if err := s.concurrent(ctx); err != nil {
		return err
	}
	if err := s.deployment(ctx); err != nil {
		return err
	}
	if err := s.rawEtcd(ctx); err != nil {
		return err
	}
	if err := s.core(ctx); err != nil {
		return err
	}

	stopRenew()
	<-renewDone
	res.Leases = renewer.stats(time.Now())
	if res.Leases.Errors > 0 {
		step("lease renewals: %d errors, the first: %s", res.Leases.Errors, res.Leases.FirstError)
	}
	nodes, err := s.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		if nodeReadyUntainted(&nodes.Items[i]) {
			res.NodesReady++
		}
	}
	step("%d of %d nodes Ready and untainted at the end", res.NodesReady, len(nodes.Items))
	select {
	case err := <-watchDone:
		watchDone <- err // for the deferred receive
		return fmt.Errorf("pod watch ended early: %v", err)
	default:
	}
	return nil
}

// ownClientset returns a clientset with its own transport (and so its own
// connection); close the client's idle connections when done.
func (s *schedRun) ownClientset() (*kubernetes.Clientset, *http.Client, error) {
	cfg := rest.CopyConfig(s.rest)
	cfg.Timeout = 0 // watches
	// A Proxy func makes client-go's transport uncacheable.
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, nil, err
	}
	return cs, hc, nil
}

// simNode is simulated node i: Ready, 32 cpu / 64Gi / 110 pods, wasm
// runtime, ten zones, half arm64.
func simNode(i int) *corev1.Node {
	name := fmt.Sprintf("sim-%05d", i)
	arch := "amd64"
	if i%2 == 1 {
		arch = "arm64"
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, st corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: st, Reason: reason, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelHostname:                       name,
			corev1.LabelArchStable:                     arch,
			corev1.LabelOSStable:                       "linux",
			corev1.LabelTopologyZone:                   fmt.Sprintf("zone-%d", i%10),
			corev1.LabelTopologyRegion:                 "bench",
			scheduler.RuntimeClassLabelPrefix + "wasm": "true",
		}},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res,
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
			},
			NodeInfo: corev1.NodeSystemInfo{Architecture: arch, OperatingSystem: "linux", KubeletVersion: "wasmfleet-bench"},
		},
	}
}

func nodeReadyUntainted(n *corev1.Node) bool {
	if len(n.Spec.Taints) > 0 {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// createNodes creates the nodes and their Leases, handing each Lease to
// renewer.
func (s *schedRun) createNodes(ctx context.Context, renewer *leaseRenewer) error {
	o := s.o
	s.nodes = make([]*corev1.Node, o.Nodes)
	_, err := runPhase(ctx, nil, o.Clients, o.Nodes, func(ctx context.Context, _, i int) error {
		n, err := s.cs.CoreV1().Nodes().Create(ctx, simNode(i), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node: %w", err)
		}
		s.nodes[i] = n
		now := metav1.NewMicroTime(time.Now())
		l, err := s.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &n.Name, LeaseDurationSeconds: ptr[int32](nodeLeaseSeconds), RenewTime: &now},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create lease: %w", err)
		}
		renewer.set(i, l)
		return nil
	})
	return err
}

// backlog stops the scheduler by taking its Lease, creates the pending
// pods, releases the Lease and times until all are bound.
func (s *schedRun) backlog(ctx context.Context) error {
	o, res, step := s.o, s.res, s.step
	step("taking the scheduler's Lease kube-system/%s", schedulerLease)
	t := time.Now()
	if err := s.takeSchedulerLease(ctx); err != nil {
		return err
	}
	res.TakeOver = time.Since(t)
	step("scheduler stopped %v after the Lease was taken", res.TakeOver.Round(time.Millisecond))

	step("backlog: creating %d pods (%d clients, scheduler stopped)", o.Pods, o.Clients)
	var err error
	res.BacklogCreates, err = runPhase(ctx, s.m, o.Clients, o.Pods, func(ctx context.Context, _, i int) error {
		_, err := s.cs.CoreV1().Pods(Namespace).Create(ctx, schedPod(fmt.Sprintf("b-%06d", i), groupBacklog), metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("backlog creates: %w", err)
	}
	step("backlog: %.0f creates/s", res.BacklogCreates.Rate())
	if err := s.pods.waitSeen(ctx, groupBacklog, o.Pods, o.PhaseTimeout); err != nil {
		return err
	}
	if n := s.pods.boundCount(groupBacklog); n > 0 {
		return fmt.Errorf("backlog: %d pods were bound while the benchmark held the scheduler's Lease", n)
	}

	step("backlog: releasing the Lease; waiting for %d pods to be bound", o.Pods)
	mb, err := scrape(ctx, s.hc, s.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return err
	}
	cpu := s.m.sample()
	start := time.Now()
	if err := s.releaseSchedulerLease(ctx); err != nil {
		return err
	}
	profiled := make(chan error, 1)
	if o.ServerCPUProfile != "" {
		go func() { profiled <- s.profileServer(ctx, groupBacklog) }()
	} else {
		profiled <- nil
	}
	if err := s.pods.waitBound(ctx, groupBacklog, o.Pods, o.PhaseTimeout); err != nil {
		return err
	}
	if err := <-profiled; err != nil {
		return err
	}
	ma, err := scrape(ctx, s.hc, s.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return err
	}
	res.Backlog = s.pods.phase(groupBacklog, start, nil)
	res.Backlog.Created = start
	s.account(&res.Backlog, cpu, mb, ma)
	step("backlog: %d pods bound in %v after the release; %.0f pods/s first → last bound",
		o.Pods, res.Backlog.EndToEnd().Round(time.Millisecond), res.Backlog.BindRate())
	return nil
}

// profileServer waits for group's first binding, then writes a CPU profile
// of the server's next ServerProfileSeconds to ServerCPUProfile.
func (s *schedRun) profileServer(ctx context.Context, group string) error {
	if err := poll(ctx, s.o.PhaseTimeout, func() (bool, error) { return s.pods.boundCount(group) > 0, nil }); err != nil {
		return err
	}
	seconds := cmp.Or(s.o.ServerProfileSeconds, 10)
	s.step("profiling the server's CPU for %ds into %s", seconds, s.o.ServerCPUProfile)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.rest.Host, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("server profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server profile: %s", resp.Status)
	}
	f, err := os.Create(s.o.ServerCPUProfile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("server profile: %w", err)
	}
	return f.Close()
}

// account fills in a phase's CPU (from cpu to now) and server metrics.
func (s *schedRun) account(p *BindPhase, cpu cpuSample, before, after promSums) {
	now := s.m.sample()
	p.ServerCPU, p.BenchCPU = now.server-cpu.server, now.bench-cpu.bench
	p.OtherCPU, _ = now.other(cpu)
	p.Server, p.Etcd = requestStats(before, after)
}

// takeSchedulerLease makes the benchmark the holder of the scheduler's
// Lease and waits until the scheduler in the server has stopped (as many
// "scheduler stopped" log lines as "scheduler started"): it fails to renew
// and gives up after its renew deadline, as a scheduler that lost its
// Lease to another does.
func (s *schedRun) takeSchedulerLease(ctx context.Context) error {
	leases := s.cs.CoordinationV1().Leases(metav1.NamespaceSystem)
	// The scheduler must be running first (it logs schedulerStartedLog
	// once its caches synced in a term, schedulerStoppedLog at the term's
	// end).
	running := func() bool { return s.c.logCount(schedulerStartedLog) > s.c.logCount(schedulerStoppedLog) }
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		l, err := leases.Get(ctx, schedulerLease, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && running(), err
	}); err != nil {
		return fmt.Errorf("wait for the scheduler to lead: %w", err)
	}
	if err := s.updateSchedulerLease(ctx, benchHolder, 3600); err != nil {
		return err
	}
	if err := poll(ctx, 2*time.Minute, func() (bool, error) { return !running(), nil }); err != nil {
		return fmt.Errorf("wait for the scheduler to stop after losing its Lease: %w", err)
	}
	return nil
}

// releaseSchedulerLease gives the Lease up as a leader that stops does.
func (s *schedRun) releaseSchedulerLease(ctx context.Context) error {
	return s.updateSchedulerLease(ctx, "", 1)
}

func (s *schedRun) updateSchedulerLease(ctx context.Context, holder string, seconds int32) error {
	leases := s.cs.CoordinationV1().Leases(metav1.NamespaceSystem)
	for range 20 {
		l, err := leases.Get(ctx, schedulerLease, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get lease %s: %w", schedulerLease, err)
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &holder, &seconds
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		if holder != "" {
			l.Spec.LeaseTransitions = ptr(ptrValue(l.Spec.LeaseTransitions) + 1)
		}
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update lease %s: %w", schedulerLease, err)
		}
		return nil
	}
	return fmt.Errorf("update lease %s: too many conflicts", schedulerLease)
}

// What controlplane/scheduler logs when Run has synced its caches and when
// Run returns.
const (
	schedulerStartedLog = "scheduler started"
	schedulerStoppedLog = "scheduler stopped"
)

// logCount counts the occurrences of s in the process's log.
func (c *proc) logCount(s string) int {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// concurrent creates the phase's pods while the scheduler runs.
func (s *schedRun) concurrent(ctx context.Context) error {
	o, res, step := s.o, s.res, s.step
	step("concurrent: creating %d pods (%d clients) while the scheduler runs", o.Pods, o.Clients)
	mb, err := scrape(ctx, s.hc, s.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return err
	}
	created := make([]time.Time, o.Pods)
	cpu := s.m.sample()
	start := time.Now()
	_, err = runPhase(ctx, nil, o.Clients, o.Pods, func(ctx context.Context, _, i int) error {
		_, err := s.cs.CoreV1().Pods(Namespace).Create(ctx, schedPod(fmt.Sprintf("c-%06d", i), groupConcurrent), metav1.CreateOptions{})
		created[i] = time.Now()
		return err
	})
	if err != nil {
		return fmt.Errorf("concurrent creates: %w", err)
	}
	lastCreate := time.Now()
	if err := s.pods.waitBound(ctx, groupConcurrent, o.Pods, o.PhaseTimeout); err != nil {
		return err
	}
	ma, err := scrape(ctx, s.hc, s.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return err
	}
	createdAt := make(map[string]time.Time, o.Pods)
	for i, t := range created {
		createdAt[fmt.Sprintf("c-%06d", i)] = t
	}
	res.Concurrent = s.pods.phase(groupConcurrent, start, createdAt)
	res.Concurrent.Created = lastCreate
	s.account(&res.Concurrent, cpu, mb, ma)
	d := summarize(res.Concurrent.CreateToBound)
	step("concurrent: %.0f creates/s, %.0f pods/s first create → last bound, create → bound p50 %v p99 %v",
		res.Concurrent.CreateRate(), res.Concurrent.EndToEndRate(), d.P50.Round(time.Millisecond), d.P99.Round(time.Millisecond))
	return nil
}

// deployment creates a Deployment and times until its replicas are bound.
func (s *schedRun) deployment(ctx context.Context) error {
	o, res, step := s.o, s.res, s.step
	step("deployment: %d replicas", o.DeploymentReplicas)
	tmpl := schedPod("", groupDeployment)
	tmpl.Labels["app"] = deploymentName
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deploymentName, Namespace: Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(o.DeploymentReplicas)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": deploymentName}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels, Annotations: tmpl.Annotations}, Spec: tmpl.Spec},
		},
	}
	mb, err := scrape(ctx, s.hc, s.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return err
	}
	cpu := s.m.sample()
	start := time.Now()
	if _, err := s.cs.AppsV1().Deployments(Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	if err := s.pods.waitBound(ctx, groupDeployment, o.DeploymentReplicas, o.PhaseTimeout); err != nil {
		return err
	}
	ma, err := scrape(ctx, s.hc, s.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return err
	}
	res.Deployment = s.pods.phase(groupDeployment, start, nil)
	s.account(&res.Deployment, cpu, mb, ma)
	step("deployment: all %d pods created %v and bound %v after the create", o.DeploymentReplicas,
		res.Deployment.AllCreated.Sub(start).Round(time.Millisecond), res.Deployment.EndToEnd().Round(time.Millisecond))
	return nil
}

// rawEtcd measures the API server's create transaction (at Clients) and
// its update (a get, then a transaction comparing the mod revision; at the
// scheduler's binder count) straight against etcd, with the JSON of a pod
// as the API server stored it. Keys are outside /registry/, so neither the
// event publisher nor the API sees them.
func (s *schedRun) rawEtcd(ctx context.Context) error {
	o, res, step := s.o, s.res, s.step
	first := fmt.Sprintf("/registry/pods/%s/b-%06d", Namespace, 0)
	g, err := s.etcd.Get(ctx, first)
	if err != nil || len(g.Kvs) == 0 {
		return fmt.Errorf("read stored pod %s: %v", first, err)
	}
	tmpl := g.Kvs[0].Value
	res.PodBytes = len(tmpl)
	guard := "/registry/namespaces/" + Namespace
	key := func(i int) string { return fmt.Sprintf("/wasmfleet-bench/pods/%s/r-%06d", Namespace, i) }
	value := func(i int, gen string) string {
		return string(bytes.Replace(tmpl, []byte(`"name":"b-000000"`), []byte(fmt.Sprintf(`"name":"r-%06d-%s"`, i, gen)), 1))
	}
	step("raw etcd: %d create transactions, %d clients", o.Pods, o.Clients)
	res.RawCreate, err = runPhase(ctx, s.m, o.Clients, o.Pods, func(ctx context.Context, _, i int) error {
		k := key(i)
		resp, err := s.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0), clientv3.Compare(clientv3.CreateRevision(guard), ">", 0)).
			Then(clientv3.OpPut(k, value(i, "a"))).
			Else(clientv3.OpGet(guard, clientv3.WithCountOnly())).
			Commit()
		if err == nil && !resp.Succeeded {
			err = fmt.Errorf("create %s: transaction failed", k)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("raw etcd creates: %w", err)
	}
	step("raw etcd: %.0f create txn/s", res.RawCreate.Rate())
	step("raw etcd: %d get+update transactions, %d clients (the scheduler's binders)", o.Pods, schedulerBinders)
	res.RawUpdate, err = runPhase(ctx, s.m, schedulerBinders, o.Pods, func(ctx context.Context, _, i int) error {
		k := key(i)
		cur, err := s.etcd.Get(ctx, k)
		if err != nil {
			return err
		}
		if len(cur.Kvs) == 0 {
			return fmt.Errorf("update %s: not found", k)
		}
		resp, err := s.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(k), "=", cur.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(k, value(i, "b"))).
			Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).
			Commit()
		if err == nil && !resp.Succeeded {
			err = fmt.Errorf("update %s: transaction failed", k)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("raw etcd updates: %w", err)
	}
	step("raw etcd: %.0f get+update txn/s", res.RawUpdate.Rate())
	return nil
}

// core places the backlog's pods (as stored, unbound again) with the
// scheduler's pure core on a Snapshot of the same nodes (as stored), in
// this process: decide and assume each, as the scheduling loop does.
func (s *schedRun) core(ctx context.Context) error {
	res, step := s.res, s.step
	list, err := s.cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: phaseLabel + "=" + groupBacklog})
	if err != nil {
		return fmt.Errorf("list backlog pods: %w", err)
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		p.Spec.NodeName = ""
		pods = append(pods, p)
	}
	if len(pods) == 0 {
		return errors.New("core: no backlog pods")
	}
	snap := scheduler.NewSnapshot()
	for _, n := range s.nodes {
		snap.SetNode(n)
	}
	c := scheduler.NewCore(scheduler.CoreOptions{})
	step("core: placing %d pods on %d nodes in this process", len(pods), snap.NumNodes())
	start := time.Now()
	for _, p := range pods {
		node, err := c.Schedule(p, snap)
		if err != nil {
			return fmt.Errorf("core: %w", err)
		}
		p.Spec.NodeName = node
		snap.AddPod(p)
	}
	res.CoreElapsed, res.CorePods = time.Since(start), len(pods)
	step("core: %.0f pods/s", rate(res.CorePods, res.CoreElapsed))
	return nil
}

// schedPod is the phase's pod: benchPod (one container, 50m cpu / 32Mi
// requested, about 1.5 KB stored) without its node selector, labeled with
// its group.
func schedPod(name, group string) *corev1.Pod {
	p := benchPod(name)
	p.Spec.NodeSelector = nil
	p.Labels[phaseLabel] = group
	return p
}

// poll calls cond every 50 ms until it is true, fails, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", context.Cause(ctx), last)
			}
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// podTracker follows the benchmark namespace's pods with a watch and
// records, by group (phaseLabel), when each pod was first seen and first
// seen bound. Safe for concurrent use.
type podTracker struct {
	mu     sync.Mutex
	groups map[string]*podGroup
}

type podGroup struct {
	seen  map[string]time.Time
	bound map[string]time.Time
}

func newPodTracker() *podTracker { return &podTracker{groups: map[string]*podGroup{}} }

// watch lists the namespace's pods (recording them) and returns a watcher
// that resumes from the list's resourceVersion whenever its watch ends.
func (t *podTracker) watch(ctx context.Context, cs kubernetes.Interface) (*watchtools.RetryWatcher, error) {
	pods := cs.CoreV1().Pods(Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	now := time.Now()
	for i := range list.Items {
		t.observe(&list.Items[i], now)
	}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return pods.Watch(ctx, opts)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	return rw, nil
}

// consume records rw's events until ctx ends (nil) or the watch fails.
func (t *podTracker) consume(ctx context.Context, rw *watchtools.RetryWatcher) error {
	defer rw.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-rw.ResultChan():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("pod watch closed")
			}
			now := time.Now()
			switch ev.Type {
			case watch.Added, watch.Modified:
				if p, ok := ev.Object.(*corev1.Pod); ok {
					t.observe(p, now)
				}
			case watch.Error:
				return fmt.Errorf("pod watch: %v", apierrors.FromObject(ev.Object))
			}
		}
	}
}

func (t *podTracker) observe(p *corev1.Pod, now time.Time) {
	group := p.Labels[phaseLabel]
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.groups[group]
	if g == nil {
		g = &podGroup{seen: map[string]time.Time{}, bound: map[string]time.Time{}}
		t.groups[group] = g
	}
	if _, ok := g.seen[p.Name]; !ok {
		g.seen[p.Name] = now
	}
	if _, ok := g.bound[p.Name]; !ok && p.Spec.NodeName != "" {
		g.bound[p.Name] = now
	}
}

func (t *podTracker) counts(group string) (seen, bound int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g := t.groups[group]; g != nil {
		return len(g.seen), len(g.bound)
	}
	return 0, 0
}

func (t *podTracker) boundCount(group string) int {
	_, b := t.counts(group)
	return b
}

func (t *podTracker) waitSeen(ctx context.Context, group string, n int, timeout time.Duration) error {
	if err := poll(ctx, timeout, func() (bool, error) { s, _ := t.counts(group); return s >= n, nil }); err != nil {
		s, _ := t.counts(group)
		return fmt.Errorf("%s: the watch saw %d of %d pods: %w", group, s, n, err)
	}
	return nil
}

func (t *podTracker) waitBound(ctx context.Context, group string, n int, timeout time.Duration) error {
	if err := poll(ctx, timeout, func() (bool, error) { return t.boundCount(group) >= n, nil }); err != nil {
		return fmt.Errorf("%s: %d of %d pods bound: %w", group, t.boundCount(group), n, err)
	}
	return nil
}

// phase summarizes a group: start is the phase's clock start; createdAt,
// when given, the per-pod create times for CreateToBound.
func (t *podTracker) phase(group string, start time.Time, createdAt map[string]time.Time) BindPhase {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := BindPhase{Start: start}
	g := t.groups[group]
	if g == nil {
		return p
	}
	p.Pods = len(g.bound)
	for _, ts := range g.seen {
		if ts.After(p.AllCreated) {
			p.AllCreated = ts
		}
	}
	bound := make([]time.Time, 0, len(g.bound))
	for name, ts := range g.bound {
		bound = append(bound, ts)
		if c, ok := createdAt[name]; ok {
			p.CreateToBound = append(p.CreateToBound, max(0, ts.Sub(c)))
		}
	}
	sort.Slice(bound, func(i, j int) bool { return bound[i].Before(bound[j]) })
	if len(bound) > 0 {
		p.FirstBound, p.LastBound = bound[0], bound[len(bound)-1]
		p.PerSecond = perSecond(bound)
	}
	return p
}

// perSecond counts sorted times in whole seconds from the first.
func perSecond(sorted []time.Time) []int {
	if len(sorted) == 0 {
		return nil
	}
	full := int(sorted[len(sorted)-1].Sub(sorted[0]) / time.Second)
	out := make([]int, full)
	for _, ts := range sorted {
		if i := int(ts.Sub(sorted[0]) / time.Second); i < full {
			out[i]++
		}
	}
	return out
}

// requestStats turns two scrapes into the requests the server served and
// its etcd operations in between, most frequent first.
func requestStats(before, after promSums) ([]RequestStat, []EtcdOp) {
	var reqs []RequestStat
	var ops []EtcdOp
	label := func(key, name string) string {
		_, v, ok := strings.Cut(key, name+`="`)
		if !ok {
			return ""
		}
		v, _, _ = strings.Cut(v, `"`)
		return v
	}
	for key, a := range after {
		b := before[key]
		n := a.count - b.count
		if n <= 0 {
			continue
		}
		mean := time.Duration((a.sum - b.sum) / n * float64(time.Second))
		switch {
		case strings.HasPrefix(key, metricRequest+"{"):
			reqs = append(reqs, RequestStat{Verb: label(key, "verb"), Resource: label(key, "resource"), Subresource: label(key, "subresource"), Count: n, Mean: mean})
		case strings.HasPrefix(key, metricEtcd+"{"):
			ops = append(ops, EtcdOp{Op: label(key, "operation"), Mean: mean, PerCreate: n})
		}
	}
	slices.SortFunc(reqs, func(x, y RequestStat) int {
		if x.Count != y.Count {
			if x.Count > y.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Verb+x.Resource+x.Subresource, y.Verb+y.Resource+y.Subresource)
	})
	slices.SortFunc(ops, func(x, y EtcdOp) int { return strings.Compare(x.Op, y.Op) })
	return reqs, ops
}

// leaseRenewer renews every node Lease once per interval, spread evenly
// over the interval, as the nodes' kubelets would. Leases are handed to it
// with set as they are created. Safe for concurrent use.
type leaseRenewer struct {
	cs       kubernetes.Interface
	interval time.Duration
	slots    []leaseSlot

	renewals, conflicts, errs atomic.Int64
	mu                        sync.Mutex
	firstErr                  string
	maxGap                    time.Duration
}

// leaseSlot is one node's Lease.
type leaseSlot struct {
	inflight atomic.Bool // queued or being renewed
	lease    atomic.Pointer[coordinationv1.Lease]
	last     atomic.Int64 // UnixNano of the last renewal (or the creation)
}

func newLeaseRenewer(cs kubernetes.Interface, n int, interval time.Duration) *leaseRenewer {
	return &leaseRenewer{cs: cs, interval: interval, slots: make([]leaseSlot, n)}
}

// set hands lease i, just created, to the renewer.
func (r *leaseRenewer) set(i int, l *coordinationv1.Lease) {
	r.slots[i].last.Store(l.Spec.RenewTime.UnixNano())
	r.slots[i].lease.Store(l)
}

// run renews until ctx ends; all its goroutines have ended when it returns.
func (r *leaseRenewer) run(ctx context.Context) {
	n := len(r.slots)
	if n == 0 {
		return
	}
	const tick = 50 * time.Millisecond
	// Enough workers for 500 renewals/s at 60 ms each.
	const workers = 32
	work := make(chan int, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				r.renew(ctx, i)
				r.slots[i].inflight.Store(false)
			}
		})
	}
	t := time.NewTicker(tick)
	start, sent := time.Now(), int64(0)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		// Every lease once per interval: the renewals due by now.
		due := int64(time.Since(start)) * int64(n) / int64(r.interval)
		for ; sent < due; sent++ {
			sl := &r.slots[sent%int64(n)]
			if sl.lease.Load() != nil && sl.inflight.CompareAndSwap(false, true) {
				work <- int(sent % int64(n)) // never blocks: at most one entry per lease
			}
		}
	}
	t.Stop()
	close(work)
	wg.Wait()
}

func (r *leaseRenewer) renew(ctx context.Context, i int) {
	sl := &r.slots[i]
	leases := r.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		l := sl.lease.Load().DeepCopy()
		now := time.Now()
		l.Spec.RenewTime = ptr(metav1.NewMicroTime(now))
		got, err := leases.Update(ctx, l, metav1.UpdateOptions{})
		if err == nil {
			sl.lease.Store(got)
			r.renewals.Add(1)
			r.gap(now.Sub(time.Unix(0, sl.last.Swap(now.UnixNano()))))
			return
		}
		if ctx.Err() != nil {
			return
		}
		if apierrors.IsConflict(err) {
			r.conflicts.Add(1)
			if cur, gerr := leases.Get(ctx, l.Name, metav1.GetOptions{}); gerr == nil {
				sl.lease.Store(cur)
				continue
			}
		}
		r.errs.Add(1)
		r.mu.Lock()
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
		r.mu.Unlock()
		return
	}
}

func (r *leaseRenewer) gap(d time.Duration) {
	r.mu.Lock()
	r.maxGap = max(r.maxGap, d)
	r.mu.Unlock()
}

// stats returns the counts; gaps still open at end count too. Call after
// run has returned.
func (r *leaseRenewer) stats(end time.Time) LeaseStats {
	for i := range r.slots {
		if last := r.slots[i].last.Load(); last != 0 {
			r.gap(end.Sub(time.Unix(0, last)))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return LeaseStats{Renewals: r.renewals.Load(), Conflicts: r.conflicts.Load(), Errors: r.errs.Load(), MaxGap: r.maxGap, FirstError: r.firstErr}
}

// Checks evaluates the targets.
func (r *SchedResult) Checks() []Check {
	o := r.Options
	b := r.Backlog
	return []Check{
		{fmt.Sprintf("Pods bound/s, %d pending pods, %d nodes (first → last binding)", o.Pods, o.Nodes),
			fmt.Sprintf("%.0f/s (%s from the release)", b.BindRate(), msInt(b.EndToEnd())), fmt.Sprintf("≥ %.0f/s", TargetBindRate), b.BindRate() >= TargetBindRate},
		{fmt.Sprintf("Deployment of %d replicas, create → all pods bound", o.DeploymentReplicas),
			msInt(r.Deployment.EndToEnd()), "≤ " + msInt(TargetDeployment), r.Deployment.Pods == o.DeploymentReplicas && r.Deployment.EndToEnd() <= TargetDeployment},
		{"Simulated nodes Ready and untainted at the end (leases kept fresh)",
			fmt.Sprintf("%d of %d (%d renewal errors, longest gap %s)", r.NodesReady, o.Nodes, r.Leases.Errors, r.Leases.MaxGap.Round(100*time.Millisecond)),
			fmt.Sprint(o.Nodes), r.NodesReady == o.Nodes},
	}
}

// Markdown renders the report.
func (r *SchedResult) Markdown() string {
	var b strings.Builder
	o, m := r.Options, r.Machine
	writeHeader(&b, "scheduler", fmt.Sprintf("wasmfleet bench scheduler --nodes %d --pods %d --deployment-replicas %d --clients %d", o.Nodes, o.Pods, o.DeploymentReplicas, o.Clients), r.Started, r.Elapsed, m)
	fmt.Fprintf(&b, "- Pod as stored: %d bytes of JSON; nodes: 32 cpu / 64Gi / 110 pods, 10 zones, their Leases renewed every %s by the benchmark (%d renewals, %d conflicts, %d errors)\n",
		r.PodBytes, o.LeaseRenewInterval, r.Leases.Renewals, r.Leases.Conflicts, r.Leases.Errors)
	writeInterference(&b, r.LoadBefore, r.OtherCPU, r.Steal, r.Elapsed, m.Cores)

	b.WriteString("\n## Targets\n\n")
	b.WriteString(checksTable(r.Checks()))

	b.WriteString("\n## Binding throughput through the API server and etcd\n\n")
	var rows [][]string
	perSec := func(p BindPhase) string {
		if len(p.PerSecond) == 0 {
			return "n/a"
		}
		s := slices.Clone(p.PerSecond)
		slices.Sort(s)
		return fmt.Sprintf("%d / %d / %d", s[0], s[len(s)/2], s[len(s)-1])
	}
	for _, p := range []struct {
		name, start string
		p           BindPhase
	}{
		{fmt.Sprintf("backlog: %d pending pods, scheduler takes its Lease", o.Pods), "Lease released", r.Backlog},
		{fmt.Sprintf("concurrent: %d pods created by %d clients while scheduling", o.Pods, o.Clients), "first create", r.Concurrent},
		{fmt.Sprintf("Deployment of %d replicas", o.DeploymentReplicas), "Deployment create", r.Deployment},
	} {
		created := "n/a"
		if !p.p.Created.IsZero() && p.p.Created.After(p.p.Start) {
			created = fmt.Sprintf("%s (%.0f/s)", msInt(p.p.Created.Sub(p.p.Start)), p.p.CreateRate())
		} else if !p.p.AllCreated.IsZero() && p.p.AllCreated.After(p.p.Start) {
			created = msInt(p.p.AllCreated.Sub(p.p.Start)) + " (seen)"
		}
		rows = append(rows, []string{p.name, p.start, created, msInt(p.p.FirstBound.Sub(p.p.Start)), msInt(p.p.EndToEnd()),
			fmt.Sprintf("%.0f/s", p.p.BindRate()), fmt.Sprintf("%.0f/s", p.p.EndToEndRate()), perSec(p.p),
			share(p.p.ServerCPU, p.p.EndToEnd(), m.Cores), share(p.p.BenchCPU, p.p.EndToEnd(), m.Cores), share(p.p.OtherCPU, p.p.EndToEnd(), m.Cores)})
	}
	b.WriteString(table([]string{"Phase", "Clock starts at", "All created", "First bound", "Last bound", "Bound/s first → last", "Bound/s from start", "Per second min / median / max", "Server CPU", "Bench CPU", "Other CPU"}, rows))
	if d := summarize(r.Concurrent.CreateToBound); d.N > 0 {
		fmt.Fprintf(&b, "\nConcurrent phase, create call returned → binding seen, per pod: p50 %s, p99 %s, max %s (n=%d).\n", ms(d.P50), ms(d.P99), ms(d.Max), d.N)
	}
	fmt.Fprintf(&b, "\nThe backlog's creates (scheduler stopped, %d clients): %.0f pods/s; the scheduler stopped %s after the benchmark took its Lease.\n",
		o.Clients, r.BacklogCreates.Rate(), msInt(r.TakeOver))

	b.WriteString("\n## Baselines\n\n")
	rows = nil
	for _, p := range []struct {
		name string
		r    phaseResult
	}{
		{"raw etcd create txn (the API server's create)", r.RawCreate},
		{"raw etcd get + update txn (the API server's update, as a binding does)", r.RawUpdate},
		{"API pod create, backlog (scheduler stopped)", r.BacklogCreates},
	} {
		d := summarize(p.r.Latencies)
		rows = append(rows, []string{p.name, fmt.Sprint(p.r.Clients), fmt.Sprint(p.r.Ops), fmt.Sprintf("%.0f/s", p.r.Rate()), ms(d.P50), ms(d.P99),
			share(p.r.ServerCPU, p.r.Elapsed, m.Cores), share(p.r.BenchCPU, p.r.Elapsed, m.Cores), share(p.r.OtherCPU, p.r.Elapsed, m.Cores), share(p.r.Steal, p.r.Elapsed, m.Cores)})
	}
	rows = append(rows, []string{fmt.Sprintf("scheduler core in this process (%d nodes)", o.Nodes), "1", fmt.Sprint(r.CorePods),
		fmt.Sprintf("%.0f pods/s", rate(r.CorePods, r.CoreElapsed)), ms(r.CoreElapsed/time.Duration(max(1, r.CorePods))) + " mean", "", "", "", "", ""})
	b.WriteString(table([]string{"Operation", "Clients", "Ops", "Rate", "p50", "p99", "Server CPU", "Bench CPU", "Other CPU", "Steal"}, rows))
	if raw := r.RawUpdate.Rate(); raw > 0 {
		fmt.Fprintf(&b, "\nBacklog bindings/s vs raw etcd get+update/s at the binders' concurrency (%d): %.0f%%.\n", schedulerBinders, 100*r.Backlog.BindRate()/raw)
	}

	b.WriteString("\n## Where the server's time goes during the backlog's bindings\n\n")
	b.WriteString(serverWorkTable(r.Backlog))
	b.WriteString("\n## … and during the Deployment\n\n")
	b.WriteString(serverWorkTable(r.Deployment))

	b.WriteString(`
## How it is measured

- The control plane is a child process (` + "`wasmfleet server`" + `, defaults: fsync on,
  the scheduler and the controller manager running in it) on free loopback
  ports with a fresh data dir. The benchmark process (client-go, etcd client,
  the lease renewer and the pod watch) shares the machine's CPUs with it.
- Nodes are Node objects (Ready, 32 cpu / 64Gi / 110 pods, wasm runtime
  label, 10 zones) with a Lease in kube-node-lease each that the benchmark
  renews for the whole run, spread evenly over the renew interval, so the
  node lifecycle controller leaves them alone. There is no runtime: pods stay
  Pending once bound.
- Pods: one container requesting 50m cpu / 32Mi, no node selector, runtime
  class wasm. Times are when the benchmark saw them: a create call returning,
  or the pod watch (its own connection) delivering the pod with spec.nodeName.
- Backlog: the benchmark takes the scheduler's Lease (kube-system/kube-scheduler)
  and waits for the scheduler's "scheduler stopped" log line, creates the
  pods, then releases the Lease. The scheduler campaigns every 2 s, takes the
  Lease, lists pods and nodes and binds the backlog: "first → last" is its
  binding throughput; "from start" includes the campaign wait and cache sync.
  This is a scheduler fail-over with a backlog, and keeps the create rate out
  of the binding rate.
- Concurrent: the pods are created while the scheduler runs (as
  scheduler_perf does); creation can be the bottleneck there, so the create
  rate and the create → bound latency are shown.
- Each binding is a Binding POST (a get and an update transaction in the
  API server) plus a Scheduled Event the scheduler creates.
- Raw etcd, same run, straight to the server's etcd: the API server's create
  transaction at the creates' concurrency, and its update (get, then a
  transaction comparing the mod revision) at the scheduler's binder count,
  with a stored pod's JSON, keys outside /registry/.
- Core: controlplane/scheduler's Core on a Snapshot of the same nodes (as
  stored), deciding and assuming the backlog's pods (as stored) one by one in
  this process.
- Server work: from the server's /metrics (apiserver_request_duration_seconds,
  etcd_request_duration_seconds) before and after the phase; means exclude TLS
  and HTTP/2 framing.
`)
	return b.String()
}

func serverWorkTable(p BindPhase) string {
	var rows [][]string
	for _, r := range p.Server {
		if r.Count < 1 {
			continue
		}
		res := r.Resource
		if r.Subresource != "" {
			res += "/" + r.Subresource
		}
		rows = append(rows, []string{r.Verb + " " + res, fmt.Sprintf("%.0f", r.Count), ms(r.Mean)})
	}
	for _, e := range p.Etcd {
		rows = append(rows, []string{"etcd " + e.Op, fmt.Sprintf("%.0f", e.PerCreate), ms(e.Mean)})
	}
	if len(rows) == 0 {
		return "No metrics.\n"
	}
	return table([]string{"Request", "Count", "Mean"}, rows)
}
