package validation

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidMinimalObjectsPassAfterDefault(t *testing.T) {
	for _, obj := range []runtime.Object{
		testPod(), testDeployment(), testReplicaSet(), testDaemonSet(), testStatefulSet(), testJob(), testCronJob(),
		testNamespace(), testNode(), testConfigMap(), testSecret(), testEvent(), testService(),
		testBinding(), testLease(), testRuntimeClass(), testRole(), testClusterRole(),
		testRoleBinding(), testClusterRoleBinding(), testScale(), testEviction(),
	} {
		t.Run(typeName(obj), func(t *testing.T) {
			Default(obj)
			if errs := ValidateCreate(obj); errs != nil {
				t.Fatalf("ValidateCreate: %v", errs)
			}
			old := obj.DeepCopyObject()
			stamp(old)
			obj = old.DeepCopyObject()
			if errs := ValidateUpdate(obj, old); errs != nil {
				t.Fatalf("ValidateUpdate without changes: %v", errs)
			}
		})
	}
}

// TestKindsWithoutRulesGetTheMetadataRulesOnUpdate: nothing of a kind
// without rules of its own is checked on create; on update its metadata
// is, as Kubernetes checks every object's (no new finalizer once deleting).
func TestKindsWithoutRulesGetTheMetadataRulesOnUpdate(t *testing.T) {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv", ResourceVersion: "7"}}
	Default(pv)
	if errs := ValidateCreate(pv); errs != nil {
		t.Errorf("ValidateCreate: %v", errs)
	}
	if errs := ValidateUpdate(pv, pv.DeepCopy()); errs != nil {
		t.Errorf("ValidateUpdate: %v", errs)
	}
	old := pv.DeepCopy()
	old.DeletionTimestamp = &metav1.Time{}
	pv.DeletionTimestamp = old.DeletionTimestamp
	pv.Finalizers = []string{"example.com/late"}
	if errs := ValidateUpdate(pv, old); len(errs) != 1 || errs[0].Field != "metadata.finalizers" {
		t.Errorf("ValidateUpdate adding a finalizer while deleting: %v", errs)
	}
}

func TestUpdateOfMismatchedTypesIsAnInternalError(t *testing.T) {
	errs := ValidateUpdate(testPod(), testConfigMap())
	if len(errs) != 1 || errs[0].Type != "InternalError" {
		t.Fatalf("got %v, want one internal error", errs)
	}
}

func TestMessagesReadLikeKubernetes(t *testing.T) {
	cm := testConfigMap()
	cm.Name = "Bad_Name"
	Default(cm)
	errs := ValidateCreate(cm)
	if len(errs) != 1 {
		t.Fatalf("got %v", errs)
	}
	const prefix = `metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`
	if got := errs[0].Error(); !strings.HasPrefix(got, prefix) {
		t.Errorf("message\n got: %s\nwant: %s...", got, prefix)
	}

	// The API server turns the list into a 422 Invalid status with one cause
	// per error.
	status := apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, cm.Name, errs).Status()
	if status.Code != http.StatusUnprocessableEntity || status.Reason != metav1.StatusReasonInvalid {
		t.Errorf("status %d %s", status.Code, status.Reason)
	}
	if len(status.Details.Causes) != 1 || status.Details.Causes[0].Field != "metadata.name" || status.Details.Causes[0].Type != metav1.CauseTypeFieldValueInvalid {
		t.Errorf("causes %+v", status.Details.Causes)
	}
}

