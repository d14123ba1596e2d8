package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/scheduler"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// startScheduler runs a scheduler against c until the test ends.
func startScheduler(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	startSchedulerWith(t, c, scheduler.Options{Binders: 16})
}

// startSchedulerWith runs a scheduler with opts against c until the test
// ends.
func startSchedulerWith(t *testing.T, c *testcluster.Cluster, opts scheduler.Options) {
	t.Helper()
	client := c.Client(t)
	factory := informers.NewSharedInformerFactory(client, 0)
	s, err := scheduler.New(client, factory, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler Run: %v", err)
		}
		factory.Shutdown()
	})
}

type nodeSpec struct {
	name           string
	cpu, mem, pods string
	labels         map[string]string
}

// createNode registers a simulated node: the Node object, then its status
// (Ready, allocatable) as a node agent would report it.
func createNode(t *testing.T, client kubernetes.Interface, ns nodeSpec) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{
		corev1.LabelHostname:                       ns.name,
		corev1.LabelArchStable:                     "amd64",
		scheduler.RuntimeClassLabelPrefix + "wasm": "true",
	}
	for k, v := range ns.labels {
		labels[k] = v
	}
	n, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns.name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", ns.name, err)
	}
	if ns.cpu == "" {
		ns.cpu = "4"
	}
	if ns.mem == "" {
		ns.mem = "8Gi"
	}
	if ns.pods == "" {
		ns.pods = "110"
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(ns.cpu),
		corev1.ResourceMemory: resource.MustParse(ns.mem),
		corev1.ResourcePods:   resource.MustParse(ns.pods),
	}
	n.Status = corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node %s status: %v", ns.name, err)
	}
}

func createPod(t testing.TB, client kubernetes.Interface, name string, opts ...func(*corev1.Pod)) {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	for _, o := range opts {
		o(p)
	}
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
}

func requests(cpu, mem string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		rl := corev1.ResourceList{}
		if cpu != "" {
			rl[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			rl[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		p.Spec.Containers[0].Resources.Requests = rl
	}
}

func selector(k, v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{k: v} }
}

// eventually polls f for up to a minute.
func eventually(t *testing.T, what string, f func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last error
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, err := f(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within a minute (last error: %v)", what, last)
	}
}

// waitBound waits for pod name to have a node and returns it.
func waitBound(t *testing.T, client kubernetes.Interface, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, "pod "+name+" bound", func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Spec.NodeName != "", nil
	})
	return pod
}

// waitUnschedulable waits for pod name's PodScheduled=False condition with
// reason Unschedulable and message msg.
func waitUnschedulable(t *testing.T, client kubernetes.Interface, name, msg string) {
	t.Helper()
	eventually(t, fmt.Sprintf("pod %s Unschedulable with %q", name, msg), func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			t.Fatalf("pod %s was bound to %s", name, p.Spec.NodeName)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				return c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && c.Message == msg,
					fmt.Errorf("condition %s/%s %q", c.Status, c.Reason, c.Message)
			}
		}
		return false, nil
	})
}

// waitEvent waits for an event about pod name with reason, type and message.
func waitEvent(t *testing.T, client kubernetes.Interface, name, eventType, reason, msg string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s event %q for %s", reason, msg, name), func(ctx context.Context) (bool, error) {
		evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Type == eventType && e.Message == msg && e.Source.Component == corev1.DefaultSchedulerName &&
				e.InvolvedObject.Kind == "Pod" {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events, none matching", len(evs.Items))
	})
}

func TestSchedulesToFittingNodes(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	createNode(t, client, nodeSpec{name: "ssd-1", labels: map[string]string{"disk": "ssd"}})
	createNode(t, client, nodeSpec{name: "hdd-1", labels: map[string]string{"disk": "hdd"}})
	createNode(t, client, nodeSpec{name: "tiny", cpu: "100m", mem: "64Mi"})
	createNode(t, client, nodeSpec{name: "runc-1", labels: map[string]string{scheduler.RuntimeClassLabelPrefix + "runc": "true"}})
	// A class of one's own runs on the nodes of its handler.
	if _, err := client.NodeV1().RuntimeClasses().Create(context.Background(), &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "oci"}, Handler: "runc"}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startScheduler(t, c)

	createPod(t, client, "on-ssd", selector("disk", "ssd"))
	createPod(t, client, "big", requests("2", "1Gi"), selector("disk", "hdd"))
	createPod(t, client, "container", func(p *corev1.Pod) { rc := "runc"; p.Spec.RuntimeClassName = &rc })
	createPod(t, client, "pinned", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"tiny"}}},
			}}},
		}}
	})
	createPod(t, client, "oci-container", func(p *corev1.Pod) { rc := "oci"; p.Spec.RuntimeClassName = &rc })
	createPod(t, client, "not-ours", func(p *corev1.Pod) { p.Spec.SchedulerName = "other-scheduler" })

	for pod, want := range map[string]string{"on-ssd": "ssd-1", "big": "hdd-1", "container": "runc-1", "oci-container": "runc-1", "pinned": "tiny"} {
		p := waitBound(t, client, pod)
		if p.Spec.NodeName != want {
			t.Errorf("pod %s on %s, want %s", pod, p.Spec.NodeName, want)
		}
		scheduled := false
		for _, c := range p.Status.Conditions {
			scheduled = scheduled || (c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue)
		}
		if !scheduled {
			t.Errorf("pod %s has no PodScheduled=True: %+v", pod, p.Status.Conditions)
		}
	}
	waitEvent(t, client, "on-ssd", corev1.EventTypeNormal, "Scheduled", "Successfully assigned default/on-ssd to ssd-1")
	if p, err := client.CoreV1().Pods("default").Get(context.Background(), "not-ours", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Errorf("pod of another scheduler: node %q, err %v", p.Spec.NodeName, err)
	}
}

