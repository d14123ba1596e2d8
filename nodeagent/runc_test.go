package nodeagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerdclient "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime/containerd"
)

// runcTestImage is the image TestRuncPods imports: testdata/runcapp as /app,
// ENTRYPOINT ["/app"], CMD ["from-cmd"].
const runcTestImage = "wasmfleet.test/nodeagent-runcapp:v1"

// importRuncImage builds testdata/runcapp into an OCI archive and imports it
// into containerd's namespace ns, so no registry is needed.
func importRuncImage(t *testing.T, addr, ns string) {
	t.Helper()
	data, err := os.ReadFile(testenv.StaticGoBinary(t, "./testdata/runcapp"))
	if err != nil {
		t.Fatal(err)
	}
	archive := testenv.OCIArchive(t, testenv.OCIImage{
		Name:       runcTestImage,
		Files:      map[string]testenv.OCIFile{"/app": {Mode: 0o755, Data: data}},
		Entrypoint: []string{"/app"},
		Cmd:        []string{"from-cmd"},
		Env:        []string{"PATH=/"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := containerd.New(ctx, containerd.Config{Address: addr, Namespace: ns, Snapshotter: os.Getenv("CONTAINERD_SNAPSHOTTER")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if _, err := r.ImportImage(ctx, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
}

// ownedContainers counts the containers containerd holds for owner in ns.
func ownedContainers(t *testing.T, addr, ns, owner string) int {
	t.Helper()
	c, err := containerdclient.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 30*time.Second)
	defer cancel()
	cs, err := c.Containers(ctx, fmt.Sprintf("labels.%q==%q", containerd.LabelOwner, owner))
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// removeOwnedAtEnd removes, when the test ends, the containers containerd
// still holds for owner in ns: runc containers outlive the agents of a
// test that failed half-way (or that leaves them on purpose).
func removeOwnedAtEnd(t *testing.T, addr, ns, owner string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A runtime of the owner removes them as the agent would, their
		// network namespaces with them.
		r, err := containerd.New(ctx, containerd.Config{Address: addr, Namespace: ns, Owner: owner, Snapshotter: os.Getenv("CONTAINERD_SNAPSHOTTER")})
		if err != nil {
			t.Error(err)
			return
		}
		ids, err := r.IDs(ctx)
		if err != nil {
			t.Error(err)
		}
		for _, id := range ids {
			if err := r.Remove(ctx, id); err != nil {
				t.Errorf("remove container %s: %v", id, err)
			}
		}
		if err := r.Close(ctx); err != nil {
			t.Error(err)
		}
	})
}

// inProcessContainerd returns the runc runtime of `wasmfleet agent`
// (cmd/wasmfleet): containerd's client in the agent's process, with logger
// as its containers' logger.
func inProcessContainerd(logger string) ImageRuntimeFactory {
	return func(ctx context.Context, cfg Config, _ *slog.Logger) (ImageRuntime, error) {
		return containerd.New(ctx, containerd.Config{Address: cfg.ContainerdAddress, Namespace: cfg.ContainerdNamespace,
			Snapshotter: cfg.ContainerdSnapshotter, Owner: cfg.NodeName, Logger: logger})
	}
}

// aliveCount is the highest "alive N" line of runcapp's log out.
func aliveCount(out string) int {
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^alive (\d+)$`).FindAllStringSubmatch(out, -1) {
		if i, _ := strconv.Atoi(m[1]); i > n {
			n = i
		}
	}
	return n
}

// runningSince returns a func that reports whether a pod's one container
// runs with restarts restarts, and stores when its run started in since.
func runningSince(restarts int32, since *metav1.Time) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		if len(cs) != 1 || cs[0].State.Running == nil || cs[0].RestartCount != restarts {
			return false
		}
		*since = cs[0].State.Running.StartedAt
		return true
	}
}

// checkRestartKeepsContainer stops the agent (stop), checks that the runc
// container of pod name runs on in containerd and goes on writing its log,
// and starts the agent again with start: the new agent attaches to the
// same run of the container. It returns the new agent.
func checkRestartKeepsContainer(t *testing.T, cp *testcluster.Cluster, admin kubernetes.Interface, addr, ns, node, name string, stop func(), start func() *Agent) *Agent {
	t.Helper()
	var started metav1.Time
	waitPod(t, admin, name, "running", runningSince(0, &started))
	kubectlDir := t.TempDir()
	logs := func() string {
		o, err := testenv.RunKubectl(t, cp.Kubeconfig(), kubectlDir, "", "logs", name)
		if err != nil {
			return ""
		}
		return o
	}
	before := aliveCount(logs())
	stop()
	if n := ownedContainers(t, addr, ns, node); n != 1 {
		t.Fatalf("containerd holds %d containers of %s after the agent stopped: want its one, running on", n, node)
	}
	time.Sleep(time.Second) // output while no agent runs
	agent := start()
	var again metav1.Time
	waitPod(t, admin, name, "running on after the agent's restart", func(p *corev1.Pod) bool {
		return runningSince(0, &again)(p) && agent.RunningContainers() == 1
	})
	if !again.Equal(&started) {
		t.Errorf("the container's run started at %s, before the restart at %s: want the same run", again, started)
	}
	eventually(t, "the log goes on through the restart", time.Minute, func() bool {
		return aliveCount(logs()) >= before+10
	})
	if n := ownedContainers(t, addr, ns, node); n != 1 {
		t.Errorf("containerd holds %d containers of %s: want 1", n, node)
	}
	return agent
}

// TestRuncPods runs runc pods on an agent with containerd's client in
// process (TestRuncPodsThroughTheHelper: in the helper process).
// createRuncPod creates a pod of runtime class runc bound to node on.
func createRuncPod(t *testing.T, admin kubernetes.Interface, name, on, image string, args ...string) {
	t.Helper()
	_, err := admin.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: on, RuntimeClassName: ptrTo(RuntimeClassRunc), RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{Name: "main", Image: image, Args: args, Env: []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRuncTerminationMessage: as from the kubelet, what a runc container
// wrote to its terminationMessagePath (/dev/termination-log, a file the
// agent mounts) is its run's message.
func TestRuncTerminationMessage(t *testing.T) {
	_, admin, node := runcNode(t)
	createRuncPod(t, admin, "fails", node, runcTestImage, "fail", "disk full")
	waitPod(t, admin, "fails", "a run ended with its termination message", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].LastTerminationState.Terminated != nil &&
			cs[0].LastTerminationState.Terminated.ExitCode == 3 && cs[0].LastTerminationState.Terminated.Message == "disk full"
	})
}

// runcNode starts a control plane and an agent with containerd for a node
// of its own (its containers removed from containerd at the end), and
// returns the control plane, its admin client and the node's name.
func runcNode(t *testing.T) (*testcluster.Cluster, kubernetes.Interface, string) {
	t.Helper()
	addr := testenv.Containerd(t)
	const ns = containerd.DefaultNamespace
	importRuncImage(t, addr, ns)
	cp := testcluster.Start(t)
	b := make([]byte, 4)
	rand.Read(b)
	node := "runc-" + hex.EncodeToString(b)
	removeOwnedAtEnd(t, addr, ns, node)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), node, t.TempDir()
	cfg.ContainerdAddress, cfg.ContainerdNamespace, cfg.ContainerdSnapshotter = addr, ns, os.Getenv("CONTAINERD_SNAPSHOTTER")
	runAgent(t, cfg, WithImageRuntime(inProcessContainerd(testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-logger"))))
	return cp, cp.Client(t), node
}

// registeredNode waits up to a minute for node name to be registered.
func registeredNode(t *testing.T, admin kubernetes.Interface, name string) *corev1.Node {
	t.Helper()
	var n *corev1.Node
	eventually(t, "node "+name+" registered", time.Minute, func() bool {
		var err error
		n, err = admin.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	})
	return n
}

// waitPod waits up to 3 minutes for pod name to satisfy ok (what says
// what is awaited) and returns it.
func waitPod(t *testing.T, admin kubernetes.Interface, name string, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	eventually(t, "pod "+name+": "+what, 3*time.Minute, func() bool {
		var err error
		p, err = admin.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && ok(p)
	})
	return p
}

func TestRuncPods(t *testing.T) {
	addr := testenv.Containerd(t)
	const ns = containerd.DefaultNamespace
	importRuncImage(t, addr, ns)
	cp := testcluster.Start(t)
	b := make([]byte, 4)
	rand.Read(b)
	node, plain := "runc-"+hex.EncodeToString(b), "plain-"+hex.EncodeToString(b)
	removeOwnedAtEnd(t, addr, ns, node)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), node, t.TempDir()
	cfg.ContainerdAddress, cfg.ContainerdNamespace, cfg.ContainerdSnapshotter = addr, ns, os.Getenv("CONTAINERD_SNAPSHOTTER")
	logger := testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-logger")
	agent, stop := runAgent(t, cfg, WithImageRuntime(inProcessContainerd(logger)))
	// An agent without containerd: its runc pods cannot start.
	pcfg := cfg
	pcfg.NodeName, pcfg.DataDir, pcfg.ContainerdAddress = plain, t.TempDir(), ""
	runAgent(t, pcfg, WithImageRuntime(inProcessContainerd(logger)))

	ctx := context.Background()
	admin := cp.Client(t)
	n := registeredNode(t, admin, node)
	if n.Labels[RuntimeClassLabelPrefix+"runc"] != "true" || n.Labels[RuntimeClassLabelPrefix+"wasm"] != "true" {
		t.Errorf("node %s labels %v: want runc and wasm", node, n.Labels)
	}
	if v := n.Status.NodeInfo.ContainerRuntimeVersion; !strings.Contains(v, "containerd://") || !strings.Contains(v, "wasm://") {
		t.Errorf("containerRuntimeVersion %q: want containerd:// and wasm://", v)
	}
	if pn := registeredNode(t, admin, plain); pn.Labels[RuntimeClassLabelPrefix+"runc"] != "" {
		t.Errorf("node %s without containerd has labels %v", plain, pn.Labels)
	}

	waiting := func(reason string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reason
		}
	}

	createRuncPod(t, admin, "runc", node, runcTestImage, "one", "two")
	createRuncPod(t, admin, "badimage", node, "127.0.0.1:1/wasmfleet/missing:v1")
	createRuncPod(t, admin, "nocontainerd", plain, runcTestImage)

	waitPod(t, admin, "runc", "running", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil
	})
	// args replace the image's CMD, its ENTRYPOINT stays; the pod's name
	// is the container's hostname and $HOSTNAME, as in Kubernetes.
	want := regexp.MustCompile(`(?m)^hello from runc args=\["/app" "one" "two"\] greeting=hi hostname=runc HOSTNAME=runc$`)
	dir := t.TempDir()
	var out string
	eventually(t, "kubectl logs runc shows the container's line", time.Minute, func() bool {
		o, err := testenv.RunKubectl(t, cp.Kubeconfig(), dir, "", "logs", "runc")
		out = o
		return err == nil && want.MatchString(o)
	})
	if agent.RunningContainers() != 1 || ownedContainers(t, addr, ns, node) != 1 {
		t.Errorf("running %d, containerd holds %d containers of %s: want 1", agent.RunningContainers(), ownedContainers(t, addr, ns, node), node)
	}
	agent = checkRestartKeepsContainer(t, cp, admin, addr, ns, node, "runc", stop, func() *Agent {
		a, s := runAgent(t, cfg, WithImageRuntime(inProcessContainerd(logger)))
		stop = s
		return a
	})

	// Both of the pod's state files are corrupted while the agent is away:
	// the new agent cannot know the run it finds, so it removes it and
	// starts the container afresh, rather than running it twice.
	var started metav1.Time
	rp := waitPod(t, admin, "runc", "running", runningSince(0, &started))
	stop()
	for _, f := range []string{"state.json", "state.1.json"} {
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "pods", string(rp.UID), f), []byte(`{"generation":`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // a start time later by the API's whole seconds
	agent, stop = runAgent(t, cfg, WithImageRuntime(inProcessContainerd(logger)))
	var fresh metav1.Time
	waitPod(t, admin, "runc", "running a fresh run", func(p *corev1.Pod) bool {
		return runningSince(0, &fresh)(p) && fresh.After(started.Time)
	})
	eventually(t, "one container in containerd, the fresh run", time.Minute, func() bool {
		return agent.RunningContainers() == 1 && ownedContainers(t, addr, ns, node) == 1
	})

	p := waitPod(t, admin, "badimage", "ErrImagePull", waiting(ReasonErrImagePull))
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "127.0.0.1:1/wasmfleet/missing:v1") {
		t.Errorf("ErrImagePull message %q does not name the image", msg)
	}
	p = waitPod(t, admin, "nocontainerd", ReasonRuntimeClassUnsupported, waiting(ReasonRuntimeClassUnsupported))
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "runc") {
		t.Errorf("%s message %q", ReasonRuntimeClassUnsupported, msg)
	}
	eventually(t, "ErrImagePull event", time.Minute, func() bool {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "badimage" && strings.Contains(e.Message, ReasonErrImagePull) {
				return true
			}
		}
		return false
	})

	// Deleting the pod stops its container, which leaves containerd.
	grace := int64(10)
	if err := admin.CoreV1().Pods("default").Delete(ctx, "runc", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod runc gone", time.Minute, func() bool {
		_, err := admin.CoreV1().Pods("default").Get(ctx, "runc", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	eventually(t, "container stopped and removed from containerd", time.Minute, func() bool {
		return agent.RunningContainers() == 0 && ownedContainers(t, addr, ns, node) == 0
	})
	if out == "" {
		t.Fatal("no log")
	}
}

// helperPIDs lists the processes running the executable path.
func helperPIDs(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestRuncPodsThroughTheHelper runs runc pods on the lean agent's path:
// containerd's client in the helper process cmd/wasmfleet-containerd,
// started only when a runc pod needs it, and again after it was killed.
// A node whose helper is missing does not offer runc.
func TestRuncPodsThroughTheHelper(t *testing.T) {
	addr := testenv.Containerd(t)
	const ns = containerd.DefaultNamespace
	importRuncImage(t, addr, ns)
	helper := testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-containerd")
	cp := testcluster.Start(t)
	b := make([]byte, 4)
	rand.Read(b)
	node, nohelper := "lean-"+hex.EncodeToString(b), "nohelper-"+hex.EncodeToString(b)
	removeOwnedAtEnd(t, addr, ns, node)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), node, t.TempDir()
	cfg.ContainerdAddress, cfg.ContainerdNamespace, cfg.ContainerdSnapshotter = addr, ns, os.Getenv("CONTAINERD_SNAPSHOTTER")
	cfg.ContainerdHelper = helper
	cfg.ContainerdLogger = testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-logger")
	agent, stop := runAgent(t, cfg)
	ncfg := cfg
	ncfg.NodeName, ncfg.DataDir, ncfg.ContainerdHelper = nohelper, t.TempDir(), filepath.Join(t.TempDir(), "wasmfleet-containerd")
	runAgent(t, ncfg)

	ctx := context.Background()
	admin := cp.Client(t)
	n := registeredNode(t, admin, node)
	if n.Labels[RuntimeClassLabelPrefix+"runc"] != "true" || !strings.Contains(n.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") {
		t.Errorf("node %s: labels %v, containerRuntimeVersion %q: want runc offered", node, n.Labels, n.Status.NodeInfo.ContainerRuntimeVersion)
	}
	if nn := registeredNode(t, admin, nohelper); nn.Labels[RuntimeClassLabelPrefix+"runc"] != "" {
		t.Errorf("node %s without its helper has labels %v", nohelper, nn.Labels)
	}
	// Registered and idle, with no runc pod: no helper runs.
	if pids := helperPIDs(t, helper); len(pids) != 0 {
		t.Fatalf("helper processes %v before any runc pod", pids)
	}

	running := func(restarts int32) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Running != nil && cs[0].RestartCount == restarts
		}
	}
	logLine := regexp.MustCompile(`(?m)^hello from runc args=\["/app" "lean"\] greeting=hi hostname=lean HOSTNAME=lean$`)
	kubectlDir := t.TempDir()
	waitLog := func(what string) {
		t.Helper()
		eventually(t, "kubectl logs lean: "+what, time.Minute, func() bool {
			o, err := testenv.RunKubectl(t, cp.Kubeconfig(), kubectlDir, "", "logs", "lean")
			return err == nil && logLine.MatchString(o)
		})
	}

	createRuncPod(t, admin, "lean", node, runcTestImage, "lean")
	createRuncPod(t, admin, "nohelper", nohelper, runcTestImage, "lean")
	waitPod(t, admin, "lean", "running", running(0))
	waitLog("the container's line, streamed from the helper")
	pids := helperPIDs(t, helper)
	if len(pids) != 1 || agent.RunningContainers() != 1 || ownedContainers(t, addr, ns, node) != 1 {
		t.Fatalf("helpers %v, running %d, containerd holds %d containers of %s: want one each", pids, agent.RunningContainers(), ownedContainers(t, addr, ns, node), node)
	}

	// The helper dies: the container runs on in containerd, and a new
	// helper follows it.
	var started metav1.Time
	waitPod(t, admin, "lean", "running", runningSince(0, &started))
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new helper, the one container still in containerd", time.Minute, func() bool {
		now := helperPIDs(t, helper)
		return len(now) == 1 && now[0] != pids[0] && ownedContainers(t, addr, ns, node) == 1
	})
	var again metav1.Time
	p := waitPod(t, admin, "lean", "running", runningSince(0, &again))
	if !again.Equal(&started) {
		t.Errorf("the container's run started at %s, before the helper died at %s: want the same run", again, started)
	}
	// The agent restarts: its helper exits, the container runs on, and the
	// new agent's helper attaches to it.
	agent = checkRestartKeepsContainer(t, cp, admin, addr, ns, node, "lean", func() {
		stop()
		eventually(t, "the helper gone with the agent", time.Minute, func() bool { return len(helperPIDs(t, helper)) == 0 })
	}, func() *Agent {
		a, _ := runAgent(t, cfg)
		return a
	})

	p = waitPod(t, admin, "nohelper", ReasonRuntimeClassUnsupported, func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == ReasonRuntimeClassUnsupported
	})
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "containerd-helper") {
		t.Errorf("%s message %q does not name containerd-helper", ReasonRuntimeClassUnsupported, msg)
	}

	// Deleting the pod stops its container through the helper.
	grace := int64(10)
	if err := admin.CoreV1().Pods("default").Delete(ctx, "lean", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod lean gone, its container stopped and removed from containerd", time.Minute, func() bool {
		_, err := admin.CoreV1().Pods("default").Get(ctx, "lean", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && agent.RunningContainers() == 0 && ownedContainers(t, addr, ns, node) == 0
	})
}

// TestStaticRuncPodRemovedWhileAway removes a static runc pod's manifest
// while both the agent and the control plane are down: the agent that
// comes back stops the pod's container and removes its directory at
// once, without waiting for the API.
func TestStaticRuncPodRemovedWhileAway(t *testing.T) {
	addr := testenv.Containerd(t)
	const ns = containerd.DefaultNamespace
	importRuncImage(t, addr, ns)
	logger := testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-logger")
	cp := testcluster.Start(t)
	b := make([]byte, 4)
	rand.Read(b)
	node := "static-" + hex.EncodeToString(b)
	removeOwnedAtEnd(t, addr, ns, node)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), node, t.TempDir()
	cfg.ContainerdAddress, cfg.ContainerdNamespace, cfg.ContainerdSnapshotter = addr, ns, os.Getenv("CONTAINERD_SNAPSHOTTER")
	manifest := filepath.Join(cfg.ManifestsDir(), "app.yaml")
	if err := os.MkdirAll(cfg.ManifestsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  runtimeClassName: runc
  containers:
  - name: main
    image: `+runcTestImage+`
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	agent, stop := runAgent(t, cfg, WithImageRuntime(inProcessContainerd(logger)))
	eventually(t, "the static pod's container running", time.Minute, func() bool {
		return agent.RunningContainers() == 1 && ownedContainers(t, addr, ns, node) == 1
	})
	podDirs, err := os.ReadDir(filepath.Join(cfg.DataDir, "pods"))
	if err != nil || len(podDirs) != 1 {
		t.Fatalf("pod directories %v, %v: want the static pod's", podDirs, err)
	}

	stop()
	cp.Stop()
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	runAgent(t, cfg, WithImageRuntime(inProcessContainerd(logger)))
	eventually(t, "the container and the pod's directory removed", time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(cfg.DataDir, "pods", podDirs[0].Name()))
		return ownedContainers(t, addr, ns, node) == 0 && errors.Is(err, os.ErrNotExist)
	})
}

// TestRuncInitContainers: a runc pod's init container runs to completion
// through containerd before its app container, and kubectl logs shows its
// output.
func TestRuncInitContainers(t *testing.T) {
	cp, admin, node := runcNode(t)
	_, err := admin.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "runcinit"},
		Spec: corev1.PodSpec{NodeName: node, RuntimeClassName: ptrTo(RuntimeClassRunc), RestartPolicy: corev1.RestartPolicyAlways,
			InitContainers: []corev1.Container{{Name: "init", Image: runcTestImage, Args: []string{"once"}}},
			Containers:     []corev1.Container{{Name: "main", Image: runcTestImage}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, admin, "runcinit", "running after its init container", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil
	})
	ics := p.Status.InitContainerStatuses
	if len(ics) != 1 || ics[0].State.Terminated == nil || ics[0].State.Terminated.Reason != "Completed" ||
		p.Status.ContainerStatuses[0].State.Running.StartedAt.Before(&ics[0].State.Terminated.FinishedAt) {
		t.Errorf("init container: %+v, app container from %v", ics, p.Status.ContainerStatuses[0].State.Running.StartedAt)
	}
	out := testenv.MustKubectl(t, cp.Kubeconfig(), t.TempDir(), "", "logs", "runcinit", "-c", "init")
	if !strings.Contains(out, `hello from runc args=["/app" "once"]`) {
		t.Errorf("kubectl logs -c init:\n%s", out)
	}
}

// TestRuncProbes: exec, tcpSocket, httpGet and grpc probes, as the
// kubelet runs them. A container whose readiness probe passes becomes
// ready once it did; one whose probe fails stays unready (and the pod with
// it), with Unhealthy events; a startup probe holds the liveness probe
// back until it passed, and a sidecar's the app; a container whose
// liveness probe fails is killed and restarted. The containers of a pod
// share its network: one's probe reaches another's port.
func TestRuncProbes(t *testing.T) {
	_, admin, node := runcNode(t)
	ctx := context.Background()
	check := func(path string, fails int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/app", "check", path}}},
			PeriodSeconds: 1, FailureThreshold: fails}
	}
	ctr := func(name string) corev1.Container {
		return corev1.Container{Name: name, Image: runcTestImage}
	}
	ready, unready, started := ctr("ready"), ctr("unready"), ctr("started")
	ready.ReadinessProbe = check("/dev/shm/ready", 3)
	unready.ReadinessProbe = check("/nonexistent", 3)
	started.StartupProbe = check("/dev/shm/ready", 3)
	started.LivenessProbe = check("/dev/shm/ready", 3)
	dying := ctr("dying")
	dying.LivenessProbe = check("/nonexistent", 2)
	// tcpSocket and httpGet probes knock on the container's loopback.
	web, broken := ctr("web"), ctr("broken")
	web.Args, broken.Args = []string{"serve", "8080"}, []string{"serve", "8081"}
	web.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	web.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 1}
	web.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1, FailureThreshold: 2}
	broken.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/other", Port: intstr.FromInt32(8081)}}, PeriodSeconds: 1}
	web.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9080}}, PeriodSeconds: 1}
	broken.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9081, Service: ptrTo("down")}}, PeriodSeconds: 1, FailureThreshold: 1000}
	// The pod's containers share its network: side reaches web's port.
	side := ctr("side")
	side.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}
	// A hostNetwork pod listens on the node's network.
	hostAddr := testenv.FreeAddr(t)
	_, hostPort, _ := net.SplitHostPort(hostAddr)
	onHost := ctr("web")
	onHost.Args = []string{"serve", hostPort}
	onHost.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.Parse(hostPort)}}, PeriodSeconds: 1}
	closed := ctr("closed") // listens nowhere
	closed.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}}, PeriodSeconds: 1, FailureThreshold: 2}
	// A sidecar whose startup probe never passes holds the app back.
	proxy := ctr("proxy")
	proxy.RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
	proxy.StartupProbe = check("/nonexistent", 100)
	for name, spec := range map[string]corev1.PodSpec{
		"probed": {Containers: []corev1.Container{ready, unready, started}},
		"dying":  {Containers: []corev1.Container{dying}},
		"gated":  {InitContainers: []corev1.Container{proxy}, Containers: []corev1.Container{ctr("app")}},
		"served": {Containers: []corev1.Container{web, broken, side}},
		"closed": {Containers: []corev1.Container{closed}},
		"host":   {Containers: []corev1.Container{onHost}, HostNetwork: true},
	} {
		spec.NodeName, spec.RuntimeClassName, spec.TerminationGracePeriodSeconds = node, ptrTo(RuntimeClassRunc), new(int64(2))
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	status := func(p *corev1.Pod, name string) corev1.ContainerStatus {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == name {
				return cs
			}
		}
		return corev1.ContainerStatus{}
	}
	p := waitPod(t, admin, "probed", "ready and started by their probes", func(p *corev1.Pod) bool {
		r, s := status(p, "ready"), status(p, "started")
		return r.Ready && s.Ready && s.Started != nil && *s.Started
	})
	if u := status(p, "unready"); u.Ready || u.State.Running == nil || u.RestartCount != 0 {
		t.Errorf("unready container: %+v", u)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Message != "containers with unready status: [unready]") {
			t.Errorf("Ready condition %+v", c)
		}
	}
	eventually(t, "Unhealthy events of the failing readiness probe", time.Minute, func() bool {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=probed,reason=" + EventUnhealthy})
		return err == nil && len(evs.Items) > 0 && evs.Items[0].Message == "Readiness probe failed: no /nonexistent" &&
			evs.Items[0].InvolvedObject.FieldPath == "spec.containers{unready}" && evs.Items[0].Type == corev1.EventTypeWarning
	})

	eventually(t, "failed startup probes of the sidecar", time.Minute, func() bool {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=gated,reason=" + EventUnhealthy})
		return err == nil && len(evs.Items) > 0 && evs.Items[0].Count >= 2 && evs.Items[0].Message == "Startup probe failed: no /nonexistent"
	})
	g, err := admin.CoreV1().Pods("default").Get(ctx, "gated", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Status.InitContainerStatuses) != 1 || g.Status.InitContainerStatuses[0].State.Running == nil || *g.Status.InitContainerStatuses[0].Started {
		t.Errorf("sidecar status %+v", g.Status.InitContainerStatuses)
	}
	if app := status(g, "app"); app.State.Waiting == nil || app.State.Waiting.Reason != ReasonPodInitializing {
		t.Errorf("the app started before its sidecar did: %+v", app)
	}

	p = waitPod(t, admin, "served", "web started by its gRPC probe and ready by its HTTP probe; side reaching it", func(p *corev1.Pod) bool {
		return status(p, "web").Ready && status(p, "side").Ready
	})
	if w, b := status(p, "web"), status(p, "broken"); w.RestartCount != 0 || b.Ready {
		t.Errorf("web %+v, broken %+v", w, b)
	}
	eventually(t, "the failed HTTP probe's event", time.Minute, func() bool {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=served,reason=" + EventUnhealthy})
		var msgs []string
		for _, ev := range evs.Items {
			if ev.InvolvedObject.FieldPath == "spec.containers{broken}" {
				msgs = append(msgs, ev.Message)
			}
		}
		slices.Sort(msgs)
		return err == nil && slices.Equal(msgs, []string{
			`Liveness probe failed: service unhealthy (responded with "NOT_SERVING")`,
			"Readiness probe failed: HTTP probe failed with statuscode: 500",
		})
	})
	waitPod(t, admin, "closed", "restarted after its TCP probe failed", func(p *corev1.Pod) bool { return status(p, "closed").RestartCount >= 1 })
	eventually(t, "the failed TCP probe's event", time.Minute, func() bool {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=closed,reason=" + EventUnhealthy})
		return err == nil && len(evs.Items) > 0 && strings.Contains(evs.Items[0].Message, "Liveness probe failed: dial tcp 127.0.0.1:9999: connect: connection refused")
	})

	waitPod(t, admin, "host", "ready by its HTTP probe on the node's network", func(p *corev1.Pod) bool { return status(p, "web").Ready })
	if resp, err := http.Get("http://" + hostAddr + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the hostNetwork pod from the node: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}

	waitPod(t, admin, "dying", "restarted after its liveness probe failed", func(p *corev1.Pod) bool {
		return status(p, "dying").RestartCount >= 1
	})
	eventually(t, "the Killing event of the liveness probe", time.Minute, func() bool {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=dying,reason=" + EventKilling})
		return err == nil && len(evs.Items) > 0 && evs.Items[0].Message == "Container dying failed liveness probe, will be restarted"
	})
}