func TestObjectMeta(t *testing.T) {
	runCreateCases(t, testConfigMap, []createCase[*corev1.ConfigMap]{
		{name: "valid"},
		{name: "name required", mutate: func(c *corev1.ConfigMap) { c.Name = "" }, want: []want{required("metadata.name")}},
		{name: "generateName stands in for the name", mutate: func(c *corev1.ConfigMap) { c.Name, c.GenerateName = "", "settings-" }},
		{name: "bad generateName", mutate: func(c *corev1.ConfigMap) { c.Name, c.GenerateName = "", "Settings-" }, want: []want{invalid("metadata.generateName")}},
		{name: "subdomain names may have dots", mutate: func(c *corev1.ConfigMap) { c.Name = "a.b.c" }},
		{name: "bad name", mutate: func(c *corev1.ConfigMap) { c.Name = "Bad_Name" }, want: []want{invalid("metadata.name")}},
		{name: "name too long", mutate: func(c *corev1.ConfigMap) { c.Name = strings.Repeat("a", 254) }, want: []want{invalid("metadata.name")}},
		{name: "namespace required", mutate: func(c *corev1.ConfigMap) { c.Namespace = "" }, want: []want{required("metadata.namespace")}},
		{name: "bad namespace", mutate: func(c *corev1.ConfigMap) { c.Namespace = "a.b" }, want: []want{invalid("metadata.namespace")}},
		{name: "bad label key", mutate: func(c *corev1.ConfigMap) { c.Labels = map[string]string{"bad key": "v"} }, want: []want{invalid("metadata.labels")}},
		{name: "bad label value", mutate: func(c *corev1.ConfigMap) { c.Labels = map[string]string{"app": "has space"} }, want: []want{invalid("metadata.labels")}},
		{name: "bad annotation key", mutate: func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"a/b/c": "v"} }, want: []want{invalid("metadata.annotations")}},
		{name: "annotations over 256KiB", mutate: func(c *corev1.ConfigMap) {
			c.Annotations = map[string]string{"big": strings.Repeat("x", 256*1024)}
		}, want: []want{tooLong("metadata.annotations")}},
		{name: "unqualified nonstandard finalizer", mutate: func(c *corev1.ConfigMap) { c.Finalizers = []string{"cleanup"} }, want: []want{invalid("metadata.finalizers[0]")}},
		{name: "qualified finalizer", mutate: func(c *corev1.ConfigMap) { c.Finalizers = []string{"wasmfleet.io/cleanup", "foregroundDeletion"} }},
		{name: "owner reference without uid", mutate: func(c *corev1.ConfigMap) {
			c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}
		}, want: []want{required("metadata.ownerReferences[0].uid")}},
	})
}

