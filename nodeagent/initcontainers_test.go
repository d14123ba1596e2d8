package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// initPod is podWith's pod with init containers named inits before its
// app containers; a name starting with "side" is a sidecar.
func initPod(policy corev1.RestartPolicy, inits []string, apps ...string) *corev1.Pod {
	p := podWith(policy, apps...)
	always := corev1.ContainerRestartPolicyAlways
	for _, n := range inits {
		c := corev1.Container{Name: n, Image: n + ":v1"}
		if strings.HasPrefix(n, "side") {
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	return p
}

func TestPodStatusInitContainers(t *testing.T) {
	running := ContainerRecord{Running: true, StartedAt: t0.Add(-time.Minute), ImageID: "sha256:ab"}
	done := ContainerRecord{Last: exited(0, time.Second), ImageID: "sha256:cd"}
	two := []string{"i1", "i2"}
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		recs  map[string]ContainerRecord
		phase corev1.PodPhase
		ready bool
		// states: the init containers' then the app containers'
		// (running, waiting:<reason>, terminated:<reason>)
		states     string
		incomplete string // the Initialized condition's message; "" when True
	}{
		{"nothing created yet", initPod(corev1.RestartPolicyAlways, two, "a"), nil, corev1.PodPending, false,
			"waiting:PodInitializing,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"first running", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": running}, corev1.PodPending, false,
			"running,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"second pulling", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": {WaitingReason: ReasonErrImagePull}}, corev1.PodPending, false,
			"terminated:Completed,waiting:ErrImagePull|waiting:PodInitializing", "[i2]"},
		{"second crash-looping", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": {Last: exited(2, time.Second), Restarts: 1}}, corev1.PodPending, false,
			"terminated:Completed,waiting:CrashLoopBackOff|waiting:PodInitializing", "[i2]"},
		{"initialized", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": done}, corev1.PodPending, false,
			"terminated:Completed,terminated:Completed|waiting:PodInitializing", ""},
		{"app running", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"i1": done, "i2": done, "a": running}, corev1.PodRunning, true,
			"terminated:Completed,terminated:Completed|running", ""},
		{"app ran, init records gone", initPod(corev1.RestartPolicyAlways, two, "a"), map[string]ContainerRecord{"a": running}, corev1.PodRunning, true,
			"waiting:PodInitializing,waiting:PodInitializing|running", ""},
		{"never: init failed", initPod(corev1.RestartPolicyNever, two, "a"), map[string]ContainerRecord{"i1": {Last: exited(3, time.Second)}}, corev1.PodFailed, false,
			"terminated:Error,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"on failure: init failed", initPod(corev1.RestartPolicyOnFailure, two, "a"), map[string]ContainerRecord{"i1": {Last: exited(3, time.Second), Restarts: 1}}, corev1.PodPending, false,
			"waiting:CrashLoopBackOff,waiting:PodInitializing|waiting:PodInitializing", "[i1 i2]"},
		{"sidecar not started", initPod(corev1.RestartPolicyAlways, []string{"side", "i1"}, "a"), nil, corev1.PodPending, false,
			"waiting:PodInitializing,waiting:PodInitializing|waiting:PodInitializing", "[side i1]"},
		{"sidecar beside the app", initPod(corev1.RestartPolicyAlways, []string{"side", "i1"}, "a"), map[string]ContainerRecord{"side": running, "i1": done, "a": running}, corev1.PodRunning, true,
			"running,terminated:Completed|running", ""},
		{"sidecar restarting beside the app", initPod(corev1.RestartPolicyAlways, []string{"side"}, "a"), map[string]ContainerRecord{"side": {Last: exited(1, time.Second), Restarts: 1}, "a": {Running: true, Last: exited(1, time.Second), Restarts: 1}}, corev1.PodRunning, false,
			"waiting:CrashLoopBackOff|running", ""},
		{"job done, sidecar stopping", initPod(corev1.RestartPolicyNever, []string{"side"}, "a"), map[string]ContainerRecord{"side": running, "a": done}, corev1.PodRunning, false,
			"running|terminated:Completed", ""},
		{"job done, sidecar stopped", initPod(corev1.RestartPolicyNever, []string{"side"}, "a"), map[string]ContainerRecord{"side": {Last: exited(137, time.Second)}, "a": done}, corev1.PodSucceeded, false,
			"terminated:Error|terminated:Completed", ""},
	} {
		st := PodStatus(tc.pod, tc.recs, t0.Add(time.Second))
		state := func(list []corev1.ContainerStatus) string {
			var got []string
			for _, cs := range list {
				switch {
				case cs.State.Running != nil:
					got = append(got, "running")
				case cs.State.Waiting != nil:
					got = append(got, "waiting:"+cs.State.Waiting.Reason)
				case cs.State.Terminated != nil:
					got = append(got, "terminated:"+cs.State.Terminated.Reason)
				}
			}
			return strings.Join(got, ",")
		}
		states := state(st.InitContainerStatuses) + "|" + state(st.ContainerStatuses)
		init, ready := podCondition(st, corev1.PodInitialized), podCondition(st, corev1.PodReady)
		incomplete := ""
		if init.Status == corev1.ConditionFalse {
			incomplete = strings.TrimPrefix(init.Message, "containers with incomplete status: ")
			if init.Reason != "ContainersNotInitialized" {
				t.Errorf("%s: Initialized False with reason %q", tc.name, init.Reason)
			}
		}
		if st.Phase != tc.phase || (ready.Status == corev1.ConditionTrue) != tc.ready || states != tc.states || incomplete != tc.incomplete {
			t.Errorf("%s: phase %s ready %s states %s incomplete %q; want %s %v %s %q", tc.name, st.Phase, ready.Status, states, incomplete, tc.phase, tc.ready, tc.states, tc.incomplete)
		}
		for i, cs := range st.InitContainerStatuses {
			wantReady := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 || isSidecar(&tc.pod.Spec.InitContainers[i]) && cs.State.Running != nil
			if cs.Ready != wantReady || cs.Started == nil || *cs.Started != (cs.State.Running != nil) || cs.Image != cs.Name+":v1" {
				t.Errorf("%s: init container status %+v", tc.name, cs)
			}
		}
	}
}

