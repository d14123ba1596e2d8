package statefulset

import (
	"regexp"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/controlplane/controllers/replicaset"
)

// This file holds the StatefulSet controller's decisions: pure functions
// of a snapshot (the set, its pods, its revisions, the time), mirroring
// k8s.io/kubernetes/pkg/controller/statefulset's stateful_set_utils.go and
// the pass of stateful_set_control.go's updateStatefulSet.

var controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// statefulPodRegex matches a stateful pod's name: <set>-<ordinal>.
var statefulPodRegex = regexp.MustCompile("(.*)-([0-9]+)$")

// parentAndOrdinal returns the set name and ordinal a pod's name says, or
// ("", -1).
func parentAndOrdinal(pod *corev1.Pod) (string, int) {
	m := statefulPodRegex.FindStringSubmatch(pod.Name)
	if len(m) != 3 {
		return "", -1
	}
	n, err := strconv.ParseInt(m[2], 10, 32)
	if err != nil {
		return "", -1
	}
	return m[1], int(n)
}

// isMemberOf: the pod's name makes it one of set's.
func isMemberOf(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	parent, _ := parentAndOrdinal(pod)
	return parent == set.Name
}

func ordinalOf(pod *corev1.Pod) int { _, o := parentAndOrdinal(pod); return o }

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func replicaCount(set *appsv1.StatefulSet) int {
	if set.Spec.Replicas == nil {
		return 1
	}
	return int(*set.Spec.Replicas)
}

func podName(set *appsv1.StatefulSet, ordinal int) string {
	return set.Name + "-" + strconv.Itoa(ordinal)
}

// newPod is newStatefulSetPod: a pod of set from template with the
// ordinal's identity (name, pod-name and pod-index labels, hostname,
// subdomain) and the revision's controller-revision-hash label.
func newPod(set *appsv1.StatefulSet, template *corev1.PodTemplateSpec, ordinal int, revision string) *corev1.Pod {
	pod := controller.PodFromTemplate(template, set, controllerKind)
	pod.Name = podName(set, ordinal)
	setIdentity(pod)
	pod.Spec.Hostname = pod.Name
	pod.Spec.Subdomain = set.Spec.ServiceName
	pod.Labels[appsv1.ControllerRevisionHashLabelKey] = revision
	return pod
}

// setIdentity sets the identity labels of pod (whose name is set).
func setIdentity(pod *corev1.Pod) {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[appsv1.StatefulSetPodNameLabel] = pod.Name
	pod.Labels[appsv1.PodIndexLabel] = strconv.Itoa(ordinalOf(pod))
}

// identityMatches: pod carries the identity labels of its ordinal.
func identityMatches(pod *corev1.Pod) bool {
	return pod.Labels[appsv1.StatefulSetPodNameLabel] == pod.Name &&
		pod.Labels[appsv1.PodIndexLabel] == strconv.Itoa(ordinalOf(pod))
}

func revisionOf(pod *corev1.Pod) string { return pod.Labels[appsv1.ControllerRevisionHashLabelKey] }

func isCreated(pod *corev1.Pod) bool     { return pod.Status.Phase != "" }
func isFailed(pod *corev1.Pod) bool      { return pod.Status.Phase == corev1.PodFailed }
func isSucceeded(pod *corev1.Pod) bool   { return pod.Status.Phase == corev1.PodSucceeded }
func isTerminating(pod *corev1.Pod) bool { return pod.DeletionTimestamp != nil }

func isRunningAndReady(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodRunning && replicaset.IsPodReady(pod)
}

// isRunningAndAvailable: ready for minReadySeconds.
func isRunningAndAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return isRunningAndReady(pod) && replicaset.IsPodAvailable(pod, minReadySeconds, now)
}

func isHealthy(pod *corev1.Pod) bool { return isRunningAndReady(pod) && !isTerminating(pod) }

