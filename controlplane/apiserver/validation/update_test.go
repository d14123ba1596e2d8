package validation

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestUpdateObjectMeta(t *testing.T) {
	runUpdateCases(t, stored(testConfigMap), []updateCase[*corev1.ConfigMap]{
		{name: "labels and data may change", mutate: func(c *corev1.ConfigMap) {
			c.Labels = map[string]string{"tier": "edge"}
			c.Data["new"] = "1"
		}},
		{name: "name", mutate: func(c *corev1.ConfigMap) { c.Name = "other" }, want: []want{invalid("metadata.name")}},
		{name: "namespace", mutate: func(c *corev1.ConfigMap) { c.Namespace = "kube-system" }, want: []want{invalid("metadata.namespace")}},
		{name: "uid", mutate: func(c *corev1.ConfigMap) { c.UID = "someone-else" }, want: []want{invalid("metadata.uid")}},
		{name: "creationTimestamp", mutate: func(c *corev1.ConfigMap) { c.CreationTimestamp = metav1.Now() }, want: []want{invalid("metadata.creationTimestamp")}},
		{name: "resourceVersion required", mutate: func(c *corev1.ConfigMap) { c.ResourceVersion = "" }, want: []want{invalid("metadata.resourceVersion")}},
		{name: "generation may not go back", mutate: func(c *corev1.ConfigMap) { c.Generation = 0 }, want: []want{invalid("metadata.generation")}},
		{name: "new object is validated too", mutate: func(c *corev1.ConfigMap) { c.Data["a b"] = "x" }, want: []want{invalid("data[a b]")}},
	})
}

func TestUpdatePod(t *testing.T) {
	storedPod := stored(func() *corev1.Pod {
		p := testPod()
		p.Spec.NodeName = "edge-1"
		p.Spec.ActiveDeadlineSeconds = ptrTo[int64](600)
		p.Spec.Tolerations = []corev1.Toleration{{Key: "edge", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptrTo[int64](60)}}
		return p
	})
	runUpdateCases(t, storedPod, []updateCase[*corev1.Pod]{
		{name: "image", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "registry.local/app:2.0" }},
		{name: "labels and annotations", mutate: func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }},
		{name: "status", mutate: func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }},
		{name: "lower active deadline", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo[int64](300) }},
		{name: "raise active deadline", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo[int64](900) }, want: []want{invalid("spec.activeDeadlineSeconds")}},
		{name: "drop active deadline", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = nil }, want: []want{invalid("spec.activeDeadlineSeconds")}},
		{name: "add toleration", mutate: func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "gpu", Operator: "Exists"})
		}},
		{name: "change tolerationSeconds", mutate: func(p *corev1.Pod) { p.Spec.Tolerations[0].TolerationSeconds = ptrTo[int64](5) }},
		{name: "remove toleration", mutate: func(p *corev1.Pod) { p.Spec.Tolerations = nil }, want: []want{forbidden("spec.tolerations")}},
		{name: "container name", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Name = "renamed" }, want: []want{forbidden("spec")}},
		{name: "resources", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		}, want: []want{forbidden("spec")}},
		{name: "node name", mutate: func(p *corev1.Pod) { p.Spec.NodeName = "edge-2" }, want: []want{forbidden("spec")}},
		{name: "add container", mutate: func(p *corev1.Pod) {
			c := testContainer()
			c.Name = "sidecar"
			p.Spec.Containers = append(p.Spec.Containers, c)
		}, want: []want{forbidden("spec.containers")}},
		{name: "image removed", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, want: []want{required("spec.containers[0].image")}},
	})

	t.Run("scheduling gates may only be removed", func(t *testing.T) {
		old := testPod()
		old.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wasmfleet.io/a"}, {Name: "wasmfleet.io/b"}}
		Default(old)
		stamp(old)
		removed := old.DeepCopy()
		removed.Spec.SchedulingGates = removed.Spec.SchedulingGates[1:]
		removed.Spec.NodeSelector = map[string]string{"arch": "arm64"} // additions allowed while gated
		expectErrors(t, ValidateUpdate(removed, old))
		added := old.DeepCopy()
		added.Spec.SchedulingGates = append(added.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: "wasmfleet.io/c"})
		expectErrors(t, ValidateUpdate(added, old), forbidden("spec.schedulingGates[2].name"))
	})
}

