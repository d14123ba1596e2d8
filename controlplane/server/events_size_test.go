package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// TestLargeObjectsReachTheStreamWhole: what the API stores reaches the
// events stream whole. A ConfigMap of 1.2 MiB (1 MiB of data and 200 KiB
// of annotations: the API takes bodies of 3 MiB, etcd values up to 1.5
// MiB) is above nats-server's default
// max_payload of 1 MiB, so the embedded server must take more; its
// deletion carries the last value too. A ClusterRole's name may be any
// path segment, however long: its event must not stop the publisher.
func TestLargeObjectsReachTheStreamWhole(t *testing.T) {
	cfg := testcluster.Config(t, t.TempDir())
	c := startCluster(t, cfg)
	waitReady(t, c)
	natsURL, err := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(string(natsURL))
	cms := subscribe(t, url, "wasmfleet.events.configmaps.default.>")
	roles := subscribe(t, url, "wasmfleet.events.clusterroles.>")
	ctx := context.Background()

	// ConfigMap data may take 1 MiB, annotations 256 KiB more.
	big, note := strings.Repeat("x", 1000<<10), strings.Repeat("y", 200<<10)
	cm, err := c.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Annotations: map[string]string{"note": note}},
		Data:       map[string]string{"k": big},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.client.CoreV1().ConfigMaps("default").Delete(ctx, "big", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"ADDED", "DELETED"} {
		m := nextMsg(t, cms)
		if m.Headers().Get(subjects.HeaderType) != typ || m.Headers().Get(subjects.HeaderPayloadOmitted) != "" {
			t.Fatalf("event %s %v, want %s with its payload", m.Subject(), m.Headers(), typ)
		}
		var got corev1.ConfigMap
		if err := json.Unmarshal(m.Data(), &got); err != nil || got.Data["k"] != big || got.Annotations["note"] != note || got.UID != cm.UID {
			t.Errorf("%s: payload of %d bytes: %v", typ, len(m.Data()), err)
		}
	}

	long := strings.Repeat("viewer ", 700) + "x"
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: long}}
	if _, err := c.client.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		m := nextMsg(t, roles)
		if m.Subject() != subjects.ObjectSubject("clusterroles", "", long) {
			continue // the system's own roles
		}
		if m.Headers().Get(subjects.HeaderKey) != "/registry/clusterroles/"+long {
			t.Errorf("key header %.60q...", m.Headers().Get(subjects.HeaderKey))
		}
		break
	}
}