func TestValidatePod(t *testing.T) {
	runCreateCases(t, testPod, []createCase[*corev1.Pod]{
		{name: "no containers", mutate: func(p *corev1.Pod) { p.Spec.Containers = nil }, want: []want{required("spec.containers")}},
		{name: "container name not a DNS label", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Name = "App.1" }, want: []want{invalid("spec.containers[0].name")}},
		{name: "container name required", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }, want: []want{required("spec.containers[0].name")}},
		{name: "duplicate container names", mutate: func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
		}, want: []want{duplicate("spec.containers[1].name")}},
		{name: "init container named like a container", mutate: func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{p.Spec.Containers[0]}
		}, want: []want{duplicate("spec.initContainers[0].name")}},
		{name: "image required", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, want: []want{required("spec.containers[0].image")}},
		{name: "image with spaces", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = " app:1 " }, want: []want{invalid("spec.containers[0].image")}},
		{name: "restart policy enum", mutate: func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, want: []want{notSupported("spec.restartPolicy")}},
		{name: "dns policy enum", mutate: func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }, want: []want{notSupported("spec.dnsPolicy")}},
		{name: "pull policy enum", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, want: []want{notSupported("spec.containers[0].imagePullPolicy")}},
		{name: "request above limit", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}
		}, want: []want{invalid("spec.containers[0].resources.requests")}},
		{name: "negative quantity", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1Mi")}
		}, want: []want{invalid("spec.containers[0].resources.requests[memory]")}},
		{name: "unknown unprefixed resource", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"gpu": resource.MustParse("1")}
			// Requests are defaulted from limits, so both are reported.
		}, want: []want{invalid("spec.containers[0].resources.limits[gpu]"), invalid("spec.containers[0].resources.requests[gpu]")}},
		{name: "extended resource needs an equal limit", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/tpu": resource.MustParse("1")}
		}, want: []want{required("spec.containers[0].resources.limits")}},
		{name: "extended resource must be whole", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"example.com/tpu": resource.MustParse("500m")}
		}, want: []want{invalid("spec.containers[0].resources.limits[example.com/tpu]"), invalid("spec.containers[0].resources.requests[example.com/tpu]")}},
		{name: "limits within bounds", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("64Mi"), "example.com/tpu": resource.MustParse("2")},
			}
		}},
		{name: "duplicate volume names", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			}
		}, want: []want{duplicate("spec.volumes[1].name")}},
		{name: "volume name not a DNS label", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "Data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, want: []want{invalid("spec.volumes[0].name")}},
		{name: "two volume types", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{}, ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}},
			}}}
		}, want: []want{forbidden("spec.volumes[0].configMap")}},
		{name: "secret volume needs a name and a sane mode", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{DefaultMode: ptrTo[int32](01000)}}}}
		}, want: []want{required("spec.volumes[0].secret.secretName"), invalid("spec.volumes[0].secret.defaultMode")}},
		{name: "configMap item path escapes", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Items: []corev1.KeyToPath{{Key: "k", Path: "../etc/passwd"}},
			}}}}
		}, want: []want{invalid("spec.volumes[0].configMap.items[0].path")}},
		{name: "volume mount of a missing volume", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}, want: []want{notFound("spec.containers[0].volumeMounts[0].name")}},
		{name: "volume mounts need unique paths", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "data", MountPath: "/data"}, {Name: "data"}}
		}, want: []want{invalid("spec.containers[0].volumeMounts[1].mountPath"), required("spec.containers[0].volumeMounts[2].mountPath")}},
		{name: "env name with =", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A=B"}} }, want: []want{invalid("spec.containers[0].env[0].name")}},
		{name: "env name required", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Value: "x"}} }, want: []want{required("spec.containers[0].env[0].name")}},
		{name: "relaxed env names", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "my.setting-1"}} }},
		{name: "env from an unknown field", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.secret"}}}}
		}, want: []want{notSupported("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath")}},
		{name: "env from a label", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}}}
		}},
		{name: "env with value and valueFrom", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "v", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}}
		}, want: []want{invalid("spec.containers[0].env[0].valueFrom")}},
		{name: "envFrom with no source", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{}} }, want: []want{invalid("spec.containers[0].envFrom")}},
		{name: "port out of range", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}}
		}, want: []want{invalid("spec.containers[0].ports[0].containerPort")}},
		{name: "port protocol", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "HTTP"}}
		}, want: []want{notSupported("spec.containers[0].ports[0].protocol")}},
		{name: "duplicate port names", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: "TCP"}, {Name: "http", ContainerPort: 81, Protocol: "TCP"}}
		}, want: []want{duplicate("spec.containers[0].ports[1].name")}},
		{name: "host port conflict", mutate: func(p *corev1.Pod) {
			c := testContainer()
			c.Name = "other"
			p.Spec.Containers = append(p.Spec.Containers, c)
			for i := range p.Spec.Containers {
				p.Spec.Containers[i].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80, Protocol: "TCP"}}
			}
		}, want: []want{duplicate("spec.containers[1].ports[0].hostPort")}},
		{name: "probe without a handler", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe = &corev1.Probe{SuccessThreshold: 1} }, want: []want{required("spec.containers[0].livenessProbe")}},
		{name: "liveness success threshold", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 2}
		}, want: []want{invalid("spec.containers[0].livenessProbe.successThreshold")}},
		{name: "probe with two handlers", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				Exec: &corev1.ExecAction{Command: []string{"true"}}, HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http"), Scheme: "HTTP"},
			}}
		}, want: []want{forbidden("spec.containers[0].readinessProbe.httpGet")}},
		{name: "probes on a plain init container", mutate: func(p *corev1.Pod) {
			c := testContainer()
			c.Name = "init"
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
			p.Spec.InitContainers = []corev1.Container{c}
		}, want: []want{forbidden("spec.initContainers[0].readinessProbe")}},
		{name: "sidecar init container", mutate: func(p *corev1.Pod) {
			c := testContainer()
			c.Name = "proxy"
			c.RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways)
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
			p.Spec.InitContainers = []corev1.Container{c}
		}},
		{name: "restartPolicy on a regular container", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways)
		}, want: []want{forbidden("spec.containers[0].restartPolicy")}},
		{name: "toleration operator", mutate: func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: "Maybe"}}
		}, want: []want{notSupported("spec.tolerations[0].operator")}},
		{name: "toleration seconds need NoExecute", mutate: func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: "Exists", Effect: "NoSchedule", TolerationSeconds: ptrTo[int64](5)}}
		}, want: []want{invalid("spec.tolerations[0].effect")}},
		{name: "node name", mutate: func(p *corev1.Pod) { p.Spec.NodeName = "Edge_1" }, want: []want{invalid("spec.nodeName")}},
		{name: "runtime class name", mutate: func(p *corev1.Pod) { p.Spec.RuntimeClassName = ptrTo("Wasm!") }, want: []want{invalid("spec.runtimeClassName")}},
		{name: "active deadline", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo[int64](0) }, want: []want{invalid("spec.activeDeadlineSeconds")}},
		{name: "node selector label", mutate: func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"arch": "arm 64"} }, want: []want{invalid("spec.nodeSelector")}},
		{name: "host network needs matching host ports", mutate: func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: "TCP"}}
		}, want: []want{invalid("spec.containers[0].ports[0].hostPort")}},
		{name: "dnsPolicy None needs dnsConfig", mutate: func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, want: []want{required("spec.dnsConfig")}},
		{name: "ephemeral containers only via their subresource", mutate: func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", ImagePullPolicy: "Always", TerminationMessagePolicy: "File",
			}}}
		}, want: []want{forbidden("spec.ephemeralContainers")}},
		{name: "node name with scheduling gates", mutate: func(p *corev1.Pod) {
			p.Spec.NodeName = "edge-1"
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wasmfleet.io/wait"}}
		}, want: []want{forbidden("spec.nodeName")}},
		{name: "node affinity operator", mutate: func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "arch", Operator: "Like"}}}},
			}}}
		}, want: []want{invalid("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator")}},
		{name: "projected token needs a service account", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
			}}}}
		}, want: []want{forbidden("spec.volumes[0].projected.sources[0].serviceAccountToken")}},
	})
}