func TestUpdateWorkloadSelectorsAreImmutable(t *testing.T) {
	runUpdateCases(t, stored(testDeployment), []updateCase[*appsv1.Deployment]{
		{name: "scale and roll", mutate: func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptrTo[int32](5)
			d.Spec.Template.Spec.Containers[0].Image = "registry.local/app:2.0"
			d.Spec.Template.Labels["version"] = "2"
		}},
		{name: "selector", mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchLabels["version"] = "2"
			d.Spec.Template.Labels["version"] = "2"
		}, want: []want{invalid("spec.selector")}},
		{name: "strategy", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}},
	})
	runUpdateCases(t, stored(testReplicaSet), []updateCase[*appsv1.ReplicaSet]{
		{name: "replicas", mutate: func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = ptrTo[int32](0) }},
		{name: "selector", mutate: func(rs *appsv1.ReplicaSet) {
			rs.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "x": "y"}}
			rs.Spec.Template.Labels["x"] = "y"
		}, want: []want{invalid("spec.selector")}},
	})
	runUpdateCases(t, stored(testDaemonSet), []updateCase[*appsv1.DaemonSet]{
		{name: "template", mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "agent:2" }},
		{name: "selector", mutate: func(ds *appsv1.DaemonSet) {
			ds.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Exists"}}}
		}, want: []want{invalid("spec.selector")}},
	})
}

func TestUpdateJob(t *testing.T) {
	runUpdateCases(t, stored(testJob), []updateCase[*batchv1.Job]{
		{name: "parallelism and suspend", mutate: func(j *batchv1.Job) {
			j.Spec.Parallelism = ptrTo[int32](4)
			j.Spec.Suspend = ptrTo(true)
		}},
		{name: "template", mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "pi:2" }, want: []want{invalid("spec.template")}},
		{name: "selector", mutate: func(j *batchv1.Job) {
			j.Spec.Selector.MatchLabels["extra"] = "x"
		}, want: []want{invalid("spec.selector"), invalid("spec.template.metadata.labels")}},
		{name: "completions", mutate: func(j *batchv1.Job) { j.Spec.Completions = ptrTo[int32](3) }, want: []want{invalid("spec.completions")}},
		{name: "completion mode", mutate: func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
		}, want: []want{invalid("spec.completionMode")}},
	})

	t.Run("suspended job that never ran may move", func(t *testing.T) {
		old := testJob()
		old.Spec.Suspend = ptrTo(true)
		Default(old)
		stamp(old)
		moved := old.DeepCopy()
		moved.Spec.Template.Spec.NodeSelector = map[string]string{"site": "plant-7"}
		moved.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "site", Operator: "Exists"}}
		expectErrors(t, ValidateUpdate(moved, old))

		started := old.DeepCopy()
		started.Status.StartTime = &metav1.Time{}
		moved = started.DeepCopy()
		moved.Spec.Template.Spec.NodeSelector = map[string]string{"site": "plant-7"}
		expectErrors(t, ValidateUpdate(moved, started), invalid("spec.template"))
	})
	t.Run("indexed job scales completions with parallelism", func(t *testing.T) {
		old := testJob()
		old.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
		old.Spec.Completions, old.Spec.Parallelism = ptrTo[int32](3), ptrTo[int32](3)
		Default(old)
		stamp(old)
		scaled := old.DeepCopy()
		scaled.Spec.Completions, scaled.Spec.Parallelism = ptrTo[int32](5), ptrTo[int32](5)
		expectErrors(t, ValidateUpdate(scaled, old))
		scaled.Spec.Parallelism = ptrTo[int32](4)
		expectErrors(t, ValidateUpdate(scaled, old), invalid("spec.completions"))
	})
}

