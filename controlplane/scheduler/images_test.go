package scheduler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/scheduler"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler/imagearch"
	"github.com/wasmfleet/wasmfleet/controlplane/scheduler/imagearch/registrytest"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

var _ scheduler.ImageLookups = (*imagearch.Resolver)(nil)

// startResolver returns an image architecture resolver, closed when the
// test ends.
func startResolver(t *testing.T, opts imagearch.Options) *imagearch.Resolver {
	t.Helper()
	res := imagearch.New(opts)
	t.Cleanup(res.Close)
	return res
}

func container(image string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		rc := scheduler.ContainerRuntimeClass
		p.Spec.RuntimeClassName = &rc
		p.Spec.Containers[0].Image = image
	}
}

// TestImageArchitectures runs the scheduler with the registry-backed
// resolver: container pods whose images are first looked up wait for the
// answer (wasm pods do not), then land only on nodes of their images'
// architectures, or nowhere with the reason.
func TestImageArchitectures(t *testing.T) {
	reg := registrytest.Start(t)
	armOnly := reg.PushImage(t, "arm64-only:1", registrytest.Linux("arm64"))
	multi := reg.PushIndex(t, "multi:1", registrytest.Linux("amd64"), registrytest.Linux("arm64", "v8"))
	s390x := reg.PushImage(t, "s390x-only:1", registrytest.Linux("s390x"))
	res := startResolver(t, imagearch.Options{Timeout: time.Minute})

	c := testcluster.Start(t)
	client := c.Client(t)
	runc := scheduler.RuntimeClassLabelPrefix + scheduler.ContainerRuntimeClass
	for i := range 4 {
		createNode(t, client, nodeSpec{name: fmt.Sprint("x86-", i), labels: map[string]string{runc: "true"}})
	}
	createNode(t, client, nodeSpec{name: "arm", labels: map[string]string{runc: "true", corev1.LabelArchStable: "arm64"}})
	startSchedulerWith(t, c, scheduler.Options{Binders: 16, ImageArchitectures: res})

	// The registry holds the manifest reads: the container pods' lookups
	// are in flight while the scheduler sees them.
	release := reg.Hold()
	defer release()
	containers := []string{"arm-0", "arm-1", "arm-2", "multi", "s390x"}
	for i := range 3 {
		createPod(t, client, fmt.Sprint("arm-", i), container(armOnly))
	}
	createPod(t, client, "multi", container(multi))
	createPod(t, client, "s390x", container(s390x))
	// A wasm pod queued behind them does not wait for their lookups.
	createPod(t, client, "wasm")
	waitBound(t, client, "wasm")
	for _, name := range containers {
		p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("pod %s bound to %s before its image was looked up", name, p.Spec.NodeName)
		}
	}

	release()
	for i := range 3 {
		if p := waitBound(t, client, fmt.Sprint("arm-", i)); p.Spec.NodeName != "arm" {
			t.Errorf("arm64-only pod arm-%d on %s, want arm", i, p.Spec.NodeName)
		}
	}
	waitBound(t, client, "multi")
	waitUnschedulable(t, client, "s390x", "0/5 nodes are available: 5 "+scheduler.ReasonImageArchitecture(s390x)+".")

	// Known images are answered from memory: a new pod of one does not
	// wait, even with the registry holding every read again.
	hold := reg.Hold()
	defer hold()
	createPod(t, client, "arm-3", container(armOnly))
	if p := waitBound(t, client, "arm-3"); p.Spec.NodeName != "arm" {
		t.Errorf("arm-3 on %s, want arm", p.Spec.NodeName)
	}
}
