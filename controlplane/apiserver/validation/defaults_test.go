package validation

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// check reports a mismatch of a defaulted field.
func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestDefaultIsIdempotent(t *testing.T) {
	for _, obj := range []runtime.Object{
		testPod(), testDeployment(), testReplicaSet(), testDaemonSet(), testStatefulSet(), testJob(), testCronJob(), testNamespace(),
		testNode(), testConfigMap(), testSecret(), testService(), testRoleBinding(), testClusterRoleBinding(),
	} {
		Default(obj)
		again := obj.DeepCopyObject()
		Default(again)
		if !apiequality.Semantic.DeepEqual(obj, again) {
			t.Errorf("%s: second Default changed the object", typeName(obj))
		}
	}
}

func TestDefaultPod(t *testing.T) {
	p := testPod()
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}}
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	p.Spec.Volumes = []corev1.Volume{{Name: "scratch"}, {Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
	Default(p)

	s := p.Spec
	check(t, "restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways)
	check(t, "dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst)
	check(t, "terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, int64(30))
	check(t, "schedulerName", s.SchedulerName, "default-scheduler")
	check(t, "enableServiceLinks", *s.EnableServiceLinks, true)
	check(t, "securityContext", s.SecurityContext, &corev1.PodSecurityContext{})
	c := s.Containers[0]
	check(t, "imagePullPolicy", c.ImagePullPolicy, corev1.PullIfNotPresent)
	check(t, "terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log")
	check(t, "terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile)
	check(t, "ports[0].protocol", c.Ports[0].Protocol, corev1.ProtocolTCP)
	check(t, "env fieldRef apiVersion", c.Env[0].ValueFrom.FieldRef.APIVersion, "v1")
	lp := c.LivenessProbe
	check(t, "probe", []int32{lp.TimeoutSeconds, lp.PeriodSeconds, lp.SuccessThreshold, lp.FailureThreshold}, []int32{1, 10, 1, 3})
	check(t, "httpGet", []string{lp.HTTPGet.Path, string(lp.HTTPGet.Scheme)}, []string{"/", "HTTP"})
	check(t, "volume without source", s.Volumes[0].VolumeSource, corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})
	check(t, "configMap defaultMode", *s.Volumes[1].ConfigMap.DefaultMode, int32(0644))
	check(t, "phase", p.Status.Phase, corev1.PodPending)
	check(t, "qosClass", p.Status.QOSClass, corev1.PodQOSBestEffort)
}

func TestDefaultPodHostNetworkPorts(t *testing.T) {
	p := testPod()
	p.Spec.HostNetwork = true
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	Default(p)
	check(t, "hostPort", p.Spec.Containers[0].Ports[0].HostPort, int32(8080))
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                            corev1.PullAlways,
		"nginx:latest":                     corev1.PullAlways,
		"nginx:1.25":                       corev1.PullIfNotPresent,
		"docker.io/library/nginx":          corev1.PullAlways,
		"registry.local:5000/app":          corev1.PullAlways,
		"registry.local:5000/app:v1":       corev1.PullIfNotPresent,
		"registry.local:5000/app:latest":   corev1.PullAlways,
		"hello:v1@sha256:" + sha256hex:     corev1.PullIfNotPresent,
		"Bad:latest":                       corev1.PullIfNotPresent,
		"[::1]:5000/app:v1":                corev1.PullIfNotPresent,
		"hello:v1":                         corev1.PullIfNotPresent,
		"hello@sha256:" + sha256hex:        corev1.PullIfNotPresent,
		"hello:latest@sha256:" + sha256hex: corev1.PullAlways,
		"https://example.com/x.wasm#sha256=" + sha256hex: corev1.PullIfNotPresent,
		"file:///opt/modules/x.wasm":                     corev1.PullIfNotPresent,
		"Not/Valid":                                      corev1.PullIfNotPresent,
		"":                                               corev1.PullIfNotPresent,
	} {
		check(t, "pull policy of "+image, defaultPullPolicy(image), want)
	}
}

const sha256hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestDefaultPodResources(t *testing.T) {
	qos := func(r corev1.ResourceRequirements) corev1.PodQOSClass {
		p := testPod()
		p.Spec.Containers[0].Resources = r
		Default(p)
		return p.Status.QOSClass
	}
	cpuMem := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	check(t, "limits only", qos(corev1.ResourceRequirements{Limits: cpuMem}), corev1.PodQOSGuaranteed)
	check(t, "requests only", qos(corev1.ResourceRequirements{Requests: cpuMem}), corev1.PodQOSBurstable)
	check(t, "memory limit only", qos(corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}), corev1.PodQOSBurstable)

	p := testPod()
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1.5")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
	}
	Default(p)
	r := p.Spec.Containers[0].Resources
	check(t, "cpu request kept", r.Requests.Cpu().String(), "100m")
	check(t, "memory request from limit", r.Requests.Memory().String(), "1500m")
	q := resource.MustParse("0.0001")
	l := corev1.ResourceList{corev1.ResourceCPU: q}
	roundUpResources(l)
	check(t, "rounded up to milli", l.Cpu().String(), "1m")
}

func TestDefaultPodTemplatesGetSpecDefaultsOnly(t *testing.T) {
	d := testDeployment()
	Default(d)
	s := d.Spec.Template.Spec
	check(t, "restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways)
	check(t, "imagePullPolicy", s.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent)
	check(t, "terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, int64(30))
	// Pod-only defaults stay out of templates, as in Kubernetes.
	if s.EnableServiceLinks != nil {
		t.Errorf("template enableServiceLinks = %v, want unset", *s.EnableServiceLinks)
	}
}

func TestDefaultWorkloads(t *testing.T) {
	d := testDeployment()
	Default(d)
	check(t, "deployment replicas", *d.Spec.Replicas, int32(1))
	check(t, "deployment strategy", d.Spec.Strategy, appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptrTo(intstr.FromString("25%")), MaxSurge: ptrTo(intstr.FromString("25%")),
		},
	})
	check(t, "deployment revisionHistoryLimit", *d.Spec.RevisionHistoryLimit, int32(10))
	check(t, "deployment progressDeadlineSeconds", *d.Spec.ProgressDeadlineSeconds, int32(600))

	recreate := testDeployment()
	recreate.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	Default(recreate)
	if recreate.Spec.Strategy.RollingUpdate != nil {
		t.Error("Recreate deployment got a rollingUpdate")
	}

	rs := testReplicaSet()
	Default(rs)
	check(t, "replicaset replicas", *rs.Spec.Replicas, int32(1))

	ds := testDaemonSet()
	Default(ds)
	check(t, "daemonset strategy", ds.Spec.UpdateStrategy, appsv1.DaemonSetUpdateStrategy{
		Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{
			MaxUnavailable: ptrTo(intstr.FromInt32(1)), MaxSurge: ptrTo(intstr.FromInt32(0)),
		},
	})
	check(t, "daemonset revisionHistoryLimit", *ds.Spec.RevisionHistoryLimit, int32(10))
	check(t, "daemonset template restartPolicy", ds.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyAlways)
}

func TestDefaultJob(t *testing.T) {
	j := testJob()
	Default(j)
	s := j.Spec
	check(t, "parallelism", *s.Parallelism, int32(1))
	check(t, "completions", *s.Completions, int32(1))
	check(t, "backoffLimit", *s.BackoffLimit, int32(6))
	check(t, "completionMode", *s.CompletionMode, batchv1.NonIndexedCompletion)
	check(t, "suspend", *s.Suspend, false)
	check(t, "manualSelector", *s.ManualSelector, false)
	check(t, "podReplacementPolicy", *s.PodReplacementPolicy, batchv1.TerminatingOrFailed)
	uid := string(j.UID)
	check(t, "selector", s.Selector.MatchLabels, map[string]string{batchv1.ControllerUidLabel: uid})
	generated := map[string]string{
		"controller-uid": uid, batchv1.ControllerUidLabel: uid,
		"job-name": "pi", batchv1.JobNameLabel: "pi",
	}
	check(t, "template labels", s.Template.Labels, generated)
	check(t, "job labels", j.Labels, generated)
	check(t, "template imagePullPolicy", s.Template.Spec.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent)

	// Only one of completions and parallelism given: the other is left to the
	// controller as Kubernetes does (completions unset means "any").
	p := testJob()
	p.Spec.Parallelism = ptrTo[int32](3)
	Default(p)
	if p.Spec.Completions != nil {
		t.Errorf("completions = %d, want unset when parallelism is set", *p.Spec.Completions)
	}
	c := testJob()
	c.Spec.Completions = ptrTo[int32](5)
	Default(c)
	check(t, "parallelism with completions", *c.Spec.Parallelism, int32(1))

	perIndex := testJob()
	perIndex.Spec.BackoffLimitPerIndex = ptrTo[int32](1)
	Default(perIndex)
	check(t, "backoffLimit with backoffLimitPerIndex", *perIndex.Spec.BackoffLimit, int32(2147483647))

	manual := testJob()
	manual.Spec.ManualSelector = ptrTo(true)
	Default(manual)
	if manual.Spec.Selector != nil || manual.Spec.Template.Labels != nil {
		t.Errorf("manual selector job got generated selector %v / labels %v", manual.Spec.Selector, manual.Spec.Template.Labels)
	}

	noUID := testJob()
	noUID.UID = ""
	Default(noUID)
	if noUID.Spec.Selector != nil {
		t.Errorf("selector generated without a uid: %v", noUID.Spec.Selector)
	}
}

func TestDefaultNamespace(t *testing.T) {
	ns := testNamespace()
	Default(ns)
	check(t, "phase", ns.Status.Phase, corev1.NamespaceActive)
	check(t, "finalizers", ns.Spec.Finalizers, []corev1.FinalizerName{corev1.FinalizerKubernetes})
	check(t, "name label", ns.Labels["kubernetes.io/metadata.name"], "team-a")

	// The namespace controller removes the finalizer of a terminating
	// namespace; defaulting that update must not put it back.
	ns.Status.Phase = corev1.NamespaceTerminating
	ns.Spec.Finalizers = nil
	Default(ns)
	if len(ns.Spec.Finalizers) != 0 {
		t.Errorf("finalizers = %v after finalize", ns.Spec.Finalizers)
	}
}

func TestDefaultSmallKinds(t *testing.T) {
	s := testSecret()
	s.StringData = map[string]string{"user": "admin", "token": "override"}
	Default(s)
	check(t, "secret type", s.Type, corev1.SecretTypeOpaque)
	check(t, "secret data", s.Data, map[string][]byte{"user": []byte("admin"), "token": []byte("override")})
	if s.StringData != nil {
		t.Errorf("stringData kept: %v", s.StringData)
	}

	n := testNode()
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}
	Default(n)
	check(t, "node allocatable", n.Status.Allocatable, n.Status.Capacity)

	cm := &corev1.ConfigMap{}
	Default(cm)
	check(t, "configmap data", cm.Data, map[string]string{})

	svc := testService()
	Default(svc)
	check(t, "service type", svc.Spec.Type, corev1.ServiceTypeClusterIP)
	check(t, "service sessionAffinity", svc.Spec.SessionAffinity, corev1.ServiceAffinityNone)
	check(t, "service port protocol", svc.Spec.Ports[0].Protocol, corev1.ProtocolTCP)
	check(t, "service targetPort", svc.Spec.Ports[0].TargetPort, intstr.FromInt32(80))
	check(t, "service internalTrafficPolicy", *svc.Spec.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster)
	lb := testService()
	lb.Spec.Type = corev1.ServiceTypeLoadBalancer
	lb.Spec.ClusterIP = "10.96.0.10"
	Default(lb)
	check(t, "lb externalTrafficPolicy", lb.Spec.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster)
	check(t, "lb allocateLoadBalancerNodePorts", *lb.Spec.AllocateLoadBalancerNodePorts, true)
	check(t, "lb clusterIPs", lb.Spec.ClusterIPs, []string{"10.96.0.10"})

	rb := testRoleBinding()
	Default(rb)
	check(t, "roleRef apiGroup", rb.RoleRef.APIGroup, rbacv1.GroupName)
	check(t, "user subject apiGroup", rb.Subjects[0].APIGroup, rbacv1.GroupName)
	check(t, "service account subject apiGroup", rb.Subjects[1].APIGroup, "")
}
