package deployment_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/deployment"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
	"github.com/wasmfleet/wasmfleet/internal/nodesim"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

const ns = "default"

type env struct {
	t       *testing.T
	cluster *testcluster.Cluster
	client  kubernetes.Interface
	dir     string
}

// start runs a control plane, the ReplicaSet and Deployment controllers on
// one informer factory (as the controller manager does) and a simulated
// node that leaves pods with an image containing "unready" not ready.
// wrap, when given, wraps the controllers' HTTP transport.
func start(t *testing.T, wrap ...func(http.RoundTripper) http.RoundTripper) *env {
	t.Helper()
	c := testcluster.Start(t)
	client := c.Client(t)
	cfg := c.RESTConfig(t)
	for _, w := range wrap {
		cfg.Wrap(w)
	}
	ctrlClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	factory := informers.NewSharedInformerFactory(ctrlClient, 0)
	rsc := replicaset.New(ctrlClient, factory, log)
	dc := deployment.New(ctrlClient, factory, log)
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, ctrl := range []interface {
		Run(context.Context, int) error
	}{rsc, dc} {
		wg.Go(func() {
			if err := ctrl.Run(ctx, 2); err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		factory.Shutdown()
	})
	nodesim.Start(t, client, nodesim.Options{Unready: nodesim.ImageContains("unready")})
	return &env{t: t, cluster: c, client: client, dir: t.TempDir()}
}

func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	return testenv.MustKubectl(e.t, e.cluster.Kubeconfig(), e.dir, "", args...)
}

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	l := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func rolling(d *appsv1.Deployment, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	d.Spec.Strategy = appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
	}
	return d
}

func (e *env) create(d *appsv1.Deployment) *appsv1.Deployment {
	e.t.Helper()
	out, err := e.client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) get(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// update changes a Deployment with retries on conflict.
func (e *env) update(name string, change func(*appsv1.Deployment)) {
	e.t.Helper()
	backoff := wait.Backoff{Steps: 100, Duration: 5 * time.Millisecond, Factor: 1.2, Jitter: 0.5, Cap: 200 * time.Millisecond}
	err := retry.RetryOnConflict(backoff, func() error {
		d, err := e.client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = e.client.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last: %v)", what, last)
}

// rolledOut waits for kubectl rollout status to succeed and returns the
// Deployment.
func (e *env) rolledOut(name string) *appsv1.Deployment {
	e.t.Helper()
	out := e.kubectl("rollout", "status", "deployment/"+name, "--timeout=60s")
	if !strings.Contains(out, "successfully rolled out") {
		e.t.Fatalf("rollout status: %s", out)
	}
	// kubectl (as against Kubernetes) is satisfied while a scale-down
	// is still deleting pods; wait for the status to settle too.
	var d *appsv1.Deployment
	waitFor(e.t, "deployment "+name+" status to settle", func() (bool, error) {
		d = e.get(name)
		st := d.Status
		ok := st.ObservedGeneration >= d.Generation && st.Replicas == *d.Spec.Replicas && st.UpdatedReplicas == *d.Spec.Replicas &&
			st.AvailableReplicas == *d.Spec.Replicas && st.ReadyReplicas == *d.Spec.Replicas && st.UnavailableReplicas == 0
		return ok, fmt.Errorf("status %+v", st)
	})
	return d
}

// replicaSets are the ReplicaSets d controls, by revision.
func (e *env) replicaSets(d *appsv1.Deployment) []appsv1.ReplicaSet {
	e.t.Helper()
	list, err := e.client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	slices.SortFunc(out, func(a, b appsv1.ReplicaSet) int { return int(deployment.Revision(&a) - deployment.Revision(&b)) })
	return out
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	return deployment.GetCondition(d.Status, t)
}

// podWatch follows the pods of one app (a list, then a watch from its
// resourceVersion) and calls check with the current pods (deleted ones
// gone) at the start and after every event.
type podWatch struct {
	mu         sync.Mutex
	pods       map[string]*corev1.Pod
	violations []string
	w          watch.Interface
	done       chan struct{}
}

func watchPods(t *testing.T, client kubernetes.Interface, app string, check func(pods map[string]*corev1.Pod) string) *podWatch {
	t.Helper()
	list, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	pw := &podWatch{pods: map[string]*corev1.Pod{}, w: w, done: make(chan struct{})}
	for i := range list.Items {
		pw.pods[list.Items[i].Name] = &list.Items[i]
	}
	if v := check(pw.pods); v != "" {
		pw.violations = append(pw.violations, v)
	}
	go func() {
		defer close(pw.done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			pw.mu.Lock()
			if ev.Type == watch.Deleted {
				delete(pw.pods, p.Name)
			} else {
				pw.pods[p.Name] = p
			}
			if v := check(pw.pods); v != "" {
				pw.violations = append(pw.violations, v)
			}
			pw.mu.Unlock()
		}
	}()
	t.Cleanup(pw.stop)
	return pw
}

func (pw *podWatch) stop() {
	pw.w.Stop()
	<-pw.done
}

func (pw *podWatch) assertNoViolations(t *testing.T) {
	t.Helper()
	pw.stop()
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if len(pw.violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(pw.violations), strings.Join(pw.violations[:min(5, len(pw.violations))], "; "))
	}
}

// counts are the pods not being deleted and those of them that are ready.
func counts(pods map[string]*corev1.Pod) (live, ready int) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		live++
		if replicaset.IsPodReady(p) {
			ready++
		}
	}
	return live, ready
}

