package validation

import (
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// want is an expected error: its type and field path.
type want struct {
	typ   field.ErrorType
	field string
}

func (w want) String() string { return fmt.Sprintf("%s %s", w.field, w.typ) }

// required, invalid, ... build wants tersely.
func required(f string) want     { return want{field.ErrorTypeRequired, f} }
func invalid(f string) want      { return want{field.ErrorTypeInvalid, f} }
func forbidden(f string) want    { return want{field.ErrorTypeForbidden, f} }
func notSupported(f string) want { return want{field.ErrorTypeNotSupported, f} }
func duplicate(f string) want    { return want{field.ErrorTypeDuplicate, f} }
func notFound(f string) want     { return want{field.ErrorTypeNotFound, f} }
func tooLong(f string) want      { return want{field.ErrorTypeTooLong, f} }

// expectErrors fails unless errs holds exactly the wanted (type, field) pairs
// (each at least once, nothing else).
func expectErrors(t *testing.T, errs field.ErrorList, wants ...want) {
	t.Helper()
	got := map[want]bool{}
	for _, e := range errs {
		got[want{e.Type, e.Field}] = true
	}
	exp := map[want]bool{}
	for _, w := range wants {
		exp[w] = true
	}
	var missing, extra []string
	for w := range exp {
		if !got[w] {
			missing = append(missing, w.String())
		}
	}
	for w := range got {
		if !exp[w] {
			extra = append(extra, w.String())
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("errors mismatch\n missing: %v\n unexpected: %v\n all: %v", missing, extra, errs)
	}
}

// createCase is one ValidateCreate table row: mutate a defaulted valid object
// and expect these errors.
type createCase[T runtime.Object] struct {
	name   string
	mutate func(T)
	want   []want
}

// runCreateCases builds each case from base(), defaults it, mutates it,
// defaults it again (as the API server would default what it receives) and
// checks ValidateCreate.
func runCreateCases[T runtime.Object](t *testing.T, base func() T, cases []createCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := base()
			Default(obj)
			if tc.mutate != nil {
				tc.mutate(obj)
				Default(obj)
			}
			expectErrors(t, ValidateCreate(obj), tc.want...)
		})
	}
}

// updateCase is one ValidateUpdate table row: mutate a copy of a stored
// (defaulted, valid) object.
type updateCase[T runtime.Object] struct {
	name   string
	mutate func(obj T)
	want   []want
}

func runUpdateCases[T runtime.Object](t *testing.T, stored func() T, cases []updateCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := stored()
			Default(old)
			obj := old.DeepCopyObject().(T)
			tc.mutate(obj)
			Default(obj)
			expectErrors(t, ValidateUpdate(obj, old), tc.want...)
		})
	}
}

// ---- minimal valid objects of every kind

func testMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default"}
}

// stored wraps a constructor so its objects carry the metadata the API
// server sets when it stores them.
func stored[T runtime.Object](f func() T) func() T {
	return func() T {
		obj := f()
		stamp(obj)
		return obj
	}
}

// stamp sets the metadata the API server sets when it stores obj.
func stamp(obj runtime.Object) {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(err)
	}
	if m.GetUID() == "" {
		m.SetUID("6f1c1f43-0000-4000-8000-000000000001")
	}
	m.SetResourceVersion("7")
	m.SetGeneration(1)
	m.SetCreationTimestamp(metav1.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

func testContainer() corev1.Container {
	return corev1.Container{Name: "app", Image: "registry.local/app:1.0"}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: testMeta("web"),
		Spec:       corev1.PodSpec{Containers: []corev1.Container{testContainer()}},
	}
}

func testTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{testContainer()}},
	}
}

func testDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: testMeta("web"),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: testTemplate(map[string]string{"app": "web"}),
		},
	}
}

func testReplicaSet() *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: testMeta("web-5d4f"),
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: testTemplate(map[string]string{"app": "web"}),
		},
	}
}

func testDaemonSet() *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: testMeta("agent"),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: testTemplate(map[string]string{"app": "agent"}),
		},
	}
}

// testJob has the uid the API server sets before defaulting.
func testJob() *batchv1.Job {
	t := testTemplate(nil)
	t.Spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "default", UID: "3b2a8c4e-0000-4000-8000-00000000000a"},
		Spec:       batchv1.JobSpec{Template: t},
	}
}

func testCronJob() *batchv1.CronJob {
	t := testTemplate(nil)
	t.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	return &batchv1.CronJob{
		ObjectMeta: testMeta("upload"),
		Spec: batchv1.CronJobSpec{
			Schedule:    "*/5 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}},
		},
	}
}

func testNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
}

func testNode() *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}}
}

func testConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: testMeta("settings"), Data: map[string]string{"app.conf": "x=1"}}
}

func testSecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: testMeta("creds"), Data: map[string][]byte{"token": []byte("s3cr3t")}}
}

func testEvent() *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     testMeta("web.17a6b9c1d2e3f400"),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
		Reason:         "Scheduled",
		Message:        "Successfully assigned default/web to edge-1",
		Type:           corev1.EventTypeNormal,
	}
}

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: testMeta("web"),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
}

func testBinding() *corev1.Binding {
	return &corev1.Binding{ObjectMeta: testMeta("web"), Target: corev1.ObjectReference{Kind: "Node", Name: "edge-1"}}
}

func testLease() *coordinationv1.Lease {
	holder, d := "edge-1", int32(40)
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Namespace: "kube-node-lease"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &d},
	}
}

func testRuntimeClass() *nodev1.RuntimeClass {
	return &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "wasm"}, Handler: "wasm"}
}

func testRole() *rbacv1.Role {
	return &rbacv1.Role{
		ObjectMeta: testMeta("pod-reader"),
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}},
	}
}

func testClusterRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "node-reader"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}},
			{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}},
		},
	}
}

func testRoleBinding() *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: testMeta("read-pods"),
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}, {Kind: rbacv1.ServiceAccountKind, Name: "default"}},
	}
}

func testClusterRoleBinding() *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read-nodes"},
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "node-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "edge-admins"}, {Kind: rbacv1.ServiceAccountKind, Name: "agent", Namespace: "wasmfleet-system"}},
	}
}

func testScale() *autoscalingv1.Scale {
	return &autoscalingv1.Scale{ObjectMeta: testMeta("web"), Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
}

func testEviction() *policyv1.Eviction {
	return &policyv1.Eviction{ObjectMeta: testMeta("web")}
}
