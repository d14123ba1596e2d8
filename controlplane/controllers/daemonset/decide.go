package daemonset

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/klog/v2"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// This file holds the DaemonSet controller's decisions: pure functions of
// a snapshot (the DaemonSet, the nodes, the pods per node, the time) with
// no I/O, mirroring k8s.io/kubernetes/pkg/controller/daemon.

const (
	// RevisionHashLabel is the pod label holding the hash of the template a
	// pod was created from (apps/v1 DefaultDaemonSetUniqueLabelKey).
	RevisionHashLabel = appsv1.DefaultDaemonSetUniqueLabelKey
	// TemplateGenerationLabel is the legacy pod label holding the
	// DaemonSet's template generation, set when the DaemonSet carries
	// TemplateGenerationAnnotation.
	TemplateGenerationLabel = "pod-template-generation"
	// TemplateGenerationAnnotation is where kube-apiserver records a
	// DaemonSet's template generation.
	TemplateGenerationAnnotation = "deprecated.daemonset.template.generation"
	// RuntimeClassLabelPrefix prefixes the node label saying a node runs a
	// runtime class (runtime.wasmfleet.io/<class>=true), as the node agent
	// sets it (nodeagent.RuntimeClassLabelPrefix).
	RuntimeClassLabelPrefix = "runtime.wasmfleet.io/"
	// DefaultRuntimeClass is the runtime class of a pod without
	// runtimeClassName.
	DefaultRuntimeClass = "wasm"
)

// TemplateHash is the controller-revision-hash of a pod template: the fnv32a
// hash of its JSON, encoded as Kubernetes encodes revision hashes. Equal
// templates hash equally; the apiserver's defaulting keeps the JSON stable.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	b, err := json.Marshal(t)
	if err != nil {
		// A PodTemplateSpec always marshals; fall back to its printed form.
		b = fmt.Appendf(nil, "%#v", t)
	}
	h := fnv.New32a()
	h.Write(b)
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// daemonTolerations are the tolerations Kubernetes adds to every DaemonSet
// pod so node lifecycle never evicts it and node conditions never keep it
// off a node (AddOrUpdateDaemonPodTolerations).
func daemonTolerations(hostNetwork bool) []corev1.Toleration {
	ts := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if hostNetwork {
		ts = append(ts, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return ts
}

// addDaemonTolerations adds daemonTolerations to spec, replacing a
// toleration of the same key, operator, value and effect (so a user's
// tolerationSeconds cannot make node lifecycle evict the pod).
func addDaemonTolerations(spec *corev1.PodSpec) {
	for _, t := range daemonTolerations(spec.HostNetwork) {
		replaced := false
		for i := range spec.Tolerations {
			o := &spec.Tolerations[i]
			if o.Key == t.Key && o.Effect == t.Effect && o.Operator == t.Operator && o.Value == t.Value {
				*o = t
				replaced = true
				break
			}
		}
		if !replaced {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

// bindToNode makes spec require node as Kubernetes' daemon pods do
// (ReplaceDaemonSetPodNodeNameNodeAffinity) and, as wasmfleet places
// daemon pods itself, sets spec.nodeName.
func bindToNode(spec *corev1.PodSpec, node string) {
	spec.NodeName = node
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{
		Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
	}}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{term},
	}
}

// runtimeClass is the runtime class a pod spec asks for (whose handler is
// of the same name when the class is not known).
func runtimeClass(spec *corev1.PodSpec) string {
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName == "" {
		return DefaultRuntimeClass
	}
	return *spec.RuntimeClassName
}

// nodeShouldRunDaemonPod says whether ds should have a pod on node
// (shouldRun), and whether a pod already there may stay (shouldContinue:
// false once the node no longer matches, or has a NoExecute taint the pod
// does not tolerate). It is Kubernetes' NodeShouldRunDaemonPod plus the
// runtime-class check wasmfleet needs because it places the pods itself.
func nodeShouldRunDaemonPod(node *corev1.Node, ds *appsv1.DaemonSet, rc *nodev1.RuntimeClass) (shouldRun, shouldContinue bool) {
	spec := ds.Spec.Template.Spec.DeepCopy()
	addDaemonTolerations(spec)
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return false, false
	}
	handler := runtimeClass(spec)
	if rc != nil {
		// What the RuntimeClass admission puts into the pods: the class's
		// handler runs them, on the nodes of its node selector.
		handler = rc.Handler
		if rc.Scheduling != nil {
			for k, v := range rc.Scheduling.NodeSelector {
				if node.Labels[k] != v {
					return false, false
				}
			}
			spec.Tolerations = append(spec.Tolerations, rc.Scheduling.Tolerations...)
		}
	}
	if node.Labels[RuntimeClassLabelPrefix+handler] != "true" {
		return false, false
	}
	fits, err := nodeaffinity.NewRequiredNodeAffinity(spec.NodeSelector, spec.Affinity).Match(node)
	if err != nil || !fits {
		return false, false
	}
	logger := klog.Background()
	if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute || t.Effect == corev1.TaintEffectNoSchedule
	}, false); !untolerated {
		return true, true
	}
	// Scheduled daemon pods keep running unless a NoExecute taint evicts them.
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute
	}, false)
	return false, !untolerated
}

