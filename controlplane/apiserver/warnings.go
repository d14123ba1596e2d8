package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// This file holds the warnings of kube-apiserver's registry strategies
// (WarningsOnCreate, WarningsOnUpdate) for the kinds served here, in
// kube-apiserver's words. They are computed after validation passed, on
// dry runs too, and sent as Warning headers (warn, once per message).
//
// A write without anything to warn about allocates nothing here: field
// paths and messages are built only for a warning given.

// warnings collects the warnings of one write; nil until the first.
type warnings []string

func (w *warnings) addf(format string, args ...any) {
	*w = append(*w, fmt.Sprintf(format, args...))
}

// warnAll sends each of ws as a Warning header of ctx's response.
func warnAll(ctx context.Context, ws warnings) {
	for _, msg := range ws {
		warn(ctx, msg)
	}
}

// warningsOnCreate returns the warnings kube-apiserver gives for creating
// obj, which passed validation.
func warningsOnCreate(obj runtime.Object) warnings {
	var w warnings
	switch o := obj.(type) {
	case *corev1.Pod:
		w.nameNotLabel(o.Name, "this is used in the Pod's hostname")
		w.podSpec(nil, &o.Spec, o.Annotations)
	case *appsv1.Deployment:
		w.nameNotLabel(o.Name, "this is used in Pod names and hostnames")
		w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
	case *appsv1.ReplicaSet:
		w.nameNotLabel(o.Name, "this is used in Pod names and hostnames")
		w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
	case *corev1.ReplicationController:
		w.nameNotLabel(o.Name, "this is used in Pod names and hostnames")
		w.podTemplate(field.NewPath("spec", "template"), o.Spec.Template)
	case *appsv1.DaemonSet:
		w.nameNotLabel(o.Name, "this is used in Pod names and hostnames")
		w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
	case *appsv1.StatefulSet:
		// Its name is a DNS label already (validation).
		w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
	case *batchv1.Job:
		w.nameNotLabel(o.Name, "this is used in Pod names and hostnames")
		w.jobSpec(field.NewPath("spec"), &o.Spec)
	case *batchv1.CronJob:
		w.nameNotLabel(o.Name, "this is used in Pod names and hostnames")
		w.jobSpec(field.NewPath("spec", "jobTemplate", "spec"), &o.Spec.JobTemplate.Spec)
	case *corev1.Service:
		w.service(o)
	case *corev1.Node:
		// kube-apiserver drops spec.configSource on create, so only the
		// external ID is left to warn about.
		w.nodeExternalID(o)
	case *nodev1.RuntimeClass:
		w.runtimeClass(o)
	case *corev1.Secret:
		w.tlsSecret(o)
	case *corev1.ServiceAccount:
		w.enforceMountableSecrets(o, nil)
	}
	return w
}

