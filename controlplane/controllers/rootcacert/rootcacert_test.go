package rootcacert

import (
	"context"
	"log/slog"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// start runs the publisher, one worker, against a fresh control plane, and
// returns a client and the CA the client trusts (its kubeconfig's).
func start(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	c := testcluster.Start(t)
	cs := c.Client(t)
	factory := informers.NewSharedInformerFactory(cs, 0)
	p := New(cs, factory, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if p.Name() != Name {
		t.Fatalf("Name() = %q", p.Name())
	}
	testenv.RunController(t, factory, p, 1)
	ca := string(c.RESTConfig(t).TLSClientConfig.CAData)
	if ca == "" {
		t.Fatal("the kubeconfig has no CA data")
	}
	return cs, ca
}

// published waits until namespace ns has the ConfigMap with the CA alone,
// other than the one with UID not (when set), and returns it.
func published(t *testing.T, cs kubernetes.Interface, ns, ca string, not types.UID) *corev1.ConfigMap {
	t.Helper()
	var cm *corev1.ConfigMap
	testenv.Poll(t, ConfigMapName+" in "+ns, func() (bool, string) {
		var err error
		cm, err = cs.CoreV1().ConfigMaps(ns).Get(context.Background(), ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return cm.UID != not && maps.Equal(cm.Data, map[string]string{Key: ca}), "not the CA alone"
	})
	return cm
}

func TestPublishesTheCA(t *testing.T) {
	cs, ca := start(t)
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system", "kube-node-lease"} {
		published(t, cs, ns, ca, "")
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := published(t, cs, "a", ca, "")
	if got := cm.Annotations[DescriptionAnnotation]; got != Description {
		t.Errorf("description %q, want Kubernetes' %q", got, Description)
	}

	// Changed data is set back, and the description with it, as in
	// Kubernetes.
	cm.Data = map[string]string{Key: "not a CA", "extra": "x"}
	cm.Annotations[DescriptionAnnotation] = "mine"
	if _, err := cs.CoreV1().ConfigMaps("a").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm = published(t, cs, "a", ca, "")
	if got := cm.Annotations[DescriptionAnnotation]; got != Description {
		t.Errorf("description %q after the update, want Kubernetes' again", got)
	}

	// A deleted one comes back.
	if err := cs.CoreV1().ConfigMaps("a").Delete(ctx, ConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	published(t, cs, "a", ca, cm.UID)
}
