package apiserver_test

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

// managers lists an object's managed fields as
// "manager/operation[/subresource]", sorted.
func managers(m metav1.Object) []string {
	var out []string
	for _, e := range m.GetManagedFields() {
		s := e.Manager + "/" + string(e.Operation)
		if e.Subresource != "" {
			s += "/" + e.Subresource
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestKubectlServerSideApply(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	const cm = `apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
data:
  a: "%s"
  b: "2"
`
	mustContain(t, c.kubectl(t, strings.Replace(cm, "%s", "1", 1), "apply", "--server-side", "-f", "-"), "configmap/ssa serverside-applied")
	got, err := c.client.CoreV1().ConfigMaps("default").Get(ctx, "ssa", metav1.GetOptions{})
	must(t, err)
	if m := managers(got); len(m) != 1 || m[0] != "kubectl/Apply" {
		t.Fatalf("managers after the first apply: %v", m)
	}
	mustContain(t, c.kubectl(t, "", "get", "cm", "ssa", "-o", "yaml", "--show-managed-fields"), "f:a: {}", "f:b: {}", "manager: kubectl")

	// Another manager changing a field kubectl owns conflicts, and nothing
	// is written, until it forces.
	out, err := c.kubectlErr(t, strings.Replace(cm, "%s", "10", 1), "apply", "--server-side", "--field-manager=other", "-f", "-")
	if err == nil {
		t.Fatalf("conflicting apply succeeded: %s", out)
	}
	mustContain(t, out, `conflict with "kubectl"`, ".data.a", "--force-conflicts")
	after, err := c.client.CoreV1().ConfigMaps("default").Get(ctx, "ssa", metav1.GetOptions{})
	must(t, err)
	if after.ResourceVersion != got.ResourceVersion {
		t.Fatalf("a refused apply wrote: resourceVersion %s → %s", got.ResourceVersion, after.ResourceVersion)
	}
	c.kubectl(t, strings.Replace(cm, "%s", "10", 1), "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-")
	// kubectl no longer owns a, and shares b with other: its apply
	// without them leaves both.
	c.kubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {c: \"3\"}\n", "apply", "--server-side", "-f", "-")
	got, err = c.client.CoreV1().ConfigMaps("default").Get(ctx, "ssa", metav1.GetOptions{})
	must(t, err)
	if want := map[string]string{"a": "10", "b": "2", "c": "3"}; !maps.Equal(got.Data, want) {
		t.Fatalf("data after the applies: %v, want %v", got.Data, want)
	}
	// A field its only manager stops applying is removed.
	c.kubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {}\n", "apply", "--server-side", "-f", "-")
	got, err = c.client.CoreV1().ConfigMaps("default").Get(ctx, "ssa", metav1.GetOptions{})
	must(t, err)
	if want := map[string]string{"a": "10", "b": "2"}; !maps.Equal(got.Data, want) {
		t.Fatalf("data after kubectl dropped c: %v, want %v", got.Data, want)
	}

	// A plain patch of an applied object is recorded as an update.
	c.kubectl(t, "", "patch", "cm", "ssa", "--type=merge", "-p", `{"data":{"e":"5"}}`)
	got, err = c.client.CoreV1().ConfigMaps("default").Get(ctx, "ssa", metav1.GetOptions{})
	must(t, err)
	if m := strings.Join(managers(got), " "); !strings.Contains(m, "kubectl-patch/Update") {
		t.Fatalf("managers after kubectl patch: %s", m)
	}

	// A server-side dry run writes nothing.
	c.kubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {d: \"4\"}\n", "apply", "--server-side", "--dry-run=server", "-f", "-")
	after, err = c.client.CoreV1().ConfigMaps("default").Get(ctx, "ssa", metav1.GetOptions{})
	must(t, err)
	if after.ResourceVersion != got.ResourceVersion || after.Data["d"] != "" {
		t.Fatalf("a dry-run apply wrote: %v", after.Data)
	}

	// Lists merge by their keys: a port's protocol defaults to TCP, so
	// 53/UDP and 53 are two ports, and applying the same manifest again
	// changes nothing.
	const deploy = `apiVersion: apps/v1
kind: Deployment
metadata: {name: dns}
spec:
  replicas: 1
  selector: {matchLabels: {app: dns}}
  template:
    metadata: {labels: {app: dns}}
    spec:
      runtimeClassName: wasm
      containers:
      - name: dns
        image: dns:v1
        ports:
        - {containerPort: 53, protocol: UDP}
        - {containerPort: 53}
`
	c.kubectl(t, deploy, "apply", "--server-side", "-f", "-")
	d1, err := c.client.AppsV1().Deployments("default").Get(ctx, "dns", metav1.GetOptions{})
	must(t, err)
	if n := len(d1.Spec.Template.Spec.Containers[0].Ports); n != 2 {
		t.Fatalf("%d ports, want 2", n)
	}
	c.kubectl(t, deploy, "apply", "--server-side", "-f", "-")
	d2, err := c.client.AppsV1().Deployments("default").Get(ctx, "dns", metav1.GetOptions{})
	must(t, err)
	if d2.ResourceVersion != d1.ResourceVersion {
		t.Fatalf("applying the same manifest again wrote: resourceVersion %s → %s", d1.ResourceVersion, d2.ResourceVersion)
	}
	// kubectl scale takes spec.replicas over through /scale, and the
	// manifest's next apply conflicts with it there.
	c.kubectl(t, "", "scale", "deploy", "dns", "--replicas=3")
	d3, err := c.client.AppsV1().Deployments("default").Get(ctx, "dns", metav1.GetOptions{})
	must(t, err)
	if m := strings.Join(managers(d3), " "); m != "kubectl/Apply kubectl/Update/scale" || *d3.Spec.Replicas != 3 {
		t.Fatalf("after kubectl scale: replicas %d, managers %s", *d3.Spec.Replicas, m)
	}
	out, err = c.kubectlErr(t, deploy, "apply", "--server-side", "-f", "-")
	if err == nil {
		t.Fatalf("apply over a scaled replica count succeeded: %s", out)
	}
	mustContain(t, out, `conflict with "kubectl" with subresource "scale"`, ".spec.replicas")

	// An object created without apply is untracked until its first apply,
	// which finds the fields it changes owned by "before-first-apply".
	c.kubectl(t, "", "create", "configmap", "plain", "--from-literal=a=1")
	out, err = c.kubectlErr(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: \"2\"}\n", "apply", "--server-side", "-f", "-")
	if err == nil {
		t.Fatalf("apply over a created object's field succeeded: %s", out)
	}
	mustContain(t, out, `conflict with "before-first-apply"`, ".data.a")
}

const applyType = "application/apply-patch+yaml"

func TestServerSideApplyClientGo(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	deployments := c.client.AppsV1().Deployments("default")
	apply := appsv1ac.Deployment("web", "default").WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(2).
		WithSelector(metav1ApplySelector("web")).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "web"}).WithSpec(corev1ac.PodSpec().
			WithRuntimeClassName("wasm").
			WithContainers(corev1ac.Container().WithName("web").WithImage("web:v1")))))
	d, err := deployments.Apply(ctx, apply, metav1.ApplyOptions{FieldManager: "rollout"})
	must(t, err)
	if d.Generation != 1 || d.UID == "" || *d.Spec.Replicas != 2 {
		t.Fatalf("applied deployment: generation %d uid %q replicas %d", d.Generation, d.UID, *d.Spec.Replicas)
	}
	// The status belongs to /status: applied there, owned there.
	status := appsv1ac.Deployment("web", "default").WithStatus(appsv1ac.DeploymentStatus().WithObservedGeneration(1).WithReplicas(2))
	d, err = deployments.ApplyStatus(ctx, status, metav1.ApplyOptions{FieldManager: "controller", Force: true})
	must(t, err)
	if d.Status.Replicas != 2 || *d.Spec.Replicas != 2 {
		t.Fatalf("after the status apply: status.replicas %d spec.replicas %d", d.Status.Replicas, *d.Spec.Replicas)
	}
	if m := strings.Join(managers(d), " "); m != "controller/Apply/status rollout/Apply" {
		t.Fatalf("managers: %s", m)
	}
	// A status apply cannot change the spec.
	_, err = deployments.ApplyStatus(ctx, appsv1ac.Deployment("web", "default").WithSpec(appsv1ac.DeploymentSpec().WithReplicas(9)),
		metav1.ApplyOptions{FieldManager: "controller", Force: true})
	must(t, err)
	d, err = deployments.Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if *d.Spec.Replicas != 2 {
		t.Fatalf("a status apply changed spec.replicas to %d", *d.Spec.Replicas)
	}

	// Bad applies get a clear error and write nothing.
	hc := rawClient(t, c, true)
	path := "/apis/apps/v1/namespaces/default/deployments/web"
	for _, tc := range []struct {
		what, query, ct, body string
		code                  int
		reason                metav1.StatusReason
		msg                   string
	}{
		{"no field manager", "", applyType, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n", 422, metav1.StatusReasonInvalid, "fieldManager: Required value"},
		{"unknown field", "?fieldManager=x", applyType, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replica: 3}\n", 400, metav1.StatusReasonBadRequest, ".spec.replica: field not declared in schema"},
		{"name mismatch", "?fieldManager=x", applyType, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\n", 400, metav1.StatusReasonBadRequest, "does not match the name on the URL"},
		{"namespace mismatch", "?fieldManager=x", applyType, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: kube-system}\n", 400, metav1.StatusReasonBadRequest, "does not match the namespace"},
		{"wrong kind", "?fieldManager=x", applyType, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n", 400, metav1.StatusReasonBadRequest, "ConfigMap"},
		{"not YAML", "?fieldManager=x", applyType, "{{{", 400, metav1.StatusReasonBadRequest, ""},
		{"force on a merge patch", "?fieldManager=x&force=true", string(types.MergePatchType), "{}", 422, metav1.StatusReasonInvalid, "force"},
	} {
		st := rejected(t, c, hc, http.MethodPatch, path+tc.query, tc.ct, strings.NewReader(tc.body), nil, tc.code, tc.reason)
		if !strings.Contains(st.Message, tc.msg) {
			t.Errorf("%s: message %q, want it to contain %q", tc.what, st.Message, tc.msg)
		}
	}

	// A conflict names the owner; forcing takes the field over.
	_, err = deployments.Apply(ctx, appsv1ac.Deployment("web", "default").WithSpec(appsv1ac.DeploymentSpec().WithReplicas(5)), metav1.ApplyOptions{FieldManager: "autoscaler"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "rollout"`) {
		t.Fatalf("conflicting apply: %v", err)
	}
	d, err = deployments.Apply(ctx, appsv1ac.Deployment("web", "default").WithSpec(appsv1ac.DeploymentSpec().WithReplicas(5)), metav1.ApplyOptions{FieldManager: "autoscaler", Force: true})
	must(t, err)
	if *d.Spec.Replicas != 5 || d.Generation != 2 {
		t.Fatalf("forced apply: replicas %d generation %d", *d.Spec.Replicas, d.Generation)
	}

	// A node agent's status update (over the node link) of an applied pod
	// is recorded as the agent's, as the kubelet's in Kubernetes.
	applied, err := c.client.CoreV1().Pods("default").Apply(ctx, corev1ac.Pod("on-edge", "default").WithSpec(corev1ac.PodSpec().
		WithNodeName("edge-1").WithRuntimeClassName("wasm").WithContainers(corev1ac.Container().WithName("main").WithImage("hello:v1"))),
		metav1.ApplyOptions{FieldManager: "fleet"})
	must(t, err)
	code, _, body := c.api.Do(ctx, apiserver.NodeUser("edge-1"), http.MethodPatch, "/api/v1/namespaces/default/pods/on-edge/status",
		string(types.MergePatchType), []byte(`{"status":{"phase":"Running"}}`))
	if code != http.StatusOK {
		t.Fatalf("status patch by the node: %d %s", code, body)
	}
	got, err := c.client.CoreV1().Pods("default").Get(ctx, "on-edge", metav1.GetOptions{})
	must(t, err)
	if m := strings.Join(managers(got), " "); m != "fleet/Apply wasmfleet-agent/Update/status" || got.Status.Phase != "Running" || applied.Status.Phase != "Pending" {
		t.Fatalf("after the agent's status update: phase %s, managers %s", got.Status.Phase, m)
	}

	// An update of an untracked object stays untracked (see apply.go).
	pod, err := c.client.CoreV1().Pods("default").Create(ctx, pod("plain", "default", "", nil), metav1.CreateOptions{})
	must(t, err)
	pod.Labels = map[string]string{"x": "y"}
	pod, err = c.client.CoreV1().Pods("default").Update(ctx, pod, metav1.UpdateOptions{})
	must(t, err)
	if len(pod.ManagedFields) != 0 {
		t.Fatalf("managed fields of a pod never applied: %v", managers(pod))
	}
}

func metav1ApplySelector(app string) *metav1ac.LabelSelectorApplyConfiguration {
	return metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": app})
}

// TestServerSideApplyDuplicateKeys: a key given twice in an apply
// configuration is answered by fieldValidation, as kube-apiserver answers
// it: refused under Strict (what kubectl apply --server-side asks for), a
// warning under Warn (the default), nothing under Ignore; the last value
// is applied when the apply goes on.
func TestServerSideApplyDuplicateKeys(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	path := "/api/v1/namespaces/default/configmaps/dup?fieldManager=test"
	body := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\ndata:\n  k: first\n  k: second\n"
	st := rejected(t, c, hc, http.MethodPatch, path+"&fieldValidation=Strict", applyType, strings.NewReader(body), nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	if !strings.Contains(st.Message, `key "k" already set`) {
		t.Errorf("Strict: message %q does not name the key", st.Message)
	}
	// The same configuration as JSON, as client-go's typed Apply sends it.
	jsonBody := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"k":"first","k":"second"}}`
	rejected(t, c, hc, http.MethodPatch, path+"&fieldValidation=Strict", applyType, strings.NewReader(jsonBody), nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	for _, tc := range []struct{ query, warning string }{{"", `key \"k\" already set`}, {"&fieldValidation=Ignore", ""}} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, c.url+path+tc.query, strings.NewReader(body))
		must(t, err)
		req.Header.Set("Content-Type", applyType)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		must(t, err)
		resp.Body.Close()
		warning := strings.Join(resp.Header.Values("Warning"), "; ")
		if resp.StatusCode/100 != 2 || (tc.warning == "") != (warning == "") || !strings.Contains(warning, tc.warning) {
			t.Errorf("fieldValidation %q: HTTP %d, warnings %q, want one with %q", tc.query, resp.StatusCode, warning, tc.warning)
		}
	}
	cm, err := c.client.CoreV1().ConfigMaps("default").Get(t.Context(), "dup", metav1.GetOptions{})
	must(t, err)
	if cm.Data["k"] != "second" {
		t.Errorf("applied data %v, want the last value of k", cm.Data)
	}
}