// warningsOnUpdate returns the warnings kube-apiserver gives for
// replacing old with obj, which passed validation, through subresource
// ("" for the object itself). As kube-apiserver's: none for a pod (its
// update path is hot, and humans rarely write pods), the pod template
// warnings of a workload only when its generation moved (its spec
// changed), and a status update only the IP warnings of a pod's or a
// service's status.
func warningsOnUpdate(obj, old runtime.Object, subresource string) warnings {
	var w warnings
	switch subresource {
	case "":
	case "status":
		switch o := obj.(type) {
		case *corev1.Pod:
			w.podStatusIPs(&o.Status)
		case *corev1.Service:
			w.serviceStatusIPs(&o.Status)
		}
		return w
	default:
		return nil
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o.Generation != old.(*appsv1.Deployment).Generation {
			w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
		}
	case *appsv1.ReplicaSet:
		if o.Generation != old.(*appsv1.ReplicaSet).Generation {
			w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
		}
	case *corev1.ReplicationController:
		if o.Generation != old.(*corev1.ReplicationController).Generation {
			w.podTemplate(field.NewPath("spec", "template"), o.Spec.Template)
		}
	case *appsv1.DaemonSet:
		// kube-apiserver compares the template generation, which moves
		// only with the template.
		if !apiequality.Semantic.DeepEqual(o.Spec.Template, old.(*appsv1.DaemonSet).Spec.Template) {
			w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
		}
	case *appsv1.StatefulSet:
		if o.Generation != old.(*appsv1.StatefulSet).Generation {
			w.podTemplate(field.NewPath("spec", "template"), &o.Spec.Template)
		}
	case *batchv1.Job:
		if o.Generation != old.(*batchv1.Job).Generation {
			w.jobSpec(field.NewPath("spec"), &o.Spec)
		}
	case *batchv1.CronJob:
		if o.Generation != old.(*batchv1.CronJob).Generation {
			w.jobSpec(field.NewPath("spec", "jobTemplate", "spec"), &o.Spec.JobTemplate.Spec)
		}
		// Validation refuses a TZ in a new schedule; one kept from before
		// passes, with this warning (its path is kube-apiserver's, sic).
		if strings.Contains(o.Spec.Schedule, "TZ") {
			w.addf("cannot use TZ or CRON_TZ in %s, use timeZone instead, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
				field.NewPath("spec", "spec", "schedule"))
		}
	case *corev1.Service:
		w.service(o)
	case *corev1.Node:
		// kube-apiserver keeps spec.configSource on update only where the
		// node had it already.
		if o.Spec.ConfigSource != nil && old.(*corev1.Node).Spec.ConfigSource != nil {
			w.addf("spec.configSource: the feature is removed")
		}
		w.nodeExternalID(o)
	case *nodev1.RuntimeClass:
		w.runtimeClass(o)
	case *corev1.Secret:
		w.tlsSecret(o)
	case *corev1.ServiceAccount:
		w.enforceMountableSecrets(o, old.(*corev1.ServiceAccount))
	}
	return w
}

// nameNotLabel warns about a name that is a DNS subdomain (validation
// checked that) but not a DNS label, which pod hostnames need.
func (w *warnings) nameNotLabel(name, use string) {
	// A subdomain of 63 characters at most without a dot is a label.
	if len(name) <= utilvalidation.DNS1123LabelMaxLength && !strings.Contains(name, ".") {
		return
	}
	if msgs := utilvalidation.IsDNS1123Label(name); len(msgs) > 0 {
		w.addf("metadata.name: %s, which can result in surprising behavior; a DNS label is recommended: %v", use, msgs)
	}
}

// deprecatedNodeLabel returns kube-apiserver's message for a deprecated
// node label.
func deprecatedNodeLabel(key string) (string, bool) {
	switch key {
	case "beta.kubernetes.io/arch":
		return `deprecated since v1.14; use "kubernetes.io/arch" instead`, true
	case "beta.kubernetes.io/os":
		return `deprecated since v1.14; use "kubernetes.io/os" instead`, true
	case "failure-domain.beta.kubernetes.io/region":
		return `deprecated since v1.17; use "topology.kubernetes.io/region" instead`, true
	case "failure-domain.beta.kubernetes.io/zone":
		return `deprecated since v1.17; use "topology.kubernetes.io/zone" instead`, true
	case "beta.kubernetes.io/instance-type":
		return `deprecated since v1.17; use "node.kubernetes.io/instance-type" instead`, true
	case "app.kubernetes.io/created-by":
		return `deprecated since v1.9`, true
	case "scheduler.alpha.kubernetes.io/preferAvoidPods":
		return `deprecated since v1.22; use Taints and Tolerations instead`, true
	case "node-role.kubernetes.io/master":
		return `use "node-role.kubernetes.io/control-plane" instead`, true
	}
	return "", false
}

// deprecatedPodAnnotation returns kube-apiserver's message for a
// deprecated pod annotation.
func deprecatedPodAnnotation(key string) (string, bool) {
	switch key {
	case "scheduler.alpha.kubernetes.io/critical-pod":
		return `non-functional in v1.16+; use the "priorityClassName" field instead`, true
	case "security.alpha.kubernetes.io/sysctls", "security.alpha.kubernetes.io/unsafe-sysctls":
		return `non-functional in v1.11+; use the "sysctls" field instead`, true
	}
	return "", false
}

