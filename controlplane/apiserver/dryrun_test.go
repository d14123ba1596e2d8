package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// TestDryRunAnswersAsTheWrite: a dry run is refused where the write would
// be (kubectl create --dry-run=server, and checks in CI, take a dry run
// that passes to mean the write would) and writes nothing where the write
// would succeed, on every path that takes dryRun.
func TestDryRunAnswersAsTheWrite(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	dry := []string{metav1.DryRunAll}
	cms := c.client.CoreV1().ConfigMaps(testNS)
	_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "taken"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = c.client.CoreV1().Pods(testNS).Create(ctx, semPod("evicted"), metav1.CreateOptions{})
	must(t, err)
	before := etcdRevision(t, c)

	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "taken"}}, metav1.CreateOptions{DryRun: dry})
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("dry-run create of an existing name: %v, want AlreadyExists", err)
	}
	_, err = c.client.CoreV1().ConfigMaps("missing").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{DryRun: dry})
	if !apierrors.IsNotFound(err) {
		t.Errorf("dry-run create in a missing namespace: %v, want NotFound", err)
	}
	_, err = c.client.CoreV1().ConfigMaps("missing").Apply(ctx, corev1ac.ConfigMap("x", "missing").WithData(map[string]string{"k": "v"}),
		metav1.ApplyOptions{FieldManager: "test", DryRun: dry})
	if !apierrors.IsNotFound(err) {
		t.Errorf("dry-run apply in a missing namespace: %v, want NotFound", err)
	}
	// What would succeed answers the object and writes nothing.
	got, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{DryRun: dry})
	if err != nil || got.Name != "new" || got.UID == "" {
		t.Errorf("dry-run create of a new name: %v, %+v", err, got)
	}
	if _, err = cms.Apply(ctx, corev1ac.ConfigMap("applied", testNS), metav1.ApplyOptions{FieldManager: "test", DryRun: dry}); err != nil {
		t.Errorf("dry-run apply of a new object: %v", err)
	}
	// An eviction's dryRun may come as the request's own (a CreateOptions
	// parameter) rather than in its DeleteOptions: the pod stays.
	err = c.client.CoreV1().RESTClient().Post().Namespace(testNS).Resource("pods").Name("evicted").SubResource("eviction").
		Param("dryRun", metav1.DryRunAll).Body(&policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "evicted", Namespace: testNS}}).Do(ctx).Error()
	if err != nil {
		t.Errorf("dry-run eviction: %v", err)
	}
	if _, err := c.client.CoreV1().Pods(testNS).Get(ctx, "evicted", metav1.GetOptions{}); err != nil {
		t.Errorf("after a dry-run eviction: %v, want the pod still there", err)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("dry runs wrote to etcd (revision %d → %d)", before, after)
	}
}
