package scheduler

import (
	"fmt"
	"slices"
	"sort"
	"unique"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Reasons a node does not fit, worded as kube-scheduler words them (they
// are counted into FitError's message and must stay byte-identical).
const (
	ReasonNodeAffinity       = "node(s) didn't match Pod's node affinity/selector"
	ReasonUnschedulable      = "node(s) were unschedulable"
	ReasonHostPorts          = "node(s) didn't have free ports for the requested pod ports"
	ReasonSpread             = "node(s) didn't match pod topology spread constraints"
	ReasonSpreadMissingLabel = ReasonSpread + " (missing required label)"
	ReasonTooManyPods        = "Too many pods"
)

// Shared, read-only reason lists for the constant single reasons, so
// rejecting a node allocates nothing.
var (
	reasonsUnschedulable      = []string{ReasonUnschedulable}
	reasonsNodeAffinity       = []string{ReasonNodeAffinity}
	reasonsHostPorts          = []string{ReasonHostPorts}
	reasonsSpread             = []string{ReasonSpread}
	reasonsSpreadMissingLabel = []string{ReasonSpreadMissingLabel}
)

// ReasonInsufficient is kube's reason for a resource that does not fit,
// e.g. "Insufficient cpu".
func ReasonInsufficient(name corev1.ResourceName) string { return "Insufficient " + string(name) }

// ReasonTaint is kube's reason for a NoSchedule/NoExecute taint the pod
// does not tolerate: "node(s) had untolerated taint {key: value}".
func ReasonTaint(t corev1.Taint) string {
	return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
}

// ReasonRuntimeClass is the reason for a node that does not offer the
// handler of the pod's runtime class: `node(s) didn't support runtime
// class "wasm"`.
func ReasonRuntimeClass(handler string) string {
	return fmt.Sprintf("node(s) didn't support runtime class %q", handler)
}

// ReasonImageArchitecture is the reason for a node whose kubernetes.io/arch
// is not among the platforms image is published for.
func ReasonImageArchitecture(image string) string {
	return fmt.Sprintf("node(s) didn't match the architectures of image %q", image)
}

const (
	// RuntimeClassLabelPrefix + handler = "true" marks a node that runs
	// pods of the runtime classes with that handler (the node agent sets
	// it; see nodeagent). The built-in classes are named after their
	// handlers, wasm and runc.
	RuntimeClassLabelPrefix = "runtime.wasmfleet.io/"
	// DefaultRuntimeClass is the class (and handler) of pods without
	// runtimeClassName.
	DefaultRuntimeClass = "wasm"
	// ContainerRuntimeClass is the handler that runs OCI images; only its
	// pods are checked against image architectures.
	ContainerRuntimeClass = "runc"
)

// ImageArchitectures tells which CPU architectures a container image is
// published for, in the node label kubernetes.io/arch's vocabulary (GOARCH:
// amd64, arm64, arm, ...).
type ImageArchitectures interface {
	// Architectures returns image's architectures, or nil when they are not
	// known (every node then passes). It is called from the scheduling loop,
	// once per image per attempt, concurrently with nothing else: it must
	// answer from memory and never block on the network.
	Architectures(image string) []string
}

// ImageArchitecturesFunc adapts a function to ImageArchitectures.
type ImageArchitecturesFunc func(image string) []string

// Architectures calls f.
func (f ImageArchitecturesFunc) Architectures(image string) []string { return f(image) }

// imageArchs is one image of the pod with its known architectures.
type imageArchs struct {
	image string
	archs []string
}

// podState is what the filters and scores need of the pod being scheduled,
// computed once per attempt.
type podState struct {
	pod          *corev1.Pod
	req, nonZero Resources
	affinity     nodeaffinity.RequiredNodeAffinity
	hasAffinity  bool                  // a nodeSelector or required node affinity to check
	runtimeClass unique.Handle[string] // compared with NodeInfo.runtimes
	ports        []hostPort
	images       []imageArchs
	spread       *spreadFilterState // nil without DoNotSchedule constraints

	preferTolerations []corev1.Toleration                    // those that can tolerate PreferNoSchedule
	preferred         *nodeaffinity.PreferredSchedulingTerms // nil without preferences
	spreadScore       *spreadScoreState                      // nil without ScheduleAnyway constraints
}

func newPodState(pod *corev1.Pod, images ImageArchitectures, handlers RuntimeHandlers) *podState {
	ps := &podState{
		pod:      pod,
		req:      PodRequests(pod),
		nonZero:  podNonZeroRequests(pod),
		affinity: nodeaffinity.GetRequiredNodeAffinity(pod),
		ports:    podHostPorts(pod),

		preferTolerations: preferNoScheduleTolerations(pod.Spec.Tolerations),
	}
	class := podRuntime(pod, handlers)
	ps.runtimeClass = unique.Make(class)
	ps.hasAffinity = len(pod.Spec.NodeSelector) > 0 || (pod.Spec.Affinity != nil && pod.Spec.Affinity.NodeAffinity != nil &&
		pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil)
	if class == ContainerRuntimeClass && images != nil {
		for _, img := range podImages(pod) {
			if a := images.Architectures(img); a != nil {
				ps.images = append(ps.images, imageArchs{image: img, archs: a})
			}
		}
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		// Terms that do not parse are ignored, as in kube (the apiserver
		// validates them anyway).
		if p, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution); err == nil {
			ps.preferred = p
		}
	}
	return ps
}

// filter decides whether a node can run the pod: nil when it can, otherwise
// the reasons it cannot.
type filter func(ps *podState, ni *NodeInfo) []string

// filters run in kube-scheduler's order; a node's reasons come from the
// first filter that rejects it.
var filters = []filter{
	filterUnschedulable,
	filterNodeReady,
	filterTaints,
	filterNodeAffinity,
	filterHostPorts,
	filterResources,
	filterRuntimeClass,
	filterImageArchitecture,
	filterTopologySpread,
}

// runFilters returns nil when every filter passes ni.
func runFilters(ps *podState, ni *NodeInfo) []string {
	for _, f := range filters {
		if r := f(ps, ni); r != nil {
			return r
		}
	}
	return nil
}

// discard is the logger the component-helpers toleration matchers want.
var discard = logr.Discard()

func tolerates(tolerations []corev1.Toleration, t *corev1.Taint) bool {
	return corev1helpers.TolerationsTolerateTaint(discard, tolerations, t, false)
}

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

// filterUnschedulable rejects cordoned nodes (spec.unschedulable) unless the
// pod tolerates node.kubernetes.io/unschedulable:NoSchedule.
func filterUnschedulable(ps *podState, ni *NodeInfo) []string {
	if ni.unschedulable && !tolerates(ps.pod.Spec.Tolerations, &unschedulableTaint) {
		return reasonsUnschedulable
	}
	return nil
}

// readyTaint is the taint Kubernetes puts on a node whose Ready condition is
// not True (node.kubernetes.io/not-ready when False or missing,
// node.kubernetes.io/unreachable when Unknown), unless the node already
// carries it.
func readyTaint(node *corev1.Node) (corev1.Taint, bool) {
	status := corev1.ConditionFalse
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = c.Status
			break
		}
	}
	var t corev1.Taint
	switch status {
	case corev1.ConditionTrue:
		return t, false
	case corev1.ConditionUnknown:
		t = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	default:
		t = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	}
	for _, have := range node.Spec.Taints {
		if have.Key == t.Key {
			return t, false // filterTaints judges the real one
		}
	}
	return t, true
}