// isUnavailable: not healthy, or not yet ready for minReadySeconds.
func isUnavailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return !isHealthy(pod) || !isRunningAndAvailable(pod, minReadySeconds, now)
}

// action is one write the controller makes to a pod.
type action struct {
	kind  actionKind
	pod   *corev1.Pod // to create (built), delete or relabel (as cached)
	stage stage
}

// stage is the part of updateStatefulSet's pass an action belongs to: a
// failed write stops the later stages (kube's runForAll and the rolling
// update return on the first error).
type stage int

const (
	replicaStage   stage = iota // creates, recreates and relabels of replicas
	condemnedStage              // deletes of pods beyond the replicas
	updateStage                 // the rolling update's deletes
)

type actionKind int

const (
	create actionKind = iota
	remove
	relabel
	// recreate deletes a failed or succeeded pod, to be created again
	// once it is gone.
	recreate
)

// snapshot is what one pass decides on.
type snapshot struct {
	set             *appsv1.StatefulSet
	pods            []*corev1.Pod // the set's claimed pods
	current, update *appsv1.ControllerRevision
	// currentTemplate is the template of current (the set's own for update).
	currentTemplate *corev1.PodTemplateSpec
	now             time.Time
}

// plan is updateStatefulSet's pass: the writes to make now, in order. With
// OrderedReady it stops at the first thing to wait for (a pod being made
// ready, a pod terminating) and makes at most one create or delete; with
// Parallel it creates and deletes every pod it can at once. The rolling
// update deletes pods not at the update revision from the highest ordinal
// down to the partition, as many as keep the unavailable replicas within
// maxUnavailable (rollingUpdate).
func plan(s snapshot) []action {
	set := s.set
	start, n := startOrdinal(set), replicaCount(set)
	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	replicas := make([]*corev1.Pod, n)
	var condemned []*corev1.Pod
	for _, p := range s.pods {
		if o := ordinalOf(p); o >= start && o < start+n {
			replicas[o-start] = p
		} else if o >= 0 {
			condemned = append(condemned, p)
		}
	}
	// Condemned highest ordinal first.
	slices.SortFunc(condemned, func(a, b *corev1.Pod) int { return ordinalOf(b) - ordinalOf(a) })

	// The first unavailable pod: a replica (a missing one, not yet made,
	// counts), else the lowest condemned one. With OrderedReady only it
	// may be removed while unavailable.
	var firstUnavailable *corev1.Pod
	found := false
	for _, p := range replicas {
		if p == nil || isUnavailable(p, set.Spec.MinReadySeconds, s.now) {
			firstUnavailable, found = p, true
			break
		}
	}
	for i := len(condemned) - 1; i >= 0 && !found; i-- {
		if isUnavailable(condemned[i], set.Spec.MinReadySeconds, s.now) {
			firstUnavailable, found = condemned[i], true
		}
	}

	var acts []action
	for i, p := range replicas {
		ordinal := start + i
		switch {
		case p == nil:
			acts = append(acts, action{kind: create, pod: s.versionedPod(ordinal), stage: replicaStage})
			if monotonic {
				return acts
			}
			continue
		case isFailed(p) || isSucceeded(p):
			if !isTerminating(p) {
				acts = append(acts, action{kind: recreate, pod: p, stage: replicaStage})
			}
			if monotonic {
				return acts
			}
			continue
		}
		if isTerminating(p) && monotonic {
			return acts
		}
		if !isRunningAndAvailable(p, set.Spec.MinReadySeconds, s.now) && monotonic {
			return acts
		}
		if !identityMatches(p) && !isTerminating(p) {
			acts = append(acts, action{kind: relabel, pod: p, stage: replicaStage})
		}
	}
	for _, p := range condemned {
		if isTerminating(p) {
			if monotonic {
				return acts
			}
			continue
		}
		if !isRunningAndAvailable(p, set.Spec.MinReadySeconds, s.now) && monotonic && p != firstUnavailable {
			return acts
		}
		acts = append(acts, action{kind: remove, pod: p, stage: condemnedStage})
		if monotonic {
			return acts
		}
	}
	if set.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		return acts
	}
	return append(acts, s.rollingUpdate(replicas)...)
}

