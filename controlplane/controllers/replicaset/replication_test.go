package replicaset_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
	"github.com/wasmfleet/wasmfleet/internal/nodesim"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestReplicationController: a ReplicationController (its selector
// defaulted from the template's labels) gets its pods, owned by it, and
// its status; kubectl scales it up and down, with the events on it from
// replication-controller; kubectl gets and describes it.
func TestReplicationController(t *testing.T) {
	e := start(t, nodesim.Options{}, nil)
	ctx := context.Background()
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: ns},
		Spec: corev1.ReplicationControllerSpec{
			Replicas: ptr.To[int32](3),
			Template: &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "old"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "hello:1"}}},
			},
		},
	}
	if _, err := e.client.CoreV1().ReplicationControllers(ns).Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := waitSettledOf(t, e.client, "ReplicationController", "old", 3)
	for _, p := range activePods(t, e.client, rs) {
		ref := metav1.GetControllerOf(&p)
		if !strings.HasPrefix(p.Name, "old-") || ref.Kind != "ReplicationController" || ref.APIVersion != "v1" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("pod %s owner %+v", p.Name, ref)
		}
	}

	kc, dir := e.cluster.Kubeconfig(), t.TempDir()
	testenv.MustKubectl(t, kc, dir, "", "scale", "rc/old", "--replicas=5")
	waitSettledOf(t, e.client, "ReplicationController", "old", 5)
	testenv.MustKubectl(t, kc, dir, "", "scale", "rc", "old", "--replicas=1")
	waitSettledOf(t, e.client, "ReplicationController", "old", 1)

	waitFor(t, "events", func() (bool, error) {
		r := eventReasons(t, e.client, "ReplicationController", "old")
		return r[replicaset.EventSuccessfulCreate] == 5 && r[replicaset.EventSuccessfulDelete] == 4, fmt.Errorf("events %v", r)
	})
	evs, err := e.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=ReplicationController"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Source.Component != "replication-controller" || ev.InvolvedObject.APIVersion != "v1" {
			t.Errorf("event %s: source %+v, involved %+v", ev.Name, ev.Source, ev.InvolvedObject)
		}
	}

	if out := testenv.MustKubectl(t, kc, dir, "", "get", "rc", "old", "-o", "jsonpath={.status.readyReplicas}/{.status.replicas}"); out != "1/1" {
		t.Errorf("kubectl get rc: %q", out)
	}
	out := testenv.MustKubectl(t, kc, dir, "", "describe", "rc", "old")
	for _, want := range []string{"Selector:     app=old", "Replicas:     1 current / 1 desired", "1 Running", "SuccessfulDelete"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl describe rc: no %q in\n%s", want, out)
		}
	}
}