// TestInitContainers runs pods with init containers on wazero through the
// API: in order, each to completion, before the app container; a failed
// one fails a Never pod and is restarted (the app container not started)
// in an Always pod; their statuses, conditions, events and logs; sidecars
// beside the app container, stopped when a job's is done; and an
// agent restarted while the app container runs does not run them again.
func TestInitContainers(t *testing.T) {
	hello := helloModule(t)
	api, admin := joinedNode(t, "edge-1")
	ctx := context.Background()
	rt, err := wasm.New(ctx, wasm.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	mc, err := NewModuleCache(t.TempDir(), nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A minute before pulling again: the missing module stays ErrImagePull.
	newPods := func() *Pods {
		return &Pods{API: api, Runtime: rt, Modules: mc, Dir: dir, Config: validConfig(), PullRetry: time.Minute}
	}
	stop := runPods(ctx, api, "edge-1", newPods())
	defer func() { stop() }()

	// once prints greeting once and exits 0; bad exits 2.
	once := func(name, greeting string) corev1.Container {
		return corev1.Container{Name: name, Image: hello, Args: []string{greeting},
			Env: []corev1.EnvVar{{Name: "HELLO_COUNT", Value: "1"}}}
	}
	bad := corev1.Container{Name: "bad", Image: hello, Env: []corev1.EnvVar{{Name: "HELLO_INTERVAL", Value: "bad"}}}
	app := corev1.Container{Name: "app", Image: fileImage(t, "examples/tiny/tiny.wasm")}
	always := corev1.ContainerRestartPolicyAlways
	side := corev1.Container{Name: "side", Image: app.Image, RestartPolicy: &always}
	mk := func(name string, policy corev1.RestartPolicy, app corev1.Container, inits ...corev1.Container) {
		t.Helper()
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: "edge-1", RestartPolicy: policy,
				InitContainers: inits, Containers: []corev1.Container{app}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("crashloop", corev1.RestartPolicyAlways, app, once("first", "one"), bad)
	mk("ordered", corev1.RestartPolicyAlways, app, once("first", "one"), once("second", "two"))
	mk("failed", corev1.RestartPolicyNever, app, bad, once("second", "two"))
	mk("missing", corev1.RestartPolicyAlways, app, corev1.Container{Name: "gone", Image: hello + ".missing"})
	mk("sidecar", corev1.RestartPolicyAlways, app, side, once("first", "one"))
	jobInits := []corev1.Container{side}
	for _, name := range []string{"side2", "side3", "side4"} {
		c := side
		c.Name = name
		jobInits = append(jobInits, c)
	}
	mk("job", corev1.RestartPolicyNever, once("app", "done"), jobInits...)
	mk("killed", corev1.RestartPolicyAlways, app, jobInits[:3]...)

	waitPod := func(name string, ok func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			p, err := admin.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err == nil && ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s never got there: %v (status %+v)", name, err, p.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	condition := func(p *corev1.Pod, typ corev1.PodConditionType) corev1.PodCondition {
		for _, c := range p.Status.Conditions {
			if c.Type == typ {
				return c
			}
		}
		return corev1.PodCondition{}
	}
	appRunning := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	}

	ordered := waitPod("ordered", appRunning)
	ics := ordered.Status.InitContainerStatuses
	if len(ics) != 2 || ics[0].Name != "first" || ics[1].Name != "second" {
		t.Fatalf("init container statuses: %+v", ics)
	}
	for _, cs := range ics {
		if term := cs.State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" || !cs.Ready || cs.RestartCount != 0 || !strings.HasPrefix(cs.ImageID, "sha256:") {
			t.Errorf("completed init container: %+v", cs)
		}
	}
	first, second := ics[0].State.Terminated, ics[1].State.Terminated
	appStart := ordered.Status.ContainerStatuses[0].State.Running.StartedAt
	if second.StartedAt.Before(&first.FinishedAt) || appStart.Before(&second.FinishedAt) {
		t.Errorf("out of order: first %v-%v, second %v-%v, app from %v", first.StartedAt, first.FinishedAt, second.StartedAt, second.FinishedAt, appStart)
	}
	if c := condition(ordered, corev1.PodInitialized); c.Status != corev1.ConditionTrue {
		t.Errorf("Initialized: %+v", c)
	}
	if c := condition(ordered, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Errorf("Ready: %+v", c)
	}
	podDir := filepath.Join(dir, string(ordered.UID))
	for name, want := range map[string]string{"first": "one #1", "second": "two #1"} {
		var out strings.Builder
		if err := podlogs.Read(ctx, logPath(podDir, name, 0), podlogs.ReadOptions{Tail: -1}, &out); err != nil || !strings.HasPrefix(out.String(), want) {
			t.Errorf("log of %s: %q %v, want %q…", name, out.String(), err, want)
		}
	}
	if run, err := LogInstance(ordered, "second", false); err != nil || run != (LogRun{}) {
		t.Errorf("log instance of a completed init container: %+v %v", run, err)
	}

	failed := waitPod("failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if ics := failed.Status.InitContainerStatuses; len(ics) != 2 || ics[0].State.Terminated == nil || ics[0].State.Terminated.ExitCode != 2 ||
		ics[0].State.Terminated.Reason != "Error" || ics[1].State.Waiting == nil || ics[1].State.Waiting.Reason != ReasonPodInitializing {
		t.Errorf("failed pod's init containers: %+v", ics)
	}
	if c := condition(failed, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotInitialized" || c.Message != "containers with incomplete status: [bad second]" {
		t.Errorf("failed pod's Initialized: %+v", c)
	}
	waitPod("missing", func(p *corev1.Pod) bool {
		ics := p.Status.InitContainerStatuses
		return p.Status.Phase == corev1.PodPending && len(ics) == 1 && ics[0].State.Waiting != nil && ics[0].State.Waiting.Reason == ReasonErrImagePull
	})
	crash := waitPod("crashloop", func(p *corev1.Pod) bool {
		ics := p.Status.InitContainerStatuses
		return len(ics) == 2 && ics[1].RestartCount >= 1 && ics[1].State.Waiting != nil && ics[1].State.Waiting.Reason == ReasonCrashLoopBackOff
	})
	if crash.Status.Phase != corev1.PodPending || crash.Status.ContainerStatuses[0].State.Waiting == nil || crash.Status.InitContainerStatuses[0].RestartCount != 0 {
		t.Errorf("crash-looping init container's pod: %+v", crash.Status)
	}
	if _, err := os.Stat(logPath(filepath.Join(dir, string(crash.UID)), "app", 0)); !os.IsNotExist(err) {
		t.Errorf("the app container ran before its pod was initialized: %v", err)
	}

	// A sidecar runs beside the app container, started before the init
	// container after it; it stops once a job's app container is done.
	sidecar := waitPod("sidecar", appRunning)
	if ics := sidecar.Status.InitContainerStatuses; len(ics) != 2 || ics[0].State.Running == nil || !ics[0].Ready || ics[1].State.Terminated == nil ||
		ics[1].State.Terminated.StartedAt.Before(&ics[0].State.Running.StartedAt) {
		t.Errorf("sidecar pod's init containers: %+v", ics)
	}
	if c := condition(sidecar, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Errorf("sidecar pod's Ready: %+v", c)
	}
	job := waitPod("job", func(p *corev1.Pod) bool {
		ics := p.Status.InitContainerStatuses
		return p.Status.Phase == corev1.PodSucceeded && len(ics) == 4 &&
			!slices.ContainsFunc(ics, func(cs corev1.ContainerStatus) bool { return cs.State.Terminated == nil })
	})
	if cs := job.Status.ContainerStatuses; cs[0].State.Terminated == nil || cs[0].State.Terminated.Reason != "Completed" {
		t.Errorf("job's app container: %+v", cs)
	}
	// As the kubelet stops them, the job's sidecars stopped one at a
	// time, the last first; a deleted pod's app container stops first,
	// then its sidecars so.
	killOrder := func(pod string) []string {
		t.Helper()
		kills, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod + ",reason=" + EventKilling})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(kills.Items, func(a, b corev1.Event) int {
			ra, _ := strconv.Atoi(a.ResourceVersion)
			rb, _ := strconv.Atoi(b.ResourceVersion)
			return ra - rb
		})
		var order []string
		for _, e := range kills.Items {
			order = append(order, e.InvolvedObject.FieldPath)
		}
		return order
	}
	if order, want := killOrder("job"), []string{"spec.initContainers{side4}", "spec.initContainers{side3}", "spec.initContainers{side2}", "spec.initContainers{side}"}; !slices.Equal(order, want) {
		t.Errorf("the job's sidecars stopped in the order %q, want %q", order, want)
	}
	waitPod("killed", func(p *corev1.Pod) bool {
		return appRunning(p) && !slices.ContainsFunc(p.Status.InitContainerStatuses, func(cs corev1.ContainerStatus) bool { return cs.State.Running == nil })
	})
	if err := admin.CoreV1().Pods("default").Delete(ctx, "killed", metav1.DeleteOptions{GracePeriodSeconds: new(int64(5))}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "pod killed gone", func() (bool, string) {
		_, err := admin.CoreV1().Pods("default").Get(ctx, "killed", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if order, want := killOrder("killed"), []string{"spec.containers{app}", "spec.initContainers{side3}", "spec.initContainers{side2}", "spec.initContainers{side}"}; !slices.Equal(order, want) {
		t.Errorf("the deleted pod's containers stopped in the order %q, want %q", order, want)
	}

	evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=ordered"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs.Items {
		seen[e.InvolvedObject.FieldPath+"/"+e.Reason] = true
	}
	for _, want := range []string{"spec.initContainers{first}/Pulled", "spec.initContainers{first}/Started", "spec.initContainers{second}/Created", "spec.containers{app}/Started"} {
		if !seen[want] {
			t.Errorf("no %s event (have %v)", want, seen)
		}
	}

	// The agent restarts (its wasm guests stop with it): the app
	// container runs again, the init containers do not.
	stop()
	stop = runPods(ctx, api, "edge-1", newPods())
	again := waitPod("ordered", func(p *corev1.Pod) bool {
		return appRunning(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	for _, cs := range again.Status.InitContainerStatuses {
		if cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" {
			t.Errorf("init container after an agent restart: %+v", cs)
		}
		if _, err := os.Stat(logPath(podDir, cs.Name, 1)); !os.IsNotExist(err) {
			t.Errorf("init container %s ran again after an agent restart: %v", cs.Name, err)
		}
	}
}

// TestKubectlInitContainers: what the real kubectl shows of pods with init
// containers run by an agent: `kubectl get`'s STATUS and READY while they
// run, fail, crash-loop and cannot be pulled, and `kubectl logs` of an init
// container (followed while it runs) and of all containers.
func TestKubectlInitContainers(t *testing.T) {
	hello := helloModule(t)
	cp := testcluster.Start(t)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), "edge-1", t.TempDir()
	cfg.AllowFileModules = true
	runAgent(t, cfg)
	dir := t.TempDir()
	// Each init container of slow prints 30 lines, 100ms apart.
	pod := func(name, policy, inits string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  nodeName: edge-1
  restartPolicy: ` + policy + `
  initContainers:` + inits + `
  containers:
    - {name: app, image: "` + fileImage(t, "examples/tiny/tiny.wasm") + `"}
---
`
	}
	slow := func(name, greeting string) string {
		return `
    - name: ` + name + `
      image: "` + hello + `"
      args: [` + greeting + `]
      env: [{name: HELLO_COUNT, value: "30"}, {name: HELLO_INTERVAL, value: 100ms}]`
	}
	bad := `
    - name: bad
      image: "` + hello + `"
      env: [{name: HELLO_INTERVAL, value: bad}]`
	testenv.MustKubectl(t, cp.Kubeconfig(), dir, pod("slow", "Always", slow("first", "one")+slow("second", "two"))+
		pod("failed", "Never", bad)+pod("crash", "Always", bad)+
		pod("missing", "Always", "\n    - {name: gone, image: \""+hello+".missing\"}"), "apply", "-f", "-")

	// status waits for kubectl get to show the pod with ready and one of
	// statuses.
	status := func(name, ready string, statuses ...string) {
		t.Helper()
		var got string
		eventually(t, "kubectl get pod "+name+" shows "+ready+" "+strings.Join(statuses, " or "), 60*time.Second, func() bool {
			out, err := testenv.RunKubectl(t, cp.Kubeconfig(), dir, "", "get", "pod", name, "--no-headers")
			f := strings.Fields(out)
			got = out
			return err == nil && len(f) >= 3 && f[1] == ready && slices.Contains(statuses, f[2])
		})
		t.Logf("kubectl get pod %s: %s", name, strings.TrimSpace(got))
	}
	status("slow", "0/1", "Init:0/2")
	// Following a running init container's log ends when it completes,
	// with all of it.
	var followed string
	eventually(t, "kubectl logs -f slow -c first", 60*time.Second, func() bool {
		out, err := testenv.RunKubectl(t, cp.Kubeconfig(), dir, "", "logs", "-f", "slow", "-c", "first")
		followed = out
		return err == nil
	})
	if !strings.Contains(followed, "\none #30 ") {
		t.Errorf("kubectl logs -f -c first:\n%s", followed)
	}
	status("slow", "0/1", "Init:1/2")
	status("slow", "1/1", "Running")
	status("failed", "0/1", "Init:Error")
	status("crash", "0/1", "Init:CrashLoopBackOff")
	// The missing module fails to pull, then backs off (as the kubelet's).
	status("missing", "0/1", "Init:ErrImagePull", "Init:ImagePullBackOff")

	out := testenv.MustKubectl(t, cp.Kubeconfig(), dir, "", "logs", "slow", "-c", "first")
	if !strings.HasPrefix(out, "one #1 ") || !strings.Contains(out, "\none #30 ") {
		t.Errorf("kubectl logs -c first:\n%s", out)
	}
	out = testenv.MustKubectl(t, cp.Kubeconfig(), dir, "", "logs", "slow", "--all-containers")
	for _, want := range []string{"one #30 ", "two #30 ", "tiny: up"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl logs --all-containers: no %q in\n%s", want, out)
		}
	}
	if out := testenv.MustKubectl(t, cp.Kubeconfig(), dir, "", "logs", "failed", "-c", "bad"); !strings.Contains(out, "HELLO_INTERVAL") {
		t.Errorf("kubectl logs -c bad of a failed init container:\n%s", out)
	}
	if out, err := testenv.RunKubectl(t, cp.Kubeconfig(), dir, "", "logs", "failed", "-c", "app"); err == nil || !strings.Contains(out, "PodInitializing") {
		t.Errorf("kubectl logs of an app container never started: %v\n%s", err, out)
	}
}
