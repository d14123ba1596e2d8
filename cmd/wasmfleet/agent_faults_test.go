package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// helloWasm builds examples/hello for wasip1 and returns a file:// image.
func helloWasm(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hello.wasm")
	cmd := exec.Command(testenv.Tool(t, "go"), "build", "-o", out, "../../examples/hello")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, b)
	}
	return "file://" + out
}

func helloPod(name, node, image string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: node, RuntimeClassName: ptrTo("wasm"),
			Containers: []corev1.Container{{Name: "main", Image: image, Env: env}}},
	}
}

func waitPod(t *testing.T, client kubernetes.Interface, name, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: not %s after 2m (%v, %+v)", name, what, err, p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func isRunning(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
}

// attempts lists the instance directories of a pod's container logs in
// the agent's data dir: one per start of the container.
func attempts(t *testing.T, agentDir string, pod *corev1.Pod) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(agentDir, "pods", string(pod.UID), "logs", "main"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// inProcessAgent runs `wasmfleet agent` in this process until the test ends.
func inProcessAgent(t *testing.T, cp *testcluster.Cluster, node, dir string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"agent", "--server", cp.URL, "--token-file", cp.NodeToken(), "--node-name", node,
			"--data-dir", dir, "--allow-file-modules", "--lease-renew-interval", "1s"}, extra...), &bytes.Buffer{}, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 || t.Failed() {
			t.Logf("agent exited %d:\n%s", code, stderr.String())
		}
		stopGuestHost(t, dir)
	})
}

// binaryAgent returns a func that starts the wasmfleet binary bin as an
// agent of cp named node with data dir dir, each start killed when the
// test ends; the guest host it leaves is stopped then too.
func binaryAgent(t *testing.T, bin string, cp *testcluster.Cluster, node, dir string) func() *exec.Cmd {
	t.Cleanup(func() { stopGuestHost(t, dir) })
	return func() *exec.Cmd {
		cmd := exec.Command(bin, "agent", "--server", cp.URL, "--token-file", cp.NodeToken(), "--node-name", node,
			"--data-dir", dir, "--allow-file-modules", "--lease-renew-interval", "1s")
		var out testenv.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("agent pid %d:\n%s", cmd.Process.Pid, out.String())
			}
		})
		return cmd
	}
}

