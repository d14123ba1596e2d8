package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  runtimeClassName: wasm
  containers:
  - name: main
    image: hello:v1
`

const deployYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      runtimeClassName: wasm
      containers:
      - name: main
        image: %s
`

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

func pod(name, ns, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}},
		},
	}
}

func TestKubectlCreateGetExplain(t *testing.T) {
	c := startAPI(t)
	mustContain(t, c.kubectl(t, podYAML, "create", "-f", "-"), "pod/hello created")
	out := c.kubectl(t, "", "get", "pods")
	if !strings.HasPrefix(out, "NAME    READY   STATUS    RESTARTS   AGE\nhello   0/1     Pending   0          ") {
		t.Fatalf("get pods:\n%s", out)
	}
	out, err := c.kubectlErr(t, podYAML, "create", "-f", "-")
	if err == nil {
		t.Fatal("second create succeeded")
	}
	mustContain(t, out, `pods "hello" already exists`)

	mustContain(t, c.kubectl(t, "", "get", "ns"), "default ", "kube-system ", "kube-node-lease ", "Active")
	mustContain(t, c.kubectl(t, "", "get", "runtimeclasses"), "NAME", "HANDLER", "wasm")
	mustContain(t, c.kubectl(t, "", "api-resources"), "pods ", "deployments ", "deploy ", "apps/v1", "runtimeclasses", "leases", "jobs")
	mustContain(t, c.kubectl(t, "", "explain", "pods.spec.runtimeClassName"), "RuntimeClassName refers to a RuntimeClass")
	mustContain(t, c.kubectl(t, "", "explain", "deployments.spec.strategy"), "strategy")

	var p corev1.Pod
	must(t, json.Unmarshal([]byte(c.kubectl(t, "", "get", "pod", "hello", "-o", "json")), &p))
	if p.Name != "hello" || p.UID == "" || p.ResourceVersion == "" || p.Status.Phase != corev1.PodPending || p.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Fatalf("pod -o json: %+v", p)
	}
	mustContain(t, c.kubectl(t, "", "get", "pod", "hello", "-o", "yaml"), "kind: Pod", "runtimeClassName: wasm", "uid: ")
	mustContain(t, c.kubectl(t, "", "get", "pod", "hello", "-o", "wide"), "NODE", "NOMINATED NODE")
	mustContain(t, c.kubectl(t, "", "auth", "can-i", "list", "pods"), "yes")
}

func TestKubectlSelectorsNamespacesChunks(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	c.kubectl(t, "", "create", "namespace", "site-a")
	for i := range 5 {
		node := ""
		if i%2 == 0 {
			node = "edge-1"
		}
		_, err := c.client.CoreV1().Pods("default").Create(ctx, pod(fmt.Sprintf("p%d", i), "", node, map[string]string{"tier": fmt.Sprint(i % 2)}), metav1.CreateOptions{})
		must(t, err)
	}
	_, err := c.client.CoreV1().Pods("site-a").Create(ctx, pod("other", "", "", nil), metav1.CreateOptions{})
	must(t, err)

	names := func(out string) string {
		var ns []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			ns = append(ns, strings.TrimPrefix(l, "pod/"))
		}
		return strings.Join(ns, ",")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-l", "tier=1"}, "p1,p3"},
		{[]string{"-l", "tier!=1"}, "p0,p2,p4"},
		{[]string{"--field-selector", "metadata.name=p2"}, "p2"},
		{[]string{"--field-selector", "spec.nodeName=edge-1"}, "p0,p2,p4"},
		{[]string{"--field-selector", "status.phase=Pending,spec.nodeName!=edge-1"}, "p1,p3"},
		{[]string{"--chunk-size=2"}, "p0,p1,p2,p3,p4"},
		{[]string{"-n", "site-a"}, "other"},
		{[]string{"-A", "--field-selector", "metadata.namespace=site-a"}, "other"},
	} {
		out := c.kubectl(t, "", append([]string{"get", "pods", "-o", "name"}, tc.args...)...)
		if got := names(out); got != tc.want {
			t.Errorf("get pods %v = %s, want %s", tc.args, got, tc.want)
		}
	}
	out := c.kubectl(t, "", "get", "pods", "-A")
	mustContain(t, out, "NAMESPACE", "site-a ", "other ")
	if n := strings.Count(out, "\n"); n != 7 {
		t.Errorf("get pods -A: %d lines:\n%s", n, out)
	}
	out, err = c.kubectlErr(t, "", "get", "pods", "--field-selector", "spec.bogus=1")
	if err == nil || !strings.Contains(out, "field label not supported") {
		t.Errorf("bad field selector: %v\n%s", err, out)
	}
}