func TestCreateBecomesAvailable(t *testing.T) {
	e := start(t)
	d := e.create(newDeployment("web", 3, "hello:1"))
	d = e.rolledOut("web")

	if c := condition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != deployment.ReasonMinimumAvailable {
		t.Errorf("Available = %+v", c)
	}
	if c := condition(d, appsv1.DeploymentProgressing); c == nil || c.Status != corev1.ConditionTrue || c.Reason != deployment.ReasonNewRSAvailable {
		t.Errorf("Progressing = %+v", c)
	}
	if d.Annotations[deployment.RevisionAnnotation] != "1" {
		t.Errorf("deployment revision %q", d.Annotations[deployment.RevisionAnnotation])
	}
	rss := e.replicaSets(d)
	if len(rss) != 1 {
		t.Fatalf("%d replicasets", len(rss))
	}
	rs := rss[0]
	hash := deployment.ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
	if rs.Name != "web-"+hash || rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash {
		t.Errorf("replicaset %s labels %v selector %v", rs.Name, rs.Labels, rs.Spec.Selector)
	}
	want := map[string]string{deployment.RevisionAnnotation: "1", deployment.DesiredReplicasAnnotation: "3", deployment.MaxReplicasAnnotation: "4"}
	for k, v := range want {
		if rs.Annotations[k] != v {
			t.Errorf("replicaset annotation %s = %q, want %q", k, rs.Annotations[k], v)
		}
	}
	// kubectl sees it as Kubernetes shows it.
	out := e.kubectl("get", "deploy", "web", "-o", "jsonpath={.status.updatedReplicas}/{.status.availableReplicas}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
	if out != "3/3/1" {
		t.Errorf("kubectl get: %q", out)
	}

	waitFor(t, "ScalingReplicaSet event", func() (bool, error) {
		evs, err := e.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Kind == "Deployment" && ev.Reason == deployment.EventScalingReplicaSet &&
				ev.Message == fmt.Sprintf("Scaled up replica set %s from 0 to 3", rs.Name) {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events", len(evs.Items))
	})
	desc := e.kubectl("describe", "deployment", "web")
	for _, want := range []string{"NewReplicaSet:", rs.Name + " (3/3 replicas created)", "MinimumReplicasAvailable", "NewReplicaSetAvailable", "ScalingReplicaSet"} {
		if !strings.Contains(desc, want) {
			t.Errorf("kubectl describe lacks %q:\n%s", want, desc)
		}
	}

	// kubectl scale, both ways.
	e.kubectl("scale", "deployment/web", "--replicas=5")
	e.rolledOut("web")
	e.kubectl("scale", "deployment/web", "--replicas=2")
	d = e.rolledOut("web")
	if rs := e.replicaSets(d); len(rs) != 1 || *rs[0].Spec.Replicas != 2 || rs[0].Annotations[deployment.DesiredReplicasAnnotation] != "2" {
		t.Errorf("after scale: %d replicasets", len(rs))
	}
}

// TestRollingUpdateBounds watches every pod event of a rolling update and
// checks maxSurge and maxUnavailable hold throughout, for int and percent
// values.
func TestRollingUpdateBounds(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		replicas               int32
		surge, unavailable     intstr.IntOrString
		wantSurge, wantUnavail int
	}{
		{"ints", 4, intstr.FromInt32(1), intstr.FromInt32(1), 1, 1},
		// 30% of 5: surge rounds up to 2, unavailable rounds down to 1.
		{"percent", 5, intstr.FromString("30%"), intstr.FromString("30%"), 2, 1},
		// Surge only: no pod may be unavailable.
		{"surge only", 3, intstr.FromInt32(1), intstr.FromInt32(0), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t)
			e.create(rolling(newDeployment("roll", tc.replicas, "hello:1"), tc.surge, tc.unavailable))
			e.rolledOut("roll")

			maxLive, minReady := int(tc.replicas)+tc.wantSurge, int(tc.replicas)-tc.wantUnavail
			var mu sync.Mutex
			seenLive, seenReady := 0, int(tc.replicas)
			pw := watchPods(t, e.client, "roll", func(pods map[string]*corev1.Pod) string {
				live, ready := counts(pods)
				mu.Lock()
				seenLive, seenReady = max(seenLive, live), min(seenReady, ready)
				mu.Unlock()
				if live > maxLive {
					return fmt.Sprintf("%d pods running, max %d", live, maxLive)
				}
				if ready < minReady {
					return fmt.Sprintf("%d pods ready, min %d", ready, minReady)
				}
				return ""
			})
			e.kubectl("set", "image", "deployment/roll", "app=hello:2")
			d := e.rolledOut("roll")
			pw.assertNoViolations(t)
			if d.Annotations[deployment.RevisionAnnotation] != "2" {
				t.Errorf("revision %q", d.Annotations[deployment.RevisionAnnotation])
			}
			rss := e.replicaSets(d)
			if len(rss) != 2 || *rss[0].Spec.Replicas != 0 || *rss[1].Spec.Replicas != tc.replicas ||
				rss[1].Spec.Template.Spec.Containers[0].Image != "hello:2" {
				t.Errorf("replicasets after rollout: %d", len(rss))
			}
			t.Logf("at most %d pods live (limit %d), at least %d ready (limit %d)", seenLive, maxLive, seenReady, minReady)
		})
	}
}

