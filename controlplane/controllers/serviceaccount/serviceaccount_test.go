package serviceaccount

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// start runs the controller, one worker, against a fresh control plane.
func start(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs := testcluster.Start(t).Client(t)
	factory := informers.NewSharedInformerFactory(cs, 0)
	c := New(cs, factory, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if c.Name() != Name {
		t.Fatalf("Name() = %q", c.Name())
	}
	testenv.RunController(t, factory, c, 1)
	return cs
}

// defaultSA waits for namespace ns's default ServiceAccount, other than
// the one with UID not (when set), and returns its UID.
func defaultSA(t *testing.T, cs kubernetes.Interface, ns string, not types.UID) types.UID {
	t.Helper()
	var uid types.UID
	testenv.Poll(t, "the default ServiceAccount of "+ns, func() (bool, string) {
		sa, err := cs.CoreV1().ServiceAccounts(ns).Get(context.Background(), Default, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		uid = sa.UID
		return uid != not, "still the one deleted"
	})
	return uid
}

func TestDefaultServiceAccounts(t *testing.T) {
	cs := start(t)
	ctx := context.Background()
	// The namespaces there from the start, and one created later.
	for _, ns := range []string{"default", "kube-system", "kube-node-lease"} {
		defaultSA(t, cs, ns, "")
	}
	for _, ns := range []string{"a", "b"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a := defaultSA(t, cs, "a", "")
	defaultSA(t, cs, "b", "")

	// A deleted one comes back, but not in a namespace being deleted
	// (with no namespace controller here, "b" stays Terminating). The
	// queue's one worker takes "b" before "a": once "a" has its new one,
	// "b" was synced.
	if err := cs.CoreV1().Namespaces().Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, "namespace b terminating", func() (bool, string) {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "b", metav1.GetOptions{})
		return err == nil && ns.Status.Phase == corev1.NamespaceTerminating, "not yet"
	})
	for _, ns := range []string{"b", "a"} {
		if err := cs.CoreV1().ServiceAccounts(ns).Delete(ctx, Default, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	defaultSA(t, cs, "a", a)
	if _, err := cs.CoreV1().ServiceAccounts("b").Get(ctx, Default, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the terminating namespace's default ServiceAccount: %v, want it not found", err)
	}
}
