package statefulset

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// pod states for the table: "r" Running and Ready, "n" Running and Ready
// for 5s only, "u" Running not Ready, "p" Pending, "f" Failed, "t" Ready
// and terminating; a suffix
// "@1" says the pod is at revision 1 (else at 2, the update revision).
func testPod(set *appsv1.StatefulSet, ordinal int, state string) *corev1.Pod {
	rev := "web-2"
	if s, ok := strings.CutSuffix(state, "@1"); ok {
		state, rev = s, "web-1"
	}
	p := newPod(set, &set.Spec.Template, ordinal, rev)
	now := metav1.NewTime(time.Unix(1000, 0))
	switch state {
	case "r", "t":
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		if state == "t" {
			p.DeletionTimestamp = &now
		}
	case "n":
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Unix(1995, 0))}}
	case "u":
		p.Status.Phase = corev1.PodRunning
	case "p":
		p.Status.Phase = corev1.PodPending
	case "f":
		p.Status.Phase = corev1.PodFailed
	}
	return p
}

func testSet(replicas int32, policy appsv1.PodManagementPolicyType, mutate func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	set := newSet("web", replicas, policy)
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32(0))}}
	if policy == "" {
		set.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if mutate != nil {
		mutate(set)
	}
	return set
}

func describe(acts []action) string {
	var out []string
	for _, a := range acts {
		verb := map[actionKind]string{create: "create", remove: "delete", relabel: "relabel", recreate: "recreate"}[a.kind]
		out = append(out, fmt.Sprintf("%s %s@%s", verb, a.pod.Name, strings.TrimPrefix(revisionOf(a.pod), "web-")))
	}
	return strings.Join(out, ", ")
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  *appsv1.StatefulSet
		pods map[int]string // ordinal: state
		want string
	}{
		{"ordered: first pod", testSet(3, "", nil), nil, "create web-0@2"},
		{"ordered: waits for web-0", testSet(3, "", nil), map[int]string{0: "u"}, ""},
		{"ordered: next once ready", testSet(3, "", nil), map[int]string{0: "r"}, "create web-1@2"},
		{"ordered: a gap is filled first", testSet(3, "", nil), map[int]string{0: "r", 2: "r"}, "create web-1@2"},
		{"ordered: terminating holds", testSet(3, "", nil), map[int]string{0: "t"}, ""},
		{"parallel: all at once", testSet(3, appsv1.ParallelPodManagement, nil), map[int]string{1: "u"}, "create web-0@2, create web-2@2"},
		{"failed pod recreated", testSet(2, "", nil), map[int]string{0: "r", 1: "f"}, "recreate web-1@2"},
		{"ordered: scale down from the top", testSet(1, "", nil), map[int]string{0: "r", 1: "r", 2: "r"}, "delete web-2@2"},
		{"ordered: no scale down while a replica is unready", testSet(1, "", nil), map[int]string{0: "u", 1: "r", 2: "r"}, ""},
		{"ordered: an unready condemned pod that is the first unhealthy may go", testSet(1, "", nil), map[int]string{0: "r", 1: "r", 2: "u"}, "delete web-2@2"},
		{"ordered: a healthy condemned pod goes though one below is unready", testSet(1, "", nil), map[int]string{0: "r", 1: "u", 2: "r"}, "delete web-2@2"},
		{"ordered: an unready condemned pod that is not the first unhealthy waits", testSet(1, "", nil), map[int]string{0: "r", 1: "u", 2: "u"}, ""},
		{"ordered: a terminating condemned pod holds", testSet(1, "", nil), map[int]string{0: "r", 1: "r", 2: "t"}, ""},
		{"ordered: minReadySeconds: a condemned pod not yet available that is the first unavailable may go",
			testSet(1, "", func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 30 }), map[int]string{0: "r", 1: "r", 2: "n"}, "delete web-2@2"},
		{"ordered: minReadySeconds: a condemned pod not yet available waits for the first unavailable below it",
			testSet(1, "", func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 30 }), map[int]string{0: "r", 1: "n", 2: "n"}, ""},
		{"ordered: minReadySeconds: a condemned pod not yet available waits for an unready one below it",
			testSet(1, "", func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 30 }), map[int]string{0: "r", 1: "u", 2: "n"}, ""},
		{"ordered: minReadySeconds: an available condemned pod goes though one below is not yet available",
			testSet(1, "", func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 30 }), map[int]string{0: "r", 1: "n", 2: "r"}, "delete web-2@2"},
		{"parallel: scale down at once", testSet(1, appsv1.ParallelPodManagement, nil), map[int]string{0: "r", 1: "u", 2: "r"}, "delete web-2@2, delete web-1@2"},
		{"ordinals start", testSet(2, "", func(s *appsv1.StatefulSet) { s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 3} }),
			map[int]string{0: "r"}, "create web-3@2"},
		{"ordinals start: out-of-range pods go once the range is up", testSet(1, "", func(s *appsv1.StatefulSet) { s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 3} }),
			map[int]string{0: "r", 3: "r"}, "delete web-0@2"},
		{"rolling update: highest first", testSet(3, "", nil), map[int]string{0: "r@1", 1: "r@1", 2: "r@1"}, "delete web-2@1"},
		{"rolling update: waits for the updated pod", testSet(3, appsv1.ParallelPodManagement, nil), map[int]string{0: "r@1", 1: "r@1", 2: "u"}, ""},
		{"rolling update: waits for the updated pod to be available", testSet(3, appsv1.ParallelPodManagement, func(s *appsv1.StatefulSet) { s.Spec.MinReadySeconds = 30 }),
			map[int]string{0: "r@1", 1: "r@1", 2: "n"}, ""},
		{"rolling update: an unavailable pod below the partition counts", testSet(3, appsv1.ParallelPodManagement, func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(2))
		}), map[int]string{0: "u@1", 1: "r@1", 2: "r@1"}, ""},
		{"rolling update: unset maxUnavailable is 1", testSet(3, appsv1.ParallelPodManagement, nil), map[int]string{0: "r@1", 1: "r@1", 2: "r@1"}, "delete web-2@1"},
		{"rolling update: no rollingUpdate, one at a time", testSet(3, appsv1.ParallelPodManagement, func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate = nil }),
			map[int]string{0: "r@1", 1: "r@1", 2: "r@1"}, "delete web-2@1"},
		{"rolling update: next below", testSet(3, "", nil), map[int]string{0: "r@1", 1: "r@1", 2: "r"}, "delete web-1@1"},
		{"rolling update: stops at the partition", testSet(3, "", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(1)) }),
			map[int]string{0: "r@1", 1: "r", 2: "r"}, ""},
		{"below the partition pods are made at the current revision",
			testSet(3, "", func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(2)) }),
			map[int]string{1: "r@1", 2: "r"}, "create web-0@1"},
		{"OnDelete: nothing replaced", testSet(2, "", func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
		}), map[int]string{0: "r@1", 1: "r@1"}, ""},
		{"OnDelete: made at the update revision", testSet(2, "", func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
		}), map[int]string{1: "r@1"}, "create web-0@2"},
		{"maxUnavailable 2", testSet(4, "", func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(2))
		}),
			map[int]string{0: "r@1", 1: "r@1", 2: "r@1", 3: "r@1"}, "delete web-3@1, delete web-2@1"},
		{"maxUnavailable counts the unavailable", testSet(4, appsv1.ParallelPodManagement, func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("50%"))
		}), map[int]string{0: "r@1", 1: "r@1", 2: "r@1", 3: "u"}, "delete web-2@1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshot{set: tc.set, currentTemplate: &tc.set.Spec.Template, now: time.Unix(2000, 0),
				current: &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}},
				update:  &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-2"}}}
			for o, state := range tc.pods {
				s.pods = append(s.pods, testPod(tc.set, o, state))
			}
			if got := describe(plan(s)); got != tc.want {
				t.Errorf("plan = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestComputeStatus(t *testing.T) {
	set := testSet(3, "", func(s *appsv1.StatefulSet) { s.Generation = 4; s.Spec.MinReadySeconds = 10 })
	s := snapshot{set: set, now: time.Unix(1005, 0),
		current: &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}},
		update:  &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "web-2"}}}
	s.pods = []*corev1.Pod{testPod(set, 0, "r@1"), testPod(set, 1, "r"), testPod(set, 2, "t")}
	st := computeStatus(s, 0)
	got := fmt.Sprintf("gen %d replicas %d ready %d available %d current %d updated %d %s/%s",
		st.ObservedGeneration, st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas, st.CurrentRevision, st.UpdateRevision)
	if want := "gen 4 replicas 3 ready 3 available 0 current 1 updated 1 web-1/web-2"; got != want {
		t.Errorf("status %s, want %s", got, want)
	}
	// web-0 missing, the others updated and ready: not complete, it takes
	// spec.replicas pods.
	s.now = time.Unix(1011, 0)
	s.pods = []*corev1.Pod{testPod(set, 1, "r"), testPod(set, 2, "r")}
	if st = computeStatus(s, 0); st.CurrentRevision != "web-1" || st.CurrentReplicas != 0 {
		t.Errorf("rollout completed with a pod missing: %+v", st)
	}
	// All updated and ready: the rollout is complete.
	s.now = time.Unix(1011, 0)
	s.pods = []*corev1.Pod{testPod(set, 0, "r"), testPod(set, 1, "r"), testPod(set, 2, "r")}
	st = computeStatus(s, 2)
	if st.CurrentRevision != "web-2" || st.CurrentReplicas != 3 || st.AvailableReplicas != 3 || *st.CollisionCount != 2 {
		t.Errorf("complete rollout: %+v", st)
	}
}
