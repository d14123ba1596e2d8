package apiserver

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// sameWarnings compares as kube-apiserver's tests do: as sets, since some
// come from ranging over maps.
func sameWarnings(t *testing.T, got warnings, want []string) {
	t.Helper()
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		t.Errorf("warnings:\n got %q\nwant %q", g, w)
	}
}

func warnPod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"x": "y"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "hello:v1",
			Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
			Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("64Mi")},
			},
		}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

// TestPodWarnings: kube-apiserver's GetWarningsForPod messages, word for
// word, for what this API accepts.
func TestPodWarnings(t *testing.T) {
	term := func(key string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: corev1.NodeSelectorOpExists}}}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []string
	}{
		{"clean", nil, nil},
		{"name not a DNS label", func(p *corev1.Pod) { p.Name = "a.b" }, []string{
			`metadata.name: this is used in the Pod's hostname, which can result in surprising behavior; a DNS label is recommended: [must not contain dots]`,
		}},
		{"deprecated node selector", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"beta.kubernetes.io/os": "linux", "kubernetes.io/os": "linux", "node-role.kubernetes.io/master": ""}
		}, []string{
			`spec.nodeSelector[beta.kubernetes.io/os]: deprecated since v1.14; use "kubernetes.io/os" instead`,
			`spec.nodeSelector[node-role.kubernetes.io/master]: use "node-role.kubernetes.io/control-plane" instead`,
		}},
		{"deprecated node affinity", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution:  &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term("zone"), term("failure-domain.beta.kubernetes.io/zone")}},
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: term("beta.kubernetes.io/arch")}},
			}}
		}, []string{
			`spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[1].matchExpressions[0].key: failure-domain.beta.kubernetes.io/zone is deprecated since v1.17; use "topology.kubernetes.io/zone" instead`,
			`spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key: beta.kubernetes.io/arch is deprecated since v1.14; use "kubernetes.io/arch" instead`,
		}},
		{"topology spread", func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "beta.kubernetes.io/instance-type", WhenUnsatisfiable: corev1.DoNotSchedule}}
		}, []string{
			`spec.topologySpreadConstraints[0].topologyKey: beta.kubernetes.io/instance-type is deprecated since v1.17; use "node.kubernetes.io/instance-type" instead`,
			`spec.topologySpreadConstraints[0].labelSelector: a null labelSelector results in matching no pod`,
		}},
		{"deprecated annotations", func(p *corev1.Pod) {
			p.Annotations = map[string]string{
				"scheduler.alpha.kubernetes.io/critical-pod":          "",
				"security.alpha.kubernetes.io/sysctls":                "a=b",
				"seccomp.security.alpha.kubernetes.io/pod":            "runtime/default",
				"container.seccomp.security.alpha.kubernetes.io/main": "runtime/default",
				"container.seccomp.security.alpha.kubernetes.io/gone": "runtime/default",
			}
		}, []string{
			`metadata.annotations[scheduler.alpha.kubernetes.io/critical-pod]: non-functional in v1.16+; use the "priorityClassName" field instead`,
			`metadata.annotations[security.alpha.kubernetes.io/sysctls]: non-functional in v1.11+; use the "sysctls" field instead`,
			`metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]: non-functional in v1.27+; use the "seccompProfile" field instead`,
			`metadata.annotations[container.seccomp.security.alpha.kubernetes.io/main]: non-functional in v1.27+; use the "seccompProfile" field instead`,
		}},
		{"seccomp annotations with the fields", func(p *corev1.Pod) {
			p.Annotations = map[string]string{
				"seccomp.security.alpha.kubernetes.io/pod":            "runtime/default",
				"container.seccomp.security.alpha.kubernetes.io/main": "runtime/default",
			}
			rd := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
			p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: rd}
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SeccompProfile: rd}
		}, nil},
		{"AppArmor annotation", func(p *corev1.Pod) {
			p.Annotations = map[string]string{"container.apparmor.security.beta.kubernetes.io/main": "runtime/default"}
		}, []string{
			`metadata.annotations[container.apparmor.security.beta.kubernetes.io/main]: deprecated since v1.30; use the "appArmorProfile" field instead`,
		}},
		{"AppArmor annotation naming the pod's profile", func(p *corev1.Pod) {
			p.Annotations = map[string]string{"container.apparmor.security.beta.kubernetes.io/main": "localhost/edge"}
			p.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: ptr.To("edge")}}
		}, nil},
		{"AppArmor annotation with the container's field", func(p *corev1.Pod) {
			p.Annotations = map[string]string{"container.apparmor.security.beta.kubernetes.io/main": "unconfined"}
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}
		}, nil},
		{"negative grace", func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) }, []string{
			`spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1`,
		}},
		{"duplicate env", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{
				{Name: "A", Value: "1"}, {Name: "A", Value: "2"}, {Name: "B", Value: "x"}, {Name: "B", Value: "$(B)y"},
				{Name: "C", Value: "x"}, {Name: "C", Value: "$(C)"}, {Name: "D"}, {Name: "D", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			}
		}, []string{
			`spec.containers[0].env[1]: hides previous definition of "A", which may be dropped when using apply`,
			`spec.containers[0].env[5]: hides previous definition of "C", which may be dropped when using apply`,
			`spec.containers[0].env[7]: hides previous definition of "D", which may be dropped when using apply`,
		}},
		{"ports", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{
				{ContainerPort: 80, Protocol: corev1.ProtocolTCP},
				{ContainerPort: 80, Protocol: corev1.ProtocolUDP},
				{ContainerPort: 443, Protocol: corev1.ProtocolTCP, HostIP: "10.0.0.1"},
			}
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i:v1", Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP, HostPort: 8080}}}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "s:v1", Ports: []corev1.ContainerPort{
				{ContainerPort: 80, Protocol: corev1.ProtocolTCP},
				{ContainerPort: 53, Protocol: corev1.ProtocolUDP, HostPort: 53, HostIP: "10.0.0.1"},
				{ContainerPort: 53, Protocol: corev1.ProtocolUDP, HostPort: 53},
			}})
		}, []string{
			`spec.containers[0].ports[0]: overlapping port definition with spec.initContainers[0].ports[0]`,
			`spec.containers[0].ports[2]: hostIP set without hostPort: {Name: HostPort:0 ContainerPort:443 Protocol:TCP HostIP:10.0.0.1}`,
			`spec.containers[1].ports[0]: overlapping port definition with spec.initContainers[0].ports[0]`,
			`spec.containers[1].ports[0]: duplicate port definition with spec.containers[0].ports[0]`,
			`spec.containers[1].ports[2]: dangerously ambiguous port definition with spec.containers[1].ports[1]`,
		}},
		{"fractional bytes", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("100m"), corev1.ResourceCPU: apiresource.MustParse("100m")},
				Limits:   corev1.ResourceList{corev1.ResourceEphemeralStorage: apiresource.MustParse("1.5")},
			}
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("0.5")}
		}, []string{
			`spec.containers[0].resources.requests[memory]: fractional byte value "100m" is invalid, must be an integer`,
			`spec.containers[0].resources.limits[ephemeral-storage]: fractional byte value "1500m" is invalid, must be an integer`,
			`spec.overhead[memory]: fractional byte value "500m" is invalid, must be an integer`,
		}},
		{"host aliases and pull secrets", func(p *corev1.Pod) {
			p.Spec.HostAliases = []corev1.HostAlias{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "10.0.0.1"}}
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "a"}, {Name: "a"}, {Name: ""}}
		}, []string{
			`spec.hostAliases[2].ip: duplicate ip "10.0.0.1"`,
			`spec.imagePullSecrets[1].name: duplicate name "a"`,
			`spec.imagePullSecrets[2].name: invalid empty name ""`,
		}},
		{"null pod affinity selectors", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{
				PodAffinity:     &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "kubernetes.io/hostname"}}},
				PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}}},
			}
		}, []string{
			`spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector: a null labelSelector results in matching no pod`,
			`spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector: a null labelSelector results in matching no pod`,
		}},
		{"overlapping volume paths", func(p *corev1.Pod) {
			items := func(paths ...string) []corev1.KeyToPath {
				var out []corev1.KeyToPath
				for _, p := range paths {
					out = append(out, corev1.KeyToPath{Key: p, Path: p})
				}
				return out
			}
			p.Spec.Volumes = []corev1.Volume{
				{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, Items: items("a", "a/b/", "c", "c")}}},
				{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, Items: items("x")}},
					{},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Items: items("x/y")}},
				}}}},
			}
		}, []string{
			`volume "cm" (ConfigMap "conf"): overlapping paths: "a/b" with "a"`,
			`volume "cm" (ConfigMap "conf"): overlapping paths: "c" with "c"`,
			`volume "proj" (Projected) has no sources provided`,
			`volume "proj" (Projected Secret "creds"): overlapping paths: "x/y" with "x"`,
		}},
		{"deprecated volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{Repository: "r"}}}}
		}, []string{`spec.volumes[0].gitRepo: deprecated in v1.11`}},
		{"fractional ephemeral volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
				VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("1.5Gi")}},
				}},
			}}}}
		}, nil},
		{"fractional ephemeral volume bytes", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
				VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: corev1.PersistentVolumeClaimSpec{
					Resources: corev1.VolumeResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceStorage: apiresource.MustParse("0.5")}},
				}},
			}}}}
		}, []string{`spec.volumes[0].ephemeral.volumeClaimTemplate.spec.resources.limits[storage]: fractional byte value "500m" is invalid, must be an integer`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameWarnings(t, warningsOnCreate(warnPod(tc.mutate)), tc.want)
		})
	}
}

