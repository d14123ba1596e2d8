package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// replicationControllerYAML has no selector, labels or replicas: kube's
// defaults fill them in.
const replicationControllerYAML = `apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: hello:v1
`

// TestKubectlReplicationControllers: core/v1 replicationcontrollers are
// served as kube-apiserver serves them, to the real kubectl: discovery,
// defaults, tables, describe, explain, the field selector, scale through
// the scale subresource, the generation, the status subresource, warnings,
// and kubectl cluster-info dump, which lists them.
func TestKubectlReplicationControllers(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	rcs := c.client.CoreV1().ReplicationControllers("default")
	out := c.kubectl(t, "", "api-resources", "--api-group=", "--namespaced=true")
	if !strings.Contains(out, "replicationcontrollers") || !strings.Contains(strings.Fields(out[strings.Index(out, "replicationcontrollers"):])[1], "rc") {
		t.Fatalf("api-resources:\n%s", out)
	}
	mustContain(t, c.kubectl(t, replicationControllerYAML, "apply", "-f", "-"), "replicationcontroller/web created")
	mustContain(t, c.kubectl(t, replicationControllerYAML, "apply", "-f", "-"), "replicationcontroller/web unchanged")

	rc, err := rcs.Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if rc.Generation != 1 || ptr.Deref(rc.Spec.Replicas, 0) != 1 || rc.Spec.Selector["app"] != "web" || rc.Labels["app"] != "web" ||
		rc.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways || rc.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Fatalf("stored ReplicationController not defaulted as kube's: %+v %+v", rc.ObjectMeta, rc.Spec)
	}

	out = c.kubectl(t, "", "get", "replicationcontrollers")
	if !strings.HasPrefix(out, "NAME   DESIRED   CURRENT   READY   AGE\nweb    1         0         0       ") {
		t.Fatalf("get replicationcontrollers:\n%s", out)
	}
	out = c.kubectl(t, "", "get", "rc", "-o", "wide")
	if !strings.HasPrefix(out, "NAME   DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES     SELECTOR\n") || !strings.Contains(out, "main         hello:v1   app=web") {
		t.Fatalf("get rc -o wide:\n%s", out)
	}
	mustContain(t, c.kubectl(t, "", "get", "all"), "replicationcontroller/web")
	mustContain(t, c.kubectl(t, "", "get", "rc", "--field-selector", "status.replicas=0"), "web")
	if out := c.kubectl(t, "", "get", "rc", "--field-selector", "status.replicas=1"); !strings.Contains(out, "No resources found") {
		t.Fatalf("get rc status.replicas=1:\n%s", out)
	}
	mustContain(t, c.kubectl(t, "", "describe", "rc", "web"), "Name:", "web", "Selector:", "app=web", "Replicas:", "0 current / 1 desired", "hello:v1")
	mustContain(t, c.kubectl(t, "", "explain", "rc.spec"), "minReadySeconds", "replicas", "selector", "template")

	mustContain(t, c.kubectl(t, "", "scale", "rc", "web", "--replicas=4"), "replicationcontroller/web scaled")
	sc, err := rcs.GetScale(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if sc.Spec.Replicas != 4 || sc.Status.Selector != "app=web" {
		t.Fatalf("scale: %+v", sc)
	}
	if out := c.kubectl(t, "", "get", "rc", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"); out != "4 2" {
		t.Fatalf("after scale: %q", out)
	}
	// ReplicationControllers have no rollout: kubectl says so.
	for _, sub := range []string{"status", "history", "undo"} {
		if out, err := c.kubectlErr(t, "", "rollout", sub, "rc/web"); err == nil || !strings.Contains(out, "ReplicationController") {
			t.Errorf("kubectl rollout %s rc/web: %v\n%s", sub, err, out)
		}
	}
	// A ReplicationController's selector may change (a ReplicaSet's not).
	mustContain(t, c.kubectl(t, "", "patch", "rc", "web", "--type=merge", "-p",
		`{"spec":{"selector":{"app":"web","tier":"front"},"template":{"metadata":{"labels":{"tier":"front"}}}}}`), "patched")

	// The status subresource writes the status alone.
	rc, err = rcs.Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	rc.Status.Replicas, rc.Status.ObservedGeneration = 4, rc.Generation
	rc.Spec.Replicas = ptr.To[int32](9)
	rc, err = rcs.UpdateStatus(ctx, rc, metav1.UpdateOptions{})
	must(t, err)
	if rc.Status.Replicas != 4 || *rc.Spec.Replicas != 4 || rc.Generation != 3 {
		t.Fatalf("after status update: spec %d, status %+v, generation %d", *rc.Spec.Replicas, rc.Status, rc.Generation)
	}

	// kube-apiserver's warnings on the name and the pod template.
	mustContain(t, c.kubectl(t, strings.Replace(replicationControllerYAML, "name: web", "name: web.v1", 1), "create", "-f", "-"),
		"Warning: metadata.name: this is used in Pod names and hostnames")

	mustContain(t, c.kubectl(t, "", "cluster-info", "dump", "--namespaces=default,kube-system"), `"kind": "ReplicationControllerList"`, `"name": "web"`)
	mustContain(t, c.kubectl(t, "", "delete", "rc", "web", "web.v1"), `replicationcontroller "web" deleted`)
}

