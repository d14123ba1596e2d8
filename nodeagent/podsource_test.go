package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// TestListPodsPages: a node's pods that together exceed the NATS
// max_payload are listed in answers of several messages, and in pages,
// smaller ones when a page is too large for one answer.
func TestListPodsPages(t *testing.T) {
	api, admin := joinedNode(t, "edge-1")
	ctx := context.Background()
	big := strings.Repeat("x", 1400<<10)
	const n = 12 // 17 MB of arguments: over nodelink.MaxAnswerBytes
	for i := range n {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%02d", i)},
			Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "main", Image: "hello:v1", Args: []string{big}}}}}
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := api.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != n || list.ResourceVersion == "" {
		t.Fatalf("listed %d pods at resourceVersion %q, want %d", len(list.Items), list.ResourceVersion, n)
	}
	for i, p := range list.Items {
		if p.Name != fmt.Sprintf("p%02d", i) || p.Spec.Containers[0].Args[0] != big {
			t.Fatalf("item %d is %s", i, p.Name)
		}
	}
}

// omittedMsg is a message of the node's subject published without its
// payload, as the event publisher sends a pod too large for max_payload.
type omittedMsg struct {
	jetstream.Msg
	subject string
	h       nats.Header
}

func (m omittedMsg) Subject() string      { return m.subject }
func (m omittedMsg) Headers() nats.Header { return m.h }
func (m omittedMsg) Data() []byte         { return nil }

// TestPodSourcePayloadOmitted: a pod change published without its payload
// is read through the API.
func TestPodSourcePayloadOmitted(t *testing.T) {
	api, admin := joinedNode(t, "edge-1")
	ctx := context.Background()
	pod, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "huge"},
		Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "main", Image: "hello:v1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := &PodSource{API: api}
	s.init()
	msg := func(typ, name, rev string) omittedMsg {
		h := nats.Header{}
		h.Set(subjects.HeaderType, typ)
		h.Set(subjects.HeaderRevision, rev)
		h.Set(subjects.HeaderPayloadOmitted, "too-large")
		return omittedMsg{subject: subjects.NodePodSubject("edge-1", "default", name), h: h}
	}
	if err := s.handle(ctx, msg("ADDED", "huge", pod.ResourceVersion)); err != nil {
		t.Fatal(err)
	}
	if got := podNames(s); len(got) != 1 || got[0] != "huge@hello:v1" {
		t.Fatalf("pods %v after an ADDED without payload, want huge@hello:v1", got)
	}
	rev, _ := strconv.ParseInt(pod.ResourceVersion, 10, 64)
	if err := s.handle(ctx, msg("DELETED", "huge", strconv.FormatInt(rev+1, 10))); err != nil {
		t.Fatal(err)
	}
	if got := podNames(s); len(got) != 0 {
		t.Fatalf("pods %v after a DELETED without payload, want none", got)
	}
	// Without a link to the control plane, the source must resync.
	offline := &PodSource{API: newDetachedAPIClient("edge-1")}
	offline.init()
	if err := offline.handle(ctx, msg("ADDED", "huge", pod.ResourceVersion)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("handle offline: %v, want ErrNotConnected", err)
	}
	// A pod gone by the time it is read counts as deleted.
	if err := s.handle(ctx, msg("MODIFIED", "gone", strconv.FormatInt(rev+2, 10))); err != nil || len(podNames(s)) != 0 {
		t.Fatalf("pods %v after a MODIFIED of a missing pod (%v), want none", podNames(s), err)
	}
}