// jobSpec adds kube-apiserver's warnings for a job spec at path
// (WarningsForJobSpec): an Indexed job too big to track its failed
// indexes, and its pod template's.
func (w *warnings) jobSpec(path *field.Path, spec *batchv1.JobSpec) {
	if spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion &&
		spec.Completions != nil && *spec.Completions > 100_000 && spec.Parallelism != nil && *spec.Parallelism > 10_000 {
		w.addf("%s: In Indexed Jobs with a number of completions higher than 10^5 and a parallelism higher than 10^4, Kubernetes might not be able to track completedIndexes when a big number of indexes fail", path)
	}
	w.podTemplate(path.Child("template"), &spec.Template)
}

// podTemplate adds the pod warnings of a template at path
// (GetWarningsForPodTemplate).
func (w *warnings) podTemplate(path *field.Path, t *corev1.PodTemplateSpec) {
	w.podSpec(path, &t.Spec, t.Annotations)
}

// podSpec adds kube-apiserver's warnings for a pod (root nil) or a pod
// template at root (warningsForPodSpecAndMeta), for the fields this API
// accepts.
func (w *warnings) podSpec(root *field.Path, spec *corev1.PodSpec, annotations map[string]string) {
	for k := range spec.NodeSelector {
		if msg, ok := deprecatedNodeLabel(k); ok {
			w.addf("%s: %s", root.Child("spec", "nodeSelector").Key(k), msg)
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		if req := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			for i := range req.NodeSelectorTerms {
				w.nodeSelectorTerm(&req.NodeSelectorTerms[i], func() *field.Path {
					return root.Child("spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms").Index(i)
				})
			}
		}
		for i := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			w.nodeSelectorTerm(&a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[i].Preference, func() *field.Path {
				return root.Child("spec", "affinity", "nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution").Index(i).Child("preference")
			})
		}
	}
	for i, c := range spec.TopologySpreadConstraints {
		if msg, ok := deprecatedNodeLabel(c.TopologyKey); ok {
			w.addf("%s: %s is %s", root.Child("spec", "topologySpreadConstraints").Index(i).Child("topologyKey"), c.TopologyKey, msg)
		}
		if c.LabelSelector == nil {
			w.addf("%s: a null labelSelector results in matching no pod", root.Child("spec", "topologySpreadConstraints").Index(i).Child("labelSelector"))
		}
	}
	for k := range annotations {
		if msg, ok := deprecatedPodAnnotation(k); ok {
			w.addf("%s: %s", root.Child("metadata", "annotations").Key(k), msg)
		}
	}
	for i := range spec.Volumes {
		w.deprecatedVolume(root, i, &spec.Volumes[i].VolumeSource)
	}
	for i := range spec.Volumes {
		w.overlappingPaths(&spec.Volumes[i])
	}
	for i := 1; i < len(spec.HostAliases); i++ {
		ip := spec.HostAliases[i].IP
		for _, earlier := range spec.HostAliases[:i] {
			if earlier.IP == ip {
				w.addf("%s: duplicate ip %q", root.Child("spec", "hostAliases").Index(i).Child("ip"), ip)
				break
			}
		}
	}
	for i, s := range spec.ImagePullSecrets {
		for _, earlier := range spec.ImagePullSecrets[:i] {
			if earlier.Name == s.Name {
				w.addf("%s: duplicate name %q", root.Child("spec", "imagePullSecrets").Index(i).Child("name"), s.Name)
				break
			}
		}
	}
	for i, s := range spec.ImagePullSecrets {
		if s.Name == "" {
			w.addf("%s: invalid empty name %q", root.Child("spec", "imagePullSecrets").Index(i).Child("name"), s.Name)
		}
	}
	for _, r := range [...]corev1.ResourceName{corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := spec.Overhead[r]; ok && q.MilliValue()%1000 != 0 {
			w.addf("%s: fractional byte value %q is invalid, must be an integer", root.Child("spec", "overhead").Key(string(r)), q.String())
		}
	}
	if spec.SecurityContext == nil || spec.SecurityContext.SeccompProfile == nil {
		if _, ok := annotations[corev1.SeccompPodAnnotationKey]; ok {
			w.addf(`%s: non-functional in v1.27+; use the "seccompProfile" field instead`, root.Child("metadata", "annotations").Key(corev1.SeccompPodAnnotationKey))
		}
	}
	w.containers(root, spec, annotations)
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		w.addf("%s: must be >= 0; negative values are invalid and will be treated as 1", root.Child("spec", "terminationGracePeriodSeconds"))
	}
	if a := spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			w.podAffinityTerms(root, "podAffinity", pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			w.podAffinityTerms(root, "podAntiAffinity", pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
	}
}