func TestUnschedulableUntilANodeFits(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	createNode(t, client, nodeSpec{name: "hdd-1", labels: map[string]string{"disk": "hdd"}})
	createNode(t, client, nodeSpec{name: "hdd-2", labels: map[string]string{"disk": "hdd"}})
	createNode(t, client, nodeSpec{name: "ssd-small", mem: "1Gi", labels: map[string]string{"disk": "ssd"}})
	startScheduler(t, c)

	createPod(t, client, "hungry", selector("disk", "ssd"), requests("", "2Gi"))
	msg := "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector."
	waitUnschedulable(t, client, "hungry", msg)
	waitEvent(t, client, "hungry", corev1.EventTypeWarning, "FailedScheduling", msg)

	createNode(t, client, nodeSpec{name: "ssd-big", mem: "8Gi", labels: map[string]string{"disk": "ssd"}})
	if p := waitBound(t, client, "hungry"); p.Spec.NodeName != "ssd-big" {
		t.Errorf("bound to %s, want ssd-big", p.Spec.NodeName)
	}
}

func TestDeletedPodMakesRoom(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	createNode(t, client, nodeSpec{name: "only", cpu: "1"})
	startScheduler(t, c)

	createPod(t, client, "first", requests("800m", ""))
	waitBound(t, client, "first")
	createPod(t, client, "second", requests("800m", ""))
	waitUnschedulable(t, client, "second", "0/1 nodes are available: 1 Insufficient cpu.")
	if err := client.CoreV1().Pods("default").Delete(context.Background(), "first", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	if p := waitBound(t, client, "second"); p.Spec.NodeName != "only" {
		t.Errorf("bound to %s", p.Spec.NodeName)
	}
}

func TestKubectlCordon(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	createNode(t, client, nodeSpec{name: "n1"})
	createNode(t, client, nodeSpec{name: "n2"})
	dir := t.TempDir()
	testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "cordon", "n1")
	startScheduler(t, c)

	for i := range 10 {
		createPod(t, client, fmt.Sprint("web-", i))
	}
	createPod(t, client, "wants-n1", selector(corev1.LabelHostname, "n1"))
	for i := range 10 {
		if p := waitBound(t, client, fmt.Sprint("web-", i)); p.Spec.NodeName != "n2" {
			t.Errorf("pod web-%d on cordoned %s", i, p.Spec.NodeName)
		}
	}
	waitUnschedulable(t, client, "wants-n1",
		"0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable.")

	// Uncordoning (a live node update) lets the waiting pod on.
	testenv.MustKubectl(t, c.Kubeconfig(), dir, "", "uncordon", "n1")
	if p := waitBound(t, client, "wants-n1"); p.Spec.NodeName != "n1" {
		t.Errorf("wants-n1 bound to %s", p.Spec.NodeName)
	}
}

func TestManyPods(t *testing.T) {
	const nodes, pods = 50, 300
	c := testcluster.Start(t)
	client := c.Client(t)
	for i := range nodes {
		// Room for 7 pods of 100m each: 350 places for 300 pods, so
		// overcommitting a node (a lost assumption) would show.
		createNode(t, client, nodeSpec{name: fmt.Sprintf("edge-%02d", i), cpu: "700m", mem: "4Gi", pods: "20"})
	}
	startScheduler(t, c)

	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < pods; i += 8 {
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%03d", i), Namespace: "default"},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
				}
				requests("100m", "64Mi")(p)
				if _, err := client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
					t.Errorf("create %s: %v", p.Name, err)
				}
			}
		})
	}
	wg.Wait()
	var list *corev1.PodList
	eventually(t, "all pods bound", func(ctx context.Context) (bool, error) {
		var err error
		list, err = client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound := 0
		for _, p := range list.Items {
			if p.Spec.NodeName != "" {
				bound++
			}
		}
		return bound == pods, fmt.Errorf("%d of %d bound", bound, pods)
	})
	t.Logf("%d pods on %d nodes bound %v after the first create", pods, nodes, time.Since(start))

	perNode := map[string]int64{}
	for _, p := range list.Items {
		perNode[p.Spec.NodeName] += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
	}
	for n, cpu := range perNode {
		if cpu > 700 {
			t.Errorf("node %s has %dm cpu requested, allocatable 700m", n, cpu)
		}
	}
	// Every pod fit at its first attempt, and no binding was ever refused
	// (a second binding of a pod would be).
	evs, err := client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "reason=FailedScheduling"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		t.Errorf("FailedScheduling for %s: %s", e.InvolvedObject.Name, e.Message)
	}
}
