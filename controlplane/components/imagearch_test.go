package components_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/controlplane/components"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler/imagearch/registrytest"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// TestSchedulerImageArchLookup runs the server's scheduler as `wasmfleet
// server` does: with scheduler-image-arch-lookup (the default) it reads
// images from their registry and keeps runc pods on nodes of their images'
// architectures; without it, it places them without looking.
func TestSchedulerImageArchLookup(t *testing.T) {
	reg := registrytest.Start(t)
	arm := reg.PushImage(t, "arm64-only:1", registrytest.Linux("arm64"))
	s390x := reg.PushIndex(t, "s390x-only:1", registrytest.Linux("s390x"))
	for _, lookup := range []bool{true, false} {
		t.Run(fmt.Sprint("lookup=", lookup), func(t *testing.T) {
			cfg := testcluster.Config(t, t.TempDir())
			cfg.DisableControllerManager = true
			if !lookup {
				cfg.SchedulerImageArchLookup = false
			}
			cfg.Components = components.For(cfg)
			client := testcluster.StartWith(t, cfg).Client(t)
			for name, arch := range map[string]string{"x86-1": "amd64", "x86-2": "amd64", "x86-3": "amd64", "arm": "arm64"} {
				runcNode(t, client, name, arch)
			}
			for i := range 3 {
				runcPod(t, client, fmt.Sprint("arm-", i), arm)
			}
			runcPod(t, client, "s390x", s390x)
			ctx := context.Background()
			get := func(name string) *corev1.Pod {
				p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			if !lookup {
				eventually(t, "every pod bound", time.Minute, func() bool {
					for _, name := range []string{"arm-0", "arm-1", "arm-2", "s390x"} {
						if get(name).Spec.NodeName == "" {
							return false
						}
					}
					return true
				})
				return
			}
			for i := range 3 {
				name := fmt.Sprint("arm-", i)
				eventually(t, name+" bound", time.Minute, func() bool { return get(name).Spec.NodeName != "" })
				if n := get(name).Spec.NodeName; n != "arm" {
					t.Errorf("arm64-only pod %s on %s, want arm", name, n)
				}
			}
			reason := scheduler.ReasonImageArchitecture(s390x)
			eventually(t, "s390x PodScheduled=False for its image", time.Minute, func() bool {
				p := get("s390x")
				if p.Spec.NodeName != "" {
					t.Fatalf("s390x-only pod bound to %s", p.Spec.NodeName)
				}
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, reason) {
						return true
					}
				}
				return false
			})
		})
	}
}

// runcNode registers a ready node of arch that runs runc pods.
func runcNode(t *testing.T, client kubernetes.Interface, name, arch string) {
	t.Helper()
	readyNode(t, client, name, 110)
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels[corev1.LabelArchStable] = arch
	n.Labels[scheduler.RuntimeClassLabelPrefix+scheduler.ContainerRuntimeClass] = "true"
	if _, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func runcPod(t *testing.T, client kubernetes.Interface, name, image string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			RuntimeClassName: ptrTo(scheduler.ContainerRuntimeClass),
			Containers:       []corev1.Container{{Name: "main", Image: image}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