// filterNodeReady rejects nodes whose Ready condition is not True. It treats
// them as Kubernetes' node lifecycle controller would have tainted them, so
// a pod tolerating the not-ready/unreachable NoSchedule taint still fits and
// the reason reads as kube's.
func filterNodeReady(ps *podState, ni *NodeInfo) []string {
	if ni.readyTaint == nil || tolerates(ps.pod.Spec.Tolerations, ni.readyTaint) {
		return nil
	}
	return []string{ReasonTaint(*ni.readyTaint)}
}

func noScheduleOrExecute(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
}

// filterTaints rejects nodes with a NoSchedule or NoExecute taint the pod
// does not tolerate.
func filterTaints(ps *podState, ni *NodeInfo) []string {
	if len(ni.noScheduleTaints) == 0 {
		return nil
	}
	t, untolerated := corev1helpers.FindMatchingUntoleratedTaint(discard, ni.noScheduleTaints, ps.pod.Spec.Tolerations, nil, false)
	if !untolerated {
		return nil
	}
	return []string{ReasonTaint(t)}
}

// filterNodeAffinity applies spec.nodeSelector and required node affinity
// (matchExpressions on labels, matchFields on metadata.name).
func filterNodeAffinity(ps *podState, ni *NodeInfo) []string {
	if !ps.hasAffinity {
		return nil
	}
	if ok, _ := ps.affinity.Match(ni.Node); !ok {
		return reasonsNodeAffinity
	}
	return nil
}

