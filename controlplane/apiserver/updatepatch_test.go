package apiserver_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestDeploymentGenerationCountsAnnotations: as kube-apiserver's deployment
// strategy, a change of a Deployment's annotations bumps its generation
// (the controller copies them to the ReplicaSets, so observedGeneration
// must say when it has); labels do not, nor does anything through /status,
// and a ReplicaSet counts its spec only.
func TestDeploymentGenerationCountsAnnotations(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	deploys := c.client.AppsV1().Deployments(testNS)
	d, err := deploys.Create(ctx, semDeployment("gen"), metav1.CreateOptions{})
	must(t, err)
	step := func(what string, patch func() (metav1.Object, error), want int64) {
		t.Helper()
		obj, err := patch()
		must(t, err)
		if g := obj.GetGeneration(); g != want {
			t.Errorf("after %s: generation %d, want %d", what, g, want)
		}
	}
	mp := func(body string, sub ...string) func() (metav1.Object, error) {
		return func() (metav1.Object, error) {
			return deploys.Patch(ctx, d.Name, types.MergePatchType, []byte(body), metav1.PatchOptions{}, sub...)
		}
	}
	step("an annotation", mp(`{"metadata":{"annotations":{"a":"1"}}}`), 2)
	step("the same annotation", mp(`{"metadata":{"annotations":{"a":"1"}}}`), 2)
	step("a label", mp(`{"metadata":{"labels":{"l":"1"}}}`), 2)
	step("an annotation through /status", mp(`{"metadata":{"annotations":{"b":"1"}}}`, "status"), 2)
	step("an annotation removed", mp(`{"metadata":{"annotations":{"a":null}}}`), 3)

	sd := semDeployment("gen")
	rs, err := c.client.AppsV1().ReplicaSets(testNS).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: sd.ObjectMeta,
		Spec: appsv1.ReplicaSetSpec{Replicas: sd.Spec.Replicas, Selector: sd.Spec.Selector, Template: sd.Spec.Template}}, metav1.CreateOptions{})
	must(t, err)
	step("a ReplicaSet's annotation", func() (metav1.Object, error) {
		return c.client.AppsV1().ReplicaSets(testNS).Patch(ctx, rs.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"1"}}}`), metav1.PatchOptions{})
	}, 1)
}
