package nodeagent

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

func TestLogInstance(t *testing.T) {
	term := &corev1.ContainerStateTerminated{ExitCode: 2}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	waiting := func(reason string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	pod := func(cs ...corev1.ContainerStatus) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
		p.Status.ContainerStatuses = cs
		return p
	}
	st := func(state corev1.ContainerState, restarts int32, last *corev1.ContainerStateTerminated) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "c", State: state, RestartCount: restarts, LastTerminationState: corev1.ContainerState{Terminated: last}}
	}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		container string
		previous  bool
		want      LogRun
		err       string
	}{
		{name: "first run", pod: pod(st(running, 0, nil)), want: LogRun{Attempt: 0, Running: true}},
		{name: "restarted run", pod: pod(st(running, 3, term)), want: LogRun{Attempt: 3, Running: true}},
		{name: "previous of a restarted run", pod: pod(st(running, 3, term)), previous: true, want: LogRun{Attempt: 2}},
		{name: "crash loop shows the last run", pod: pod(st(waiting(ReasonCrashLoopBackOff), 1, term)), want: LogRun{Attempt: 1}},
		{name: "crash loop previous is the last run", pod: pod(st(waiting(ReasonCrashLoopBackOff), 1, term)), previous: true, want: LogRun{Attempt: 1}},
		{name: "finished for good", pod: pod(st(corev1.ContainerState{Terminated: term}, 0, nil)), want: LogRun{Attempt: 0}},
		{name: "no previous run", pod: pod(st(running, 0, nil)), previous: true, err: `previous terminated container "c" in pod "p" not found`},
		{name: "not reported yet", pod: pod(), err: `container "c" in pod "p" is waiting to start: ContainerCreating`},
		{name: "creating", pod: pod(st(waiting(ReasonContainerCreating), 0, nil)), err: `container "c" in pod "p" is waiting to start: ContainerCreating`},
		{name: "image", pod: pod(st(waiting(ReasonErrImagePull), 0, nil)), err: `container "c" in pod "p" is waiting to start: image can't be pulled`},
		{name: "invalid module", pod: pod(st(waiting(ReasonInvalidModule), 0, nil)), err: `container "c" in pod "p" is waiting to start: InvalidModule`},
		{name: "unknown container", pod: pod(st(running, 0, nil)), container: "x", err: `container "x" in pod "p" is not available`},
		{name: "init container not reported yet", pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "i"}}}},
			container: "i", err: `container "i" in pod "p" is waiting to start: ContainerCreating`},
		{name: "completed init container", pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: "i", State: corev1.ContainerState{Terminated: term}}}}},
			container: "i", want: LogRun{Attempt: 0}},
	} {
		c := tc.container
		if c == "" {
			c = "c"
		}
		got, err := LogInstance(tc.pod, c, tc.previous)
		if tc.err != "" {
			var le *nodelink.LogError
			if !errors.As(err, &le) || le.Code != 400 || le.Message != tc.err {
				t.Errorf("%s: got %+v %v, want 400 %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
}

// helloModule builds examples/hello for wasip1 and returns its file image.
func helloModule(t *testing.T) string { return "file://" + wasip1Module(t, "../examples/hello") }

// wasip1Module builds the Go package pkg for wasip1 and returns the
// module's path.
func wasip1Module(t *testing.T, pkg string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".wasm")
	cmd := exec.Command(goTool, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestKubectlLogs runs `kubectl logs` against a control plane and a real
// agent running wasm pods: the options, containers, previous instances,
// follow (ended by the client and by the pod's deletion) and the errors.
func TestKubectlLogs(t *testing.T) {
	image := helloModule(t)
	cp := testcluster.Start(t)
	cfg := Defaults()
	cfg.Server, cfg.TokenFile, cfg.NodeName, cfg.DataDir = cp.URL, cp.NodeToken(), "edge-1", t.TempDir()
	cfg.AllowFileModules = true
	agent, err := NewAgent(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(actx) }()
	t.Cleanup(func() {
		stopAgent()
		if err := <-agentDone; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	ctx := context.Background()
	admin := cp.Client(t)
	dir := t.TempDir()
	kubectl := func(args ...string) (string, error) {
		t.Helper()
		return testenv.RunKubectl(t, cp.Kubeconfig(), dir, "", args...)
	}
	mustKubectl := func(args ...string) string {
		t.Helper()
		return testenv.MustKubectl(t, cp.Kubeconfig(), dir, "", args...)
	}

	hello := func(name string, env ...string) corev1.Container {
		c := corev1.Container{Name: name, Image: image, Env: []corev1.EnvVar{{Name: "HELLO_INTERVAL", Value: "200ms"}}}
		for i := 0; i+1 < len(env); i += 2 {
			c.Env = append(c.Env, corev1.EnvVar{Name: env[i], Value: env[i+1]})
		}
		return c
	}
	mkPod := func(name, node string, cs ...corev1.Container) {
		t.Helper()
		_, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{NodeName: node, RestartPolicy: corev1.RestartPolicyAlways, Containers: cs},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The crash-looping pod first: its 10s restart back-off runs while the
	// rest is checked.
	mkPod("crash", "edge-1", hello("main", "HELLO_INTERVAL", "bad"))
	mkPod("hello", "edge-1", hello("main"))
	mkPod("pending", "", hello("main"))
	mkPod("orphan", "edge-9", hello("main"))
	mkPod("badimage", "edge-1", corev1.Container{Name: "main", Image: image + ".missing"})
	mkPod("doomed", "edge-1", hello("main"))

	waitPod := func(name string, ok func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			p, err := admin.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err == nil && ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s never got there: %+v %v", name, p.Status, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	runningPod := func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil {
				return false
			}
		}
		return len(p.Status.ContainerStatuses) == len(p.Spec.Containers)
	}
	// waitLog polls kubectl logs until its output matches.
	waitLog := func(want *regexp.Regexp, args ...string) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := kubectl(args...)
			if err == nil && want.MatchString(out) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl %s: never matched %s: %v\n%s", strings.Join(args, " "), want, err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitPod("hello", runningPod)
	out := waitLog(regexp.MustCompile(`(?m)^hello from wasmfleet #3 `), "logs", "hello")
	if !strings.HasPrefix(out, "hello from wasmfleet #1 time=") {
		t.Fatalf("logs:\n%s", out)
	}

	t.Run("tail", func(t *testing.T) {
		out := mustKubectl("logs", "hello", "--tail", "1")
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "hello from wasmfleet #") || strings.HasPrefix(out, "hello from wasmfleet #1 ") {
			t.Fatalf("--tail 1:\n%s", out)
		}
		if out := mustKubectl("logs", "hello", "--tail", "0"); out != "" {
			t.Fatalf("--tail 0: %q", out)
		}
	})

	t.Run("timestamps and since", func(t *testing.T) {
		out := mustKubectl("logs", "hello", "--timestamps")
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			ts, rest, _ := strings.Cut(line, " ")
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasPrefix(rest, "hello from wasmfleet #") {
				t.Fatalf("--timestamps line %q", line)
			}
		}
		if out := mustKubectl("logs", "hello", "--since", "1h"); !strings.HasPrefix(out, "hello from wasmfleet #1 ") {
			t.Fatalf("--since 1h:\n%s", out)
		}
		// Only lines stamped at or after T: not #1, printed before it.
		from := time.Now().Add(time.Second).Truncate(time.Second)
		out = waitLog(regexp.MustCompile(`hello from wasmfleet`), "logs", "hello", "--timestamps", "--since-time", from.Format(time.RFC3339))
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			ts, rest, _ := strings.Cut(line, " ")
			stamp, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || stamp.Before(from) || strings.HasPrefix(rest, "hello from wasmfleet #1 ") {
				t.Fatalf("--since-time %s gave %q", from.Format(time.RFC3339), line)
			}
		}
	})

	t.Run("limit bytes", func(t *testing.T) {
		if out := mustKubectl("logs", "hello", "--limit-bytes", "10"); out != "hello from" {
			t.Fatalf("--limit-bytes 10: %q", out)
		}
	})

	t.Run("containers", func(t *testing.T) {
		mkPod("two", "edge-1", func() []corev1.Container {
			a, b := hello("a"), hello("b")
			a.Args, b.Args = []string{"from", "a"}, []string{"from", "b"}
			return []corev1.Container{a, b}
		}()...)
		waitPod("two", runningPod)
		out := waitLog(regexp.MustCompile(`from b #1 `), "logs", "two", "-c", "b")
		if strings.Contains(out, "from a") {
			t.Fatalf("-c b:\n%s", out)
		}
		// kubectl picks the first container itself and says so.
		if out := waitLog(regexp.MustCompile(`from a #1 `), "logs", "two"); !strings.Contains(out, `Defaulted container "a" out of: a, b`) || strings.Contains(out, "from b") {
			t.Fatalf("logs two:\n%s", out)
		}
		// The API itself wants a name.
		wantAPIError(t, admin, "two", &corev1.PodLogOptions{}, 400, "a container name must be specified for pod two, choose one of: [a b]")
		wantAPIError(t, admin, "hello", &corev1.PodLogOptions{Container: "nope"}, 400, "container nope is not valid for pod hello")
		if out, err := kubectl("logs", "hello", "-c", "nope"); err == nil || !strings.Contains(out, "container nope is not valid for pod hello") {
			t.Fatalf("-c nope: %v\n%s", err, out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		wantAPIError(t, admin, "nope", &corev1.PodLogOptions{}, 404, `pods "nope" not found`)
		if out, err := kubectl("logs", "nope"); err == nil || !strings.Contains(out, `pods "nope" not found`) {
			t.Fatalf("logs nope: %v\n%s", err, out)
		}
		// A pod on no node has no log yet: 204, as kube-apiserver's empty
		// log location, and kubectl prints nothing.
		var code int
		if err := admin.CoreV1().Pods("default").GetLogs("pending", &corev1.PodLogOptions{}).Do(context.Background()).StatusCode(&code).Error(); err != nil || code != http.StatusNoContent {
			t.Fatalf("logs of an unscheduled pod: %d %v, want 204", code, err)
		}
		if out, err := kubectl("logs", "pending"); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("kubectl logs pending: %v\n%s", err, out)
		}
		wantAPIError(t, admin, "orphan", &corev1.PodLogOptions{}, 503, `the agent of node "edge-9" is not connected`)
		wantAPIError(t, admin, "hello", &corev1.PodLogOptions{Previous: true}, 400, `previous terminated container "main" in pod "hello" not found`)
		if out, err := kubectl("logs", "hello", "--previous"); err == nil || !strings.Contains(out, `Error from server (BadRequest): previous terminated container "main" in pod "hello" not found`) {
			t.Fatalf("--previous: %v\n%s", err, out)
		}
		// Its image fails to pull, then backs off, as the kubelet's; the
		// log answer says which.
		waitAPIError(t, admin, "badimage", 400, `container "main" in pod "badimage" is waiting to start: image can't be pulled`,
			`container "main" in pod "badimage" is waiting to start: trying and failing to pull image`)
		wantAPIError(t, admin, "hello", &corev1.PodLogOptions{TailLines: ptrTo(int64(-1))}, 422, "must be greater than or equal to 0")
	})

	t.Run("follow", func(t *testing.T) {
		cmd := testenv.KubectlCmd(t, cp.Kubeconfig(), dir, "logs", "-f", "hello", "--tail", "1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		var first string
		for i := 0; i < 3; i++ { // the tail, then lines printed since
			if !lines.Scan() {
				t.Fatalf("follow ended after %d lines: %v", i, lines.Err())
			}
			if i == 0 {
				first = lines.Text()
			} else if lines.Text() == first || !strings.HasPrefix(lines.Text(), "hello from wasmfleet #") {
				t.Fatalf("followed line %q after %q", lines.Text(), first)
			}
		}
		waitFollows(t, agent, 1)
		cmd.Process.Kill()
		cmd.Wait()
		waitFollows(t, agent, 0)
	})

	t.Run("follow ends with the pod", func(t *testing.T) {
		waitPod("doomed", runningPod)
		waitLog(regexp.MustCompile(`#1 `), "logs", "doomed")
		cmd := testenv.KubectlCmd(t, cp.Kubeconfig(), dir, "logs", "-f", "doomed")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() {
			t.Fatalf("no line: %v", lines.Err())
		}
		waitFollows(t, agent, 1)
		// Deleted at once (kubectl delete --force --grace-period=0). A
		// graceful deletion would also end the follow, but can crash the
		// agent's pod worker today: when Sync cancels a worker whose
		// DeletePod confirmation is in flight, Pods.run goes on and may
		// read the stopped container's exit, no longer in running (nil
		// dereference in pods.go).
		if err := admin.CoreV1().Pods("default").Delete(ctx, "doomed", metav1.DeleteOptions{GracePeriodSeconds: ptrTo(int64(0))}); err != nil {
			t.Fatal(err)
		}
		for lines.Scan() {
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("kubectl logs -f ended with %v", err)
		}
		waitFollows(t, agent, 0)
	})

	t.Run("previous", func(t *testing.T) {
		p := waitPod("crash", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil
		})
		restarts := p.Status.ContainerStatuses[0].RestartCount
		want := regexp.MustCompile(`hello: HELLO_INTERVAL="bad"`)
		prev := waitLog(want, "logs", "crash", "--previous", "--timestamps")
		waitLog(want, "logs", "crash")
		// After the restart, --previous is the newer run.
		waitPod("crash", func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses[0]
			return cs.RestartCount > restarts && cs.LastTerminationState.Terminated != nil && cs.State.Running == nil
		})
		next := waitLog(want, "logs", "crash", "--previous", "--timestamps")
		stamp := func(out string) time.Time {
			ts, _, _ := strings.Cut(out, " ")
			t, _ := time.Parse(time.RFC3339Nano, ts)
			return t
		}
		if !stamp(next).After(stamp(prev)) {
			t.Fatalf("--previous after the restart:\n%s\nbefore:\n%s", next, prev)
		}
	})
}

func ptrTo[T any](v T) *T { return &v }

// wantAPIError checks a pods/log request's status code and message.
func wantAPIError(t *testing.T, cs kubernetes.Interface, pod string, o *corev1.PodLogOptions, code int32, msg string) {
	t.Helper()
	err := cs.CoreV1().Pods("default").GetLogs(pod, o).Do(context.Background()).Error()
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Code != code || !strings.Contains(se.Status().Message, msg) {
		t.Fatalf("logs %s %+v: got %v, want %d %q", pod, o, err, code, msg)
	}
}

// waitAPIError polls until a pods/log request fails with code and one of
// msgs.
func waitAPIError(t *testing.T, cs kubernetes.Interface, pod string, code int32, msgs ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := cs.CoreV1().Pods("default").GetLogs(pod, &corev1.PodLogOptions{}).Do(context.Background()).Error()
		var se apierrors.APIStatus
		if errors.As(err, &se) && se.Status().Code == code && slices.Contains(msgs, se.Status().Message) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs %s: got %v, want %d %q", pod, err, code, msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitFollows(t *testing.T, a *Agent, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, f := a.LogStreams(); f == want {
			return
		}
		if time.Now().After(deadline) {
			_, f := a.LogStreams()
			t.Fatalf("agent follows %d log streams, want %d", f, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPruneLogs: starting run N of a container removes the logs of runs
// before N-1, rotated files and an earlier agent's directories included,
// and leaves other containers' logs alone.
func TestPruneLogs(t *testing.T) {
	podDir := t.TempDir()
	files := []string{
		"logs/app/0/container.log", "logs/app/0/container.log.1", // an earlier agent's layout
		"logs/app/1.log", "logs/app/1.log.1", "logs/app/1.log.2",
		"logs/app/2.log", "logs/app/2.log.1",
		"logs/app/3.log",
		"logs/side/0.log",
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(podDir, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(podDir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pruneLogs(podDir, "app", 4); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(podDir, f)); err == nil {
			left = append(left, f)
		}
	}
	if want := []string{"logs/app/3.log", "logs/side/0.log"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if _, err := os.Stat(filepath.Join(podDir, "logs/app/0")); !os.IsNotExist(err) {
		t.Errorf("the old layout's directory is kept: %v", err)
	}
	if err := pruneLogs(podDir, "none", 3); err != nil {
		t.Errorf("a container without logs: %v", err)
	}
}

// TestLogsOfEarlierAgentLayout: a run logged by an agent before the
// <attempt>.log layout (<attempt>/container.log) is still served.
func TestLogsOfEarlierAgentLayout(t *testing.T) {
	dir := t.TempDir()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", UID: "uid-1"},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c", RestartCount: 0,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}}}}
	old := oldLogPath(filepath.Join(dir, "uid-1"), "c", 0)
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("2026-11-26T07:00:00Z stdout F from before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &PodLogs{Dir: dir, Pod: func(ns, name string) (*corev1.Pod, bool) { return pod, ns == "default" && name == "p" }}
	read, err := l.Open(nodelink.LogRequest{Namespace: "default", Pod: "p", Container: "c"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := read(context.Background(), &b); err != nil || b.String() != "from before\n" {
		t.Fatalf("log %q, %v", b.String(), err)
	}
}