// TestTemplateWarnings: a workload's pod template warns at its own path,
// on create, and on update only when the spec changed (the generation
// moved), as kube-apiserver's strategies.
func TestTemplateWarnings(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"container.apparmor.security.beta.kubernetes.io/main": "runtime/default"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"beta.kubernetes.io/arch": "arm64"},
			TerminationGracePeriodSeconds: ptr.To[int64](-5),
			Containers:                    []corev1.Container{{Name: "main", Image: "hello:v1"}},
		},
	}
	at := func(p string) []string {
		return []string{
			p + `.spec.nodeSelector[beta.kubernetes.io/arch]: deprecated since v1.14; use "kubernetes.io/arch" instead`,
			p + `.spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1`,
			p + `.metadata.annotations[container.apparmor.security.beta.kubernetes.io/main]: deprecated since v1.30; use the "appArmorProfile" field instead`,
		}
	}
	long := "this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [must not contain dots]"
	meta := metav1.ObjectMeta{Name: "w.x", Generation: 1}
	for _, tc := range []struct {
		name     string
		obj      func(gen int64) runtime.Object
		template string
	}{
		{"deployment", func(g int64) runtime.Object {
			m := meta
			m.Generation = g
			return &appsv1.Deployment{ObjectMeta: m, Spec: appsv1.DeploymentSpec{Template: tmpl}}
		}, "spec.template"},
		{"replicaset", func(g int64) runtime.Object {
			m := meta
			m.Generation = g
			return &appsv1.ReplicaSet{ObjectMeta: m, Spec: appsv1.ReplicaSetSpec{Template: tmpl}}
		}, "spec.template"},
		{"job", func(g int64) runtime.Object {
			m := meta
			m.Generation = g
			return &batchv1.Job{ObjectMeta: m, Spec: batchv1.JobSpec{Template: tmpl}}
		}, "spec.template"},
		{"cronjob", func(g int64) runtime.Object {
			m := meta
			m.Generation = g
			return &batchv1.CronJob{ObjectMeta: m, Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}
		}, "spec.jobTemplate.spec.template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameWarnings(t, warningsOnCreate(tc.obj(1)), append(at(tc.template), "metadata.name: "+long))
			sameWarnings(t, warningsOnUpdate(tc.obj(2), tc.obj(1), ""), at(tc.template))
			sameWarnings(t, warningsOnUpdate(tc.obj(1), tc.obj(1), ""), nil)
			sameWarnings(t, warningsOnUpdate(tc.obj(2), tc.obj(1), "status"), nil)
		})
	}
	// A StatefulSet's name is a DNS label (validation): only its template
	// warns, as kube's statefulset strategy.
	sts := func(g int64) runtime.Object {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "w", Generation: g}, Spec: appsv1.StatefulSetSpec{Template: tmpl}}
	}
	sameWarnings(t, warningsOnCreate(sts(1)), at("spec.template"))
	sameWarnings(t, warningsOnUpdate(sts(2), sts(1), ""), at("spec.template"))
	sameWarnings(t, warningsOnUpdate(sts(1), sts(1), ""), nil)
	// A DaemonSet's warn on update only when its template changed (kube
	// compares the template generation), not on any spec change.
	ds := func(g int64, minReady int32, image string) runtime.Object {
		m := meta
		m.Generation = g
		tm := *tmpl.DeepCopy()
		tm.Spec.Containers[0].Image = image
		return &appsv1.DaemonSet{ObjectMeta: m, Spec: appsv1.DaemonSetSpec{MinReadySeconds: minReady, Template: tm}}
	}
	sameWarnings(t, warningsOnCreate(ds(1, 0, "a")), append(at("spec.template"), "metadata.name: "+long))
	sameWarnings(t, warningsOnUpdate(ds(2, 0, "b"), ds(1, 0, "a"), ""), at("spec.template"))
	sameWarnings(t, warningsOnUpdate(ds(2, 5, "a"), ds(1, 0, "a"), ""), nil)
}

