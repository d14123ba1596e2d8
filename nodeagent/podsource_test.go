package nodeagent

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
)

func podNames(s *PodSource) []string {
	pods, _ := s.Snapshot()
	var names []string
	for _, p := range pods {
		names = append(names, p.Name+"@"+p.Spec.Containers[0].Image)
	}
	return names
}

// waitFor polls until the source holds exactly want (pod@image).
func waitFor(t *testing.T, s *PodSource, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := podNames(s)
		if len(got) == len(want) {
			same := true
			for i := range got {
				same = same && got[i] == want[i]
			}
			if same {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPodSource(t *testing.T) {
	api, admin := joinedNode(t, "edge-1")
	js, err := jetstream.New(api.conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods := admin.CoreV1().Pods("default")
	mk := func(name, node string) {
		_, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("before", "edge-1") // exists before the source starts: comes from the list
	mk("elsewhere", "edge-2")

	start := func() (*PodSource, func()) {
		s := &PodSource{API: api, JS: js, Stream: subjects.DefaultStream, Consumer: nodelink.ConsumerName("edge-1"), Filter: subjects.NodeFilter("edge-1")}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		return s, func() { cancel(); <-done }
	}
	s, stop := start()
	waitFor(t, s, "before@hello:v1")
	if _, synced := s.Snapshot(); !synced {
		t.Error("not synced after its first list")
	}
	mk("after", "edge-1") // arrives as an event
	waitFor(t, s, "after@hello:v1", "before@hello:v1")
	p, err := pods.Get(ctx, "after", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Containers[0].Image = "hello:v2"
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "after@hello:v2", "before@hello:v1")
	zero := int64(0)
	if err := pods.Delete(ctx, "before", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "after@hello:v2")
	stop()

	// A new source (an agent restart) with the same durable consumer sees
	// the same pods, including a change made while it was down.
	mk("while-down", "edge-1")
	s2, stop2 := start()
	defer stop2()
	waitFor(t, s2, "after@hello:v2", "while-down@hello:v1")
}
