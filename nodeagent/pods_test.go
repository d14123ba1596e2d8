package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

func fileImage(t *testing.T, rel string) string {
	abs, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return "file://" + abs
}

// runPods has pods run node's pods, as the agent does: a pod source hands
// each snapshot to Sync. The returned func stops it and waits for the
// workers.
func runPods(ctx context.Context, api *APIClient, node string, pods *Pods) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	js, _ := jetstream.New(api.conn())
	src := &PodSource{API: api, JS: js, Stream: subjects.DefaultStream, Consumer: nodelink.ConsumerName(node), Filter: subjects.NodeFilter(node)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		go src.Run(ctx)
		for {
			select {
			case <-ctx.Done():
				pods.Wait()
				return
			case <-src.Changed():
				snap, _ := src.Snapshot()
				pods.Sync(ctx, snap)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// agentPods runs a Pods on wazero for node edge-1 of a new control plane
// until the test ends, set up by set, and returns an admin clientset.
func agentPods(t *testing.T, set func(*Pods)) *kubernetes.Clientset {
	t.Helper()
	api, admin := joinedNode(t, "edge-1")
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := wasm.New(ctx, wasm.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := NewModuleCache(t.TempDir(), nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	pods := &Pods{API: api, Runtime: rt, Modules: mc, Dir: t.TempDir(), Config: validConfig()}
	if set != nil {
		set(pods)
	}
	stop := runPods(ctx, api, "edge-1", pods)
	t.Cleanup(func() {
		cancel()
		stop()
		rt.Close(context.Background())
	})
	return admin
}

// TestPodsRunReportAndDelete runs wasm pods end to end on a joined node:
// source → workers → wazero, status reported over NATS, logs on disk, and
// graceful deletion confirmed by the agent.
func TestPodsRunReportAndDelete(t *testing.T) {
	// PullRetry: the missing module stays ErrImagePull for a minute.
	dir := t.TempDir()
	admin := agentPods(t, func(p *Pods) {
		p.Dir, p.HostIPs, p.PullRetry = dir, HostIPs([]string{"192.0.2.7", "2001:db8::7", "192.0.2.8"}), time.Minute
	})
	ctx := context.Background()

	mk := func(name, image string, policy corev1.RestartPolicy) {
		t.Helper()
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: "edge-1", RestartPolicy: policy,
				Containers: []corev1.Container{{Name: "main", Image: image}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("tiny", fileImage(t, "examples/tiny/tiny.wasm"), corev1.RestartPolicyAlways)
	mk("trap", fileImage(t, "runtime/wasm/testdata/trap.wasm"), corev1.RestartPolicyNever)
	mk("missing", fileImage(t, "examples/tiny/nope.wasm"), corev1.RestartPolicyAlways)
	mk("invalid", fileImage(t, "runtime/wasm/testdata/nope.wasm"), corev1.RestartPolicyAlways)
	mk("crashloop", fileImage(t, "runtime/wasm/testdata/trap.wasm"), corev1.RestartPolicyAlways)

	waitPod := func(name string, ok func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := admin.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err == nil && ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s never got there: %+v %v", name, p.Status, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waiting := func(reason string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
				p.Status.ContainerStatuses[0].State.Waiting.Reason == reason
		}
	}
	tiny := waitPod("tiny", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	})
	if !strings.HasPrefix(tiny.Status.ContainerStatuses[0].ImageID, "sha256:") {
		t.Errorf("imageID %q", tiny.Status.ContainerStatuses[0].ImageID)
	}
	if st := tiny.Status; st.HostIP != "192.0.2.7" || len(st.HostIPs) != 2 || st.HostIPs[1].IP != "2001:db8::7" {
		t.Errorf("hostIP %q hostIPs %v, want the node's first IPv4 and IPv6 addresses", st.HostIP, st.HostIPs)
	}
	trap := waitPod("trap", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := trap.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 134 || term.Reason != "Error" {
		t.Errorf("trapped container: %+v", trap.Status.ContainerStatuses[0].State)
	}
	waitPod("missing", waiting(ReasonErrImagePull))
	waitPod("invalid", waiting(ReasonInvalidModule))
	crash := waitPod("crashloop", waiting(ReasonCrashLoopBackOff))
	if crash.Status.Phase != corev1.PodRunning || crash.Status.ContainerStatuses[0].LastTerminationState.Terminated == nil {
		t.Errorf("crash-looping pod: %+v", crash.Status)
	}

	// A pod runs with its RuntimeClass's handler.
	for name, handler := range map[string]string{"edge-wasm": "wasm", "oci": "runc", "kata": "kata"} {
		if _, err := admin.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: handler}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, class := range []string{"edge-wasm", "oci", "kata"} {
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "class-" + class},
			Spec: corev1.PodSpec{NodeName: "edge-1", RuntimeClassName: &class,
				Containers: []corev1.Container{{Name: "main", Image: fileImage(t, "examples/tiny/tiny.wasm")}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitPod("class-edge-wasm", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	for class, msg := range map[string]string{"oci": `runtime class "runc" is not available on this node`, "kata": `runtime handler "kata" is not available on this node`} {
		p := waitPod("class-"+class, waiting(ReasonRuntimeClassUnsupported))
		if got := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(got, msg) {
			t.Errorf("pod of class %s waits with %q, want %q", class, got, msg)
		}
	}

	// kubectl describe's Events: the agent reported what happened.
	evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs.Items {
		seen[e.InvolvedObject.Name+"/"+e.Reason] = true
	}
	for _, want := range []string{"tiny/Pulled", "tiny/Created", "tiny/Started", "missing/Failed", "invalid/Failed", "crashloop/BackOff"} {
		if !seen[want] {
			t.Errorf("no %s event (have %v)", want, seen)
		}
	}

	// The guest's output is in its log.
	var logs strings.Builder
	if err := podlogs.Read(ctx, logPath(filepath.Join(dir, string(tiny.UID)), "main", 0), podlogs.ReadOptions{Tail: -1}, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "tiny: up") {
		t.Errorf("log %q", logs.String())
	}

	// A graceful delete: the agent stops the guest, reports the pod's
	// terminal phase (Failed: its guest was killed) and confirms.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	wch, err := admin.CoreV1().Pods("default").Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=tiny", ResourceVersion: tiny.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer wch.Stop()
	if err := admin.CoreV1().Pods("default").Delete(ctx, "tiny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var phases []corev1.PodPhase
	for ev := range wch.ResultChan() {
		phases = append(phases, ev.Object.(*corev1.Pod).Status.Phase)
		if ev.Type == watch.Deleted {
			break
		}
	}
	if len(phases) < 2 || phases[len(phases)-2] != corev1.PodFailed {
		t.Errorf("phases seen up to the deletion: %v, want Failed before it", phases)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := admin.CoreV1().Pods("default").Get(ctx, "tiny", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			evs, _ := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=tiny,reason=Killing"})
			if len(evs.Items) != 1 {
				t.Errorf("%d Killing events, want 1", len(evs.Items))
			}
		}
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not gone after a graceful delete: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its directory goes with it: state, logs, volumes.
	eventually(t, "the deleted pod's directory is removed", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, string(tiny.UID)))
		return os.IsNotExist(err)
	})
}

// TestFallbackToLogsOnError: a failed container whose
// terminationMessagePolicy is FallbackToLogsOnError has the end of its log
// as its termination message, as from the kubelet; one with the default
// policy has none.
func TestFallbackToLogsOnError(t *testing.T) {
	image := helloModule(t)
	admin := agentPods(t, nil)
	ctx := context.Background()
	bad := func(name string, policy corev1.TerminationMessagePolicy) corev1.Container {
		return corev1.Container{Name: name, Image: image, TerminationMessagePolicy: policy,
			Env: []corev1.EnvVar{{Name: "HELLO_INTERVAL", Value: "soon"}}}
	}
	_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec: corev1.PodSpec{NodeName: "edge-1", RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{bad("logs", corev1.TerminationMessageFallbackToLogsOnError), bad("file", corev1.TerminationMessageReadFile)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	testenv.Poll(t, "pod bad failed", func() (bool, string) {
		pod, err = admin.CoreV1().Pods("default").Get(ctx, "bad", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodFailed, string(pod.Status.Phase)
	})
	msgs := map[string]string{}
	for _, cs := range pod.Status.ContainerStatuses {
		if term := cs.State.Terminated; term == nil || term.ExitCode != 2 {
			t.Fatalf("container %s: %+v, want exit code 2", cs.Name, cs.State)
		}
		msgs[cs.Name] = cs.State.Terminated.Message
	}
	if want := "hello: HELLO_INTERVAL=\"soon\": want a duration like 5s\n"; msgs["logs"] != want {
		t.Errorf("FallbackToLogsOnError message %q, want the log's %q", msgs["logs"], want)
	}
	if msgs["file"] != "" {
		t.Errorf("File policy message %q, want none", msgs["file"])
	}
}

// TestTerminationMessagePath: as the kubelet, the agent gives a
// container's terminationMessagePath a file of its own and reads what the
// container wrote there when it ends, whether it failed or not, before
// falling back to its log.
func TestTerminationMessagePath(t *testing.T) {
	module := wasip1Module(t, "./testdata/termlog")
	admin := agentPods(t, nil)
	ctx := context.Background()
	ctr := func(name, msg, path, code string) corev1.Container {
		return corev1.Container{Name: name, Image: "file://" + module, Args: []string{msg, path, code},
			TerminationMessagePath: path, TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError}
	}
	_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "msgs"},
		Spec: corev1.PodSpec{NodeName: "edge-1", RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{
			ctr("failed", "disk full", "/dev/termination-log", "3"),
			ctr("done", "42 rows", "/var/run/result", "0"),
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	testenv.Poll(t, "pod msgs failed", func() (bool, string) {
		pod, err = admin.CoreV1().Pods("default").Get(ctx, "msgs", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodFailed, string(pod.Status.Phase)
	})
	got := map[string]string{}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Terminated == nil {
			t.Fatalf("container %s: %+v", cs.Name, cs.State)
		}
		got[cs.Name] = fmt.Sprintf("%d %q", cs.State.Terminated.ExitCode, cs.State.Terminated.Message)
	}
	if got["failed"] != `3 "disk full"` || got["done"] != `0 "42 rows"` {
		t.Errorf("termination messages %v, want what the containers wrote", got)
	}
}

// TestRepeatedEventsAreCounted: a container that keeps crashing is
// started again and again; as from the kubelet, its Started event is one
// Event whose count grows, not an Event per start.
func TestRepeatedEventsAreCounted(t *testing.T) {
	admin := agentPods(t, nil)
	ctx := context.Background()
	_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crashes"},
		Spec: corev1.PodSpec{NodeName: "edge-1", RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{Name: "main", Image: fileImage(t, "runtime/wasm/testdata/trap.wasm")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var started []corev1.Event
	testenv.Poll(t, "a Started event counted twice", func() (bool, string) {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=crashes,reason=Started"})
		if err != nil {
			return false, err.Error()
		}
		started = evs.Items
		return len(started) > 0 && started[0].Count >= 2, fmt.Sprintf("%d Started events", len(started))
	})
	if len(started) != 1 {
		t.Errorf("%d Started events for one container, want one counted", len(started))
	}
	if ev := started[0]; !ev.LastTimestamp.After(ev.FirstTimestamp.Time) && !ev.LastTimestamp.Equal(&ev.FirstTimestamp) {
		t.Errorf("Started event times: first %v, last %v", ev.FirstTimestamp, ev.LastTimestamp)
	}
}

// TestProbesThatCannotRun: a wasm guest has no processes to exec and no
// network: its probes are reported once (ProbeNotRun) and left out, so
// the container is ready as without them.
func TestProbesThatCannotRun(t *testing.T) {
	admin := agentPods(t, nil)
	ctx := context.Background()
	c := corev1.Container{Name: "main", Image: helloModule(t),
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}}},
		LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
	}
	_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "unprobed"},
		Spec:       corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{c}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "the container ready, and two ProbeNotRun events", func() (bool, string) {
		p, err := admin.CoreV1().Pods("default").Get(ctx, "unprobed", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=unprobed,reason=" + EventProbeNotRun})
		if err != nil {
			return false, err.Error()
		}
		var msgs []string
		for _, ev := range evs.Items {
			msgs = append(msgs, ev.Message)
		}
		slices.Sort(msgs)
		want := []string{
			"Liveness probe not run: this container has no network to reach (a wasm guest)",
			"Readiness probe not run: this container cannot run processes (a wasm guest)",
		}
		ready := len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
		return ready && slices.Equal(msgs, want), fmt.Sprintf("ready %v, events %q", ready, msgs)
	})
}