func TestJobAndCronJobWarnings(t *testing.T) {
	big := batchv1.JobSpec{CompletionMode: ptr.To(batchv1.IndexedCompletion), Completions: ptr.To[int32](100_001), Parallelism: ptr.To[int32](10_001)}
	msg := ": In Indexed Jobs with a number of completions higher than 10^5 and a parallelism higher than 10^4, Kubernetes might not be able to track completedIndexes when a big number of indexes fail"
	sameWarnings(t, warningsOnCreate(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: big}), []string{"spec" + msg})
	small := big
	small.Parallelism = ptr.To[int32](10_000)
	sameWarnings(t, warningsOnCreate(&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: small}), nil)
	cj := func(gen int64, schedule string) *batchv1.CronJob {
		return &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "c", Generation: gen}, Spec: batchv1.CronJobSpec{Schedule: schedule, JobTemplate: batchv1.JobTemplateSpec{Spec: big}}}
	}
	sameWarnings(t, warningsOnCreate(cj(1, "* * * * *")), []string{"spec.jobTemplate.spec" + msg})
	// A TZ kept from before passes validation on update, with a warning.
	tz := "cannot use TZ or CRON_TZ in spec.spec.schedule, use timeZone instead, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"
	sameWarnings(t, warningsOnUpdate(cj(1, "TZ=UTC * * * * *"), cj(1, "TZ=UTC 0 * * * *"), ""), []string{tz})
	sameWarnings(t, warningsOnUpdate(cj(2, "CRON_TZ=UTC * * * * *"), cj(1, "TZ=UTC * * * * *"), ""), []string{tz, "spec.jobTemplate.spec" + msg})
}

func TestServiceNodeRuntimeClassWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  runtime.Object
		want []string
	}{
		{"service IPs", &corev1.Service{Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.0.0.010", ClusterIPs: []string{"10.0.0.010", "2001:DB8::1"},
			ExternalIPs: []string{"192.168.001.1"}, LoadBalancerSourceRanges: []string{"10.0.0.1/8"},
		}}, []string{
			`spec.clusterIPs[0]: non-standard IP address "10.0.0.010" is invalid: use "10.0.0.10"`,
			`spec.clusterIPs[1]: IPv6 address "2001:DB8::1" should be in RFC 5952 canonical format ("2001:db8::1")`,
			`spec.externalIPs[0]: non-standard IP address "192.168.001.1" is invalid: use "192.168.1.1"`,
			`spec.externalIPs is deprecated and may no longer be implemented in some clusters`,
			`spec.loadBalancerSourceRanges[0]: CIDR value "10.0.0.1/8" is ambiguous in this context (should be "10.0.0.0/8" or "10.0.0.1/32"?)`,
		}},
		{"headless service", &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"service.kubernetes.io/topology-aware-hints": "auto"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", ExternalIPs: []string{"10.1.1.1"},
				SessionAffinity: corev1.ServiceAffinityClientIP, ExternalName: "example.com", TrafficDistribution: ptr.To(corev1.ServiceTrafficDistributionPreferClose)},
		}, []string{
			`annotation service.kubernetes.io/topology-aware-hints is deprecated, please use service.kubernetes.io/topology-mode instead`,
			`spec.externalIPs is ignored for headless services`,
			`spec.SessionAffinity is ignored for headless services`,
			`spec.externalName is ignored when spec.type is not "ExternalName"`,
			`spec.trafficDistribution: "PreferClose" is deprecated; use "PreferSameZone"`,
		}},
		{"external name service", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com", ExternalIPs: []string{"10.1.1.1"}}},
			[]string{`spec.externalIPs is ignored when spec.type is "ExternalName"`}},
		{"node", &corev1.Node{Spec: corev1.NodeSpec{DoNotUseExternalID: "x"}},
			[]string{"spec.externalID: this field is deprecated, and is unused by Kubernetes"}},
		{"runtime class", &nodev1.RuntimeClass{Handler: "wasm", Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{"beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}}},
			[]string{`scheduling.nodeSelector: deprecated since v1.14; use "kubernetes.io/os" instead`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameWarnings(t, warningsOnCreate(tc.obj), tc.want)
			sameWarnings(t, warningsOnUpdate(tc.obj, tc.obj, ""), tc.want)
		})
	}
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "lb"}, {IP: "2001:DB8::2"}}}}}
	sameWarnings(t, warningsOnUpdate(lb, lb, "status"), []string{
		`status.loadBalancer.ingress[1]: IPv6 address "2001:DB8::2" should be in RFC 5952 canonical format ("2001:db8::2")`,
	})
	// A service account warns when it gets the annotation.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"kubernetes.io/enforce-mountable-secrets": "true"}}}
	saWarning := []string{"metadata.annotations[kubernetes.io/enforce-mountable-secrets]: deprecated in v1.32+; prefer separate namespaces to isolate access to mounted secrets"}
	sameWarnings(t, warningsOnCreate(sa), saWarning)
	sameWarnings(t, warningsOnUpdate(sa, &corev1.ServiceAccount{}, ""), saWarning)
	sameWarnings(t, warningsOnUpdate(sa, sa, ""), nil)
	// A TLS secret whose certificate and key are no pair: crypto/tls's error.
	tlsSecret := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")}}
	sameWarnings(t, warningsOnCreate(tlsSecret), []string{"tls: failed to find any PEM data in certificate input"})
	sameWarnings(t, warningsOnUpdate(tlsSecret, tlsSecret, ""), []string{"tls: failed to find any PEM data in certificate input"})
	// spec.configSource: dropped on create, kept on update only where the
	// node had it.
	with := &corev1.Node{Spec: corev1.NodeSpec{ConfigSource: &corev1.NodeConfigSource{}}}
	sameWarnings(t, warningsOnCreate(with), nil)
	sameWarnings(t, warningsOnUpdate(with, with, ""), []string{"spec.configSource: the feature is removed"})
	sameWarnings(t, warningsOnUpdate(with, &corev1.Node{}, ""), nil)
}