func TestUpdateImmutableConfigMapAndSecret(t *testing.T) {
	immutableCM := stored(func() *corev1.ConfigMap {
		c := testConfigMap()
		c.Immutable = ptrTo(true)
		return c
	})
	runUpdateCases(t, immutableCM, []updateCase[*corev1.ConfigMap]{
		{name: "labels", mutate: func(c *corev1.ConfigMap) { c.Labels = map[string]string{"a": "b"} }},
		{name: "data", mutate: func(c *corev1.ConfigMap) { c.Data["app.conf"] = "x=2" }, want: []want{forbidden("data")}},
		{name: "binaryData", mutate: func(c *corev1.ConfigMap) { c.BinaryData = map[string][]byte{"b": {1}} }, want: []want{forbidden("binaryData")}},
		{name: "unset immutable", mutate: func(c *corev1.ConfigMap) { c.Immutable = nil }, want: []want{forbidden("immutable")}},
	})
	runUpdateCases(t, stored(testConfigMap), []updateCase[*corev1.ConfigMap]{
		{name: "make immutable", mutate: func(c *corev1.ConfigMap) { c.Immutable = ptrTo(true) }},
	})

	immutableSecret := stored(func() *corev1.Secret {
		s := testSecret()
		s.Immutable = ptrTo(true)
		return s
	})
	runUpdateCases(t, immutableSecret, []updateCase[*corev1.Secret]{
		{name: "data", mutate: func(s *corev1.Secret) { s.Data["token"] = []byte("new") }, want: []want{forbidden("data")}},
		{name: "stringData lands in data", mutate: func(s *corev1.Secret) { s.StringData = map[string]string{"token": "new"} }, want: []want{forbidden("data")}},
		{name: "unset immutable", mutate: func(s *corev1.Secret) { s.Immutable = ptrTo(false) }, want: []want{forbidden("immutable")}},
	})
	runUpdateCases(t, stored(testSecret), []updateCase[*corev1.Secret]{
		{name: "data", mutate: func(s *corev1.Secret) { s.Data["token"] = []byte("new") }},
		{name: "type", mutate: func(s *corev1.Secret) { s.Type = "wasmfleet.io/other" }, want: []want{invalid("type")}},
	})
}

func TestUpdateOtherKinds(t *testing.T) {
	runUpdateCases(t, stored(testRoleBinding), []updateCase[*rbacv1.RoleBinding]{
		{name: "subjects", mutate: func(b *rbacv1.RoleBinding) { b.Subjects = b.Subjects[:1] }},
		{name: "roleRef", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.Name = "admin" }, want: []want{invalid("roleRef")}},
	})
	runUpdateCases(t, stored(testClusterRoleBinding), []updateCase[*rbacv1.ClusterRoleBinding]{
		{name: "roleRef", mutate: func(b *rbacv1.ClusterRoleBinding) { b.RoleRef.Name = "cluster-admin" }, want: []want{invalid("roleRef")}},
	})
	runUpdateCases(t, stored(testRuntimeClass), []updateCase[*nodev1.RuntimeClass]{
		{name: "handler", mutate: func(rc *nodev1.RuntimeClass) { rc.Handler = "runc" }, want: []want{invalid("handler")}},
	})
	runUpdateCases(t, stored(func() *corev1.Node {
		n := testNode()
		n.Spec.PodCIDRs = []string{"10.244.1.0/24"}
		return n
	}), []updateCase[*corev1.Node]{
		{name: "taints and unschedulable", mutate: func(n *corev1.Node) {
			n.Spec.Unschedulable = true
			n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unreachable", Effect: "NoExecute"}}
		}},
		{name: "status", mutate: func(n *corev1.Node) {
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		}},
		{name: "pod CIDR", mutate: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.2.0/24"} }, want: []want{forbidden("spec.podCIDRs")}},
		{name: "duplicate addresses", mutate: func(n *corev1.Node) {
			a := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}
			n.Status.Addresses = []corev1.NodeAddress{a, a}
		}, want: []want{duplicate("status.addresses[1]")}},
	})
	runUpdateCases(t, stored(func() *corev1.Service {
		s := testService()
		s.Spec.ClusterIP = "10.96.0.10"
		return s
	}), []updateCase[*corev1.Service]{
		{name: "ports", mutate: func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 }},
		{name: "cluster IP", mutate: func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"}
		}, want: []want{invalid("spec.clusterIPs[0]")}},
	})
	runUpdateCases(t, stored(testNamespace), []updateCase[*corev1.Namespace]{
		{name: "labels", mutate: func(ns *corev1.Namespace) { ns.Labels["team"] = "a" }},
		{name: "name", mutate: func(ns *corev1.Namespace) { ns.Name = "team-b" }, want: []want{invalid("metadata.name")}},
	})
	runUpdateCases(t, stored(testEvent), []updateCase[*corev1.Event]{
		{name: "count", mutate: func(e *corev1.Event) { e.Count = 2 }},
	})
	runUpdateCases(t, stored(testLease), []updateCase[*coordinationv1.Lease]{
		{name: "renew", mutate: func(l *coordinationv1.Lease) { l.Spec.RenewTime = &metav1.MicroTime{} }},
		{name: "bad duration", mutate: func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptrTo[int32](-1) }, want: []want{invalid("spec.leaseDurationSeconds")}},
	})
}