// filterHostPorts rejects nodes where a wanted host port is taken.
func filterHostPorts(ps *podState, ni *NodeInfo) []string {
	for _, p := range ps.ports {
		if ni.portConflict(p) {
			return reasonsHostPorts
		}
	}
	return nil
}

// filterResources rejects nodes whose allocatable, less what their pods
// request, cannot hold the pod; like kube's NodeResourcesFit it reports
// every resource that is short.
func filterResources(ps *podState, ni *NodeInfo) []string {
	var out []string
	if int64(len(ni.Pods))+1 > ni.Allocatable.Pods {
		out = append(out, ReasonTooManyPods)
	}
	r := &ps.req
	if r.MilliCPU == 0 && r.Memory == 0 && r.EphemeralStorage == 0 && len(r.Scalar) == 0 {
		return out
	}
	a, used := &ni.Allocatable, &ni.Requested
	if r.MilliCPU > 0 && r.MilliCPU > a.MilliCPU-used.MilliCPU {
		out = append(out, ReasonInsufficient(corev1.ResourceCPU))
	}
	if r.Memory > 0 && r.Memory > a.Memory-used.Memory {
		out = append(out, ReasonInsufficient(corev1.ResourceMemory))
	}
	if r.EphemeralStorage > 0 && r.EphemeralStorage > a.EphemeralStorage-used.EphemeralStorage {
		out = append(out, ReasonInsufficient(corev1.ResourceEphemeralStorage))
	}
	if len(r.Scalar) > 0 {
		names := make([]corev1.ResourceName, 0, len(r.Scalar))
		for name := range r.Scalar {
			names = append(names, name)
		}
		sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
		for _, name := range names {
			if v := r.Scalar[name]; v > 0 && v > a.Scalar[name]-used.Scalar[name] {
				out = append(out, ReasonInsufficient(name))
			}
		}
	}
	return out
}

// filterRuntimeClass rejects nodes without the label
// runtime.wasmfleet.io/<handler>=true for the handler of the pod's runtime
// class.
func filterRuntimeClass(ps *podState, ni *NodeInfo) []string {
	if slices.Contains(ni.runtimes, ps.runtimeClass) {
		return nil
	}
	return []string{ReasonRuntimeClass(ps.runtimeClass.Value())}
}

// filterImageArchitecture rejects, for container pods, nodes whose
// kubernetes.io/arch is not among an image's known architectures.
func filterImageArchitecture(ps *podState, ni *NodeInfo) []string {
	if len(ps.images) == 0 {
		return nil
	}
	arch := ni.arch.Value()
	for _, img := range ps.images {
		if arch == "" || !slices.Contains(img.archs, arch) {
			return []string{ReasonImageArchitecture(img.image)}
		}
	}
	return nil
}
