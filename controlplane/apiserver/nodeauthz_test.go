package apiserver

import (
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestNodeOf(t *testing.T) {
	for _, tc := range []struct {
		u    User
		node string
		ok   bool
	}{
		{NodeUser("n1"), "n1", true},
		{User{Name: "system:node:n1"}, "", false},                             // not in the group
		{User{Name: "n1", Groups: []string{NodesGroup}}, "", false},           // not a node name
		{User{Name: "system:node:", Groups: []string{NodesGroup}}, "", false}, // empty
	} {
		node, ok := nodeOf(tc.u)
		if node != tc.node || ok != tc.ok {
			t.Errorf("nodeOf(%+v) = %q %v", tc.u, node, ok)
		}
	}
}

func TestNodeDecide(t *testing.T) {
	reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	res := func(group, version, resource string) *resource {
		r := reg.lookup(schema.GroupVersion{Group: group, Version: version}, resource)
		if r == nil {
			t.Fatalf("no resource %s/%s %s", group, version, resource)
		}
		return r
	}
	nodes, leases, pods := res("", "v1", "nodes"), res("coordination.k8s.io", "v1", "leases"), res("", "v1", "pods")
	events := res("", "v1", "events")
	cms, secrets, deploys := res("", "v1", "configmaps"), res("", "v1", "secrets"), res("apps", "v1", "deployments")
	const me = "edge-1"
	own := "fieldSelector=" + url.QueryEscape("spec.nodeName="+me)
	for _, tc := range []struct {
		name  string
		info  *reqInfo
		query string
		want  nodeVerdict
	}{
		{"get any node", &reqInfo{verb: "get", res: nodes, name: "other"}, "", nodeAllow},
		{"list nodes", &reqInfo{verb: "list", res: nodes}, "", nodeAllow},
		{"watch nodes", &reqInfo{verb: "watch", res: nodes}, "", nodeAllow},
		{"create node (name checked on object)", &reqInfo{verb: "create", res: nodes}, "", nodeOwnName},
		{"update own node", &reqInfo{verb: "update", res: nodes, name: me}, "", nodeAllow},
		{"patch own node", &reqInfo{verb: "patch", res: nodes, name: me}, "", nodeAllow},
		{"update other node", &reqInfo{verb: "update", res: nodes, name: "other"}, "", nodeDeny},
		{"delete own node", &reqInfo{verb: "delete", res: nodes, name: me}, "", nodeDeny},
		{"update own node status", &reqInfo{verb: "update", res: nodes, name: me, subresource: "status"}, "", nodeAllow},
		{"patch other node status", &reqInfo{verb: "patch", res: nodes, name: "other", subresource: "status"}, "", nodeDeny},
		{"deletecollection nodes", &reqInfo{verb: "deletecollection", res: nodes}, "", nodeDeny},

		{"get runtime class", &reqInfo{verb: "get", res: res("node.k8s.io", "v1", "runtimeclasses"), name: "wasm"}, "", nodeAllow},
		{"list runtime classes", &reqInfo{verb: "list", res: res("node.k8s.io", "v1", "runtimeclasses")}, "", nodeAllow},
		{"create runtime class", &reqInfo{verb: "create", res: res("node.k8s.io", "v1", "runtimeclasses")}, "", nodeDeny},
		{"get own lease", &reqInfo{verb: "get", res: leases, namespace: NodeLeaseNamespace, name: me}, "", nodeAllow},
		{"update own lease", &reqInfo{verb: "update", res: leases, namespace: NodeLeaseNamespace, name: me}, "", nodeAllow},
		{"patch own lease", &reqInfo{verb: "patch", res: leases, namespace: NodeLeaseNamespace, name: me}, "", nodeAllow},
		{"create lease (name checked on object)", &reqInfo{verb: "create", res: leases, namespace: NodeLeaseNamespace}, "", nodeOwnName},
		{"update other lease", &reqInfo{verb: "update", res: leases, namespace: NodeLeaseNamespace, name: "other"}, "", nodeDeny},
		{"own-named lease elsewhere", &reqInfo{verb: "update", res: leases, namespace: "default", name: me}, "", nodeDeny},
		{"delete own lease", &reqInfo{verb: "delete", res: leases, namespace: NodeLeaseNamespace, name: me}, "", nodeDeny},
		{"list leases", &reqInfo{verb: "list", res: leases, namespace: NodeLeaseNamespace}, "", nodeDeny},

		{"get pod", &reqInfo{verb: "get", res: pods, namespace: "default", name: "p"}, "", nodeOwnPod},
		{"list own pods", &reqInfo{verb: "list", res: pods}, own, nodeAllow},
		{"list own pods in a namespace", &reqInfo{verb: "list", res: pods, namespace: "default"}, own, nodeAllow},
		{"watch own pods", &reqInfo{verb: "watch", res: pods}, own + "&watch=true", nodeAllow},
		{"list own pods, narrowed", &reqInfo{verb: "list", res: pods}, "fieldSelector=" + url.QueryEscape("spec.nodeName=="+me+",metadata.namespace=default"), nodeAllow},
		{"list all pods", &reqInfo{verb: "list", res: pods}, "", nodeDeny},
		{"list other node's pods", &reqInfo{verb: "list", res: pods}, "fieldSelector=spec.nodeName%3Dother", nodeDeny},
		{"list not-own pods", &reqInfo{verb: "list", res: pods}, "fieldSelector=" + url.QueryEscape("spec.nodeName!="+me), nodeDeny},
		{"create pod (mirror pod checked on object)", &reqInfo{verb: "create", res: pods, namespace: "default"}, "", nodeMirrorPod},
		{"update pod", &reqInfo{verb: "update", res: pods, namespace: "default", name: "p"}, "", nodeDeny},
		{"patch pod", &reqInfo{verb: "patch", res: pods, namespace: "default", name: "p"}, "", nodeDeny},
		{"update pod status", &reqInfo{verb: "update", res: pods, namespace: "default", name: "p", subresource: "status"}, "", nodeOwnPod},
		{"patch pod status", &reqInfo{verb: "patch", res: pods, namespace: "default", name: "p", subresource: "status"}, "", nodeOwnPod},
		{"delete pod", &reqInfo{verb: "delete", res: pods, namespace: "default", name: "p"}, "", nodeOwnPod},
		{"deletecollection pods", &reqInfo{verb: "deletecollection", res: pods, namespace: "default"}, own, nodeDeny},
		{"bind pod", &reqInfo{verb: "create", res: pods, namespace: "default", name: "p", subresource: "binding"}, "", nodeDeny},
		{"evict pod", &reqInfo{verb: "create", res: pods, namespace: "default", name: "p", subresource: "eviction"}, "", nodeDeny},

		{"create event", &reqInfo{verb: "create", res: events, namespace: "any"}, "", nodeAllow},
		{"patch event", &reqInfo{verb: "patch", res: events, namespace: "any", name: "e"}, "", nodeAllow},
		{"update event", &reqInfo{verb: "update", res: events, namespace: "any", name: "e"}, "", nodeAllow},
		{"list events", &reqInfo{verb: "list", res: events, namespace: "any"}, "", nodeDeny},
		{"delete event", &reqInfo{verb: "delete", res: events, namespace: "any", name: "e"}, "", nodeDeny},

		{"get configmap", &reqInfo{verb: "get", res: cms, namespace: "default", name: "c"}, "", nodeReferenced},
		{"get secret", &reqInfo{verb: "get", res: secrets, namespace: "default", name: "s"}, "", nodeReferenced},
		{"list secrets", &reqInfo{verb: "list", res: secrets, namespace: "default"}, "", nodeDeny},
		{"watch configmaps", &reqInfo{verb: "watch", res: cms, namespace: "default"}, "", nodeDeny},
		{"update secret", &reqInfo{verb: "update", res: secrets, namespace: "default", name: "s"}, "", nodeDeny},

		{"create deployment", &reqInfo{verb: "create", res: deploys, namespace: "default"}, "", nodeDeny},
		{"no resource (access review)", &reqInfo{verb: "get"}, "", nodeDeny},
		{"nil", nil, "", nodeDeny},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, reason := nodeDecide(me, tc.info, q)
		if got != tc.want {
			t.Errorf("%s: %v (%s), want %v", tc.name, got, reason, tc.want)
		}
		if got == nodeDeny && reason == "" {
			t.Errorf("%s: denied without a reason", tc.name)
		}
	}
}

func TestPodReferences(t *testing.T) {
	spec := &corev1.PodSpec{
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		Volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec-vol"}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-proj"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-proj"}}},
			}}}},
		},
		InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-init"}}}}}},
		Containers: []corev1.Container{{Name: "m",
			Env: []corev1.EnvVar{
				{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-env"}, Key: "k"}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-env"}, Key: "k"}}},
				{Name: "C", Value: "plain"},
			},
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-envfrom"}}}},
		}},
	}
	for _, tc := range []struct {
		secret bool
		name   string
		want   bool
	}{
		{false, "cm-vol", true}, {true, "sec-vol", true}, {false, "cm-proj", true}, {true, "sec-proj", true},
		{true, "sec-init", true}, {false, "cm-env", true}, {true, "sec-env", true}, {false, "cm-envfrom", true},
		{true, "pull", true},
		{true, "cm-vol", false}, {false, "sec-vol", false}, {true, "other", false}, {false, "plain", false},
	} {
		if got := podReferences(spec, tc.secret, tc.name); got != tc.want {
			t.Errorf("podReferences(secret=%v, %q) = %v", tc.secret, tc.name, got)
		}
	}
}