// nodeSelectorTerm warns about deprecated node labels in a term's match
// expressions; path gives the term's path.
func (w *warnings) nodeSelectorTerm(term *corev1.NodeSelectorTerm, path func() *field.Path) {
	for i, e := range term.MatchExpressions {
		if msg, ok := deprecatedNodeLabel(e.Key); ok {
			w.addf("%s: %s is %s", path().Child("matchExpressions").Index(i).Child("key"), e.Key, msg)
		}
	}
}

func (w *warnings) podAffinityTerms(root *field.Path, kind string, required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm) {
	for i, t := range required {
		if t.LabelSelector == nil {
			w.addf("%s: a null labelSelector results in matching no pod", root.Child("spec", "affinity", kind, "requiredDuringSchedulingIgnoredDuringExecution").Index(i).Child("labelSelector"))
		}
	}
	for i, t := range preferred {
		if t.PodAffinityTerm.LabelSelector == nil {
			w.addf("%s: a null labelSelector results in matching no pod", root.Child("spec", "affinity", kind, "preferredDuringSchedulingIgnoredDuringExecution").Index(i).Child("podAffinityTerm", "labelSelector"))
		}
	}
}

// deprecatedVolume warns about the deprecated and removed volume plugins,
// and an ephemeral volume's fractional storage size.
func (w *warnings) deprecatedVolume(root *field.Path, i int, v *corev1.VolumeSource) {
	at := func(name string) *field.Path { return root.Child("spec", "volumes").Index(i).Child(name) }
	if v.PhotonPersistentDisk != nil {
		w.addf("%s: deprecated in v1.11, non-functional in v1.16+", at("photonPersistentDisk"))
	}
	if v.GitRepo != nil {
		w.addf("%s: deprecated in v1.11", at("gitRepo"))
	}
	if v.ScaleIO != nil {
		w.addf("%s: deprecated in v1.16, non-functional in v1.22+", at("scaleIO"))
	}
	if v.Flocker != nil {
		w.addf("%s: deprecated in v1.22, non-functional in v1.25+", at("flocker"))
	}
	if v.StorageOS != nil {
		w.addf("%s: deprecated in v1.22, non-functional in v1.25+", at("storageOS"))
	}
	if v.Quobyte != nil {
		w.addf("%s: deprecated in v1.22, non-functional in v1.25+", at("quobyte"))
	}
	if v.Glusterfs != nil {
		w.addf("%s: deprecated in v1.25, non-functional in v1.26+", at("glusterfs"))
	}
	if v.Ephemeral != nil && v.Ephemeral.VolumeClaimTemplate != nil {
		res := &v.Ephemeral.VolumeClaimTemplate.Spec.Resources
		for _, x := range [...]struct {
			kind string
			list corev1.ResourceList
		}{{"requests", res.Requests}, {"limits", res.Limits}} {
			if q := x.list[corev1.ResourceStorage]; q.MilliValue()%1000 != 0 {
				w.addf("%s: fractional byte value %q is invalid, must be an integer",
					at("ephemeral").Child("volumeClaimTemplate", "spec", "resources", x.kind).Key(string(corev1.ResourceStorage)), q.String())
			}
		}
	}
	if v.CephFS != nil {
		w.addf("%s: deprecated in v1.28, non-functional in v1.31+", at("cephfs"))
	}
	if v.RBD != nil {
		w.addf("%s: deprecated in v1.28, non-functional in v1.31+", at("rbd"))
	}
}

