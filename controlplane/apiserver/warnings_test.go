package apiserver_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// warningRecorder is a client-go WarningHandler keeping the Warning
// headers of the responses, in order.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || agent != "-" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, text)
}

// take returns the warnings received since the last take.
func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

// warnedClient is a clientset of c recording the warnings it receives.
func warnedClient(t *testing.T, c *cluster) (*kubernetes.Clientset, *warningRecorder) {
	t.Helper()
	rec := &warningRecorder{}
	rc := rest.CopyConfig(c.rest)
	rc.WarningHandler = rec
	cs, err := kubernetes.NewForConfig(rc)
	must(t, err)
	return cs, rec
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s warned:\n got %q\nwant %q", what, got, want)
	}
}

const (
	osWarning   = `deprecated since v1.14; use "kubernetes.io/os" instead`
	archWarning = `deprecated since v1.14; use "kubernetes.io/arch" instead`
)

func warnDeployment(name string, nodeSelector map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					Containers:   []corev1.Container{{Name: "main", Image: "hello:v1"}},
				},
			},
		},
	}
}

// TestWarningsOnCreate: a create answers kube-apiserver's warnings as
// Warning headers, on dry runs too; an invalid object gets its error, and
// no warnings.
func TestWarningsOnCreate(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	cs, rec := warnedClient(t, c)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "warned"},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"beta.kubernetes.io/os": "linux"},
			TerminationGracePeriodSeconds: func(n int64) *int64 { return &n }(-1),
			Containers: []corev1.Container{{Name: "main", Image: "hello:v1", Env: []corev1.EnvVar{
				{Name: "A", Value: "1"}, {Name: "A", Value: "2"},
			}}},
		},
	}
	want := []string{
		"spec.nodeSelector[beta.kubernetes.io/os]: " + osWarning,
		"spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1",
		`spec.containers[0].env[1]: hides previous definition of "A", which may be dropped when using apply`,
	}
	_, err := cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	must(t, err)
	sameStrings(t, "a dry-run create", rec.take(), want)
	_, err = cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{})
	must(t, err)
	sameStrings(t, "a create", rec.take(), want)

	// A template warns at its own path.
	_, err = cs.AppsV1().Deployments(testNS).Create(ctx, warnDeployment("web", map[string]string{"beta.kubernetes.io/arch": "arm64"}), metav1.CreateOptions{})
	must(t, err)
	sameStrings(t, "a deployment create", rec.take(), []string{"spec.template.spec.nodeSelector[beta.kubernetes.io/arch]: " + archWarning})

	// Validation first, as kube-apiserver's BeforeCreate.
	bad := p.DeepCopy()
	bad.Name = "bad"
	bad.Spec.Containers[0].Image = ""
	_, err = cs.CoreV1().Pods(testNS).Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("create of an invalid pod: %v, want Invalid", err)
	}
	sameStrings(t, "an invalid create", rec.take(), nil)

	// Nothing to warn about, no header.
	_, err = cs.CoreV1().Pods(testNS).Create(ctx, pod("plain", "", "", nil), metav1.CreateOptions{})
	must(t, err)
	sameStrings(t, "a plain create", rec.take(), nil)

	// Services: the defaults (an allocated cluster IP, or none for a
	// headless one) warn about nothing; external IPs do.
	svc := func(name, clusterIP string, externalIPs ...string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
			ClusterIP: clusterIP, ExternalIPs: externalIPs, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80}},
		}}
	}
	_, err = cs.CoreV1().Services(testNS).Create(ctx, svc("plain", ""), metav1.CreateOptions{})
	must(t, err)
	_, err = cs.CoreV1().Services(testNS).Create(ctx, svc("headless", "None"), metav1.CreateOptions{})
	must(t, err)
	sameStrings(t, "plain service creates", rec.take(), nil)
	_, err = cs.CoreV1().Services(testNS).Create(ctx, svc("external", "", "192.0.2.10"), metav1.CreateOptions{})
	must(t, err)
	sameStrings(t, "a service with external IPs", rec.take(), []string{"spec.externalIPs is deprecated and may no longer be implemented in some clusters"})
}

