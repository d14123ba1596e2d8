package apiserver_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const statefulSetYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: hello:v1
`

// TestKubectlStatefulSets: apps/v1 statefulsets are served as kube-apiserver
// serves them, to the real kubectl: discovery, apply, tables, describe,
// explain, scale through the scale subresource, the update rules, and
// delete.
func TestKubectlStatefulSets(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	mustContain(t, c.kubectl(t, "", "api-resources", "--api-group=apps"), "statefulsets", "sts", "apps/v1", "StatefulSet")
	mustContain(t, c.kubectl(t, statefulSetYAML, "apply", "-f", "-"), "statefulset.apps/web created")
	mustContain(t, c.kubectl(t, statefulSetYAML, "apply", "-f", "-"), "statefulset.apps/web unchanged")

	ss, err := c.client.AppsV1().StatefulSets("default").Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if ss.Generation != 1 || ss.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement ||
		ss.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || *ss.Spec.UpdateStrategy.RollingUpdate.Partition != 0 ||
		*ss.Spec.RevisionHistoryLimit != 10 || ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Fatalf("stored StatefulSet not defaulted as kube's: %+v", ss.Spec)
	}

	out := c.kubectl(t, "", "get", "statefulsets")
	if !strings.HasPrefix(out, "NAME   READY   AGE\nweb    0/2     ") {
		t.Fatalf("get statefulsets:\n%s", out)
	}
	out = c.kubectl(t, "", "get", "sts", "-o", "wide")
	if !strings.HasPrefix(out, "NAME   READY   AGE   CONTAINERS   IMAGES\n") || !strings.Contains(out, "main         hello:v1") {
		t.Fatalf("get sts -o wide:\n%s", out)
	}
	mustContain(t, c.kubectl(t, "", "get", "all"), "statefulset.apps/web")
	mustContain(t, c.kubectl(t, "", "get", "sts", "--field-selector", "metadata.name=web"), "web")
	mustContain(t, c.kubectl(t, "", "describe", "sts", "web"),
		"Name:", "web", "Selector:", "app=web", "Replicas:", "2 desired", "Update Strategy:", "RollingUpdate", "Partition:", "0", "hello:v1")
	mustContain(t, c.kubectl(t, "", "explain", "statefulset.spec"), "podManagementPolicy", "serviceName", "volumeClaimTemplates", "updateStrategy")

	mustContain(t, c.kubectl(t, "", "scale", "sts", "web", "--replicas=4"), "statefulset.apps/web scaled")
	sc, err := c.client.AppsV1().StatefulSets("default").GetScale(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if sc.Spec.Replicas != 4 || sc.Status.Selector != "app=web" {
		t.Fatalf("scale: %+v", sc)
	}
	if out := c.kubectl(t, "", "get", "sts", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"); out != "4 2" {
		t.Fatalf("after scale: %q", out)
	}

	// Only some spec fields may change.
	out, err = c.kubectlErr(t, "", "patch", "sts", "web", "--type=merge", "-p", `{"spec":{"serviceName":"db"}}`)
	if err == nil || !strings.Contains(out, "updates to statefulset spec for fields other than") {
		t.Fatalf("patch of serviceName: %v\n%s", err, out)
	}
	mustContain(t, c.kubectl(t, "", "patch", "sts", "web", "--type=merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"hello:v2"}]}}}}`), "patched")

	// The status subresource is validated as kube's ValidateStatefulSetStatus.
	ss, err = c.client.AppsV1().StatefulSets("default").Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	ss.Status = appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 2}
	if _, err := c.client.AppsV1().StatefulSets("default").UpdateStatus(ctx, ss, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "status.readyReplicas") {
		t.Fatalf("invalid status written: %v", err)
	}
	ss.Status = appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 1, ObservedGeneration: ss.Generation}
	ss.Spec.Replicas = new(int32) // ignored by /status
	if _, err := c.client.AppsV1().StatefulSets("default").UpdateStatus(ctx, ss, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := c.kubectl(t, "", "get", "sts", "web", "-o", "jsonpath={.spec.replicas} {.status.readyReplicas}"); out != "4 1" {
		t.Fatalf("after status write: %q", out)
	}

	// Claims are refused up front, with a message that says why.
	out, err = c.kubectlErr(t, strings.Replace(statefulSetYAML, "name: web\n", "name: db\n", 1)+`  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
`, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "spec.volumeClaimTemplates: Forbidden: PersistentVolumeClaims are not served by wasmfleet") {
		t.Fatalf("apply with volumeClaimTemplates: %v\n%s", err, out)
	}

	mustContain(t, c.kubectl(t, "", "delete", "sts", "web"), `statefulset.apps "web" deleted`)
}
