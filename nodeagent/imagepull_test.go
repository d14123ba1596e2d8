package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestImageBackOff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 6: 5 * time.Minute, 40: 5 * time.Minute} {
		if got := imageBackOff(10*time.Second, n); got != want {
			t.Errorf("imageBackOff(10s, %d) = %v, want %v", n, got, want)
		}
	}
}

// TestImagePullBackOff: a module that cannot be fetched shows
// ErrImagePull (its event tells), then ImagePullBackOff (with the kubelet's message and
// events) while the agent waits longer after each failure, and the pod
// runs once the module is there.
func TestImagePullBackOff(t *testing.T) {
	admin := agentPods(t, func(p *Pods) { p.PullRetry = 200 * time.Millisecond })
	ctx := context.Background()

	module := filepath.Join(t.TempDir(), "later.wasm")
	image := "file://" + module
	if _, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "later"},
		Spec:       corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "main", Image: image}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			p, err := admin.CoreV1().Pods("default").Get(ctx, "later", metav1.GetOptions{})
			if err == nil && ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod never %s: %+v %v", what, p.Status, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waiting := func(reason string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reason
		}
	}
	p := waitFor("ImagePullBackOff", waiting(ReasonImagePullBackOff))
	if msg, want := p.Status.ContainerStatuses[0].State.Waiting.Message, `Back-off pulling image "`+image+`": ErrImagePull: `; !strings.HasPrefix(msg, want) || len(msg) == len(want) {
		t.Errorf("message %q, want %q and the pull's error", msg, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reasons := map[string]string{}; reasons[EventBackOff] != `Back-off pulling image "`+image+`"` || reasons[EventFailed+"/back-off"] == "" || reasons[EventFailed+"/pull"] == ""; {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=later"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			switch {
			case e.Reason == EventBackOff && e.Type == corev1.EventTypeNormal:
				reasons[EventBackOff] = e.Message
			case e.Reason == EventFailed && e.Type == corev1.EventTypeWarning && e.Message == "Error: ImagePullBackOff":
				reasons[EventFailed+"/back-off"] = e.Message
			case e.Reason == EventFailed && e.Type == corev1.EventTypeWarning && strings.HasPrefix(e.Message, "Error: ErrImagePull: "):
				reasons[EventFailed+"/pull"] = e.Message
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v", reasons)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The module arrives: the next pull (at most a few back-offs away)
	// finds it.
	tiny, err := os.ReadFile(filepath.Join("..", "examples", "tiny", "tiny.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(module, tiny, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
}