// TestWarningsOnUpdatePatchApply: an update, a patch and an apply give a
// workload's template warnings when they change its spec, and not when
// they leave it (nor for a pod, whose updates kube-apiserver does not
// check); an apply that creates gives the create's.
func TestWarningsOnUpdatePatchApply(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	cs, rec := warnedClient(t, c)
	deploys := cs.AppsV1().Deployments(testNS)
	_, err := deploys.Create(ctx, warnDeployment("web", nil), metav1.CreateOptions{})
	must(t, err)
	sameStrings(t, "the create", rec.take(), nil)
	archAt := "spec.template.spec.nodeSelector[beta.kubernetes.io/arch]: " + archWarning
	osAt := "spec.template.spec.nodeSelector[beta.kubernetes.io/os]: " + osWarning

	t.Run("update", func(t *testing.T) {
		d, err := deploys.Get(ctx, "web", metav1.GetOptions{})
		must(t, err)
		d.Spec.Template.Spec.NodeSelector = map[string]string{"beta.kubernetes.io/arch": "arm64"}
		d, err = deploys.Update(ctx, d, metav1.UpdateOptions{})
		must(t, err)
		sameStrings(t, "an update of the template", rec.take(), []string{archAt})
		// The spec unchanged: the generation stays, and so do warnings.
		d.Labels = map[string]string{"tier": "web"}
		_, err = deploys.Update(ctx, d, metav1.UpdateOptions{})
		must(t, err)
		sameStrings(t, "an update of the labels", rec.take(), nil)
	})
	t.Run("patch", func(t *testing.T) {
		_, err := deploys.Patch(ctx, "web", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"nodeSelector":{"beta.kubernetes.io/os":"linux"}}}}}`), metav1.PatchOptions{})
		must(t, err)
		sameStrings(t, "a patch of the template", rec.take(), []string{archAt, osAt})
		_, err = deploys.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		must(t, err)
		sameStrings(t, "a dry-run patch of the replicas", rec.take(), []string{archAt, osAt})
		_, err = deploys.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"annotations":null,"labels":{"tier":"front"}}}`), metav1.PatchOptions{})
		must(t, err)
		sameStrings(t, "a patch of the labels", rec.take(), nil)
	})
	t.Run("apply", func(t *testing.T) {
		apply := func(name string, sel map[string]string) *appsv1ac.DeploymentApplyConfiguration {
			return appsv1ac.Deployment(name, testNS).WithSpec(appsv1ac.DeploymentSpec().
				WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": name})).
				WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": name}).WithSpec(corev1ac.PodSpec().
					WithNodeSelector(sel).
					WithContainers(corev1ac.Container().WithName("main").WithImage("hello:v1")))))
		}
		_, err := deploys.Apply(ctx, apply("applied", map[string]string{"beta.kubernetes.io/os": "linux"}), metav1.ApplyOptions{FieldManager: "test"})
		must(t, err)
		sameStrings(t, "an apply that creates", rec.take(), []string{osAt})
		_, err = deploys.Apply(ctx, apply("applied", map[string]string{"beta.kubernetes.io/arch": "arm64"}), metav1.ApplyOptions{FieldManager: "test"})
		must(t, err)
		sameStrings(t, "an apply that changes the template", rec.take(), []string{archAt})
		_, err = deploys.Apply(ctx, apply("applied", map[string]string{"beta.kubernetes.io/arch": "arm64"}), metav1.ApplyOptions{FieldManager: "test"})
		must(t, err)
		sameStrings(t, "an apply that changes nothing", rec.take(), nil)
	})
	t.Run("pod", func(t *testing.T) {
		p := pod("p", "", "", nil)
		p.Spec.NodeSelector = map[string]string{"beta.kubernetes.io/os": "linux"}
		p, err := cs.CoreV1().Pods(testNS).Create(ctx, p, metav1.CreateOptions{})
		must(t, err)
		sameStrings(t, "a pod create", rec.take(), []string{"spec.nodeSelector[beta.kubernetes.io/os]: " + osWarning})
		p.Labels = map[string]string{"x": "y"}
		_, err = cs.CoreV1().Pods(testNS).Update(ctx, p, metav1.UpdateOptions{})
		must(t, err)
		sameStrings(t, "a pod update", rec.take(), nil)
	})
}

// TestKubectlPrintsWarnings: the real kubectl prints the warnings on
// stderr as "Warning: ...".
func TestKubectlPrintsWarnings(t *testing.T) {
	c := startAPI(t)
	cmd := c.kubectlCmd(t, "create", "-f", "-")
	cmd.Stdin = strings.NewReader(`apiVersion: v1
kind: Pod
metadata:
  name: old-labels
spec:
  runtimeClassName: wasm
  nodeSelector:
    beta.kubernetes.io/os: linux
  containers:
  - name: main
    image: hello:v1
`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl create: %v\n%s%s", err, &stdout, &stderr)
	}
	mustContain(t, stdout.String(), "pod/old-labels created")
	mustContain(t, stderr.String(), `Warning: spec.nodeSelector[beta.kubernetes.io/os]: deprecated since v1.14; use "kubernetes.io/os" instead`)
}
