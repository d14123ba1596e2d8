package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFilters(t *testing.T) {
	notReadyTaint := "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
	ptr := func(p corev1.ContainerRestartPolicy) *corev1.ContainerRestartPolicy { return &p }
	archs := ImageArchitecturesFunc(func(image string) []string {
		switch image {
		case "arm-only:1":
			return []string{"arm64"}
		case "multi:1":
			return []string{"amd64", "arm64"}
		}
		return nil
	})
	cases := []struct {
		name     string
		node     *corev1.Node
		existing []*corev1.Pod // on the node
		pod      *corev1.Pod
		images   ImageArchitectures
		want     []string // nil: fits
	}{
		{name: "fits", node: makeNode("n"), pod: makePod("p")},

		// cordon
		{name: "cordoned", node: makeNode("n", cordoned), pod: makePod("p"), want: []string{ReasonUnschedulable}},
		{name: "cordoned, unschedulable taint tolerated", node: makeNode("n", cordoned),
			pod: makePod("p", tolerations(corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}))},
		{name: "cordoned, tolerate everything", node: makeNode("n", cordoned),
			pod: makePod("p", tolerations(corev1.Toleration{Operator: corev1.TolerationOpExists}))},
		{name: "cordoned, NoExecute toleration is not enough", node: makeNode("n", cordoned),
			pod:  makePod("p", tolerations(corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})),
			want: []string{ReasonUnschedulable}},

		// readiness
		{name: "not ready", node: makeNode("n", nodeReady(corev1.ConditionFalse)), pod: makePod("p"), want: []string{notReadyTaint}},
		{name: "no Ready condition", node: makeNode("n", nodeReady("")), pod: makePod("p"), want: []string{notReadyTaint}},
		{name: "ready unknown", node: makeNode("n", nodeReady(corev1.ConditionUnknown)), pod: makePod("p"),
			want: []string{"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"}},
		{name: "not ready, tolerated", node: makeNode("n", nodeReady(corev1.ConditionFalse)),
			pod: makePod("p", tolerations(corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}))},
		{name: "not ready and already tainted so: reported once", node: makeNode("n", nodeReady(corev1.ConditionFalse),
			nodeTaints(corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute})),
			pod: makePod("p"), want: []string{notReadyTaint}},

		// taints
		{name: "NoSchedule taint", node: makeNode("n", nodeTaints(corev1.Taint{Key: "dedicated", Value: "edge", Effect: corev1.TaintEffectNoSchedule})),
			pod: makePod("p"), want: []string{"node(s) had untolerated taint {dedicated: edge}"}},
		{name: "NoExecute taint", node: makeNode("n", nodeTaints(corev1.Taint{Key: "gone", Effect: corev1.TaintEffectNoExecute})),
			pod: makePod("p"), want: []string{"node(s) had untolerated taint {gone: }"}},
		{name: "PreferNoSchedule taint does not filter", node: makeNode("n", nodeTaints(corev1.Taint{Key: "meh", Effect: corev1.TaintEffectPreferNoSchedule})),
			pod: makePod("p")},
		{name: "taint tolerated by Equal", node: makeNode("n", nodeTaints(corev1.Taint{Key: "dedicated", Value: "edge", Effect: corev1.TaintEffectNoSchedule})),
			pod: makePod("p", tolerations(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "edge", Effect: corev1.TaintEffectNoSchedule}))},
		{name: "toleration with other value", node: makeNode("n", nodeTaints(corev1.Taint{Key: "dedicated", Value: "edge", Effect: corev1.TaintEffectNoSchedule})),
			pod:  makePod("p", tolerations(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "core"})),
			want: []string{"node(s) had untolerated taint {dedicated: edge}"}},
		{name: "second taint untolerated", node: makeNode("n", nodeTaints(
			corev1.Taint{Key: "a", Effect: corev1.TaintEffectNoSchedule}, corev1.Taint{Key: "b", Value: "x", Effect: corev1.TaintEffectNoSchedule})),
			pod:  makePod("p", tolerations(corev1.Toleration{Key: "a", Operator: corev1.TolerationOpExists})),
			want: []string{"node(s) had untolerated taint {b: x}"}},

		// node selector and affinity
		{name: "nodeSelector matches", node: makeNode("n", nodeLabels("disk", "ssd")), pod: makePod("p", nodeSelector("disk", "ssd"))},
		{name: "nodeSelector does not match", node: makeNode("n", nodeLabels("disk", "hdd")), pod: makePod("p", nodeSelector("disk", "ssd")),
			want: []string{ReasonNodeAffinity}},
		{name: "required affinity In", node: makeNode("n", nodeLabels("zone", "b")),
			pod: makePod("p", requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}}}))},
		{name: "required affinity NotIn", node: makeNode("n", nodeLabels("zone", "b")),
			pod: makePod("p", requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"b"}}}})),
			want: []string{ReasonNodeAffinity}},
		{name: "required affinity terms are ORed", node: makeNode("n", nodeLabels("zone", "b")),
			pod: makePod("p", requiredAffinity(
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
				corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}}))},
		{name: "matchFields metadata.name", node: makeNode("n1"),
			pod: makePod("p", requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}))},
		{name: "matchFields other name", node: makeNode("n2"),
			pod: makePod("p", requiredAffinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
				{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}})),
			want: []string{ReasonNodeAffinity}},
		{name: "nodeSelector and affinity both apply", node: makeNode("n", nodeLabels("zone", "a")),
			pod: makePod("p", nodeSelector("disk", "ssd"), requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}})),
			want: []string{ReasonNodeAffinity}},

		// host ports
		{name: "host port taken", node: makeNode("n"),
			existing: []*corev1.Pod{makePod("x", hostPorts(corev1.ContainerPort{ContainerPort: 80, HostPort: 8080}))},
			pod:      makePod("p", hostPorts(corev1.ContainerPort{ContainerPort: 80, HostPort: 8080})), want: []string{ReasonHostPorts}},
		{name: "host port other protocol", node: makeNode("n"),
			existing: []*corev1.Pod{makePod("x", hostPorts(corev1.ContainerPort{HostPort: 8080}))},
			pod:      makePod("p", hostPorts(corev1.ContainerPort{HostPort: 8080, Protocol: corev1.ProtocolUDP}))},
		{name: "host port other IPs", node: makeNode("n"),
			existing: []*corev1.Pod{makePod("x", hostPorts(corev1.ContainerPort{HostPort: 8080, HostIP: "10.0.0.1"}))},
			pod:      makePod("p", hostPorts(corev1.ContainerPort{HostPort: 8080, HostIP: "10.0.0.2"}))},
		{name: "host port wildcard in use vs IP", node: makeNode("n"),
			existing: []*corev1.Pod{makePod("x", hostPorts(corev1.ContainerPort{HostPort: 8080}))},
			pod:      makePod("p", hostPorts(corev1.ContainerPort{HostPort: 8080, HostIP: "10.0.0.2"})), want: []string{ReasonHostPorts}},
		{name: "host port IP in use vs wildcard", node: makeNode("n"),
			existing: []*corev1.Pod{makePod("x", hostPorts(corev1.ContainerPort{HostPort: 8080, HostIP: "10.0.0.1"}))},
			pod:      makePod("p", hostPorts(corev1.ContainerPort{HostPort: 8080})), want: []string{ReasonHostPorts}},
		{name: "container port without host port", node: makeNode("n"),
			existing: []*corev1.Pod{makePod("x", hostPorts(corev1.ContainerPort{ContainerPort: 8080}))},
			pod:      makePod("p", hostPorts(corev1.ContainerPort{ContainerPort: 8080}))},

		// resources
		{name: "cpu fits exactly", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			existing: []*corev1.Pod{makePod("x", requests("600m", ""))}, pod: makePod("p", requests("400m", ""))},
		{name: "insufficient cpu", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			existing: []*corev1.Pod{makePod("x", requests("600m", ""))}, pod: makePod("p", requests("401m", "")),
			want: []string{"Insufficient cpu"}},
		{name: "insufficient memory", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			pod: makePod("p", requests("", "2Gi")), want: []string{"Insufficient memory"}},
		{name: "insufficient cpu and memory and too many pods", node: makeNode("n", nodeAlloc("1", "1Gi", "1")),
			existing: []*corev1.Pod{makePod("x")}, pod: makePod("p", requests("2", "2Gi")),
			want: []string{ReasonTooManyPods, "Insufficient cpu", "Insufficient memory"}},
		{name: "too many pods, no requests", node: makeNode("n", nodeAlloc("1", "1Gi", "2")),
			existing: []*corev1.Pod{makePod("x"), makePod("y")}, pod: makePod("p"), want: []string{ReasonTooManyPods}},
		{name: "no requests fit a full node", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			existing: []*corev1.Pod{makePod("x", requests("1", "1Gi"))}, pod: makePod("p")},
		{name: "init container counts when larger", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			pod: makePod("p", requests("100m", ""), func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}}
			}), want: []string{"Insufficient cpu"}},
		{name: "sidecar adds to containers", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			pod: makePod("p", requests("600m", ""), func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}}}
			}), want: []string{"Insufficient cpu"}},
		{name: "overhead counts", node: makeNode("n", nodeAlloc("1", "1Gi", "10")),
			pod: makePod("p", requests("900m", ""), func(p *corev1.Pod) {
				p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}
			}), want: []string{"Insufficient cpu"}},
		{name: "extended resource missing", node: makeNode("n"),
			pod: makePod("p", func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}
			}), want: []string{"Insufficient example.com/gpu"}},
		{name: "extended resource offered", node: makeNode("n", func(n *corev1.Node) { n.Status.Allocatable["example.com/gpu"] = resource.MustParse("2") }),
			pod: makePod("p", func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("2")}
			})},

		// runtime class
		{name: "node without wasm", node: makeNode("n", func(n *corev1.Node) { delete(n.Labels, RuntimeClassLabelPrefix+"wasm") }),
			pod: makePod("p"), want: []string{`node(s) didn't support runtime class "wasm"`}},
		{name: "runtime label not true", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"wasm", "false")),
			pod: makePod("p"), want: []string{`node(s) didn't support runtime class "wasm"`}},
		{name: "runc pod on wasm-only node", node: makeNode("n"), pod: makePod("p", runtimeClass("runc")),
			want: []string{`node(s) didn't support runtime class "runc"`}},
		{name: "runc pod on runc node", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), pod: makePod("p", runtimeClass("runc"))},
		{name: "empty runtimeClassName is wasm", node: makeNode("n"), pod: makePod("p", runtimeClass(""))},
		{name: "a class's handler decides", node: makeNode("n"), pod: makePod("p", runtimeClass("oci")),
			want: []string{`node(s) didn't support runtime class "runc"`}},
		{name: "class with the runc handler on a runc node", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), pod: makePod("p", runtimeClass("oci"))},
		{name: "class with the wasm handler", node: makeNode("n"), pod: makePod("p", runtimeClass("wasm-arm"))},
		{name: "unknown class runs on the handler of its name", node: makeNode("n"), pod: makePod("p", runtimeClass("gone")),
			want: []string{`node(s) didn't support runtime class "gone"`}},

		// image architectures
		{name: "image arch missing", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), images: archs,
			pod:  makePod("p", runtimeClass("runc"), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "arm-only:1" }),
			want: []string{`node(s) didn't match the architectures of image "arm-only:1"`}},
		{name: "image arch present", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true", corev1.LabelArchStable, "arm64")), images: archs,
			pod: makePod("p", runtimeClass("runc"), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "arm-only:1" })},
		{name: "multi-arch image", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), images: archs,
			pod: makePod("p", runtimeClass("runc"), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "multi:1" })},
		{name: "unknown image passes", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), images: archs,
			pod: makePod("p", runtimeClass("runc"))},
		{name: "init container image checked", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), images: archs,
			pod: makePod("p", runtimeClass("runc"), func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "arm-only:1"}}
			}), want: []string{`node(s) didn't match the architectures of image "arm-only:1"`}},
		{name: "a class with the runc handler is checked", node: makeNode("n", nodeLabels(RuntimeClassLabelPrefix+"runc", "true")), images: archs,
			pod:  makePod("p", runtimeClass("oci"), func(p *corev1.Pod) { p.Spec.Containers[0].Image = "arm-only:1" }),
			want: []string{`node(s) didn't match the architectures of image "arm-only:1"`}},
		{name: "wasm pods ignore image architectures", node: makeNode("n"), images: archs,
			pod: makePod("p", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "arm-only:1" })},

		// order: the first failing filter speaks
		{name: "cordon before resources", node: makeNode("n", cordoned, nodeAlloc("1", "1Gi", "10")),
			pod: makePod("p", requests("2", "")), want: []string{ReasonUnschedulable}},
		{name: "taint before affinity", node: makeNode("n", nodeTaints(corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule})),
			pod: makePod("p", nodeSelector("x", "y")), want: []string{"node(s) had untolerated taint {k: }"}},
	}
	handlers := func(class string) string { return map[string]string{"oci": "runc", "wasm-arm": "wasm"}[class] }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.existing {
				p.Spec.NodeName = tc.node.Name
			}
			snap := snapshotOf([]*corev1.Node{tc.node}, tc.existing...)
			ps := newPodState(tc.pod, tc.images, handlers)
			ps.spread = newSpreadFilterState(ps, snap)
			got := runFilters(ps, snap.Get(tc.node.Name))
			if !slices.Equal(got, tc.want) {
				t.Errorf("reasons = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTopologySpreadFilter(t *testing.T) {
	zone := "topology.kubernetes.io/zone"
	app := map[string]string{"app": "web"}
	nodes := []*corev1.Node{
		makeNode("a1", nodeLabels(zone, "a")), makeNode("a2", nodeLabels(zone, "a")),
		makeNode("b1", nodeLabels(zone, "b")), makeNode("c1", nodeLabels(zone, "c")),
		makeNode("nozone"),
	}
	web := func(name, node string) *corev1.Pod { return makePod(name, onNode(node), podLabels("app", "web")) }
	cases := []struct {
		name     string
		existing []*corev1.Pod
		pod      *corev1.Pod
		nodes    []*corev1.Node // default: nodes
		want     map[string][]string
	}{
		{
			name:     "zone skew",
			existing: []*corev1.Pod{web("w1", "a1"), web("w2", "a2"), web("w3", "b1")},
			pod:      makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.DoNotSchedule, app)),
			// counts a=2 b=1 c=0, min 0: a 3>1, b 2>1, c 1 ok.
			want: map[string][]string{"a1": {ReasonSpread}, "a2": {ReasonSpread}, "b1": {ReasonSpread}, "nozone": {ReasonSpreadMissingLabel}},
		},
		{
			name:     "maxSkew 2",
			existing: []*corev1.Pod{web("w1", "a1"), web("w2", "a2"), web("w3", "b1")},
			pod:      makePod("p", podLabels("app", "web"), spread(zone, 2, corev1.DoNotSchedule, app)),
			want:     map[string][]string{"a1": {ReasonSpread}, "a2": {ReasonSpread}, "nozone": {ReasonSpreadMissingLabel}},
		},
		{
			name: "pods of other namespaces, labels or being deleted do not count",
			existing: []*corev1.Pod{web("w1", "a1"), makePod("o", onNode("a1"), podLabels("app", "db")), func() *corev1.Pod { p := web("w2", "a2"); p.Namespace = "other"; return p }(),
				func() *corev1.Pod { p := web("w3", "b1"); now := metav1.Now(); p.DeletionTimestamp = &now; return p }()},
			pod: makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.DoNotSchedule, app)),
			// a=1 b=0 c=0
			want: map[string][]string{"a1": {ReasonSpread}, "a2": {ReasonSpread}, "nozone": {ReasonSpreadMissingLabel}},
		},
		{
			name:     "pod not matching its own selector",
			existing: []*corev1.Pod{web("w1", "a1")},
			pod:      makePod("p", spread(zone, 1, corev1.DoNotSchedule, app)),
			// a=1 +0 -0 = 1 <= 1: everything with a zone fits
			want: map[string][]string{"nozone": {ReasonSpreadMissingLabel}},
		},
		{
			name:     "hostname spreading",
			existing: []*corev1.Pod{web("w1", "a1"), web("w2", "a2"), web("w3", "b1"), web("w4", "c1")},
			pod:      makePod("p", podLabels("app", "web"), spread(corev1.LabelHostname, 1, corev1.DoNotSchedule, app)),
			want:     map[string][]string{"a1": {ReasonSpread}, "a2": {ReasonSpread}, "b1": {ReasonSpread}, "c1": {ReasonSpread}},
		},
		{
			name:     "nodes outside the pod's node affinity are not domains",
			existing: []*corev1.Pod{web("w1", "a1"), web("w2", "b1")},
			pod: makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.DoNotSchedule, app),
				requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: zone, Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}}})),
			// domains a=1 b=1, min 1: a and b fit (1+1-1=1); c fails affinity first.
			want: map[string][]string{"c1": {ReasonNodeAffinity}, "nozone": {ReasonNodeAffinity}},
		},
		{
			name:     "minDomains above the domains present makes the minimum 0",
			existing: []*corev1.Pod{web("w1", "a1"), web("w2", "b1")},
			nodes:    []*corev1.Node{nodes[0], nodes[2]},
			pod: makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.DoNotSchedule, app), func(p *corev1.Pod) {
				three := int32(3)
				p.Spec.TopologySpreadConstraints[0].MinDomains = &three
			}),
			want: map[string][]string{"a1": {ReasonSpread}, "b1": {ReasonSpread}},
		},
		{
			name:     "matchLabelKeys narrows the selector to the pod's value",
			existing: []*corev1.Pod{makePod("v1a", onNode("a1"), podLabels("app", "web", "rev", "1")), makePod("v1b", onNode("a2"), podLabels("app", "web", "rev", "1"))},
			pod: makePod("p", podLabels("app", "web", "rev", "2"), spread(zone, 1, corev1.DoNotSchedule, app), func(p *corev1.Pod) {
				p.Spec.TopologySpreadConstraints[0].MatchLabelKeys = []string{"rev"}
			}),
			want: map[string][]string{"nozone": {ReasonSpreadMissingLabel}},
		},
		{
			name:     "ScheduleAnyway does not filter",
			existing: []*corev1.Pod{web("w1", "a1"), web("w2", "a2")},
			pod:      makePod("p", podLabels("app", "web"), spread(zone, 1, corev1.ScheduleAnyway, app)),
			want:     map[string][]string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.nodes
			if ns == nil {
				ns = nodes
			}
			snap := snapshotOf(ns, tc.existing...)
			ps := newPodState(tc.pod, nil, nil)
			ps.spread = newSpreadFilterState(ps, snap)
			for _, n := range ns {
				got := runFilters(ps, snap.Get(n.Name))
				if want := tc.want[n.Name]; !slices.Equal(got, want) {
					t.Errorf("node %s: reasons = %q, want %q", n.Name, got, want)
				}
			}
		})
	}
}