func TestRecreateNeverOverlaps(t *testing.T) {
	e := start(t)
	d := newDeployment("rec", 3, "hello:1")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	e.create(d)
	e.rolledOut("rec")
	pw := watchPods(t, e.client, "rec", func(pods map[string]*corev1.Pod) string {
		images := map[string]int{}
		for _, p := range pods {
			images[p.Spec.Containers[0].Image]++
		}
		if len(images) > 1 {
			return fmt.Sprintf("old and new pods at once: %v", images)
		}
		return ""
	})
	e.kubectl("set", "image", "deployment/rec", "app=hello:2")
	d = e.rolledOut("rec")
	pw.assertNoViolations(t)
	rss := e.replicaSets(d)
	if len(rss) != 2 || *rss[0].Spec.Replicas != 0 || *rss[1].Spec.Replicas != 3 {
		t.Fatalf("replicasets after recreate: %+v", rss)
	}
}

func TestRollbackWithKubectl(t *testing.T) {
	e := start(t)
	e.create(newDeployment("undo", 2, "hello:1"))
	e.rolledOut("undo")
	e.kubectl("annotate", "deployment/undo", "kubernetes.io/change-cause=first")
	e.kubectl("set", "image", "deployment/undo", "app=hello:2")
	e.kubectl("annotate", "--overwrite", "deployment/undo", "kubernetes.io/change-cause=second")
	e.rolledOut("undo")

	hist := e.kubectl("rollout", "history", "deployment/undo")
	if !regexpLine(hist, "1", "first") || !regexpLine(hist, "2", "second") {
		t.Fatalf("rollout history:\n%s", hist)
	}
	rev1 := e.kubectl("rollout", "history", "deployment/undo", "--revision=1")
	if !strings.Contains(rev1, "hello:1") || strings.Contains(rev1, "hello:2") {
		t.Fatalf("history --revision=1:\n%s", rev1)
	}

	out := e.kubectl("rollout", "undo", "deployment/undo")
	if !strings.Contains(out, "rolled back") {
		t.Fatalf("undo: %s", out)
	}
	d := e.rolledOut("undo")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "hello:1" {
		t.Fatalf("image after undo %s", img)
	}
	if d.Annotations[deployment.RevisionAnnotation] != "3" {
		t.Fatalf("revision after undo %q", d.Annotations[deployment.RevisionAnnotation])
	}
	rss := e.replicaSets(d)
	if len(rss) != 2 {
		t.Fatalf("%d replicasets after undo (the old one is reused)", len(rss))
	}
	// The first ReplicaSet came back as revision 3 and remembers 1.
	back := rss[1]
	if back.Spec.Template.Spec.Containers[0].Image != "hello:1" || back.Annotations[deployment.RevisionAnnotation] != "3" ||
		back.Annotations[deployment.RevisionHistoryAnnotation] != "1" || *back.Spec.Replicas != 2 {
		t.Fatalf("rolled-back replicaset %s annotations %v", back.Name, back.Annotations)
	}
	hist = e.kubectl("rollout", "history", "deployment/undo")
	if !regexpLine(hist, "2", "second") || !regexpLine(hist, "3", "first") || regexpLine(hist, "1", "") {
		t.Fatalf("rollout history after undo:\n%s", hist)
	}

	e.kubectl("rollout", "undo", "deployment/undo", "--to-revision=2")
	d = e.rolledOut("undo")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "hello:2" || d.Annotations[deployment.RevisionAnnotation] != "4" {
		t.Fatalf("after undo --to-revision=2: image %s revision %s", img, d.Annotations[deployment.RevisionAnnotation])
	}
}

