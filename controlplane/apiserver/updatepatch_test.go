package apiserver_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// TestServiceReplaceKeepsAllocatedValues: as kube-apiserver, a Service
// replaced by a manifest that leaves out its cluster IPs, node ports or
// health check node port keeps those it has (kubectl replace -f of the
// YAML it was created from), while a change of them is still refused.
func TestServiceReplaceKeepsAllocatedValues(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	svcs := c.client.CoreV1().Services(testNS)
	create := func(svc *corev1.Service) *corev1.Service {
		t.Helper()
		out, err := svcs.Create(ctx, svc, metav1.CreateOptions{})
		must(t, err)
		return out
	}
	headless := create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless"}, Spec: corev1.ServiceSpec{
		ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "a"}, Ports: []corev1.ServicePort{{Port: 80}}}})
	lb := create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.10", ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		HealthCheckNodePort: 30100, Selector: map[string]string{"app": "a"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30443}}}})

	// The manifests again, without what they were given.
	headless.Spec.ClusterIP, headless.Spec.ClusterIPs = "", nil
	out, err := svcs.Update(ctx, headless, metav1.UpdateOptions{})
	must(t, err)
	if out.Spec.ClusterIP != corev1.ClusterIPNone || len(out.Spec.ClusterIPs) != 1 || out.Spec.ClusterIPs[0] != corev1.ClusterIPNone {
		t.Errorf("headless service replaced: clusterIP %q clusterIPs %q", out.Spec.ClusterIP, out.Spec.ClusterIPs)
	}
	lb.Spec.ClusterIP, lb.Spec.ClusterIPs, lb.Spec.HealthCheckNodePort = "", nil, 0
	lb.Spec.Ports[0].NodePort, lb.Spec.Ports[1].NodePort = 0, 0
	lb.Spec.Ports[1].Port = 8443
	out, err = svcs.Update(ctx, lb, metav1.UpdateOptions{})
	must(t, err)
	if s := out.Spec; s.ClusterIP != "10.0.0.10" || len(s.ClusterIPs) != 1 || s.ClusterIPs[0] != "10.0.0.10" || s.HealthCheckNodePort != 30100 ||
		s.Ports[0].NodePort != 30080 || s.Ports[1].NodePort != 30443 || s.Ports[1].Port != 8443 {
		t.Errorf("load balancer replaced: %+v", s)
	}

	// A different cluster IP is still refused.
	out.Spec.ClusterIP, out.Spec.ClusterIPs = "10.0.0.11", nil
	if _, err := svcs.Update(ctx, out, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("cluster IP changed: %v, want Invalid", err)
	}
}
