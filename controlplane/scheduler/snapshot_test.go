package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestSnapshotAccounting(t *testing.T) {
	s := snapshotOf([]*corev1.Node{makeNode("a"), makeNode("b")})
	p := makePod("p", onNode("a"), requests("500m", "1Gi"), hostPorts(corev1.ContainerPort{HostPort: 80}))
	s.AddPod(p)
	a := s.Get("a")
	if a.Requested.MilliCPU != 500 || a.Requested.Memory != 1<<30 || a.Requested.Pods != 1 || len(a.Pods) != 1 {
		t.Fatalf("after add: %+v", a.Requested)
	}
	if a.NonZeroRequested.MilliCPU != 500 || !a.portConflict(hostPort{ip: bindAllHostIP, protocol: corev1.ProtocolTCP, port: 80}) {
		t.Fatalf("non-zero or ports wrong: %+v %v", a.NonZeroRequested, a.usedPorts)
	}
	// The same pod again (by UID), now on b: moved, not counted twice.
	moved := makePod("p", onNode("b"), requests("500m", "1Gi"))
	s.AddPod(moved)
	if len(a.Pods) != 0 || a.Requested.MilliCPU != 0 || len(a.usedPorts) != 0 || len(s.Get("b").Pods) != 1 || s.PodNode("p") != "b" {
		t.Fatalf("move: a=%+v b pods=%d", a.Requested, len(s.Get("b").Pods))
	}
	// A pod without requests is counted with kube's defaults for scoring only.
	s.AddPod(makePod("q", onNode("a")))
	if a.Requested.MilliCPU != 0 || a.NonZeroRequested.MilliCPU != defaultMilliCPURequest || a.NonZeroRequested.Memory != defaultMemoryRequest {
		t.Fatalf("defaults: %+v %+v", a.Requested, a.NonZeroRequested)
	}
	if !s.RemovePod("q") || s.RemovePod("q") || a.NonZeroRequested.MilliCPU != 0 {
		t.Fatalf("remove: %+v", a.NonZeroRequested)
	}
	if s.NumPods() != 1 {
		t.Fatalf("NumPods = %d", s.NumPods())
	}
}

func TestSnapshotNodeLifecycle(t *testing.T) {
	s := snapshotOf(nil)
	// A pod may arrive before its node.
	s.AddPod(makePod("early", onNode("late"), requests("1", "")))
	if s.NumNodes() != 0 || s.Get("late") != nil {
		t.Fatal("a node nobody announced is a candidate")
	}
	s.SetNode(makeNode("late"))
	if s.NumNodes() != 1 || s.Get("late").Requested.MilliCPU != 1000 {
		t.Fatalf("pods counted before the node arrived were lost: %+v", s.Get("late"))
	}
	s.SetNode(makeNode("other"))
	s.RemoveNode("late")
	if s.NumNodes() != 1 || s.list[0].Node.Name != "other" || s.list[0].idx != 0 {
		t.Fatalf("list after removal: %d nodes", s.NumNodes())
	}
	s.SetNode(makeNode("late"))
	if s.Get("late").Requested.MilliCPU != 1000 {
		t.Fatal("pods of a removed node must still count when it returns")
	}
	s.RemoveNode("late")
	s.RemovePod("early")
	if _, ok := s.nodes["late"]; ok {
		t.Error("an empty removed node is kept")
	}
	// Updating a node keeps its pods and updates allocatable.
	s.AddPod(makePod("x", onNode("other"), requests("1", "")))
	s.SetNode(makeNode("other", nodeAlloc("2", "1Gi", "5")))
	if ni := s.Get("other"); ni.Allocatable.MilliCPU != 2000 || ni.Allocatable.Pods != 5 || len(ni.Pods) != 1 || s.NumNodes() != 1 {
		t.Errorf("after update: %+v, %d pods", ni.Allocatable, len(ni.Pods))
	}
}