// TestReplicationControllerValidation: kube's
// ValidateReplicationController, with its messages.
func TestReplicationControllerValidation(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	rcs := c.client.CoreV1().ReplicationControllers("default")
	valid := func() *corev1.ReplicationController {
		return &corev1.ReplicationController{
			ObjectMeta: metav1.ObjectMeta{Name: "rc"},
			Spec: corev1.ReplicationControllerSpec{
				Selector: map[string]string{"app": "web"},
				Template: &corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}},
				},
			},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*corev1.ReplicationController)
		want   string
	}{
		{"no template", func(rc *corev1.ReplicationController) { rc.Spec.Template = nil }, "spec.template: Required value"},
		{"no selector", func(rc *corev1.ReplicationController) { rc.Spec.Selector, rc.Spec.Template.Labels = nil, nil },
			"spec.selector: Required value"},
		{"selector not matching", func(rc *corev1.ReplicationController) { rc.Spec.Selector = map[string]string{"app": "db"} },
			"spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"},
		{"negative replicas", func(rc *corev1.ReplicationController) { rc.Spec.Replicas = ptr.To[int32](-1) },
			"spec.replicas: Invalid value: -1: must be greater than or equal to 0"},
		{"negative minReadySeconds", func(rc *corev1.ReplicationController) { rc.Spec.MinReadySeconds = -1 },
			"spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0"},
		{"restartPolicy Never", func(rc *corev1.ReplicationController) {
			rc.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
		},
			`spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"`},
		{"activeDeadlineSeconds", func(rc *corev1.ReplicationController) { rc.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](5) },
			"spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicationController is not Supported"},
	} {
		rc := valid()
		tc.change(rc)
		_, err := rcs.Create(ctx, rc, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) ||
			!strings.HasPrefix(err.Error(), `ReplicationController "rc" is invalid: `) {
			t.Errorf("%s: %v, want 422 with %q", tc.name, err, tc.want)
		}
	}
	rc, err := rcs.Create(ctx, valid(), metav1.CreateOptions{})
	must(t, err)
	bad := rc.DeepCopy()
	bad.Spec.Template.Labels = map[string]string{"app": "db"}
	if _, err := rcs.Update(ctx, bad, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "`selector` does not match template `labels`") {
		t.Errorf("update to a template the selector does not match: %v", err)
	}
	// kube's ValidateReplicationControllerStatusUpdate.
	rc.Status.Replicas, rc.Status.ReadyReplicas = 1, 2
	if _, err := rcs.UpdateStatus(ctx, rc, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas") {
		t.Errorf("status with more ready replicas than replicas: %v", err)
	}
}
