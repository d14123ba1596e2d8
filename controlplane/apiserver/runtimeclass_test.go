package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRuntimeClassAdmission: pods are admitted against their runtime
// class as Kubernetes' RuntimeClass admission plugin does.
func TestRuntimeClassAdmission(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	pods := c.client.CoreV1().Pods("default")
	pod := func(name, class string, mutate ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}
		if class != "" {
			p.Spec.RuntimeClassName = &class
		}
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	refused := func(p *corev1.Pod, want string) {
		t.Helper()
		_, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("create %s: %v, want 403 %q", p.Name, err, want)
		}
		if _, err := pods.Get(ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("refused pod %s was stored: %v", p.Name, err)
		}
	}

	refused(pod("typo", "wsam"), `pod rejected: RuntimeClass "wsam" not found`)
	overhead := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}
	refused(pod("no-overhead", "wasm", func(p *corev1.Pod) { p.Spec.Overhead = overhead }),
		"pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
	refused(pod("no-class", "", func(p *corev1.Pod) { p.Spec.Overhead = overhead }),
		"pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")

	// A class with overhead and scheduling, created just before the pods.
	_, err := c.client.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{Name: "wasm-arm"}, Handler: "wasm",
		Overhead: &nodev1.Overhead{PodFixed: overhead},
		Scheduling: &nodev1.Scheduling{
			NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"},
			Tolerations: []corev1.Toleration{
				{Key: "edge", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
				{Key: "site", Operator: corev1.TolerationOpEqual, Value: "north"},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pods.Create(ctx, pod("arm", "wasm-arm", func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"site": "north"}
		// Covered by the class's wider toleration: dropped.
		p.Spec.Tolerations = []corev1.Toleration{{Key: "edge", Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoSchedule}}
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Spec.Overhead.Memory().Equal(resource.MustParse("16Mi")) {
		t.Errorf("overhead %v, want the class's 16Mi", got.Spec.Overhead)
	}
	if sel := got.Spec.NodeSelector; len(sel) != 2 || sel["kubernetes.io/arch"] != "arm64" || sel["site"] != "north" {
		t.Errorf("node selector %v, want the pod's and the class's", sel)
	}
	var keys []string
	for _, tol := range got.Spec.Tolerations {
		keys = append(keys, tol.Key+"/"+string(tol.Operator)+"/"+tol.Value)
	}
	want := "node.kubernetes.io/not-ready/Exists/ node.kubernetes.io/unreachable/Exists/ edge/Exists/ site/Equal/north"
	if strings.Join(keys, " ") != want {
		t.Errorf("tolerations %v, want %s", keys, want)
	}
	// Same overhead given: admitted.
	if _, err := pods.Create(ctx, pod("same-overhead", "wasm-arm", func(p *corev1.Pod) { p.Spec.Overhead = overhead }), metav1.CreateOptions{}); err != nil {
		t.Errorf("pod with its class's overhead: %v", err)
	}
	refused(pod("other-overhead", "wasm-arm", func(p *corev1.Pod) {
		p.Spec.Overhead = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}
	}), "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
	refused(pod("conflict", "wasm-arm", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "amd64"} }),
		"conflict: runtimeClass.scheduling.nodeSelector[kubernetes.io/arch] = arm64; pod.spec.nodeSelector[kubernetes.io/arch] = amd64")
	// A generated name is refused by its prefix, as by kube-apiserver.
	gen := pod("", "nope")
	gen.GenerateName = "web-7d4b9-"
	if _, err := pods.Create(ctx, gen, metav1.CreateOptions{}); !apierrors.IsForbidden(err) ||
		err.Error() != `pods "web-7d4b9-" is forbidden: pod rejected: RuntimeClass "nope" not found` {
		t.Errorf("create with generateName and a missing class: %v", err)
	}
	// Dry run is refused the same way.
	if _, err := pods.Create(ctx, pod("dry", "nope"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Errorf("dry-run create with a missing class: %v, want 403", err)
	}
}