// regexpLine reports whether text has a line whose fields start with rev
// and (when cause is set) continue with cause.
func regexpLine(text, rev, cause string) bool {
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == rev && (cause == "" || (len(f) > 1 && f[1] == cause)) {
			return true
		}
	}
	return false
}

func TestPauseResume(t *testing.T) {
	e := start(t)
	e.create(newDeployment("pz", 2, "hello:1"))
	e.rolledOut("pz")

	e.kubectl("rollout", "pause", "deployment/pz")
	e.kubectl("set", "image", "deployment/pz", "app=hello:2")
	// Scaling still happens while paused.
	e.kubectl("scale", "deployment/pz", "--replicas=4")
	var d *appsv1.Deployment
	waitFor(t, "paused deployment observed and scaled", func() (bool, error) {
		d = e.get("pz")
		c := condition(d, appsv1.DeploymentProgressing)
		ok := d.Status.ObservedGeneration == d.Generation && c != nil && c.Reason == deployment.ReasonPaused &&
			c.Status == corev1.ConditionUnknown && d.Status.AvailableReplicas == 4
		return ok, fmt.Errorf("status %+v", d.Status)
	})
	rss := e.replicaSets(d)
	if len(rss) != 1 || rss[0].Spec.Template.Spec.Containers[0].Image != "hello:1" || *rss[0].Spec.Replicas != 4 {
		t.Fatalf("while paused: %d replicasets", len(rss))
	}
	if d.Status.UpdatedReplicas != 0 {
		t.Fatalf("updated replicas %d while paused with a new template", d.Status.UpdatedReplicas)
	}
	// kubectl refuses to roll back a paused deployment; resume first.
	if out, err := testenv.RunKubectl(t, e.cluster.Kubeconfig(), e.dir, "", "rollout", "undo", "deployment/pz"); err == nil {
		t.Fatalf("undo of a paused deployment succeeded: %s", out)
	}

	e.kubectl("rollout", "resume", "deployment/pz")
	d = e.rolledOut("pz")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "hello:2" || d.Annotations[deployment.RevisionAnnotation] != "2" {
		t.Fatalf("after resume: %s revision %s", img, d.Annotations[deployment.RevisionAnnotation])
	}
	if rss := e.replicaSets(d); len(rss) != 2 || *rss[1].Spec.Replicas != 4 {
		t.Fatalf("after resume: %d replicasets", len(rss))
	}
}