func TestKubectlApplyEditPatchScaleDelete(t *testing.T) {
	c := startAPI(t)
	mustContain(t, c.kubectl(t, fmt.Sprintf(deployYAML, 1, "hello:v1"), "apply", "-f", "-"), "deployment.apps/web created")
	mustContain(t, c.kubectl(t, fmt.Sprintf(deployYAML, 1, "hello:v1"), "apply", "-f", "-"), "deployment.apps/web unchanged")
	mustContain(t, c.kubectl(t, fmt.Sprintf(deployYAML, 3, "hello:v2"), "apply", "-f", "-"), "deployment.apps/web configured")
	out := c.kubectl(t, "", "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}")
	if out != "3 hello:v2 2" {
		t.Fatalf("after apply: %q", out)
	}
	mustContain(t, c.kubectl(t, "", "get", "deploy"), "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "web", "0/3")

	mustContain(t, c.kubectl(t, "", "scale", "deploy", "web", "--replicas=5"), "deployment.apps/web scaled")
	mustContain(t, c.kubectl(t, "", "label", "deploy", "web", "site=north"), "deployment.apps/web labeled")
	mustContain(t, c.kubectl(t, "", "annotate", "deploy", "web", "owner=ops"), "deployment.apps/web annotated")
	mustContain(t, c.kubectl(t, "", "patch", "deploy", "web", "--type=merge", "-p", `{"spec":{"minReadySeconds":7}}`), "patched")
	mustContain(t, c.kubectl(t, "", "patch", "deploy", "web", "--type=json", "-p", `[{"op":"replace","path":"/spec/revisionHistoryLimit","value":4}]`), "patched")
	mustContain(t, c.kubectl(t, "", "patch", "deploy", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"main","env":[{"name":"MODE","value":"fast"}]}]}}}}`), "patched")
	out = c.kubectl(t, "", "get", "deploy", "web", "-o",
		"jsonpath={.spec.replicas} {.metadata.labels.site} {.metadata.annotations.owner} {.spec.minReadySeconds} {.spec.revisionHistoryLimit} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value}")
	if out != "5 north ops 7 4 hello:v2 fast" {
		t.Fatalf("after scale/label/annotate/patches: %q", out)
	}

	// kubectl edit with a scripted editor.
	editor := filepath.Join(t.TempDir(), "editor.sh")
	must(t, os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/minReadySeconds: 7/minReadySeconds: 9/' \"$1\"\n"), 0o755))
	cmd := c.kubectlCmd(t, "edit", "deploy", "web")
	cmd.Env = append(cmd.Env, "KUBE_EDITOR="+editor)
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "deployment.apps/web edited") {
		t.Fatalf("edit: %v\n%s", err, b)
	}
	if out := c.kubectl(t, "", "get", "deploy", "web", "-o", "jsonpath={.spec.minReadySeconds}"); out != "9" {
		t.Fatalf("after edit: %q", out)
	}
	mustContain(t, c.kubectl(t, "", "describe", "deploy", "web"), "Name:", "web", "Replicas:", "5 desired", "hello:v2")
	mustContain(t, c.kubectl(t, "", "delete", "deploy", "web"), `deployment.apps "web" deleted`)
	out, err = c.kubectlErr(t, "", "get", "deploy", "web")
	if err == nil || !strings.Contains(out, `deployments.apps "web" not found`) {
		t.Fatalf("get after delete: %v %s", err, out)
	}
}

func TestKubectlGracefulPodDeletion(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	_, err := c.client.CoreV1().Pods("default").Create(ctx, pod("bound", "", "edge-1", nil), metav1.CreateOptions{})
	must(t, err)
	mustContain(t, c.kubectl(t, "", "delete", "pod", "bound", "--wait=false"), `pod "bound" deleted`)
	p, err := c.client.CoreV1().Pods("default").Get(ctx, "bound", metav1.GetOptions{})
	must(t, err)
	if p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("graceful delete: deletionTimestamp=%v grace=%v", p.DeletionTimestamp, p.DeletionGracePeriodSeconds)
	}
	mustContain(t, c.kubectl(t, "", "get", "pod", "bound"), "Terminating")
	mustContain(t, c.kubectl(t, "", "delete", "pod", "bound", "--grace-period=0", "--force"), `pod "bound" force deleted`)
	if _, err := c.client.CoreV1().Pods("default").Get(ctx, "bound", metav1.GetOptions{}); err == nil {
		t.Fatal("pod still there after forced delete")
	}
}

func TestKubectlDescribePodWithEvents(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	p, err := c.client.CoreV1().Pods("default").Create(ctx, pod("sensor", "", "", nil), metav1.CreateOptions{})
	must(t, err)
	_, err = c.client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "sensor.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "sensor", UID: p.UID, APIVersion: "v1"},
		Reason:         "Pulled", Message: "module sensor:v1 pulled", Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "wasmfleet-agent"},
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
	}, metav1.CreateOptions{})
	must(t, err)
	mustContain(t, c.kubectl(t, "", "describe", "pod", "sensor"), "Name:", "sensor", "Status:", "Pending", "Events:", "Pulled", "module sensor:v1 pulled")
	// Events expire with an etcd lease (event TTL); pods do not.
	for key, wantLease := range map[string]bool{"/registry/events/default/sensor.1": true, "/registry/pods/default/sensor": false} {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v", key, err)
		}
		if got := resp.Kvs[0].Lease != 0; got != wantLease {
			t.Errorf("%s has a lease: %v, want %v", key, got, wantLease)
		}
	}
	mustContain(t, c.kubectl(t, "", "describe", "ns", "default"), "Name:", "default", "Active")
	mustContain(t, c.kubectl(t, "", "get", "events"), "Pulled", "pod/sensor")
}

func TestKubectlWatch(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	cmd := c.kubectlCmd(t, "get", "pods", "-w", "--output-watch-events")
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	expect := func(want ...string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl get -w ended before %q", want)
				}
				all := true
				for _, w := range want {
					all = all && strings.Contains(l, w)
				}
				if all {
					return
				}
			case <-timeout:
				t.Fatalf("no watch line with %q", want)
			}
		}
	}
	// The watch starts after kubectl's initial list; create until seen.
	_, err = c.client.CoreV1().Pods("default").Create(ctx, pod("w1", "", "", nil), metav1.CreateOptions{})
	must(t, err)
	expect("ADDED", "w1", "Pending")
	must(t, c.client.CoreV1().Pods("default").Delete(ctx, "w1", metav1.DeleteOptions{}))
	expect("DELETED", "w1")
}

// TestEviction: an eviction is a graceful delete, as kubectl drain uses it.
func TestEviction(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	for _, p := range []*corev1.Pod{pod("bound", "", "edge-1", nil), pod("unbound", "", "", nil)} {
		_, err := c.client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		must(t, err)
		must(t, c.client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: "default"}}))
	}
	p, err := c.client.CoreV1().Pods("default").Get(ctx, "bound", metav1.GetOptions{})
	must(t, err)
	if p.DeletionTimestamp == nil {
		t.Error("evicted bound pod has no deletionTimestamp")
	}
	// As Kubernetes: the pod says why it goes.
	if i := slices.IndexFunc(p.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.DisruptionTarget }); i < 0 ||
		p.Status.Conditions[i].Status != corev1.ConditionTrue || p.Status.Conditions[i].Reason != "EvictionByEvictionAPI" {
		t.Errorf("evicted pod's conditions: %+v, want DisruptionTarget=True EvictionByEvictionAPI", p.Status.Conditions)
	}
	if _, err := c.client.CoreV1().Pods("default").Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("evicted unbound pod: %v, want NotFound", err)
	}
	// A resourceVersion precondition is checked against the pod as it was
	// asked about: a stale one is refused and changes nothing, the
	// current one evicts.
	_, err = c.client.CoreV1().Pods("default").Create(ctx, pod("pinned", "", "edge-1", nil), metav1.CreateOptions{})
	must(t, err)
	pinned, err := c.client.CoreV1().Pods("default").Get(ctx, "pinned", metav1.GetOptions{})
	must(t, err)
	stale := "1"
	err = c.client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "pinned", Namespace: "default"},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &stale}}})
	if !apierrors.IsConflict(err) {
		t.Errorf("eviction with a stale resourceVersion: %v, want 409", err)
	}
	if again, err := c.client.CoreV1().Pods("default").Get(ctx, "pinned", metav1.GetOptions{}); err != nil || again.ResourceVersion != pinned.ResourceVersion {
		t.Errorf("the refused eviction changed the pod: %v, resourceVersion %s → %s", err, pinned.ResourceVersion, again.ResourceVersion)
	}
	must(t, c.client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "pinned", Namespace: "default"},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &pinned.ResourceVersion}}}))
	err = c.client.PolicyV1().Evictions("default").Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "nope", Namespace: "default"}})
	if !apierrors.IsNotFound(err) {
		t.Errorf("evicting a missing pod: %v, want NotFound", err)
	}
}

// TestProtobufKindMismatch: a protobuf body of another kind is refused,
// not stored as an empty object.
func TestProtobufKindMismatch(t *testing.T) {
	c := startAPI(t)
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	var body bytes.Buffer
	must(t, protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(cm, &body))
	err := c.client.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").
		SetHeader("Content-Type", "application/vnd.kubernetes.protobuf").Body(body.Bytes()).Do(context.Background()).Error()
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("configmap posted to pods: %v, want 400", err)
	}
}

// TestKubectlLimitRangesAndPriorities: what kubectl shows and gets back
// of limit ranges and priority classes, with the real kubectl.
func TestKubectlLimitRangesAndPriorities(t *testing.T) {
	c := startAPI(t)
	const manifests = `apiVersion: v1