func TestValidateDeployment(t *testing.T) {
	runCreateCases(t, testDeployment, []createCase[*appsv1.Deployment]{
		{name: "selector required", mutate: func(d *appsv1.Deployment) { d.Spec.Selector = nil }, want: []want{required("spec.selector")}},
		{name: "empty selector", mutate: func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, want: []want{invalid("spec.selector")}},
		{name: "selector must match template", mutate: func(d *appsv1.Deployment) {
			d.Spec.Template.Labels = map[string]string{"app": "other"}
		}, want: []want{invalid("spec.template.metadata.labels")}},
		{name: "selector expression", mutate: func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "In"}}
		}, want: []want{required("spec.selector.matchExpressions[0].values"), invalid("spec.selector")}},
		{name: "negative replicas", mutate: func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo[int32](-1) }, want: []want{invalid("spec.replicas")}},
		{name: "zero replicas", mutate: func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo[int32](0) }},
		{name: "strategy type", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }, want: []want{notSupported("spec.strategy")}},
		{name: "recreate with rolling update", mutate: func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }, want: []want{forbidden("spec.strategy.rollingUpdate")}},
		{name: "zero surge and unavailable", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptrTo(intstr.FromInt32(0)), MaxSurge: ptrTo(intstr.FromString("0%"))}
		}, want: []want{invalid("spec.strategy.rollingUpdate.maxUnavailable")}},
		{name: "unavailable over 100%", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("150%"))
		}, want: []want{invalid("spec.strategy.rollingUpdate.maxUnavailable")}},
		{name: "bad percentage", mutate: func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromString("a lot"))
		}, want: []want{invalid("spec.strategy.rollingUpdate.maxSurge")}},
		{name: "template must restart always", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }, want: []want{notSupported("spec.template.spec.restartPolicy")}},
		{name: "template without deadline", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = ptrTo[int64](10) }, want: []want{forbidden("spec.template.spec.activeDeadlineSeconds")}},
		{name: "template containers are checked", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }, want: []want{required("spec.template.spec.containers[0].image")}},
		{name: "template labels are checked", mutate: func(d *appsv1.Deployment) {
			d.Spec.Template.Labels["bad key"] = "x"
		}, want: []want{invalid("spec.template.labels")}},
		{name: "progress deadline after min ready", mutate: func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 600 }, want: []want{invalid("spec.progressDeadlineSeconds")}},
		{name: "negative revision history", mutate: func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptrTo[int32](-1) }, want: []want{invalid("spec.revisionHistoryLimit")}},
	})
}

func TestValidateReplicaSet(t *testing.T) {
	runCreateCases(t, testReplicaSet, []createCase[*appsv1.ReplicaSet]{
		{name: "selector required", mutate: func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = nil }, want: []want{required("spec.selector")}},
		{name: "empty selector", mutate: func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = &metav1.LabelSelector{} }, want: []want{invalid("spec.selector")}},
		{name: "selector must match template", mutate: func(rs *appsv1.ReplicaSet) {
			rs.Spec.Selector.MatchLabels["pod-template-hash"] = "5d4f"
		}, want: []want{invalid("spec.template.metadata.labels")}},
		{name: "negative replicas", mutate: func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = ptrTo[int32](-2) }, want: []want{invalid("spec.replicas")}},
		{name: "negative min ready", mutate: func(rs *appsv1.ReplicaSet) { rs.Spec.MinReadySeconds = -1 }, want: []want{invalid("spec.minReadySeconds")}},
	})
}

