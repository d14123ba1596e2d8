package apiserver_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

func cm(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
}

// rvOf is the resourceVersion of a watch event's object.
func rvOf(t *testing.T, ev watch.Event) int64 {
	t.Helper()
	m, err := meta.Accessor(ev.Object)
	if err != nil {
		t.Fatalf("%s event of %T: %v", ev.Type, ev.Object, err)
	}
	rv, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("%s event: resourceVersion %q", ev.Type, m.GetResourceVersion())
	}
	return rv
}

// TestBookmarkOfQuietNamespace: a watcher of a namespace where nothing
// changes gets bookmarks whose resourceVersion follows the writes of
// another namespace, as kube-apiserver's carry its watch cache's revision,
// and watching again from such a bookmark after etcd compacted it is
// served from the watch cache: no 410 Gone (which makes client-go's
// reflector list everything again) and no change missed.
func TestBookmarkOfQuietNamespace(t *testing.T) {
	c := startAPI(t)
	apiserver.SetBookmarkInterval(c.api, 100*time.Millisecond)
	ctx := t.Context()
	quiet := c.client.CoreV1().ConfigMaps("kube-system")
	busy := c.client.CoreV1().ConfigMaps("default")

	start := strconv.FormatInt(etcdRevision(t, c), 10)
	w, err := quiet.Watch(ctx, metav1.ListOptions{ResourceVersion: start, AllowWatchBookmarks: true})
	must(t, err)
	var lastWrite int64
	for i := range 5 {
		o, err := busy.Create(ctx, cm(fmt.Sprintf("busy-%d", i)), metav1.CreateOptions{})
		must(t, err)
		lastWrite, _ = strconv.ParseInt(o.ResourceVersion, 10, 64)
	}
	var bookmark int64
	prev := int64(0)
	for deadline := time.Now().Add(guard); bookmark < lastWrite; {
		if time.Now().After(deadline) {
			t.Fatalf("no bookmark at or after %d (the other namespace's last write) within %v; last %d", lastWrite, guard, bookmark)
		}
		ev := nextEvent(t, w)
		if ev.Type != watch.Bookmark {
			t.Fatalf("%s event on the quiet namespace: %+v", ev.Type, ev.Object)
		}
		bookmark = rvOf(t, ev)
		if bookmark < prev {
			t.Fatalf("bookmark went back from %d to %d", prev, bookmark)
		}
		prev = bookmark
	}
	w.Stop()

	// A change of the quiet namespace after the bookmark, more writes,
	// and etcd compacts them all.
	k1, err := quiet.Create(ctx, cm("k1"), metav1.CreateOptions{})
	must(t, err)
	_, err = busy.Create(ctx, cm("busy-late"), metav1.CreateOptions{})
	must(t, err)
	cur := etcdRevision(t, c)
	if _, err := c.etcd.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}

	w, err = quiet.Watch(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(bookmark, 10), AllowWatchBookmarks: true})
	must(t, err)
	defer w.Stop()
	next := func() watch.Event {
		t.Helper()
		for {
			if ev := nextEvent(t, w); ev.Type != watch.Bookmark {
				return ev
			}
		}
	}
	if ev := next(); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "k1" || rvOf(t, ev) != mustRV(t, k1.ResourceVersion) {
		t.Fatalf("re-watch from bookmark %d after compaction at %d: %s %+v, want ADDED k1 at %s", bookmark, cur, ev.Type, ev.Object, k1.ResourceVersion)
	}
	_, err = quiet.Create(ctx, cm("k2"), metav1.CreateOptions{})
	must(t, err)
	if ev := next(); ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != "k2" {
		t.Fatalf("live event: %s %+v, want ADDED k2", ev.Type, ev.Object)
	}

	// A compacted revision the watch cache does not hold still gets 410.
	old, err := quiet.Watch(ctx, metav1.ListOptions{ResourceVersion: "2"})
	must(t, err)
	defer old.Stop()
	if ev := nextEvent(t, old); ev.Type != watch.Error {
		t.Fatalf("watch from compacted revision 2: %s %+v, want ERROR 410", ev.Type, ev.Object)
	} else if st, ok := ev.Object.(*metav1.Status); !ok || st.Code != 410 {
		t.Fatalf("watch from compacted revision 2: %+v, want 410", ev.Object)
	}
}

func mustRV(t *testing.T, rv string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q", rv)
	}
	return n
}

// TestWatchStart: where a watch starts, as kube-apiserver's watch cache
// decides. sendInitialEvents=false with resourceVersion unset or "0"
// starts from now, without events for the objects there; without
// sendInitialEvents (the legacy watch) it starts with them. The
// k8s.io/initial-events-end bookmark of sendInitialEvents=true goes only
// to clients that allow bookmarks.
func TestWatchStart(t *testing.T) {
	c := startAPI(t)
	apiserver.SetBookmarkInterval(c.api, time.Hour)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	_, err := cms.Create(ctx, cm("existing"), metav1.CreateOptions{})
	must(t, err)
	n := 0
	// first is the first event of a watch with opts after a new configmap
	// was created once the watch started.
	first := func(opts metav1.ListOptions) watch.Event {
		t.Helper()
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := cms.Watch(wctx, opts)
		must(t, err)
		defer w.Stop()
		n++
		_, err = cms.Create(ctx, cm(fmt.Sprintf("new-%d", n)), metav1.CreateOptions{})
		must(t, err)
		return nextEvent(t, w)
	}
	name := func(ev watch.Event) string {
		if m, err := meta.Accessor(ev.Object); err == nil {
			return m.GetName()
		}
		return ""
	}
	for _, rv := range []string{"", "0"} {
		opts := metav1.ListOptions{ResourceVersion: rv, SendInitialEvents: ptr.To(false),
			ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true}
		if ev := first(opts); ev.Type != watch.Added || name(ev) != fmt.Sprintf("new-%d", n) {
			t.Errorf("sendInitialEvents=false resourceVersion=%q: first event %s %s, want ADDED new-%d", rv, ev.Type, name(ev), n)
		}
		if ev := first(metav1.ListOptions{ResourceVersion: rv}); ev.Type != watch.Added || name(ev) != "existing" {
			t.Errorf("legacy watch resourceVersion=%q: first event %s %s, want ADDED existing", rv, ev.Type, name(ev))
		}
	}

	// sendInitialEvents=true without allowWatchBookmarks: the current
	// objects, then the new one, no bookmark between.
	list, err := cms.List(ctx, metav1.ListOptions{})
	must(t, err)
	w, err := cms.Watch(ctx, metav1.ListOptions{SendInitialEvents: ptr.To(true), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	must(t, err)
	defer w.Stop()
	_, err = cms.Create(ctx, cm("after"), metav1.CreateOptions{})
	must(t, err)
	for i := range len(list.Items) + 1 {
		ev := nextEvent(t, w)
		if ev.Type != watch.Added {
			t.Fatalf("sendInitialEvents=true without allowWatchBookmarks: event %d is %s %+v, want ADDED", i, ev.Type, ev.Object)
		}
		if i == len(list.Items) && name(ev) != "after" {
			t.Fatalf("event %d is ADDED %s, want the new configmap", i, name(ev))
		}
	}
}
