package components_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

var becameLeader = regexp.MustCompile(`msg="became leader" .*identity=(\S+)`)

// candidate is one `wasmfleet scheduler|controller-manager` process.
type candidate struct {
	cmd *exec.Cmd
	out *testenv.Buffer
}

func (c *candidate) identity() string {
	if m := becameLeader.FindStringSubmatch(c.out.String()); m != nil {
		return m[1]
	}
	return ""
}

func startCandidate(t *testing.T, bin, component, kubeconfig string) *candidate {
	t.Helper()
	c := &candidate{out: &testenv.Buffer{}}
	c.cmd = exec.Command(bin, component, "--kubeconfig", kubeconfig,
		"--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s", "--leader-elect-retry-period", "250ms")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", component, c.cmd.Process.Pid, c.out.String())
		}
	})
	return c
}

func holder(ctx context.Context, client kubernetes.Interface, lease string) string {
	l, err := client.CoordinationV1().Leases("kube-system").Get(ctx, lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func eventually(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLeaderKilledOtherTakesOver runs two schedulers and two controller
// managers as separate processes against one API server: one of each
// leads; SIGKILL of the leader (no chance to release the Lease) hands the
// Lease to the other once it expires, and the new leader does the work.
func TestLeaderKilledOtherTakesOver(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	cp := testcluster.Start(t)
	client := cp.Client(t)
	ctx := context.Background()

	for _, tc := range []struct {
		component, lease string
		proveWork        func(t *testing.T, round int)
	}{
		{"controller-manager", controllers.LeaseName, func(t *testing.T, round int) {
			// The ReplicaSet controller creates the pods.
			name := fmt.Sprintf("rs-%d", round)
			labels := map[string]string{"app": name}
			rs := &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: appsv1.ReplicaSetSpec{
					Replicas: ptrTo(int32(2)),
					Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}},
				},
			}
			if _, err := client.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, name+" has 2 pods", 2*time.Minute, func() bool {
				l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
				return err == nil && len(l.Items) == 2
			})
		}},
		{"scheduler", scheduler.LeaseName, func(t *testing.T, round int) {
			name := fmt.Sprintf("pending-%d", round)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, name+" bound", 2*time.Minute, func() bool {
				p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				return err == nil && p.Spec.NodeName == "edge-1"
			})
		}},
	} {
		t.Run(tc.component, func(t *testing.T) {
			if tc.component == "scheduler" {
				readyNode(t, client, "edge-1", 110)
			}
			a := startCandidate(t, bin, tc.component, cp.Kubeconfig())
			b := startCandidate(t, bin, tc.component, cp.Kubeconfig())
			var leader, other *candidate
			eventually(t, "a leader", 2*time.Minute, func() bool {
				h := holder(ctx, client, tc.lease)
				switch {
				case h != "" && h == a.identity():
					leader, other = a, b
				case h != "" && h == b.identity():
					leader, other = b, a
				}
				return leader != nil
			})
			tc.proveWork(t, 1)
			if other.identity() != "" {
				t.Fatalf("both candidates became leader:\n%s\n---\n%s", a.out.String(), b.out.String())
			}
			killed := leader.identity()
			if err := leader.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = leader.cmd.Wait()
			eventually(t, "the other candidate takes the Lease", 2*time.Minute, func() bool {
				h := holder(ctx, client, tc.lease)
				return h != "" && h != killed && h == other.identity()
			})
			tc.proveWork(t, 2)
		})
	}
}

// readyNode creates a node the scheduler can place up to pods pods on.
func readyNode(t *testing.T, client kubernetes.Interface, name string, pods int) {
	t.Helper()
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"kubernetes.io/hostname": name, "runtime.wasmfleet.io/wasm": "true"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: *resource.NewQuantity(int64(pods), resource.DecimalSI)}
	n.Status = corev1.NodeStatus{Capacity: res, Allocatable: res,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), Reason: "AgentReady"}}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ptrTo[T any](v T) *T { return &v }