func TestValidateDaemonSet(t *testing.T) {
	runCreateCases(t, testDaemonSet, []createCase[*appsv1.DaemonSet]{
		{name: "selector required", mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Selector = nil }, want: []want{required("spec.selector")}},
		{name: "empty selector", mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Selector = &metav1.LabelSelector{} }, want: []want{invalid("spec.selector")}},
		{name: "selector must match template", mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Labels = nil }, want: []want{invalid("spec.template.metadata.labels")}},
		{name: "strategy type", mutate: func(ds *appsv1.DaemonSet) { ds.Spec.UpdateStrategy.Type = "Canary" }, want: []want{notSupported("spec.updateStrategy")}},
		{name: "on delete", mutate: func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
		}},
		{name: "surge and unavailable together", mutate: func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = ptrTo(intstr.FromInt32(1))
		}, want: []want{invalid("spec.updateStrategy.rollingUpdate.maxSurge")}},
		{name: "neither surge nor unavailable", mutate: func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(0))
		}, want: []want{required("spec.updateStrategy.rollingUpdate.maxUnavailable")}},
		{name: "template must restart always", mutate: func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }, want: []want{notSupported("spec.template.spec.restartPolicy")}},
	})
}

func TestValidateJob(t *testing.T) {
	runCreateCases(t, testJob, []createCase[*batchv1.Job]{
		{name: "negative completions", mutate: func(j *batchv1.Job) { j.Spec.Completions = ptrTo[int32](-1) }, want: []want{invalid("spec.completions")}},
		{name: "negative parallelism", mutate: func(j *batchv1.Job) { j.Spec.Parallelism = ptrTo[int32](-1) }, want: []want{invalid("spec.parallelism")}},
		{name: "negative backoff limit", mutate: func(j *batchv1.Job) { j.Spec.BackoffLimit = ptrTo[int32](-1) }, want: []want{invalid("spec.backoffLimit")}},
		{name: "restart policy Always", mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways }, want: []want{required("spec.template.spec.restartPolicy")}},
		{name: "restart policy OnFailure", mutate: func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }},
		{name: "completion mode", mutate: func(j *batchv1.Job) { j.Spec.CompletionMode = ptrTo[batchv1.CompletionMode]("Sharded") }, want: []want{notSupported("spec.completionMode")}},
		{name: "indexed", mutate: func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
			j.Spec.Completions = ptrTo[int32](3)
		}},
		{name: "indexed needs completions", mutate: func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
			j.Spec.Completions = nil
		}, want: []want{required("spec.completions")}},
		{name: "generated selector tampered with", mutate: func(j *batchv1.Job) {
			j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = "someone-else"
		}, want: []want{invalid("spec.selector"), invalid("spec.template.metadata.labels")}},
		{name: "generated label tampered with", mutate: func(j *batchv1.Job) {
			j.Spec.Template.Labels[batchv1.JobNameLabel] = "other"
		}, want: []want{invalid("spec.template.metadata.labels[batch.kubernetes.io/job-name]")}},
		{name: "manual selector must be given", mutate: func(j *batchv1.Job) {
			j.Spec.ManualSelector = ptrTo(true)
			j.Spec.Selector = nil
		}, want: []want{required("spec.selector")}},
		{name: "manual selector must match", mutate: func(j *batchv1.Job) {
			j.Spec.ManualSelector = ptrTo(true)
			j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pi"}}
		}, want: []want{invalid("spec.template.metadata.labels")}},
		{name: "pod replacement policy", mutate: func(j *batchv1.Job) {
			j.Spec.PodReplacementPolicy = ptrTo[batchv1.PodReplacementPolicy]("Never")
		}, want: []want{notSupported("spec.podReplacementPolicy")}},
	})

	t.Run("uid required for a generated selector", func(t *testing.T) {
		j := testJob()
		j.UID = ""
		Default(j)
		expectErrors(t, ValidateCreate(j), required("metadata.uid"), required("spec.selector"))
	})
	t.Run("manual selector", func(t *testing.T) {
		j := testJob()
		j.UID = ""
		j.Spec.ManualSelector = ptrTo(true)
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pi"}}
		j.Spec.Template.Labels = map[string]string{"app": "pi"}
		Default(j)
		expectErrors(t, ValidateCreate(j))
	})
}