// manageActions is what manage does for one DaemonSet: create a pod on
// each node of create, delete the pods of del, force-delete (grace period
// 0) the pods of forceDel whose node is gone, and delete the failed pods
// of failed (subject to back-off).
type manageActions struct {
	create   []string
	del      []*corev1.Pod
	forceDel []*corev1.Pod
	failed   []*corev1.Pod
}

// planManage decides, for every node, whether ds needs a pod created there
// or has pods there to delete (podsShouldBeOnNode). byNode holds ds's pods
// by spec.nodeName. A node gets a new pod only when none of ds's pods is
// there, not even a terminating one: the old pod must be gone first.
func planManage(ds *appsv1.DaemonSet, rc *nodev1.RuntimeClass, nodes []*corev1.Node, byNode map[string][]*corev1.Pod) manageActions {
	var a manageActions
	known := make(map[string]bool, len(nodes))
	for _, node := range nodes {
		known[node.Name] = true
		pods := byNode[node.Name]
		shouldRun, shouldContinue := nodeShouldRunDaemonPod(node, ds, rc)
		switch {
		case shouldRun:
			var running []*corev1.Pod
			terminating := false
			for _, p := range pods {
				if p.DeletionTimestamp != nil {
					terminating = true
					continue
				}
				if p.Status.Phase == corev1.PodFailed {
					a.failed = append(a.failed, p)
					continue
				}
				running = append(running, p)
			}
			switch {
			case len(running) == 0 && !terminating:
				a.create = append(a.create, node.Name)
			case len(running) > 1:
				sortByCreation(running)
				a.del = append(a.del, running[1:]...)
			}
		case !shouldContinue:
			for _, p := range pods {
				if p.DeletionTimestamp == nil {
					a.del = append(a.del, p)
				}
			}
		}
	}
	names := make([]string, 0, len(byNode))
	for name := range byNode {
		if !known[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		// The node is gone: no agent will ever finish these pods.
		a.forceDel = append(a.forceDel, byNode[name]...)
	}
	return a
}

// sortByCreation orders pods oldest first (name breaks ties).
func sortByCreation(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		ti, tj := pods[i].CreationTimestamp, pods[j].CreationTimestamp
		if ti.Equal(&tj) {
			return pods[i].Name < pods[j].Name
		}
		return ti.Before(&tj)
	})
}

// isPodUpdated says whether pod was made from ds's current template.
func isPodUpdated(ds *appsv1.DaemonSet, pod *corev1.Pod, hash string) bool {
	if hash != "" && pod.Labels[RevisionHashLabel] == hash {
		return true
	}
	gen, ok := ds.Annotations[TemplateGenerationAnnotation]
	return ok && pod.Labels[TemplateGenerationLabel] == gen
}

// podReadyCondition returns pod's Ready condition, or nil.
func podReadyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// isPodReady says whether pod's Ready condition is True.
func isPodReady(pod *corev1.Pod) bool {
	c := podReadyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

// isPodAvailable says whether pod has been ready for minReadySeconds at
// now (podutil.IsPodAvailable).
func isPodAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := podReadyCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	min := time.Duration(minReadySeconds) * time.Second
	return !c.LastTransitionTime.IsZero() && !c.LastTransitionTime.Add(min).After(now)
}