func TestRestart(t *testing.T) {
	e := start(t)
	e.create(newDeployment("rs", 2, "hello:1"))
	d := e.rolledOut("rs")
	before := e.replicaSets(d)[0].Name
	e.kubectl("rollout", "restart", "deployment/rs")
	d = e.rolledOut("rs")
	if _, ok := d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]; !ok {
		t.Fatalf("no restartedAt on the template: %v", d.Spec.Template.Annotations)
	}
	rss := e.replicaSets(d)
	if len(rss) != 2 || rss[1].Name == before || *rss[1].Spec.Replicas != 2 || *rss[0].Spec.Replicas != 0 {
		t.Fatalf("after restart: %d replicasets", len(rss))
	}
	pods, err := e.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=rs"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != rss[1].Labels[appsv1.DefaultDeploymentUniqueLabelKey] {
			t.Errorf("pod %s of the old template still running", p.Name)
		}
	}
}

// TestProgressDeadlineAndMaxUnavailable rolls out a template whose pods
// never become ready: the rollout stalls without taking availability
// below maxUnavailable, then reports ProgressDeadlineExceeded, which
// kubectl rollout status reports as a failure.
func TestProgressDeadlineAndMaxUnavailable(t *testing.T) {
	e := start(t)
	d := rolling(newDeployment("stuck", 4, "hello:1"), intstr.FromInt32(1), intstr.FromInt32(1))
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](3)
	e.create(d)
	e.rolledOut("stuck")
	pw := watchPods(t, e.client, "stuck", func(pods map[string]*corev1.Pod) string {
		live, ready := counts(pods)
		if live > 5 {
			return fmt.Sprintf("%d pods live, max 5", live)
		}
		if ready < 3 {
			return fmt.Sprintf("%d ready, min 3", ready)
		}
		return ""
	})
	e.kubectl("set", "image", "deployment/stuck", "app=unready:2")
	waitFor(t, "ProgressDeadlineExceeded", func() (bool, error) {
		d = e.get("stuck")
		c := condition(d, appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == deployment.ReasonTimedOut, fmt.Errorf("%+v", c)
	})
	out, err := testenv.RunKubectl(t, e.cluster.Kubeconfig(), e.dir, "", "rollout", "status", "deployment/stuck", "--timeout=30s")
	if err == nil || !strings.Contains(out, "exceeded its progress deadline") {
		t.Fatalf("rollout status of a stuck deployment: %v\n%s", err, out)
	}
	pw.assertNoViolations(t)
	if c := condition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("Available = %+v (3 of 4 available, maxUnavailable 1)", c)
	}
	if d.Status.AvailableReplicas != 3 || d.Status.UnavailableReplicas != 2 || d.Status.UpdatedReplicas != 2 {
		t.Errorf("stalled status %+v", d.Status)
	}
}

func TestUnavailableCondition(t *testing.T) {
	e := start(t)
	d := newDeployment("never", 2, "unready:1")
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
	e.create(d)
	waitFor(t, "conditions", func() (bool, error) {
		d = e.get("never")
		a, p := condition(d, appsv1.DeploymentAvailable), condition(d, appsv1.DeploymentProgressing)
		ok := a != nil && a.Status == corev1.ConditionFalse && a.Reason == deployment.ReasonMinimumUnavailable &&
			p != nil && p.Reason == deployment.ReasonTimedOut && d.Status.UnavailableReplicas == 2
		return ok, fmt.Errorf("status %+v", d.Status)
	})
}

func TestRevisionHistoryLimit(t *testing.T) {
	e := start(t)
	d := newDeployment("hist", 1, "hello:1")
	d.Spec.RevisionHistoryLimit = ptr.To[int32](2)
	e.create(d)
	e.rolledOut("hist")
	for i := 2; i <= 5; i++ {
		e.kubectl("set", "image", "deployment/hist", fmt.Sprintf("app=hello:%d", i))
		e.rolledOut("hist")
	}
	d = e.get("hist")
	var rss []appsv1.ReplicaSet
	waitFor(t, "old replicasets cleaned up", func() (bool, error) {
		rss = e.replicaSets(d)
		return len(rss) == 3, fmt.Errorf("%d replicasets", len(rss))
	})
	for i, want := range []string{"3", "4", "5"} {
		if got := rss[i].Annotations[deployment.RevisionAnnotation]; got != want {
			t.Errorf("kept revision %s, want %s", got, want)
		}
	}
	hist := e.kubectl("rollout", "history", "deployment/hist")
	if regexpLine(hist, "1", "") || regexpLine(hist, "2", "") || !regexpLine(hist, "5", "") {
		t.Errorf("history:\n%s", hist)
	}
}