func TestValidateNamespace(t *testing.T) {
	runCreateCases(t, testNamespace, []createCase[*corev1.Namespace]{
		{name: "name is a DNS label", mutate: func(ns *corev1.Namespace) { ns.Name = "team.a" }, want: []want{invalid("metadata.name")}},
		{name: "no namespace of its own", mutate: func(ns *corev1.Namespace) { ns.Namespace = "default" }, want: []want{forbidden("metadata.namespace")}},
		{name: "finalizer names", mutate: func(ns *corev1.Namespace) {
			ns.Spec.Finalizers = append(ns.Spec.Finalizers, "custom")
		}, want: []want{invalid("spec.finalizers[1]")}},
	})
}

func TestValidateNode(t *testing.T) {
	runCreateCases(t, testNode, []createCase[*corev1.Node]{
		{name: "name", mutate: func(n *corev1.Node) { n.Name = "Edge 1" }, want: []want{invalid("metadata.name")}},
		{name: "taint effect", mutate: func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Evict"}} }, want: []want{notSupported("spec.taints[0].effect")}},
		{name: "taint effect required", mutate: func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k"}} }, want: []want{required("spec.taints[0].effect")}},
		{name: "taint key", mutate: func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "bad key", Effect: "NoSchedule"}} }, want: []want{invalid("spec.taints[0].key")}},
		{name: "duplicate taints", mutate: func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "k", Value: "a", Effect: "NoSchedule"}, {Key: "k", Value: "b", Effect: "NoSchedule"}}
		}, want: []want{duplicate("spec.taints[1]")}},
		{name: "pod CIDR", mutate: func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.0.0/33"} }, want: []want{invalid("spec.podCIDRs[0]")}},
		{name: "negative capacity", mutate: func(n *corev1.Node) {
			n.Status.Capacity = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1Gi")}
			n.Status.Allocatable = nil
		}, want: []want{invalid("status.capacity.memory"), invalid("status.allocatable.memory")}},
	})
}

func TestValidateConfigMap(t *testing.T) {
	runCreateCases(t, testConfigMap, []createCase[*corev1.ConfigMap]{
		{name: "key", mutate: func(c *corev1.ConfigMap) { c.Data["a/b"] = "x" }, want: []want{invalid("data[a/b]")}},
		{name: "binary key", mutate: func(c *corev1.ConfigMap) { c.BinaryData = map[string][]byte{"..": nil} }, want: []want{invalid("binaryData[..]")}},
		{name: "key in both", mutate: func(c *corev1.ConfigMap) { c.BinaryData = map[string][]byte{"app.conf": nil} }, want: []want{invalid("data[app.conf]")}},
		{name: "over 1MiB", mutate: func(c *corev1.ConfigMap) {
			c.Data["a"] = strings.Repeat("x", corev1.MaxSecretSize)
		}, want: []want{tooLong("[]")}}, // Kubernetes reports the whole object as "[]"
		{name: "exactly 1MiB", mutate: func(c *corev1.ConfigMap) {
			c.Data = map[string]string{"a": strings.Repeat("x", corev1.MaxSecretSize/2)}
			c.BinaryData = map[string][]byte{"b": make([]byte, corev1.MaxSecretSize/2)}
		}},
	})
}

func TestValidateSecret(t *testing.T) {
	runCreateCases(t, testSecret, []createCase[*corev1.Secret]{
		{name: "key", mutate: func(s *corev1.Secret) { s.Data["bad key"] = nil }, want: []want{invalid("data[bad key]")}},
		{name: "over 1MiB", mutate: func(s *corev1.Secret) { s.Data["big"] = make([]byte, corev1.MaxSecretSize) }, want: []want{tooLong("data")}},
		{name: "tls needs cert and key", mutate: func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS }, want: []want{required("data[tls.crt]"), required("data[tls.key]")}},
		{name: "dockerconfigjson must be JSON", mutate: func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data[corev1.DockerConfigJsonKey] = []byte("{")
		}, want: []want{invalid("data[.dockerconfigjson]")}},
		{name: "service account token needs its account", mutate: func(s *corev1.Secret) { s.Type = corev1.SecretTypeServiceAccountToken }, want: []want{required("metadata.annotations[kubernetes.io/service-account.name]")}},
		{name: "custom type", mutate: func(s *corev1.Secret) { s.Type = "wasmfleet.io/module-pull" }},
	})
}