// TestAgentRidesOutNATSRestart: the control plane (and with it NATS) goes
// away and comes back on the same addresses; the agent reconnects,
// resumes its pod stream and keeps its running pod as it is: not started
// a second time.
func TestAgentRidesOutNATSRestart(t *testing.T) {
	image := helloWasm(t)
	cfg := testcluster.Config(t, t.TempDir())
	cfg.NATSListen = testenv.FreeAddr(t) // the agent's credentials name this address
	cp := testcluster.StartWith(t, cfg)
	client := cp.Client(t)
	agentDir := t.TempDir()
	inProcessAgent(t, cp, "edge-n", agentDir)
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("default").Create(ctx, helloPod("steady", "edge-n", image, corev1.EnvVar{Name: "HELLO_INTERVAL", Value: "200ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := waitPod(t, client, "steady", "Running", isRunning)

	cp.Stop()
	time.Sleep(3 * time.Second) // the agent notices: its lease renewals fail
	cp = testcluster.StartWith(t, cfg)
	client = cp.Client(t)

	// The stream resumes: a pod created after the restart runs.
	if _, err := client.CoreV1().Pods("default").Create(ctx, helloPod("after", "edge-n", image), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, client, "after", "Running", isRunning)
	after := waitPod(t, client, "steady", "still Running", isRunning)
	cs := after.Status.ContainerStatuses[0]
	if cs.RestartCount != 0 || !cs.State.Running.StartedAt.Equal(&before.Status.ContainerStatuses[0].State.Running.StartedAt) {
		t.Errorf("the running pod was restarted: %+v", cs)
	}
	if got := attempts(t, agentDir, after); len(got) != 1 {
		t.Errorf("the pod's container was started %d times: %v", len(got), got)
	}
}

// TestAgentKilledMidStart: the agent process is SIGKILLed while it starts a
// pod; started again on the same data dir, it runs the pod once and reports
// it Running.
func TestAgentKilledMidStart(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	image := helloWasm(t)
	cp := testcluster.Start(t)
	client := cp.Client(t)
	agentDir := t.TempDir()
	start := binaryAgent(t, bin, cp, "edge-k", agentDir)
	first := start()
	ctx := context.Background()
	if _, err := client.CoreV1().Nodes().Get(ctx, "edge-k", metav1.GetOptions{}); err != nil {
		deadline := time.Now().Add(time.Minute)
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			_, err = client.CoreV1().Nodes().Get(ctx, "edge-k", metav1.GetOptions{})
		}
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, helloPod("victim", "edge-k", image, corev1.EnvVar{Name: "HELLO_INTERVAL", Value: "200ms"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The agent has taken the pod up (Pulled: the module is being
	// compiled, or the guest is starting): kill it there.
	deadline := time.Now().Add(time.Minute)
	for {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=victim"})
		if err == nil && len(evs.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not take the pod up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	start()
	p := waitPod(t, client, "victim", "Running after the restart", func(p *corev1.Pod) bool {
		return isRunning(p) && p.Status.ContainerStatuses[0].Ready
	})
	// It prints: the guest really runs.
	logDir := filepath.Join(agentDir, "pods", string(p.UID), "logs", "main")
	deadline = time.Now().Add(time.Minute)
	for {
		var printed bool
		_ = filepath.WalkDir(logDir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(path)
				printed = printed || strings.Contains(string(b), "hello")
			}
			return nil
		})
		if printed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted pod printed nothing")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHugeLogOutputIsBounded: a guest printing as fast as it can fills at
// most log-max-files × log-max-size of the agent's disk, and its latest
// lines are still readable through the API.
func TestHugeLogOutputIsBounded(t *testing.T) {
	image := helloWasm(t)
	cp := testcluster.Start(t)
	client := cp.Client(t)
	agentDir := t.TempDir()
	const maxSize, maxFiles = 64 << 10, 3
	inProcessAgent(t, cp, "edge-l", agentDir, "--log-max-size", "64Ki", "--log-max-files", "3")
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("default").Create(ctx, helloPod("chatty", "edge-l", image, corev1.EnvVar{Name: "HELLO_INTERVAL", Value: "0s"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, client, "chatty", "Running", isRunning)
	logDir := filepath.Join(agentDir, "pods", string(p.UID), "logs")
	usage := func() (total int64, files int) {
		_ = filepath.WalkDir(logDir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					total += fi.Size()
					files++
				}
			}
			return nil
		})
		return total, files
	}
	// Enough output for many rotations.
	deadline := time.Now().Add(time.Minute)
	for atLimit := 0; atLimit < 20; {
		total, files := usage()
		if files == maxFiles {
			atLimit++
		}
		// A record can end past max-size by at most one line.
		if total > maxFiles*(maxSize+16<<10) {
			t.Fatalf("container logs use %d bytes in %d files, bound is %d × %d", total, files, maxFiles, maxSize)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log did not rotate (%d bytes in %d files)", total, files)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tail, err := client.CoreV1().Pods("default").GetLogs("chatty", &corev1.PodLogOptions{TailLines: ptrTo(int64(2))}).DoRaw(ctx)
	if err != nil || strings.Count(string(tail), "\n") != 2 || !strings.Contains(string(tail), "hello") {
		t.Fatalf("kubectl logs --tail=2: %q, %v", tail, err)
	}
}

// TestAgentRestartKeepsGuests: wasm guests run in the guest host, which
// outlives the agent. An agent stopped and started again attaches to its
// running pod (not started a second time, the same start time, no restart
// counted) and the guest printed all along; a pod deleted while the agent
// was away is stopped and removed from the host when it comes back.
func TestAgentRestartKeepsGuests(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	image := helloWasm(t)
	cp := testcluster.Start(t)
	client := cp.Client(t)
	agentDir := t.TempDir()
	start := binaryAgent(t, bin, cp, "edge-r", agentDir)
	stop := func(cmd *exec.Cmd) {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("agent: %v", err)
		}
	}
	ctx := context.Background()
	agent := start()
	interval := corev1.EnvVar{Name: "HELLO_INTERVAL", Value: "100ms"}
	for _, name := range []string{"kept", "doomed"} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, helloPod(name, "edge-r", image, interval), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before := waitPod(t, client, "kept", "Running", isRunning)
	doomed := waitPod(t, client, "doomed", "Running", isRunning)
	logFile := filepath.Join(agentDir, "pods", string(before.UID), "logs", "main", "0.log")
	lines := func() int {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), "\n")
	}

	stop(agent)
	// The guests print on while no agent runs.
	n := lines()
	deadline := time.Now().Add(30 * time.Second)
	for lines() < n+3 {
		if time.Now().After(deadline) {
			t.Fatalf("the guest printed nothing while the agent was away (%d lines in %s)", lines(), logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := client.CoreV1().Pods("default").Delete(ctx, "doomed", metav1.DeleteOptions{GracePeriodSeconds: ptrTo(int64(0))}); err != nil {
		t.Fatal(err)
	}

	start()
	// The doomed pod's guest is removed from the host once the agent
	// knows the node's pods.
	host := wasmhost.NewHost(wasmhost.HostConfig{Config: wasmhost.Config{Dir: agentDir}})
	defer host.Detach()
	deadline = time.Now().Add(time.Minute)
	for {
		ids, err := host.IDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var kept, orphan bool
		for _, id := range ids {
			kept = kept || strings.HasPrefix(id, string(before.UID)+"/")
			orphan = orphan || strings.HasPrefix(id, string(doomed.UID)+"/")
		}
		if !kept {
			t.Fatalf("the host lost the kept pod's guest: %v", ids)
		}
		if !orphan {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted pod's guest is still in the host: %v", ids)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The kept pod's guest was attached, not started again: a status
	// reported by the new agent (its Ready condition is probed afresh)
	// shows the first start.
	after := waitPod(t, client, "kept", "Running", isRunning)
	cs := after.Status.ContainerStatuses[0]
	if cs.RestartCount != 0 || !cs.State.Running.StartedAt.Equal(&before.Status.ContainerStatuses[0].State.Running.StartedAt) {
		t.Errorf("the kept pod was restarted: %+v", cs)
	}
	if got := attempts(t, agentDir, after); len(got) != 1 {
		t.Errorf("the kept pod's container was started %d times: %v", len(got), got)
	}
	// A guest host that dies takes its guests along: the agent reports
	// the container's end and starts it again in a new host.
	pid, err := wasmhost.PID(agentDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := waitPod(t, client, "kept", "Running again after its host died", func(p *corev1.Pod) bool {
		return isRunning(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if last := again.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 137 ||
		!strings.Contains(last.Message, "guest host ended") {
		t.Errorf("the end the host's death gave the container: %+v", last)
	}
	// The restarted agent is in charge: deleting the pod stops its guest.
	if err := client.CoreV1().Pods("default").Delete(ctx, "kept", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		_, err := client.CoreV1().Pods("default").Get(ctx, "kept", metav1.GetOptions{})
		ids, _ := host.IDs(ctx)
		if apierrors.IsNotFound(err) && len(ids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kept pod's deletion: %v; host holds %v", err, ids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