// rollingUpdate is kube's updateStatefulSetAfterInvariantEstablished (the
// MaxUnavailableStatefulSet feature, on by default): while fewer than
// maxUnavailable (unset read as 1) of the replicas, below the partition
// too, are unavailable (missing, unhealthy or not yet available for
// minReadySeconds), the highest-ordinal pods not at the update revision,
// down to the partition, are deleted, up to the difference.
func (s snapshot) rollingUpdate(replicas []*corev1.Pod) []action {
	partition, maxUnavailable := 0, 1
	if ru := s.set.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.Partition != nil {
			partition = int(*ru.Partition)
		}
		var err error
		maxUnavailable, err = intstr.GetScaledValueFromIntOrPercent(intstr.ValueOrDefault(ru.MaxUnavailable, intstr.FromInt32(1)), len(replicas), false)
		if err != nil {
			return nil // the apiserver validates it
		}
		maxUnavailable = max(maxUnavailable, 1)
	}
	unavailable := 0
	for _, p := range replicas {
		if p == nil || isUnavailable(p, s.set.Spec.MinReadySeconds, s.now) {
			unavailable++
		}
	}
	var acts []action
	for target := len(replicas) - 1; target >= partition && unavailable+len(acts) < maxUnavailable; target-- {
		if p := replicas[target]; p != nil && revisionOf(p) != s.update.Name && !isTerminating(p) {
			acts = append(acts, action{kind: remove, pod: p, stage: updateStage})
		}
	}
	return acts
}

// versionedPod is newVersionedStatefulSetPod: below the partition (or,
// without one, below the count of current replicas) a RollingUpdate set
// recreates pods at the current revision, elsewhere at the update one.
func (s snapshot) versionedPod(ordinal int) *corev1.Pod {
	set := s.set
	start := startOrdinal(set)
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		ru := set.Spec.UpdateStrategy.RollingUpdate
		if (ru == nil && ordinal < start+int(set.Status.CurrentReplicas)) ||
			(ru != nil && ru.Partition != nil && ordinal < start+int(*ru.Partition)) {
			return newPod(set, s.currentTemplate, ordinal, s.current.Name)
		}
	}
	return newPod(set, &set.Spec.Template, ordinal, s.update.Name)
}

// computeStatus is computeReplicaStatus and completeRollingUpdate: the
// counts over the set's pods and the revisions; a RollingUpdate with
// spec.replicas pods, all updated and ready, makes the update revision
// current (fewer pods, say one deleted below the partition, do not).
func computeStatus(s snapshot, collisionCount int32) appsv1.StatefulSetStatus {
	set := s.set
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    s.current.Name,
		UpdateRevision:     s.update.Name,
		CollisionCount:     &collisionCount,
		Conditions:         set.Status.Conditions,
	}
	for _, p := range s.pods {
		if isCreated(p) {
			st.Replicas++
		}
		if isRunningAndReady(p) {
			st.ReadyReplicas++
			if isRunningAndAvailable(p, set.Spec.MinReadySeconds, s.now) {
				st.AvailableReplicas++
			}
		}
		if isCreated(p) && !isTerminating(p) {
			if revisionOf(p) == s.current.Name {
				st.CurrentReplicas++
			}
			if revisionOf(p) == s.update.Name {
				st.UpdatedReplicas++
			}
		}
	}
	n := int32(replicaCount(set))
	if set.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		st.UpdatedReplicas == n && st.ReadyReplicas == n && st.Replicas == n {
		st.CurrentReplicas = st.UpdatedReplicas
		st.CurrentRevision = st.UpdateRevision
	}
	return st
}
