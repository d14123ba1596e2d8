package nodeagent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wasmfleet/wasmfleet/controlplane/components"
	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
)

// restartableConfig is a control plane configuration that can be stopped
// and started again on the same data dir and ports (NATS included: the
// node's credentials name its URL).
func restartableConfig(t *testing.T) server.Config {
	cfg := testcluster.Config(t, t.TempDir())
	cfg.NATSListen = testenv.FreeAddr(t)
	return cfg
}

// wholeControlPlaneConfig is restartableConfig with the scheduler and the
// controller manager, on short leases and grace periods (the garbage
// collector sees mirror pods' Node owner, the node lifecycle controller
// the nodes that go away).
func wholeControlPlaneConfig(t *testing.T) server.Config {
	cfg := restartableConfig(t)
	cfg.NodeMonitorGracePeriod = 3 * time.Second
	cfg.LeaderElectLeaseDuration, cfg.LeaderElectRenewDeadline, cfg.LeaderElectRetryPeriod = 3*time.Second, 2*time.Second, 250*time.Millisecond
	cfg.Components = components.For(cfg)
	return cfg
}

// runAgent runs a real agent with cfg until the returned stop (or the
// test's end), which waits for it to be gone.
func runAgent(t *testing.T, cfg Config, opts ...Option) (*Agent, func()) {
	t.Helper()
	a, err := NewAgent(cfg, slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return a, stop
}

// testLog writes the agent's log to the test's (shown when it fails or
// with -v).
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// containerLog reads the log of one run of a container from the agent's
// files (logPath).
func containerLog(podsDir string, uid types.UID, container string, attempt int32) string {
	var b strings.Builder
	podlogs.Read(context.Background(), logPath(filepath.Join(podsDir, string(uid)), container, attempt), podlogs.ReadOptions{Tail: -1}, &b)
	return b.String()
}

var helloLine = regexp.MustCompile(`(?m)^hello from wasmfleet #(\d+) `)

// oneWriter checks that one instance wrote log: its counter goes 1, 2, 3…
// without a repeat or a gap, and returns the last number.
func oneWriter(t *testing.T, log string) int {
	t.Helper()
	n := 0
	for _, m := range helloLine.FindAllStringSubmatch(log, -1) {
		i, _ := strconv.Atoi(m[1])
		if i != n+1 {
			t.Fatalf("line #%d after #%d: not one instance writing\n%s", i, n, log)
		}
		n = i
	}
	return n
}

func pushModule(t *testing.T, cp *testcluster.Cluster, ref, file string) {
	t.Helper()
	url, err := os.ReadFile(filepath.Join(cp.DataDir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(url)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := modules.Bind(t.Context(), js, modules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := store.Put(t.Context(), ref, f); err != nil {
		t.Fatal(err)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestEdgeAutonomy: a pod runs (its module from the cluster's module
// store); the control plane stops; the agent restarts while it is away and
// runs the pod again from its disk alone (spec, module, state); the control
// plane comes back on the same ports and data: the pod's status converges
// to the truth (Running, one restart, the lost run's termination), with one
// instance running, and the node is Ready again.
func TestEdgeAutonomy(t *testing.T) {
	image := strings.TrimPrefix(helloModule(t), "file://")
	scfg := wholeControlPlaneConfig(t)
	cp := testcluster.StartWith(t, scfg)
	pushModule(t, cp, "hello:v1", image)
	admin := cp.Client(t)
	ctx := context.Background()

	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), "edge-1", t.TempDir()
	cfg.LeaseRenewInterval, cfg.LeaseDuration = 300*time.Millisecond, 5*time.Second
	podsDir := filepath.Join(cfg.DataDir, "pods")
	agent, stopAgent := runAgent(t, cfg)

	pod, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "hello", Image: "hello:v1",
			Env: []corev1.EnvVar{{Name: "HELLO_INTERVAL", Value: "100ms"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod Running", 60*time.Second, func() bool {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	eventually(t, "first run's output", 30*time.Second, func() bool { return oneWriter(t, containerLog(podsDir, pod.UID, "hello", 0)) >= 3 })

	// The link goes, then the device reboots: the agent starts with no
	// control plane to ask.
	cp.Stop()
	stopAgent()
	if n := agent.RunningContainers(); n != 0 {
		t.Fatalf("%d containers still running after the agent stopped", n)
	}
	firstRun := oneWriter(t, containerLog(podsDir, pod.UID, "hello", 0))
	restarted := time.Now()
	agent, _ = runAgent(t, cfg)
	eventually(t, "the pod runs again without a control plane (its second run writes)", 60*time.Second, func() bool {
		return oneWriter(t, containerLog(podsDir, pod.UID, "hello", 1)) >= 1
	})
	t.Logf("agent restarted without a control plane: the pod's first line after %v (50ms polls)", time.Since(restarted).Round(time.Millisecond))
	eventually(t, "the second run goes on", 60*time.Second, func() bool {
		return oneWriter(t, containerLog(podsDir, pod.UID, "hello", 1)) >= 3
	})
	if n := agent.RunningContainers(); n != 1 {
		t.Fatalf("%d containers running, want 1", n)
	}
	if got := oneWriter(t, containerLog(podsDir, pod.UID, "hello", 0)); got != firstRun {
		t.Errorf("the first run's log grew after the agent stopped: #%d, then #%d", firstRun, got)
	}

	// The link returns: same data, same ports.
	cp = testcluster.StartWith(t, scfg)
	admin = cp.Client(t)
	back := time.Now()
	var p *corev1.Pod
	eventually(t, "the pod's status tells the truth", 60*time.Second, func() bool {
		p, err = admin.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
			return false
		}
		cs := p.Status.ContainerStatuses[0]
		last := cs.LastTerminationState.Terminated
		return cs.Ready && cs.State.Running != nil && cs.RestartCount == 1 && last != nil && last.Reason == ReasonContainerStatusUnknown && last.ExitCode == 137
	})
	t.Logf("control plane back: the pod's status true after %v (50ms polls)", time.Since(back).Round(time.Millisecond))
	if p.UID != pod.UID {
		t.Fatalf("the pod was replaced: uid %s, was %s", p.UID, pod.UID)
	}
	eventually(t, "node Ready with a fresh lease", 60*time.Second, func() bool {
		n, err := admin.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
		if err != nil || !nodeReady(n) {
			return false
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable {
				return false
			}
		}
		l, err := admin.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "edge-1", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && time.Since(l.Spec.RenewTime.Time) < 5*time.Second
	})
	// No duplicate: the same pod, one instance, its log counting on.
	pods, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=edge-1"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods on the node: %v %v", pods, err)
	}
	if n := agent.RunningContainers(); n != 1 {
		t.Fatalf("%d containers running, want 1", n)
	}
	before := oneWriter(t, containerLog(podsDir, pod.UID, "hello", 1))
	eventually(t, "the second run keeps writing", 30*time.Second, func() bool {
		return oneWriter(t, containerLog(podsDir, pod.UID, "hello", 1)) > before+2
	})
	if _, err := os.Stat(logPath(filepath.Join(podsDir, string(pod.UID)), "hello", 2)); !os.IsNotExist(err) {
		t.Errorf("a third run: %v", err)
	}
	// Still the one pod, Running, after the agent saw it again.
	if p, err := admin.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{}); err != nil || p.Status.ContainerStatuses[0].RestartCount != 1 {
		t.Errorf("pod after convergence: %v %v", p, err)
	}
}

// helloManifest is a static pod running the hello module from file and
// printing greeting, which reaches its args as $(GREETING), expanded by the
// agent as by the kubelet.
func helloManifest(file, greeting string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  containers:
    - name: hello
      image: file://` + file + `
      args: ["$(GREETING)"]
      env:
        - {name: GREETING, value: ` + strconv.Quote(greeting) + `}
        - {name: HELLO_INTERVAL, value: 100ms}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
`
}

// TestStaticPods: a manifest dropped into DATA_DIR/manifests runs with the
// control plane down (the node has joined before); when it comes up the
// mirror pod appears and reports Running; kubectl delete of the mirror pod
// brings it back without stopping the static pod; editing the manifest
// replaces pod and mirror; removing it stops the pod and removes the
// mirror.
func TestStaticPods(t *testing.T) {
	file := strings.TrimPrefix(helloModule(t), "file://")
	scfg := wholeControlPlaneConfig(t)
	cp := testcluster.StartWith(t, scfg)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), "edge-1", t.TempDir()
	cfg.LeaseRenewInterval, cfg.LeaseDuration = 300*time.Millisecond, 5*time.Second
	cfg.AllowFileModules, cfg.FileCheckFrequency = true, 100*time.Millisecond
	token, err := os.ReadFile(cp.NodeToken())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(context.Background(), cp.URL, string(token), cfg.NodeName, cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	cp.Stop()

	podsDir := filepath.Join(cfg.DataDir, "pods")
	manifestPath := filepath.Join(cfg.ManifestsDir(), "hello.yaml")
	if err := os.MkdirAll(cfg.ManifestsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := helloManifest(file, "static hello")
	if err := os.WriteFile(manifestPath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	static, err := StaticPod([]byte(manifest), manifestPath, cfg.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	agent, _ := runAgent(t, cfg)
	staticLog := func(uid types.UID) string {
		return strings.ReplaceAll(containerLog(podsDir, uid, "hello", 0), "static hello", "hello from wasmfleet")
	}
	eventually(t, "the static pod runs with no control plane", 60*time.Second, func() bool { return oneWriter(t, staticLog(static.UID)) >= 1 })
	t.Logf("static pod without a control plane: first line after %v (50ms polls)", time.Since(begin).Round(time.Millisecond))
	eventually(t, "the static pod goes on", 60*time.Second, func() bool { return oneWriter(t, staticLog(static.UID)) >= 3 })
	if !strings.Contains(containerLog(podsDir, static.UID, "hello", 0), "pod=hello-edge-1 ") {
		t.Errorf("the downward API did not see the static pod's name:\n%s", containerLog(podsDir, static.UID, "hello", 0))
	}

	cp = testcluster.StartWith(t, scfg)
	admin := cp.Client(t)
	ctx := context.Background()
	back := time.Now()
	getMirror := func() (*corev1.Pod, bool) {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "hello-edge-1", metav1.GetOptions{})
		return p, err == nil
	}
	runningMirror := func(hash types.UID) func() bool {
		return func() bool {
			p, ok := getMirror()
			return ok && p.DeletionTimestamp == nil && p.Annotations[MirrorAnnotation] == string(hash) && p.Status.Phase == corev1.PodRunning &&
				len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
		}
	}
	eventually(t, "the mirror pod appears, Running", 60*time.Second, runningMirror(static.UID))
	t.Logf("control plane up: the mirror pod Running after %v (50ms polls)", time.Since(back).Round(time.Millisecond))
	mirror, _ := getMirror()
	node, err := admin.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := mirror.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].UID != node.UID {
		t.Errorf("mirror owner %+v, node uid %s", o, node.UID)
	}
	if mirror.UID == static.UID || mirror.Annotations[ConfigSourceAnnotation] != SourceFile || mirror.Annotations[ConfigHashAnnotation] != string(static.UID) {
		t.Errorf("mirror %+v", mirror.ObjectMeta)
	}
	started := mirror.Status.ContainerStatuses[0].State.Running.StartedAt

	dir := t.TempDir()
	kubectl := func(args ...string) string {
		t.Helper()
		return testenv.MustKubectl(t, cp.Kubeconfig(), dir, "", args...)
	}
	if out := kubectl("logs", "hello-edge-1", "--tail", "1"); !strings.HasPrefix(out, "static hello #") {
		t.Errorf("kubectl logs of the mirror pod: %q", out)
	}
	// Deleting the mirror pod brings a new one; the static pod runs on.
	// (kubectl's wait for the deletion races with the new mirror pod, as
	// with the kubelet: it may miss the deletion and wait for the new one.)
	kubectl("delete", "pod", "hello-edge-1", "--wait=false")
	eventually(t, "the mirror pod comes back", 60*time.Second, func() bool {
		p, ok := getMirror()
		return ok && p.UID != mirror.UID && runningMirror(static.UID)()
	})
	again, _ := getMirror()
	if cs := again.Status.ContainerStatuses[0]; cs.RestartCount != 0 || !cs.State.Running.StartedAt.Equal(&started) {
		t.Errorf("the static pod restarted: %+v (started %v)", cs, started)
	}
	if n := agent.RunningContainers(); n != 1 {
		t.Errorf("%d containers running, want 1", n)
	}
	before := oneWriter(t, staticLog(static.UID))
	eventually(t, "the static pod's run goes on", 30*time.Second, func() bool { return oneWriter(t, staticLog(static.UID)) > before+2 })

	// An edit is a new pod: its mirror is replaced.
	edited := helloManifest(file, "edited hello")
	if err := os.WriteFile(manifestPath+".tmp", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(manifestPath+".tmp", manifestPath); err != nil {
		t.Fatal(err)
	}
	next, err := StaticPod([]byte(edited), manifestPath, cfg.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the mirror pod of the edited manifest", 60*time.Second, runningMirror(next.UID))
	eventually(t, "the edited pod writes", 30*time.Second, func() bool {
		return strings.Contains(containerLog(podsDir, next.UID, "hello", 0), "edited hello #2 ")
	})
	eventually(t, "one instance after the edit", 30*time.Second, func() bool { return agent.RunningContainers() == 1 })

	// Removing the manifest stops the pod and removes its mirror.
	if err := os.Remove(manifestPath); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the static pod stops", 30*time.Second, func() bool { return agent.RunningContainers() == 0 })
	eventually(t, "the mirror pod goes", 30*time.Second, func() bool {
		_, err := admin.CoreV1().Pods("default").Get(ctx, "hello-edge-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	eventually(t, "the removed static pod's directory goes", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(podsDir, string(next.UID)))
		return os.IsNotExist(err)
	})
}

// TestStaticPodsBeforeJoin: an agent that has never reached its control
// plane (no credentials) runs its static pods while it retries the join;
// once the control plane is up it joins and publishes the mirror pod.
func TestStaticPodsBeforeJoin(t *testing.T) {
	scfg := restartableConfig(t)
	cp := testcluster.StartWith(t, scfg)
	cp.Stop() // its join token stays in its data dir
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), "edge-1", t.TempDir()
	cfg.LeaseRenewInterval, cfg.LeaseDuration = 300*time.Millisecond, 5*time.Second
	cfg.AllowFileModules, cfg.FileCheckFrequency = true, 100*time.Millisecond
	if err := os.MkdirAll(cfg.ManifestsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	tiny, err := filepath.Abs("../examples/tiny/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	manifest := "apiVersion: v1\nkind: Pod\nmetadata: {name: tiny}\nspec:\n  containers: [{name: tiny, image: \"file://" + tiny + "\"}]\n"
	path := filepath.Join(cfg.ManifestsDir(), "tiny.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	static, err := StaticPod([]byte(manifest), path, cfg.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	agent, _ := runAgent(t, cfg)
	podsDir := filepath.Join(cfg.DataDir, "pods")
	eventually(t, "the static pod runs before the node joined", 60*time.Second, func() bool {
		return agent.RunningContainers() == 1 && strings.Contains(containerLog(podsDir, static.UID, "tiny", 0), "tiny: up")
	})
	if _, err := LoadCredentials(cfg.DataDir); err != ErrNotJoined {
		t.Fatalf("credentials before the control plane was up: %v", err)
	}

	cp = testcluster.StartWith(t, scfg)
	admin := cp.Client(t)
	eventually(t, "joined, mirror pod Running", 90*time.Second, func() bool {
		p, err := admin.CoreV1().Pods("default").Get(context.Background(), "tiny-edge-1", metav1.GetOptions{})
		return err == nil && p.Annotations[MirrorAnnotation] == string(static.UID) && p.Status.Phase == corev1.PodRunning
	})
	if _, err := LoadCredentials(cfg.DataDir); err != nil {
		t.Errorf("credentials after joining: %v", err)
	}
	if n := agent.RunningContainers(); n != 1 {
		t.Errorf("%d containers running, want 1", n)
	}
}

// TestDataDirInUse: a second agent on a data dir in use stops at once; run,
// it would start the first one's pods again, or as another node take them
// over.
func TestDataDirInUse(t *testing.T) {
	cp := testcluster.Start(t)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), "edge-1", t.TempDir()
	runAgent(t, cfg)
	eventually(t, "the first agent's node", 30*time.Second, func() bool {
		_, err := cp.Client(t).CoreV1().Nodes().Get(context.Background(), "edge-1", metav1.GetOptions{})
		return err == nil
	})
	cfg.NodeName = "other"
	second, err := NewAgent(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := second.Run(ctx); err == nil || !strings.Contains(err.Error(), "is in use by another agent") {
		t.Fatalf("second agent: %v", err)
	}
}