func TestMirrorPodRefusal(t *testing.T) {
	const me = "edge-1"
	mirror := func(mutate func(p *corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + me, Namespace: "default",
				Annotations:     map[string]string{corev1.MirrorPodAnnotationKey: "0123456789abcdef0123456789abcdef"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: me, UID: "u"}}},
			Spec: corev1.PodSpec{NodeName: me, Containers: []corev1.Container{{Name: "c", Image: "hello:v1"}}},
		}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		refusal string // substring; "" allowed
	}{
		{"mirror pod", mirror(nil), ""},
		{"mirror pod without owner", mirror(func(p *corev1.Pod) { p.OwnerReferences = nil }), ""},
		{"plain pod", mirror(func(p *corev1.Pod) { p.Annotations = nil }), "only create mirror pods"},
		{"bound elsewhere", mirror(func(p *corev1.Pod) { p.Spec.NodeName = "edge-2" }), "bound to itself"},
		{"unbound", mirror(func(p *corev1.Pod) { p.Spec.NodeName = "" }), "bound to itself"},
		{"owned by another node", mirror(func(p *corev1.Pod) { p.OwnerReferences[0].Name = "edge-2" }), "its own Node"},
		{"owned by a replicaset", mirror(func(p *corev1.Pod) {
			p.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: me, UID: "u"}
		}), "its own Node"},
		{"two owners", mirror(func(p *corev1.Pod) { p.OwnerReferences = append(p.OwnerReferences, p.OwnerReferences[0]) }), "at most one owner"},
		{"service account", mirror(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "default" }), "service account"},
		{"secret volume", mirror(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}}
		}), "reference secrets"},
		{"configmap env", mirror(func(p *corev1.Pod) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}
		}), "reference configmaps"},
		{"claim", mirror(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}
		}), "persistentvolumeclaims"},
		{"emptyDir is fine", mirror(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}), ""},
	} {
		got := mirrorPodRefusal(me, tc.pod)
		if (tc.refusal == "") != (got == "") || !strings.Contains(got, tc.refusal) {
			t.Errorf("%s: refusal %q, want %q", tc.name, got, tc.refusal)
		}
	}
}