kind: LimitRange
metadata: {name: mem}
spec:
  limits:
  - type: Container
    max: {memory: 128Mi}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: fleet-high}
value: 1000
description: fleet services
`
	mustContain(t, c.kubectl(t, manifests, "apply", "-f", "-"), "limitrange/mem created", "priorityclass.scheduling.k8s.io/fleet-high created")
	out := c.kubectl(t, "", "get", "pc")
	if !strings.HasPrefix(out, "NAME                      VALUE        GLOBAL-DEFAULT   AGE   PREEMPTIONPOLICY\n") {
		t.Fatalf("get pc:\n%s", out)
	}
	mustContain(t, out, "fleet-high ", "1000 ", "system-node-critical ", "2000001000 ", "PreemptLowerPriority")
	// kubectl's describer shows the defaults the server gave the item.
	mustContain(t, c.kubectl(t, "", "describe", "limitrange", "mem"), "Container   memory    -    128Mi  128Mi            128Mi")
	out = c.kubectl(t, "", "run", "p", "--image=hello:v1", "--dry-run=server", "-o", "yaml",
		`--overrides={"spec":{"priorityClassName":"fleet-high"}}`)
	mustContain(t, out, "kubernetes.io/limit-ranger: 'LimitRanger plugin set: memory request for container", "p; memory limit for container p'",
		"memory: 128Mi", "priority: 1000", "priorityClassName: fleet-high", "preemptionPolicy: PreemptLowerPriority")
	out, err := c.kubectlErr(t, "", "run", "big", "--image=hello:v1",
		`--overrides={"spec":{"containers":[{"name":"big","image":"hello:v1","resources":{"limits":{"memory":"1Gi"}}}]}}`)
	if err == nil {
		t.Fatal("a pod over the limit range was created")
	}
	mustContain(t, out, `pods "big" is forbidden: maximum memory usage per Container is 128Mi, but limit is 1Gi`)
}

// TestKubectlPrune: `kubectl apply --prune` deletes what a directory no
// longer holds, through an ApplySet (its parent a ConfigMap) and, with an
// allowlist, through a label selector.
func TestKubectlPrune(t *testing.T) {
	c := startAPI(t)
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", labels: {app: demo}}\ndata: {k: v}\n---\n"
	}
	t.Setenv("KUBECTL_APPLYSET", "true")
	applySet := []string{"apply", "-n", "default", "--prune", "--applyset=configmap/demo-set", "-f", "-"}
	mustContain(t, c.kubectl(t, cm("a")+cm("b"), applySet...), "configmap/a created", "configmap/b created")
	mustContain(t, c.kubectl(t, cm("a"), applySet...), "configmap/a unchanged", "configmap/b pruned")
	mustContain(t, c.kubectl(t, "", "get", "configmap", "demo-set", "-o", "jsonpath={.metadata.annotations.applyset\\.kubernetes\\.io/contains-group-kinds}"), "ConfigMap")

	allowlist := []string{"apply", "--prune", "-l", "app=demo", "--prune-allowlist=core/v1/ConfigMap", "-f", "-"}
	mustContain(t, c.kubectl(t, cm("c"), allowlist...), "configmap/c created", "configmap/a pruned")
	out := c.kubectl(t, "", "get", "configmaps", "-l", "app=demo", "-o", "name")
	if strings.TrimSpace(out) != "configmap/c" {
		t.Errorf("left: %s", out)
	}
}
