package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Sync hands a pod to its worker only when its resourceVersion changed (a
// node with many pods does not wake every worker on every change) or the
// worker waits to retry; pods without one (static pods) are handed over
// every time.
func TestSyncHandsOverChangedPodsOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the workers stop at once and read no updates: see below
	p := &Pods{API: newDetachedAPIClient("edge-1"), Dir: t.TempDir(), Config: validConfig()}
	defer p.Wait()
	now := metav1.Now()
	pod := func(uid, rv string) *corev1.Pod {
		// Being deleted, with no link to confirm it and ctx done: the
		// worker returns before it looks at its updates.
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "default", UID: types.UID(uid), ResourceVersion: rv, DeletionTimestamp: &now}}
	}
	pending := func(uid string) (string, bool) {
		t.Helper()
		p.mu.Lock()
		w := p.workers[types.UID(uid)]
		p.mu.Unlock()
		select {
		case np := <-w.updates:
			return np.ResourceVersion, true
		default:
			return "", false
		}
	}

	p.Sync(ctx, []*corev1.Pod{pod("a", "1"), pod("s", "")})
	p.Sync(ctx, []*corev1.Pod{pod("a", "1"), pod("s", "")})
	if rv, ok := pending("a"); ok {
		t.Errorf("unchanged pod handed over again (resourceVersion %s)", rv)
	}
	if _, ok := pending("s"); !ok {
		t.Error("pod without a resourceVersion not handed over")
	}
	p.Sync(ctx, []*corev1.Pod{pod("a", "2"), pod("s", "")})
	p.Sync(ctx, []*corev1.Pod{pod("a", "2"), pod("s", "")})
	if rv, ok := pending("a"); !ok || rv != "2" {
		t.Errorf("changed pod: handed over %v, resourceVersion %q; want 2", ok, rv)
	}
	if rv, ok := pending("a"); ok {
		t.Errorf("changed pod handed over twice (resourceVersion %s)", rv)
	}

	// A worker waiting to retry an API call (the link was down) gets its
	// pod again: a relist once the link is back has it try at once.
	p.Wait() // the worker has returned: it no longer clears the flag
	p.mu.Lock()
	p.workers["a"].retrying.Store(true)
	p.mu.Unlock()
	p.Sync(ctx, []*corev1.Pod{pod("a", "2"), pod("s", "")})
	if rv, ok := pending("a"); !ok || rv != "2" {
		t.Errorf("pod of a retrying worker: handed over %v, resourceVersion %q; want 2", ok, rv)
	}
}

// pods.json follows the last list saved, also when the writer stops right
// after it.
func TestPodsWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), podsFile)
	w := newPodsWriter(path, nil)
	var last []*corev1.Pod
	for i := range 50 {
		last = append(last, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + string(rune('a'+i%26)), Namespace: "default", UID: types.UID(rune('a' + i))}})
		w.save(last)
	}
	w.stop()
	got, err := loadPods(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(last) {
		t.Fatalf("pods.json holds %d pods, want the last list's %d", len(got), len(last))
	}
}

// loadPods hands the pods read so far over early (after the 1st, 2nd, 4th…)
// and keeps those before a cut in the file.
func TestLoadPodsEarly(t *testing.T) {
	path := filepath.Join(t.TempDir(), podsFile)
	var want []*corev1.Pod
	for i := range 5 {
		want = append(want, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + string(rune('a'+i)), Namespace: "default", UID: types.UID(rune('a' + i))}})
	}
	if err := savePods(path, want); err != nil {
		t.Fatal(err)
	}
	var early []int
	got, err := loadPods(path, func(pods []*corev1.Pod) { early = append(early, len(pods)) })
	if err != nil || len(got) != len(want) || got[4].Name != "pe" {
		t.Fatalf("loadPods: %d pods, %v; want %d", len(got), err, len(want))
	}
	if !slices.Equal(early, []int{1, 2, 4}) {
		t.Errorf("handed over early after %v pods, want [1 2 4]", early)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)-len(b)/4], 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = loadPods(path, nil)
	if err == nil || len(got) == 0 || len(got) >= len(want) {
		t.Fatalf("cut file: %d pods, err %v; want the pods before the cut and an error", len(got), err)
	}

	if err := savePods(path, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := loadPods(path, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %d pods, %v", len(got), err)
	}
}