func TestPodUpdateWarnings(t *testing.T) {
	p := warnPod(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) })
	sameWarnings(t, warningsOnUpdate(p, p, ""), nil)
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.01"}, {IP: "10.0.0.2"}}
	p.Status.HostIPs = []corev1.HostIP{{IP: "::FFFF:10.0.0.1"}}
	sameWarnings(t, warningsOnUpdate(p, p, "status"), []string{
		`status.podIPs[0].ip: non-standard IP address "10.0.0.01" is invalid: use "10.0.0.1"`,
		`status.hostIPs[0].ip: non-standard IP address "::FFFF:10.0.0.1" is invalid: use "10.0.0.1"`,
	})
}

// TestPodWarningsAllocateNothing: the create path of a pod without
// anything to warn about pays a few comparisons, and no allocation.
func TestPodWarningsAllocateNothing(t *testing.T) {
	p := warnPod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i:v1", Ports: []corev1.ContainerPort{{ContainerPort: 81, Protocol: corev1.ProtocolTCP}}}}
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/os", Operator: corev1.NodeSelectorOpExists}}}},
		}}}
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
	})
	if n := testing.AllocsPerRun(100, func() {
		if w := warningsOnCreate(p); w != nil {
			t.Fatal(w)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
	// Nor does an agent's status update with canonical IPs.
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.42.0.7"}, {IP: "fd00::7"}}
	p.Status.HostIPs = []corev1.HostIP{{IP: "192.168.1.20"}}
	if n := testing.AllocsPerRun(100, func() {
		if w := warningsOnUpdate(p, p, "status"); w != nil {
			t.Fatal(w)
		}
	}); n != 0 {
		t.Errorf("status update: %v allocations", n)
	}
}

func BenchmarkPodWarnings(b *testing.B) {
	p := warnPod(nil)
	b.ReportAllocs()
	for b.Loop() {
		warningsOnCreate(p)
	}
}

// TestWarnBounds: as kube-apiserver's warning recorder, a message is sent
// once; past 4096 runes of text the texts are sent again cut to 256 runes,
// further ones too until the cut ones reach 4096 runes, and the rest are
// dropped.
func TestWarnBounds(t *testing.T) {
	rec := httptest.NewRecorder()
	ctx := context.WithValue(context.Background(), stateKey{}, &reqState{w: rec})
	msg := func(i int) string { return fmt.Sprintf("%03d:", i) + strings.Repeat("é", 296) } // 300 runes
	header := func(text string) string { return `299 - "` + text + `"` }
	for i := range 13 { // 3900 runes
		warn(ctx, msg(i))
		warn(ctx, msg(i))
	}
	if got := rec.Header().Values("Warning"); len(got) != 13 || got[12] != header(msg(12)) {
		t.Fatalf("13 warnings of 300 runes: %d headers, the last %.40q", len(got), got[len(got)-1])
	}
	for i := 13; i < 20; i++ {
		warn(ctx, msg(i))
	}
	got := rec.Header().Values("Warning")
	if len(got) != 16 { // 16 of 256 runes make 4096
		t.Fatalf("past the bound: %d headers, want 16", len(got))
	}
	for i, h := range got {
		if want := header(msg(i)[:4+2*252]); h != want {
			t.Fatalf("header %d: %.40q..., want the message cut to 256 runes", i, h)
		}
	}
}
