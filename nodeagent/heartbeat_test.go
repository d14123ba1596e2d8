package nodeagent

import (
	"context"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// joinedNode starts a control plane, joins node to it and returns the
// node's API client and an admin clientset.
func joinedNode(t *testing.T, node string) (*APIClient, *kubernetes.Clientset) {
	t.Helper()
	cp := testcluster.Start(t)
	token, err := os.ReadFile(cp.NodeToken())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Join(context.Background(), cp.URL, string(token), node, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.NATSURL, nats.UserInfo(c.NATSUser, c.NATSPassword), nats.CustomInboxPrefix(c.NATSInboxPrefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	api, err := NewAPIClient(nc, node)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	return api, kubernetes.NewForConfigOrDie(rc)
}

func TestHeartbeat(t *testing.T) {
	api, admin := joinedNode(t, "edge-1")
	cfg := validConfig()
	cfg.Labels = map[string]string{"site": "north"}
	h := &Heartbeat{
		API: api,
		Node: func(now time.Time) (*corev1.Node, error) {
			return BuildNode(cfg, ReadSystemInfo(), []runtime.Info{{Name: "wasm", Version: "wazero v1.12.0"}}, now)
		},
		LeaseDuration: 2 * time.Second,
		RenewInterval: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The Node appears, labelled and Ready, and the Lease keeps renewing.
	var first *metav1.MicroTime
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, errN := admin.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
		l, errL := admin.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "edge-1", metav1.GetOptions{})
		if errN == nil && errL == nil {
			if n.Labels["site"] != "north" || n.Labels["runtime.wasmfleet.io/wasm"] != "true" || len(n.Status.Conditions) == 0 || n.Status.Conditions[0].Status != corev1.ConditionTrue {
				t.Fatalf("node %+v", n)
			}
			if first == nil {
				first = l.Spec.RenewTime
			} else if l.Spec.RenewTime.After(first.Time) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node and renewing lease after 30s: %v %v", errN, errL)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A label someone else put on the Node survives re-registration; a
	// condition that did not change keeps its lastTransitionTime.
	n, _ := admin.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
	readySince := n.Status.Conditions[0].LastTransitionTime
	time.Sleep(time.Second) // the API keeps seconds
	n.Labels["team"] = "ops"
	if _, err := admin.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Register(ctx); err != nil {
		t.Fatal(err)
	}
	n, _ = admin.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
	if n.Labels["team"] != "ops" || n.Labels["site"] != "north" {
		t.Errorf("labels after re-registration: %v", n.Labels)
	}
	if c := n.Status.Conditions[0]; c.Type != corev1.NodeReady || !c.LastTransitionTime.Equal(&readySince) || !c.LastHeartbeatTime.After(readySince.Time) {
		t.Errorf("Ready after re-registration: transition %v heartbeat %v, want the transition kept (%v) and a later heartbeat", c.LastTransitionTime, c.LastHeartbeatTime, readySince)
	}

	// The kubelet's events about its Node: once each at the start, and on
	// a cordon and an uncordon seen at the next registration.
	nodeEvents := func() map[string]int {
		evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=edge-1"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, e := range evs.Items {
			if e.Type != corev1.EventTypeNormal || e.Source.Host != "edge-1" || (e.Reason != "Starting" && e.Message != "Node edge-1 status is now: "+e.Reason) {
				t.Errorf("event %+v", e)
			}
			got[e.Reason]++
		}
		return got
	}
	want := map[string]int{"Starting": 1, "NodeReady": 1, "NodeHasSufficientMemory": 1, "NodeHasNoDiskPressure": 1, "NodeHasSufficientPID": 1}
	if got := nodeEvents(); !maps.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	for _, cordon := range []bool{true, false} {
		n, _ = admin.CoreV1().Nodes().Get(ctx, "edge-1", metav1.GetOptions{})
		n.Spec.Unschedulable = cordon
		if _, err := admin.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := h.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want["NodeNotSchedulable"], want["NodeSchedulable"] = 1, 1
	if got := nodeEvents(); !maps.Equal(got, want) {
		t.Errorf("events after a cordon and an uncordon: %v, want %v", got, want)
	}
}