// TestProportionalScaling scales a Deployment whose rollout is stalled:
// the new replicas are shared between old and new ReplicaSets in
// proportion (Kubernetes' numbers).
func TestProportionalScaling(t *testing.T) {
	e := start(t)
	e.create(rolling(newDeployment("prop", 10, "hello:1"), intstr.FromInt32(3), intstr.FromInt32(2)))
	e.rolledOut("prop")
	e.kubectl("set", "image", "deployment/prop", "app=unready:2")
	var d *appsv1.Deployment
	sizes := func() (old, cur int32) {
		rss := e.replicaSets(d)
		if len(rss) != 2 {
			return -1, -1
		}
		return *rss[0].Spec.Replicas, *rss[1].Spec.Replicas
	}
	waitFor(t, "the rollout to stall at 8 old and 5 new", func() (bool, error) {
		d = e.get("prop")
		o, n := sizes()
		return o == 8 && n == 5 && d.Status.AvailableReplicas == 8, fmt.Errorf("old %d new %d", o, n)
	})
	e.kubectl("scale", "deployment/prop", "--replicas=20")
	waitFor(t, "proportional scale to 14 old and 9 new", func() (bool, error) {
		d = e.get("prop")
		o, n := sizes()
		return o == 14 && n == 9 && d.Status.ObservedGeneration == d.Generation, fmt.Errorf("old %d new %d", o, n)
	})
	for _, rs := range e.replicaSets(d) {
		if rs.Annotations[deployment.DesiredReplicasAnnotation] != "20" || rs.Annotations[deployment.MaxReplicasAnnotation] != "23" {
			t.Errorf("%s annotations %v", rs.Name, rs.Annotations)
		}
	}
}

// TestConflictingWrites has another writer update the Deployment (labels
// and annotations, and once its replicas) all through a rollout: the
// controller's stale writes get 409, it retries, and the rollout ends
// right with nothing the other writer wrote lost.
func TestConflictingWrites(t *testing.T) {
	// Count the 409s the controllers get for the Deployment, and make
	// sure there are some: the first two status writes after the
	// template change are answered 409 as a racing writer would cause.
	var conflicts, injected atomic.Int32
	var armed atomic.Bool
	e := start(t, func(rt http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			isStatus := r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/deployments/busy/status")
			if isStatus && armed.Load() && injected.Add(1) <= 2 {
				conflicts.Add(1)
				return testenv.StatusResponse(r, http.StatusConflict, metav1.StatusReasonConflict,
					`Operation cannot be fulfilled on deployments.apps "busy": the object has been modified; please apply your changes to the latest version and try again`), nil
			}
			resp, err := rt.RoundTrip(r)
			if err == nil && resp.StatusCode == http.StatusConflict && strings.Contains(r.URL.Path, "/deployments/busy") {
				conflicts.Add(1)
			}
			return resp, err
		})
	})
	e.create(newDeployment("busy", 3, "hello:1"))
	e.rolledOut("busy")

	// The writer stops between writes (cancelling a request in flight
	// could leave a write applied that the writer never counted).
	ctx := context.Background()
	var stop atomic.Bool
	writes := make(chan int, 1)
	go func() {
		n := 0
		defer func() { writes <- n }()
		for !stop.Load() {
			d, err := e.client.AppsV1().Deployments(ns).Get(ctx, "busy", metav1.GetOptions{})
			if err != nil {
				continue
			}
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations["example.com/writer"] = fmt.Sprint(n + 1)
			if _, err := e.client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err == nil {
				n++
			} else if !apierrors.IsConflict(err) {
				t.Errorf("writer: %v", err)
				return
			}
			// An annotation change bumps the generation (as in
			// Kubernetes): a pause lets the controller observe one
			// before the next, or the wait below could never see it
			// caught up.
			time.Sleep(10 * time.Millisecond)
		}
	}()
	armed.Store(true)
	e.update("busy", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "hello:2" })
	e.update("busy", func(d *appsv1.Deployment) { *d.Spec.Replicas = 4 })
	waitFor(t, "rollout under concurrent writes", func() (bool, error) {
		d := e.get("busy")
		return d.Status.ObservedGeneration == d.Generation && deployment.DeploymentComplete(d, &d.Status), fmt.Errorf("%+v", d.Status)
	})
	stop.Store(true)
	n := <-writes
	d := e.rolledOut("busy")
	if got := d.Annotations["example.com/writer"]; got != fmt.Sprint(n) {
		t.Errorf("writer's annotation %q after %d writes", got, n)
	}
	if d.Annotations[deployment.RevisionAnnotation] != "2" || d.Spec.Template.Spec.Containers[0].Image != "hello:2" {
		t.Errorf("revision %q image %s", d.Annotations[deployment.RevisionAnnotation], d.Spec.Template.Spec.Containers[0].Image)
	}
	rss := e.replicaSets(d)
	if len(rss) != 2 || *rss[1].Spec.Replicas != 4 || *rss[0].Spec.Replicas != 0 {
		t.Errorf("replicasets: %d", len(rss))
	}
	// The writer's annotation reached the new ReplicaSet too (copied).
	if rss[1].Annotations["example.com/writer"] == "" {
		t.Errorf("deployment annotation not copied to the new replicaset: %v", rss[1].Annotations)
	}
	if injected.Load() < 2 {
		t.Errorf("only %d status writes after the change", injected.Load())
	}
	t.Logf("%d concurrent writes, %d conflicts answered to the controllers (2 injected)", n, conflicts.Load())
}