func TestValidateEvent(t *testing.T) {
	runCreateCases(t, testEvent, []createCase[*corev1.Event]{
		{name: "namespace must match involved object", mutate: func(e *corev1.Event) { e.InvolvedObject.Namespace = "other" }, want: []want{invalid("involvedObject.namespace")}},
		{name: "cluster-scoped object recorded in default", mutate: func(e *corev1.Event) {
			e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "edge-1"}
		}},
		{name: "new-style event needs reporting fields", mutate: func(e *corev1.Event) {
			e.EventTime = metav1.NowMicro()
		}, want: []want{required("reportingController"), invalid("reportingController"), required("reportingInstance"), required("action")}},
		{name: "name", mutate: func(e *corev1.Event) { e.Name = "" }, want: []want{required("metadata.name")}},
	})
}

func TestValidateService(t *testing.T) {
	runCreateCases(t, testService, []createCase[*corev1.Service]{
		{name: "name is a DNS-1035 label", mutate: func(s *corev1.Service) { s.Name = "1web" }, want: []want{invalid("metadata.name")}},
		{name: "ports required", mutate: func(s *corev1.Service) { s.Spec.Ports = nil }, want: []want{required("spec.ports")}},
		{name: "headless without ports", mutate: func(s *corev1.Service) {
			s.Spec.Ports = nil
			s.Spec.ClusterIP = corev1.ClusterIPNone
			s.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
		}},
		{name: "port number", mutate: func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, want: []want{invalid("spec.ports[0].port")}},
		{name: "several ports need names", mutate: func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 443, Protocol: "TCP", TargetPort: intstr.FromInt32(443)})
		}, want: []want{required("spec.ports[0].name"), required("spec.ports[1].name")}},
		{name: "type", mutate: func(s *corev1.Service) { s.Spec.Type = "Mesh" }, want: []want{notSupported("spec.type")}},
		{name: "node port on ClusterIP", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }, want: []want{forbidden("spec.ports[0].nodePort")}},
		{name: "cluster IP", mutate: func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.0.0.300"
			s.Spec.ClusterIPs = []string{"10.0.0.300"}
		}, want: []want{invalid("spec.clusterIPs[0]")}},
		{name: "external name", mutate: func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com", SessionAffinity: corev1.ServiceAffinityNone}
		}},
		{name: "selector labels", mutate: func(s *corev1.Service) { s.Spec.Selector["app"] = "a b" }, want: []want{invalid("spec.selector")}},
	})
}

