package validation

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testStatefulSet() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: testMeta("web"),
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "web",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template:    testTemplate(map[string]string{"app": "web"}),
		},
	}
}

func TestDefaultStatefulSet(t *testing.T) {
	ss := testStatefulSet()
	Default(ss)
	check(t, "replicas", *ss.Spec.Replicas, int32(1))
	check(t, "podManagementPolicy", ss.Spec.PodManagementPolicy, appsv1.OrderedReadyPodManagement)
	check(t, "updateStrategy", ss.Spec.UpdateStrategy, appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptrTo[int32](0), MaxUnavailable: ptrTo(intstr.FromInt32(1))},
	})
	check(t, "revisionHistoryLimit", *ss.Spec.RevisionHistoryLimit, int32(10))
	check(t, "claim retention", *ss.Spec.PersistentVolumeClaimRetentionPolicy, appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	})
	check(t, "template restartPolicy", ss.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyAlways)
	check(t, "template imagePullPolicy", ss.Spec.Template.Spec.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent)

	again := ss.DeepCopy()
	Default(again)
	if !apiequality.Semantic.DeepEqual(ss, again) {
		t.Error("second Default changed the StatefulSet")
	}

	// As kube: an OnDelete set gets no rollingUpdate; a RollingUpdate one
	// that names one gets partition 0 and maxUnavailable 1 in it, one that
	// names none gets none (kube defaults rollingUpdate only with the
	// type); a given maxUnavailable is kept.
	od := testStatefulSet()
	od.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
	Default(od)
	check(t, "OnDelete rollingUpdate", od.Spec.UpdateStrategy.RollingUpdate, (*appsv1.RollingUpdateStatefulSetStrategy)(nil))
	ru := testStatefulSet()
	ru.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{}}
	Default(ru)
	check(t, "partition", *ru.Spec.UpdateStrategy.RollingUpdate.Partition, int32(0))
	check(t, "maxUnavailable", *ru.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, intstr.FromInt32(1))
	bare := testStatefulSet()
	bare.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}
	Default(bare)
	check(t, "RollingUpdate without rollingUpdate", bare.Spec.UpdateStrategy.RollingUpdate, (*appsv1.RollingUpdateStatefulSetStrategy)(nil))
	given := testStatefulSet()
	given.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptrTo(intstr.FromString("50%"))}}
	Default(given)
	check(t, "given maxUnavailable", *given.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, intstr.FromString("50%"))
}

func TestValidateStatefulSet(t *testing.T) {
	runCreateCases(t, testStatefulSet, []createCase[*appsv1.StatefulSet]{
		{name: "valid"},
		{name: "no service name", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.ServiceName = "" }},
		{name: "service name", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.ServiceName = "Web_1" }, want: []want{invalid("spec.serviceName")}},
		{name: "name is a DNS label", mutate: func(ss *appsv1.StatefulSet) { ss.Name = "web.v1" }, want: []want{invalid("metadata.name")}},
		{name: "selector required", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Selector = nil }, want: []want{required("spec.selector")}},
		{name: "empty selector", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Selector = &metav1.LabelSelector{} }, want: []want{invalid("spec.selector")}},
		{name: "selector must match template", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Template.Labels = map[string]string{"app": "db"} },
			want: []want{invalid("spec.template.metadata.labels")}},
		{name: "template must restart always", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			want: []want{notSupported("spec.template.spec.restartPolicy")}},
		{name: "no active deadline", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Template.Spec.ActiveDeadlineSeconds = ptrTo[int64](5) },
			want: []want{forbidden("spec.template.spec.activeDeadlineSeconds")}},
		{name: "replicas", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Replicas = ptrTo[int32](-1) }, want: []want{invalid("spec.replicas")}},
		{name: "ordinals", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: -1} }, want: []want{invalid("spec.ordinals.start")}},
		{name: "minReadySeconds", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.MinReadySeconds = -1 }, want: []want{invalid("spec.minReadySeconds")}},
		{name: "revisionHistoryLimit", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.RevisionHistoryLimit = ptrTo[int32](-1) }, want: []want{invalid("spec.revisionHistoryLimit")}},
		{name: "pod management policy", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.PodManagementPolicy = "Random" }, want: []want{invalid("spec.podManagementPolicy")}},
		{name: "strategy type", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.UpdateStrategy.Type = "Canary" }, want: []want{invalid("spec.updateStrategy")}},
		{name: "OnDelete with rollingUpdate", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType },
			want: []want{invalid("spec.updateStrategy.rollingUpdate")}},
		{name: "partition", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.UpdateStrategy.RollingUpdate.Partition = ptrTo[int32](-2) },
			want: []want{invalid("spec.updateStrategy.rollingUpdate.partition")}},
		{name: "maxUnavailable 0", mutate: func(ss *appsv1.StatefulSet) {
			ss.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(0))
		}, want: []want{invalid("spec.updateStrategy.rollingUpdate.maxUnavailable")}},
		{name: "maxUnavailable over 100%", mutate: func(ss *appsv1.StatefulSet) {
			ss.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromString("150%"))
		}, want: []want{invalid("spec.updateStrategy.rollingUpdate.maxUnavailable")}},
		{name: "claim retention", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = "Keep" },
			want: []want{notSupported("spec.persistentVolumeClaimRetentionPolicy.whenScaled")}},
		{name: "volume claim templates", mutate: func(ss *appsv1.StatefulSet) {
			ss.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}
		}, want: []want{forbidden("spec.volumeClaimTemplates")}},
	})
}

func TestUpdateStatefulSet(t *testing.T) {
	runUpdateCases(t, stored(testStatefulSet), []updateCase[*appsv1.StatefulSet]{
		{name: "allowed fields", mutate: func(ss *appsv1.StatefulSet) {
			ss.Spec.Replicas = ptrTo[int32](3)
			ss.Spec.Template.Spec.Containers[0].Image = "web:2"
			ss.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
			ss.Spec.MinReadySeconds = 5
			ss.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 3}
			ss.Spec.RevisionHistoryLimit = ptrTo[int32](2)
			ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
		}},
		{name: "service name", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.ServiceName = "db" }, want: []want{forbidden("spec")}},
		{name: "pod management policy", mutate: func(ss *appsv1.StatefulSet) { ss.Spec.PodManagementPolicy = appsv1.ParallelPodManagement },
			want: []want{forbidden("spec")}},
		{name: "selector", mutate: func(ss *appsv1.StatefulSet) {
			ss.Spec.Selector.MatchLabels["x"] = "y"
			ss.Spec.Template.Labels["x"] = "y"
		}, want: []want{forbidden("spec")}},
		{name: "status", mutate: func(ss *appsv1.StatefulSet) {
			ss.Status = appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 1, CurrentReplicas: 2, UpdatedReplicas: 2, ObservedGeneration: 1, CollisionCount: ptrTo[int32](1)}
		}},
		{name: "status counts", mutate: func(ss *appsv1.StatefulSet) {
			ss.Status = appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 2, AvailableReplicas: 3, CurrentReplicas: -1}
		}, want: []want{invalid("status.readyReplicas"), invalid("status.availableReplicas"), invalid("status.currentReplicas")}},
	})
	// collisionCount never goes back.
	old := testStatefulSet()
	Default(old)
	stamp(old)
	old.Status.CollisionCount = ptrTo[int32](2)
	ss := old.DeepCopy()
	ss.Status.CollisionCount = ptrTo[int32](1)
	expectErrors(t, ValidateUpdate(ss, old), invalid("status.collisionCount"))
}