// TestAdoptAndReleaseReplicaSet: an orphan ReplicaSet matching a new
// Deployment's selector and template is adopted as its new ReplicaSet; one
// relabelled out of the selector is released and replaced.
func TestAdoptAndReleaseReplicaSet(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	d := newDeployment("orph", 2, "hello:1")
	orphan := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "orph-manual", Namespace: ns, Labels: map[string]string{"app": "orph"}},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](2),
			Selector: d.Spec.Selector.DeepCopy(),
			Template: *d.Spec.Template.DeepCopy(),
		},
	}
	if _, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d = e.create(d)
	d = e.rolledOut("orph")
	rss := e.replicaSets(d)
	if len(rss) != 1 || rss[0].Name != "orph-manual" || rss[0].Annotations[deployment.RevisionAnnotation] != "1" {
		t.Fatalf("adopted: %d replicasets", len(rss))
	}

	patch := []byte(`{"metadata":{"labels":{"app":"gone"}}}`)
	if _, err := e.client.AppsV1().ReplicaSets(ns).Patch(ctx, "orph-manual", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "release and replacement", func() (bool, error) {
		rs, err := e.client.AppsV1().ReplicaSets(ns).Get(ctx, "orph-manual", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		owned := e.replicaSets(d)
		return metav1.GetControllerOf(rs) == nil && len(owned) == 1 && owned[0].Name != "orph-manual" && owned[0].Status.AvailableReplicas == 2,
			fmt.Errorf("owners %v, %d owned", rs.OwnerReferences, len(owned))
	})
}

// TestHashCollision: a ReplicaSet the Deployment does not own already has
// the name its template hashes to; the controller bumps collisionCount and
// uses the next hash.
func TestHashCollision(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	d := newDeployment("coll", 1, "hello:1")
	d.Spec.Paused = true // nothing is created until the squatter is in place
	d = e.create(d)
	hash := deployment.ComputeHash(&d.Spec.Template, nil)
	squatter := newDeployment("other", 1, "hello:9")
	if _, err := e.client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "coll-" + hash, Namespace: ns, Labels: map[string]string{"app": "other"}},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To[int32](0),
			Selector: squatter.Spec.Selector,
			Template: squatter.Spec.Template,
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.kubectl("rollout", "resume", "deployment/coll")
	d = e.rolledOut("coll")
	if d.Status.CollisionCount == nil || *d.Status.CollisionCount != 1 {
		t.Fatalf("collisionCount %v", d.Status.CollisionCount)
	}
	rss := e.replicaSets(d)
	if want := "coll-" + deployment.ComputeHash(&d.Spec.Template, ptr.To[int32](1)); len(rss) != 1 || rss[0].Name != want {
		t.Fatalf("replicasets %d, want one named %s", len(rss), want)
	}
}
