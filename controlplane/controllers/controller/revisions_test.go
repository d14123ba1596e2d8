package controller_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// TestHashRevision checks against values worked out apart (FNV-1, not
// FNV-1a, of the data and the decimal collision count, safe-encoded).
func TestHashRevision(t *testing.T) {
	data := []byte(`{"spec":{"template":{"$patch":"replace"}}}`)
	for _, tc := range []struct {
		count int32
		want  string
	}{{0, "589f85db5b"}, {3, "589f85db5f"}} {
		if got := controller.HashRevision(data, &tc.count); got != tc.want {
			t.Errorf("HashRevision(collisionCount %d) = %s, want %s", tc.count, got, tc.want)
		}
	}
}

// TestRecord: revisions are made and renumbered for their data; a name
// that holds other data (a hash collision) is returned as it is, not
// renumbered; a long owner name is cut as kube's ControllerRevisionName.
func TestRecord(t *testing.T) {
	c := testcluster.Start(t)
	cs := c.Client(t)
	ctx := context.Background()
	r := controller.Revisions{Client: cs, Kind: corev1.SchemeGroupVersion.WithKind("ConfigMap"), HashLabel: "example.com/hash"}
	owner, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}}
	record := func(o metav1.Object, hash, data string, owned ...*appsv1.ControllerRevision) *appsv1.ControllerRevision {
		t.Helper()
		cr, err := r.Record(ctx, o, tmpl, hash, []byte(data), owned)
		if err != nil {
			t.Fatal(err)
		}
		return cr
	}
	a := record(owner, "h1", `{"v":"a"}`)
	if a.Name != "owner-h1" || a.Revision != 1 || a.Labels["example.com/hash"] != "h1" || a.Labels["app"] != "web" || !metav1.IsControlledBy(a, owner) {
		t.Fatalf("first revision %s:%d labels %v", a.Name, a.Revision, a.Labels)
	}
	b := record(owner, "h2", `{"v":"b"}`, a)
	if b.Revision != 2 {
		t.Fatalf("second revision %s:%d", b.Name, b.Revision)
	}
	// owner-h1 holds other data: a collision, left alone.
	got := record(owner, "h1", `{"v":"c"}`, a, b)
	stored, err := cs.AppsV1().ControllerRevisions("default").Get(ctx, "owner-h1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 1 || string(got.Data.Raw) != `{"v":"a"}` || stored.Revision != 1 || stored.ResourceVersion != a.ResourceVersion {
		t.Fatalf("colliding revision returned %d %s, stored %d (resourceVersion %s, was %s)", got.Revision, got.Data.Raw, stored.Revision, stored.ResourceVersion, a.ResourceVersion)
	}
	// Its own data again (a rollback): renumbered.
	if back := record(owner, "h1", `{"v":"a"}`, a, b); back.Revision != 3 {
		t.Fatalf("rolled back revision %s:%d, want 3", back.Name, back.Revision)
	}

	long, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 250)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cr := record(long, "h1", `{"v":"a"}`); cr.Name != strings.Repeat("a", 223)+"-h1" {
		t.Fatalf("revision of a long owner: %s (%d characters)", cr.Name, len(cr.Name))
	}
}