// overlappingPaths warns about the items of a volume that land on the
// same file, or one inside another (kube-apiserver's
// warningsForOverlappingVirtualPaths); in a projected volume, across its
// sources too.
func (w *warnings) overlappingPaths(v *corev1.Volume) {
	keyPaths := func(items []corev1.KeyToPath) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.Path
		}
		return out
	}
	filePaths := func(items []corev1.DownwardAPIVolumeFile) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.Path
		}
		return out
	}
	switch {
	case v.ConfigMap != nil && v.ConfigMap.Items != nil:
		w.pathOverlaps(keyPaths(v.ConfigMap.Items), fmt.Sprintf("volume %q (ConfigMap %q): overlapping paths", v.Name, v.ConfigMap.Name))
	case v.Secret != nil && v.Secret.Items != nil:
		w.pathOverlaps(keyPaths(v.Secret.Items), fmt.Sprintf("volume %q (Secret %q): overlapping paths", v.Name, v.Secret.SecretName))
	case v.DownwardAPI != nil && v.DownwardAPI.Items != nil:
		w.pathOverlaps(filePaths(v.DownwardAPI.Items), fmt.Sprintf("volume %q (DownwardAPI): overlapping paths", v.Name))
	case v.Projected != nil:
		var all []string // the paths of the sources before, each once
		for _, src := range v.Projected.Sources {
			if src == (corev1.VolumeProjection{}) {
				w.addf("volume %q (Projected) has no sources provided", v.Name)
				continue
			}
			var (
				paths []string
				what  string
			)
			switch {
			case src.ConfigMap != nil && src.ConfigMap.Items != nil:
				paths, what = keyPaths(src.ConfigMap.Items), fmt.Sprintf("Projected ConfigMap %q", src.ConfigMap.Name)
			case src.Secret != nil && src.Secret.Items != nil:
				paths, what = keyPaths(src.Secret.Items), fmt.Sprintf("Projected Secret %q", src.Secret.Name)
			case src.DownwardAPI != nil && src.DownwardAPI.Items != nil:
				paths, what = filePaths(src.DownwardAPI.Items), "Projected DownwardAPI"
			case src.ServiceAccountToken != nil:
				paths, what = []string{src.ServiceAccountToken.Path}, "Projected ServiceAccountToken"
			case src.ClusterTrustBundle != nil:
				name := src.ClusterTrustBundle.Name
				if name == nil {
					name = src.ClusterTrustBundle.SignerName
				}
				paths, what = []string{src.ClusterTrustBundle.Path}, fmt.Sprintf("Projected ClusterTrustBundle %q", ptr.Deref(name, ""))
			}
			if len(paths) == 0 {
				continue
			}
			msg := fmt.Sprintf("volume %q (%s): overlapping paths", v.Name, what)
			w.pathOverlaps(paths, msg)
			// Then against the earlier sources' paths, in sorted order.
			var unique []string
			for _, p := range paths {
				if !slices.Contains(unique, p) {
					unique = append(unique, p)
				}
			}
			w.pathOverlaps(slices.Sorted(slices.Values(append(slices.Clone(unique), all...))), msg)
			for _, p := range unique {
				if !slices.Contains(all, p) {
					all = append(all, p)
				}
			}
		}
	}
}

// pathOverlaps warns, with msg, about each path (trailing slashes cut)
// equal to an earlier one, or one being a prefix of the other with a
// slash after (kube-apiserver's test, which also takes "a" and "ab" for
// an overlap); an empty path overlaps nothing, and stops the comparison
// with the rest. Kubernetes compares in no particular order; this does in
// the paths' order.
func (w *warnings) pathOverlaps(paths []string, msg string) {
	var seen []string
	for _, p := range paths {
		p = strings.TrimRight(p, "/")
	compare:
		for _, q := range seen {
			switch {
			case q == "" || p == "":
				break compare
			case q == p, strings.HasPrefix(q+"/", p), strings.HasPrefix(p+"/", q):
				w.addf("%s: %q with %q", msg, p, q)
				break compare
			}
		}
		if !slices.Contains(seen, p) {
			seen = append(seen, p)
		}
	}
}

// containerRef names one container of a pod spec: its list (0 init, 1
// regular, 2 ephemeral) and its index, in kube-apiserver's visiting order.
type containerRef struct{ list, index int }

func (r containerRef) path(root *field.Path) *field.Path {
	list := "containers"
	switch r.list {
	case 0:
		list = "initContainers"
	case 2:
		list = "ephemeralContainers"
	}
	return root.Child("spec", list).Index(r.index)
}