func TestValidateSmallKinds(t *testing.T) {
	t.Run("Binding", func(t *testing.T) {
		runCreateCases(t, testBinding, []createCase[*corev1.Binding]{
			{name: "target name", mutate: func(b *corev1.Binding) { b.Target.Name = "" }, want: []want{required("target.name")}},
			{name: "target kind", mutate: func(b *corev1.Binding) { b.Target.Kind = "Pod" }, want: []want{notSupported("target.kind")}},
			{name: "empty kind means Node", mutate: func(b *corev1.Binding) { b.Target.Kind = "" }},
		})
	})
	t.Run("Lease", func(t *testing.T) {
		runCreateCases(t, testLease, []createCase[*coordinationv1.Lease]{
			{name: "duration", mutate: func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptrTo[int32](0) }, want: []want{invalid("spec.leaseDurationSeconds")}},
			{name: "transitions", mutate: func(l *coordinationv1.Lease) { l.Spec.LeaseTransitions = ptrTo[int32](-1) }, want: []want{invalid("spec.leaseTransitions")}},
			{name: "preferred holder needs a strategy", mutate: func(l *coordinationv1.Lease) { l.Spec.PreferredHolder = ptrTo("edge-2") }, want: []want{forbidden("spec.preferredHolder")}},
		})
	})
	t.Run("RuntimeClass", func(t *testing.T) {
		runCreateCases(t, testRuntimeClass, []createCase[*nodev1.RuntimeClass]{
			{name: "handler is a DNS label", mutate: func(rc *nodev1.RuntimeClass) { rc.Handler = "Wasm_Time" }, want: []want{invalid("handler")}},
			{name: "handler required", mutate: func(rc *nodev1.RuntimeClass) { rc.Handler = "" }, want: []want{invalid("handler")}},
			{name: "cluster-scoped", mutate: func(rc *nodev1.RuntimeClass) { rc.Namespace = "default" }, want: []want{forbidden("metadata.namespace")}},
			{name: "scheduling tolerations", mutate: func(rc *nodev1.RuntimeClass) {
				rc.Scheduling = &nodev1.Scheduling{Tolerations: []corev1.Toleration{{Key: "wasm", Operator: "Exists"}, {Key: "wasm", Operator: "Exists"}}}
			}, want: []want{duplicate("scheduling.tolerations[1]")}},
		})
	})
	t.Run("Role", func(t *testing.T) {
		runCreateCases(t, testRole, []createCase[*rbacv1.Role]{
			{name: "verbs", mutate: func(r *rbacv1.Role) { r.Rules[0].Verbs = nil }, want: []want{required("rules[0].verbs")}},
			{name: "api groups and resources", mutate: func(r *rbacv1.Role) { r.Rules[0].APIGroups, r.Rules[0].Resources = nil, nil }, want: []want{required("rules[0].apiGroups"), required("rules[0].resources")}},
			{name: "namespaced rule with URLs", mutate: func(r *rbacv1.Role) {
				r.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}}
			}, want: []want{invalid("rules[0].nonResourceURLs")}},
			{name: "names are path segments", mutate: func(r *rbacv1.Role) { r.Name = "system:pod-reader" }},
			{name: "no slashes", mutate: func(r *rbacv1.Role) { r.Name = "a/b" }, want: []want{invalid("metadata.name")}},
		})
	})
	t.Run("ClusterRole", func(t *testing.T) {
		runCreateCases(t, testClusterRole, []createCase[*rbacv1.ClusterRole]{
			{name: "URLs and resources together", mutate: func(r *rbacv1.ClusterRole) { r.Rules[1].Resources = []string{"pods"} }, want: []want{invalid("rules[1].nonResourceURLs")}},
			{name: "empty aggregation", mutate: func(r *rbacv1.ClusterRole) { r.AggregationRule = &rbacv1.AggregationRule{} }, want: []want{required("aggregationRule.clusterRoleSelectors")}},
		})
	})
	t.Run("RoleBinding", func(t *testing.T) {
		runCreateCases(t, testRoleBinding, []createCase[*rbacv1.RoleBinding]{
			{name: "role kind", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.Kind = "Group" }, want: []want{notSupported("roleRef.kind")}},
			{name: "role group", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.APIGroup = "rbac" }, want: []want{notSupported("roleRef.apiGroup")}},
			{name: "role name", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.Name = "" }, want: []want{required("roleRef.name")}},
			{name: "subject kind", mutate: func(b *rbacv1.RoleBinding) { b.Subjects[0].Kind = "Robot" }, want: []want{notSupported("subjects[0].kind")}},
			{name: "subject name", mutate: func(b *rbacv1.RoleBinding) { b.Subjects[1].Name = "" }, want: []want{required("subjects[1].name")}},
		})
	})
	t.Run("ClusterRoleBinding", func(t *testing.T) {
		runCreateCases(t, testClusterRoleBinding, []createCase[*rbacv1.ClusterRoleBinding]{
			{name: "only cluster roles", mutate: func(b *rbacv1.ClusterRoleBinding) { b.RoleRef.Kind = "Role" }, want: []want{notSupported("roleRef.kind")}},
			{name: "service account namespace", mutate: func(b *rbacv1.ClusterRoleBinding) { b.Subjects[1].Namespace = "" }, want: []want{required("subjects[1].namespace")}},
		})
	})
	t.Run("Scale", func(t *testing.T) {
		runCreateCases(t, testScale, []createCase[*autoscalingv1.Scale]{
			{name: "replicas", mutate: func(s *autoscalingv1.Scale) { s.Spec.Replicas = -1 }, want: []want{invalid("spec.replicas")}},
			{name: "zero", mutate: func(s *autoscalingv1.Scale) { s.Spec.Replicas = 0 }},
		})
	})
	t.Run("Eviction", func(t *testing.T) {
		runCreateCases(t, testEviction, []createCase[*policyv1.Eviction]{
			{name: "propagation policy", mutate: func(e *policyv1.Eviction) {
				p := metav1.DeletionPropagation("Eventually")
				e.DeleteOptions = &metav1.DeleteOptions{PropagationPolicy: &p}
			}, want: []want{notSupported("deleteOptions.propagationPolicy")}},
			{name: "grace period", mutate: func(e *policyv1.Eviction) {
				e.DeleteOptions = &metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0)}
			}},
		})
	})
}

// typeName is "Pod" for a *v1.Pod.
func typeName(obj runtime.Object) string {
	_, name, _ := strings.Cut(fmt.Sprintf("%T", obj), ".")
	return name
}