// maxUnavailable resolves the rolling update's maxUnavailable (an integer
// or a percentage of desired, rounded up, at least 1 when both maxSurge and
// the result would be 0, as Kubernetes does).
func maxUnavailable(ds *appsv1.DaemonSet, desired int) (int, error) {
	v := intstr.FromInt32(1)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, desired, true)
	if err != nil {
		return 0, fmt.Errorf("invalid maxUnavailable %s: %w", v.String(), err)
	}
	if n == 0 {
		n = 1
	}
	return n, nil
}

// planRollingUpdate picks the old pods to delete now (maxSurge 0): every
// old pod that is not available anyway, plus available old pods while the
// number of unavailable nodes stays at most maxUnavailable (unavailable old
// pods count too, so the budget is never exceeded). A node that
// should run the daemon but has no live pod, a node with a new pod not yet
// available, and a node whose pods the manage step still has to sort out
// all count as unavailable.
func planRollingUpdate(ds *appsv1.DaemonSet, rc *nodev1.RuntimeClass, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string, now time.Time) ([]*corev1.Pod, error) {
	desired := 0
	for _, node := range nodes {
		if shouldRun, _ := nodeShouldRunDaemonPod(node, ds, rc); shouldRun {
			desired++
		}
	}
	maxUnavail, err := maxUnavailable(ds, desired)
	if err != nil {
		return nil, err
	}
	unavailable := 0
	var replace, candidates []*corev1.Pod
	for _, node := range nodes {
		shouldRun, shouldContinue := nodeShouldRunDaemonPod(node, ds, rc)
		if !shouldContinue {
			continue // manage deletes whatever runs there
		}
		var newPod, oldPod *corev1.Pod
		ok := true
		for _, p := range byNode[node.Name] {
			if p.DeletionTimestamp != nil {
				continue
			}
			if isPodUpdated(ds, p, hash) {
				if newPod != nil {
					ok = false
				}
				newPod = p
			} else {
				if oldPod != nil {
					ok = false
				}
				oldPod = p
			}
		}
		switch {
		case !ok, newPod != nil && oldPod != nil:
			unavailable++
		case newPod == nil && oldPod == nil:
			if shouldRun {
				unavailable++
			}
		case newPod != nil:
			if !isPodAvailable(newPod, ds.Spec.MinReadySeconds, now) {
				unavailable++
			}
		case !isPodAvailable(oldPod, ds.Spec.MinReadySeconds, now):
			// Replacing it costs no availability, but it is unavailable:
			// unlike Kubernetes, count it, so the budget holds.
			unavailable++
			replace = append(replace, oldPod)
		default:
			candidates = append(candidates, oldPod)
		}
	}
	room := max(maxUnavail-unavailable, 0)
	room = min(room, len(candidates))
	return append(replace, candidates[:room]...), nil
}

// computeStatus is ds's status for the snapshot (updateDaemonSetStatus):
// per node that should run the daemon, its oldest pod decides ready,
// available and updated; pods on nodes that should not run it are
// misscheduled.
func computeStatus(ds *appsv1.DaemonSet, rc *nodev1.RuntimeClass, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string, now time.Time) appsv1.DaemonSetStatus {
	st := *ds.Status.DeepCopy()
	var desired, current, misscheduled, ready, available, updated int32
	for _, node := range nodes {
		shouldRun, _ := nodeShouldRunDaemonPod(node, ds, rc)
		pods := append([]*corev1.Pod(nil), byNode[node.Name]...)
		scheduled := len(pods) > 0
		if !shouldRun {
			if scheduled {
				misscheduled++
			}
			continue
		}
		desired++
		if !scheduled {
			continue
		}
		current++
		sortByCreation(pods)
		pod := pods[0]
		if isPodReady(pod) {
			ready++
			if isPodAvailable(pod, ds.Spec.MinReadySeconds, now) {
				available++
			}
		}
		if isPodUpdated(ds, pod, hash) {
			updated++
		}
	}
	st.ObservedGeneration = ds.Generation
	st.DesiredNumberScheduled = desired
	st.CurrentNumberScheduled = current
	st.NumberMisscheduled = misscheduled
	st.NumberReady = ready
	st.NumberAvailable = available
	st.UpdatedNumberScheduled = updated
	st.NumberUnavailable = desired - available
	return st
}
