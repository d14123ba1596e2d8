package scheduler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkSchedule measures the pure core at 5,000 nodes (10 zones, some
// tainted, some cordoned, 2 architectures, 20 existing pods each): decide
// and assume one pod per iteration, as the scheduling loop does. Reports
// pods/s.
func BenchmarkSchedule(b *testing.B) {
	for _, bc := range []struct {
		name string
		pod  func(i int) *corev1.Pod
	}{
		{"plain", func(i int) *corev1.Pod {
			return makePod(fmt.Sprint("p", i), requests("10m", "16Mi"))
		}},
		{"selector+ports", func(i int) *corev1.Pod {
			return makePod(fmt.Sprint("p", i), requests("10m", "16Mi"), nodeSelector(corev1.LabelArchStable, "arm64"),
				hostPorts(corev1.ContainerPort{HostPort: int32(10000 + i%1000)}))
		}},
		{"zone-spread", func(i int) *corev1.Pod {
			return makePod(fmt.Sprint("p", i), requests("10m", "16Mi"), podLabels("app", "web"),
				spread("topology.kubernetes.io/zone", 1, corev1.ScheduleAnyway, map[string]string{"app": "web"}))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			snap := benchSnapshot(5000, 20)
			c := NewCore(CoreOptions{})
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := bc.pod(i)
				node, err := c.Schedule(p, snap)
				if err != nil {
					b.Fatal(err)
				}
				p.Spec.NodeName = node
				snap.AddPod(p)
				if snap.NumPods() > 200000 { // keep the cluster from filling up
					b.StopTimer()
					snap = benchSnapshot(5000, 20)
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pods/s")
		})
	}
}

func benchSnapshot(nodes, podsPerNode int) *Snapshot {
	s := NewSnapshot()
	for i := range nodes {
		name := fmt.Sprintf("node-%05d", i)
		arch := "amd64"
		if i%2 == 1 {
			arch = "arm64"
		}
		n := makeNode(name, nodeAlloc("64", "256Gi", "1000"), nodeLabels(
			"topology.kubernetes.io/zone", fmt.Sprintf("zone-%d", i%10),
			corev1.LabelArchStable, arch))
		if i%50 == 0 {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
		}
		if i%97 == 0 {
			n.Spec.Unschedulable = true
		}
		s.SetNode(n)
		for j := range podsPerNode {
			s.AddPod(makePod(fmt.Sprintf("%s-%d", name, j), onNode(name), requests("100m", "128Mi"), podLabels("app", "web")))
		}
	}
	return s
}