// eachContainer calls f with every container of spec, init containers
// first, then the regular ones, then the ephemeral ones.
func eachContainer(spec *corev1.PodSpec, f func(containerRef, *corev1.Container)) {
	for i := range spec.InitContainers {
		f(containerRef{0, i}, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		f(containerRef{1, i}, &spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		f(containerRef{2, i}, (*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
}

// containers adds the warnings about each container: deprecated
// annotations naming it, fractional byte quantities, environment
// variables defined twice; then the ports of all of them.
func (w *warnings) containers(root *field.Path, spec *corev1.PodSpec, annotations map[string]string) {
	// Looking up an annotation by container name builds the key: only
	// when an annotation has one of the prefixes.
	seccomp, apparmor := false, false
	for k := range annotations {
		seccomp = seccomp || strings.HasPrefix(k, corev1.SeccompContainerAnnotationKeyPrefix)
		apparmor = apparmor || strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix)
	}
	// kube-apiserver leaves a Windows pod's AppArmor annotations alone.
	apparmor = apparmor && (root != nil || spec.OS == nil || spec.OS.Name != corev1.Windows)
	eachContainer(spec, func(ref containerRef, c *corev1.Container) {
		if seccomp && (c.SecurityContext == nil || c.SecurityContext.SeccompProfile == nil) {
			if key := corev1.SeccompContainerAnnotationKeyPrefix + c.Name; hasKey(annotations, key) {
				w.addf(`%s: non-functional in v1.27+; use the "seccompProfile" field instead`, root.Child("metadata", "annotations").Key(key))
			}
		}
		if apparmor && (c.SecurityContext == nil || c.SecurityContext.AppArmorProfile == nil) {
			key := corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + c.Name
			if v, ok := annotations[key]; ok && appArmorAnnotationWarned(root != nil, v, spec.SecurityContext) {
				w.addf(`%s: deprecated since v1.30; use the "appArmorProfile" field instead`, root.Child("metadata", "annotations").Key(key))
			}
		}
		for _, x := range [...]struct {
			kind string
			list corev1.ResourceList
			name corev1.ResourceName
		}{
			{"limits", c.Resources.Limits, corev1.ResourceMemory},
			{"requests", c.Resources.Requests, corev1.ResourceMemory},
			{"limits", c.Resources.Limits, corev1.ResourceEphemeralStorage},
			{"requests", c.Resources.Requests, corev1.ResourceEphemeralStorage},
		} {
			if q, ok := x.list[x.name]; ok && q.MilliValue()%1000 != 0 {
				w.addf("%s: fractional byte value %q is invalid, must be an integer", ref.path(root).Child("resources", x.kind).Key(string(x.name)), q.String())
			}
		}
		w.duplicateEnv(c.Env, func() *field.Path { return ref.path(root) })
	})
	w.ports(root, spec)
}

// appArmorAnnotationWarned says whether a container's AppArmor annotation
// without the container's field is warned about: in a template, unless the
// pod has the field; in a pod (kube-apiserver's applyAppArmorVersionSkew),
// unless the annotation names the pod's profile.
func appArmorAnnotationWarned(template bool, value string, podSC *corev1.PodSecurityContext) bool {
	var pod *corev1.AppArmorProfile
	if podSC != nil {
		pod = podSC.AppArmorProfile
	}
	if template {
		return pod == nil
	}
	var named corev1.AppArmorProfile
	switch {
	case value == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault:
		named.Type = corev1.AppArmorProfileTypeRuntimeDefault
	case value == corev1.DeprecatedAppArmorBetaProfileNameUnconfined:
		named.Type = corev1.AppArmorProfileTypeUnconfined
	case strings.HasPrefix(value, corev1.DeprecatedAppArmorBetaProfileNamePrefix) && len(value) > len(corev1.DeprecatedAppArmorBetaProfileNamePrefix):
		named.Type = corev1.AppArmorProfileTypeLocalhost
		named.LocalhostProfile = ptr.To(value[len(corev1.DeprecatedAppArmorBetaProfileNamePrefix):])
	default:
		// Nothing a field could say.
		return true
	}
	return pod == nil || pod.Type != named.Type || ptr.Deref(pod.LocalhostProfile, "") != ptr.Deref(named.LocalhostProfile, "")
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// duplicateEnv warns about a variable defined again unless the new value
// refers to the earlier one (X=a, then X=$(X)b).
func (w *warnings) duplicateEnv(env []corev1.EnvVar, path func() *field.Path) {
	for i := 1; i < len(env); i++ {
		e := &env[i]
		defined := false
		for j := range i {
			if env[j].Name == e.Name {
				defined = true
				break
			}
		}
		if !defined {
			continue
		}
		ref := "$(" + e.Name + ")"
		if e.ValueFrom != nil || e.Value == ref || !strings.Contains(e.Value, ref) {
			w.addf("%s: hides previous definition of %q, which may be dropped when using apply", path().Child("env").Index(i), e.Name)
		}
	}
}

// ports warns about a host IP without host port, and about the ports of
// all containers that repeat, overlap or are ambiguous with an earlier one
// of the same number and protocol.
func (w *warnings) ports(root *field.Path, spec *corev1.PodSpec) {
	portPath := func(ref containerRef, i int) *field.Path { return ref.path(root).Child("ports").Index(i) }
	// Pods have a port or two: the earlier ones are looked at again,
	// through eachContainer, instead of being indexed.
	eachContainer(spec, func(ref containerRef, c *corev1.Container) {
		for i := range c.Ports {
			p := &c.Ports[i]
			if p.HostIP != "" && p.HostPort == 0 {
				w.addf("%s: hostIP set without hostPort: %+v", portPath(ref, i), *p)
			}
			done := false
			eachContainer(spec, func(oref containerRef, oc *corev1.Container) {
				for j := range oc.Ports {
					if done || (oref == ref && j == i) {
						done = true
						return
					}
					o := &oc.Ports[j]
					if o.ContainerPort != p.ContainerPort || o.Protocol != p.Protocol {
						continue
					}
					a, b := p.HostIP == "", o.HostIP == ""
					switch {
					case p.HostIP == o.HostIP && p.HostPort == o.HostPort:
						w.addf("%s: duplicate port definition with %s", portPath(ref, i), portPath(oref, j))
					case p.HostPort == 0 || o.HostPort == 0:
						w.addf("%s: overlapping port definition with %s", portPath(ref, i), portPath(oref, j))
					case p.HostPort == o.HostPort && a != b:
						w.addf("%s: dangerously ambiguous port definition with %s", portPath(ref, i), portPath(oref, j))
					}
				}
			})
		}
	})
}

// podStatusIPs warns about pod and host IPs in non-standard forms, as
// kube-apiserver's pod status strategy.
func (w *warnings) podStatusIPs(st *corev1.PodStatus) {
	for i, ip := range st.PodIPs {
		w.ip(func() *field.Path { return field.NewPath("status", "podIPs").Index(i).Child("ip") }, ip.IP)
	}
	for i, ip := range st.HostIPs {
		w.ip(func() *field.Path { return field.NewPath("status", "hostIPs").Index(i).Child("ip") }, ip.IP)
	}
}

// ip adds apimachinery's warnings for an IP address in a non-standard
// form (GetWarningsForIP) at path; a canonical one, as agents report
// them, costs no allocation.
func (w *warnings) ip(path func() *field.Path, value string) {
	var buf [64]byte
	if a, err := netip.ParseAddr(value); err == nil && !a.Is4In6() && (a.Is4() || string(a.AppendTo(buf[:0])) == value) {
		return
	}
	*w = append(*w, utilvalidation.GetWarningsForIP(path(), value)...)
}

// serviceStatusIPs warns about load balancer IPs in non-standard forms,
// as kube-apiserver's service status strategy.
func (w *warnings) serviceStatusIPs(st *corev1.ServiceStatus) {
	for i, ing := range st.LoadBalancer.Ingress {
		if ing.IP != "" {
			w.ip(func() *field.Path { return field.NewPath("status", "loadBalancer", "ingress").Index(i) }, ing.IP)
		}
	}
}

// service adds kube-apiserver's service warnings (GetWarningsForService).
func (w *warnings) service(svc *corev1.Service) {
	spec := &svc.Spec
	if _, ok := svc.Annotations[corev1.DeprecatedAnnotationTopologyAwareHints]; ok {
		w.addf("annotation %s is deprecated, please use %s instead", corev1.DeprecatedAnnotationTopologyAwareHints, corev1.AnnotationTopologyMode)
	}
	if spec.ClusterIP != "" && spec.ClusterIP != corev1.ClusterIPNone {
		for i, ip := range spec.ClusterIPs {
			w.ip(func() *field.Path { return field.NewPath("spec").Child("clusterIPs").Index(i) }, ip)
		}
	}
	headless := spec.Type == corev1.ServiceTypeClusterIP && spec.ClusterIP == corev1.ClusterIPNone
	if headless {
		if spec.LoadBalancerIP != "" {
			w.addf("spec.loadBalancerIP is ignored for headless services")
		}
		if len(spec.ExternalIPs) > 0 {
			w.addf("spec.externalIPs is ignored for headless services")
		}
		if spec.SessionAffinity != corev1.ServiceAffinityNone {
			w.addf("spec.SessionAffinity is ignored for headless services")
		}
	}
	for i, ip := range spec.ExternalIPs {
		w.ip(func() *field.Path { return field.NewPath("spec").Child("externalIPs").Index(i) }, ip)
	}
	if len(spec.ExternalIPs) > 0 && !headless && spec.Type != corev1.ServiceTypeExternalName {
		w.addf("spec.externalIPs is deprecated and may no longer be implemented in some clusters")
	}
	if spec.LoadBalancerIP != "" {
		w.ip(func() *field.Path { return field.NewPath("spec").Child("loadBalancerIP") }, spec.LoadBalancerIP)
	}
	for i, cidr := range spec.LoadBalancerSourceRanges {
		*w = append(*w, utilvalidation.GetWarningsForCIDR(field.NewPath("spec").Child("loadBalancerSourceRanges").Index(i), cidr)...)
	}
	if spec.Type == corev1.ServiceTypeExternalName && len(spec.ExternalIPs) > 0 {
		w.addf("spec.externalIPs is ignored when spec.type is %q", corev1.ServiceTypeExternalName)
	}
	if spec.Type != corev1.ServiceTypeExternalName && spec.ExternalName != "" {
		w.addf("spec.externalName is ignored when spec.type is not %q", corev1.ServiceTypeExternalName)
	}
	if td := spec.TrafficDistribution; td != nil && *td == corev1.ServiceTrafficDistributionPreferClose {
		w.addf("spec.trafficDistribution: %q is deprecated; use %q", corev1.ServiceTrafficDistributionPreferClose, corev1.ServiceTrafficDistributionPreferSameZone)
	}
}

func (w *warnings) nodeExternalID(node *corev1.Node) {
	if node.Spec.DoNotUseExternalID != "" {
		w.addf("spec.externalID: this field is deprecated, and is unused by Kubernetes")
	}
}

// runtimeClass warns about deprecated node labels in its scheduling's node
// selector, as kube-apiserver does (without naming the label).
func (w *warnings) runtimeClass(rc *nodev1.RuntimeClass) {
	if rc.Scheduling == nil {
		return
	}
	for k := range rc.Scheduling.NodeSelector {
		if msg, ok := deprecatedNodeLabel(k); ok {
			w.addf("%s: %s", field.NewPath("scheduling", "nodeSelector"), msg)
		}
	}
}

// tlsSecret warns about a TLS secret whose certificate and key are not a
// pair, with crypto/tls's error, as kube-apiserver's secret strategy.
func (w *warnings) tlsSecret(secret *corev1.Secret) {
	if secret.Type != corev1.SecretTypeTLS {
		return
	}
	if _, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]); err != nil {
		*w = append(*w, err.Error())
	}
}

// enforceMountableSecrets warns about the deprecated annotation when a
// service account gets it (old nil on create).
func (w *warnings) enforceMountableSecrets(sa, old *corev1.ServiceAccount) {
	const key = "kubernetes.io/enforce-mountable-secrets"
	if old != nil && hasKey(old.Annotations, key) {
		return
	}
	if hasKey(sa.Annotations, key) {
		w.addf("metadata.annotations[%s]: deprecated in v1.32+; prefer separate namespaces to isolate access to mounted secrets", key)
	}
}
