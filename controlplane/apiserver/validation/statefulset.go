package validation

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file mirrors the StatefulSet parts of
// k8s.io/kubernetes/pkg/apis/apps/validation (ValidateStatefulSet,
// ValidateStatefulSetUpdate, ValidateStatefulSetStatus) and
// SetDefaults_StatefulSet of k8s.io/kubernetes/pkg/apis/apps/v1.
//
// Two differences from Kubernetes: the pod template is validated as a
// pod's (kube skips that because claim templates add volumes the template
// mounts; wasmfleet serves no claims, so a template that no pod could be
// made from is refused up front), and spec.volumeClaimTemplates is
// forbidden, as wasmfleet serves no PersistentVolumeClaims.

// defaultStatefulSet is SetDefaults_StatefulSet, with the
// MaxUnavailableStatefulSet feature on as in the kube release we track,
// plus the pod template's defaults.
func defaultStatefulSet(ss *appsv1.StatefulSet) {
	spec := &ss.Spec
	if spec.PodManagementPolicy == "" {
		spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	s := &spec.UpdateStrategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	if s.Type == appsv1.RollingUpdateStatefulSetStrategyType && s.RollingUpdate != nil {
		if s.RollingUpdate.Partition == nil {
			s.RollingUpdate.Partition = ptrTo[int32](0)
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = ptrTo(intstr.FromInt32(1))
		}
	}
	if spec.PersistentVolumeClaimRetentionPolicy == nil {
		spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p.WhenDeleted == "" {
		p.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p.WhenScaled == "" {
		p.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if spec.Replicas == nil {
		spec.Replicas = ptrTo[int32](1)
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = ptrTo[int32](10)
	}
	defaultPodTemplateSpec(&spec.Template)
}

// validateStatefulSet is ValidateStatefulSet: the name is a DNS label (it
// becomes the pods' hostnames) and the spec is valid.
func validateStatefulSet(ss *appsv1.StatefulSet) field.ErrorList {
	errs := validateObjectMeta(&ss.ObjectMeta, true, nameIsDNSLabel)
	return append(errs, validateStatefulSetSpec(&ss.Spec, field.NewPath("spec"))...)
}

// validateStatefulSetUpdate is ValidateStatefulSetUpdate and, for writes
// of /status, ValidateStatefulSetStatusUpdate: the name is not checked
// again, only some spec fields may change, and the status must be
// consistent, its collisionCount never lowered.
func validateStatefulSetUpdate(ss, old *appsv1.StatefulSet) field.ErrorList {
	errs := validateObjectMetaUpdate(&ss.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateStatefulSetSpec(&ss.Spec, field.NewPath("spec"))...)
	cp := ss.Spec.DeepCopy()
	cp.Replicas = old.Spec.Replicas
	cp.Template = old.Spec.Template
	cp.UpdateStrategy = old.Spec.UpdateStrategy
	cp.MinReadySeconds = old.Spec.MinReadySeconds
	cp.Ordinals = old.Spec.Ordinals
	cp.RevisionHistoryLimit = old.Spec.RevisionHistoryLimit
	cp.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
	if !apiequality.Semantic.DeepEqual(*cp, old.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
	}
	statusPath := field.NewPath("status")
	errs = append(errs, validateStatefulSetStatus(&ss.Status, statusPath)...)
	if n, o := ss.Status.CollisionCount, old.Status.CollisionCount; o != nil && (n == nil || *n < *o) {
		errs = append(errs, field.Invalid(statusPath.Child("collisionCount"), n, "cannot be decremented"))
	}
	return errs
}

func validateStatefulSetSpec(spec *appsv1.StatefulSetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch spec.PodManagementPolicy {
	case "":
		errs = append(errs, field.Required(fldPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(fldPath.Child("podManagementPolicy"), spec.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}
	errs = append(errs, validateStatefulSetUpdateStrategy(&spec.UpdateStrategy, fldPath.Child("updateStrategy"))...)
	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		pPath := fldPath.Child("persistentVolumeClaimRetentionPolicy")
		errs = append(errs, validateClaimRetentionPolicyType(p.WhenDeleted, pPath.Child("whenDeleted"))...)
		errs = append(errs, validateClaimRetentionPolicyType(p.WhenScaled, pPath.Child("whenScaled"))...)
	}
	if spec.Replicas != nil {
		errs = append(errs, validateNonnegative(*spec.Replicas, fldPath.Child("replicas"))...)
	}
	if spec.Ordinals != nil {
		errs = append(errs, validateNonnegative(spec.Ordinals.Start, fldPath.Child("ordinals.start"))...)
	}
	errs = append(errs, validateNonnegative(spec.MinReadySeconds, fldPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		errs = append(errs, validateNonnegative(*spec.RevisionHistoryLimit, fldPath.Child("revisionHistoryLimit"))...)
	}
	if spec.ServiceName != "" {
		for _, msg := range utilvalidation.IsDNS1035Label(spec.ServiceName) {
			errs = append(errs, field.Invalid(fldPath.Child("serviceName"), spec.ServiceName, msg))
		}
	}
	if len(spec.VolumeClaimTemplates) > 0 {
		errs = append(errs, field.Forbidden(fldPath.Child("volumeClaimTemplates"), "PersistentVolumeClaims are not served by wasmfleet; use emptyDir, configMap or secret volumes in the pod template"))
	}
	return append(errs, validateWorkloadTemplate(spec.Selector, &spec.Template, "statefulset", "StatefulSet", fldPath)...)
}

func validateStatefulSetUpdateStrategy(s *appsv1.StatefulSetUpdateStrategy, fldPath *field.Path) field.ErrorList {
	switch s.Type {
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Invalid(fldPath.Child("rollingUpdate"), s.RollingUpdate,
				fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType))}
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		ru := s.RollingUpdate
		if ru == nil {
			return nil
		}
		p := fldPath.Child("rollingUpdate")
		var errs field.ErrorList
		if ru.Partition != nil {
			errs = append(errs, validateNonnegative(*ru.Partition, p.Child("partition"))...)
		}
		if mu := ru.MaxUnavailable; mu != nil {
			errs = append(errs, validatePositiveIntOrPercent(*mu, p.Child("maxUnavailable"))...)
			if intOrPercentValue(*mu) == 0 {
				errs = append(errs, field.Invalid(p.Child("maxUnavailable"), *mu, "cannot be 0"))
			}
			errs = append(errs, isNotMoreThan100Percent(*mu, p.Child("maxUnavailable"))...)
		}
		return errs
	default:
		return field.ErrorList{field.Invalid(fldPath, s,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType))}
	}
	return nil
}

func validateClaimRetentionPolicyType(t appsv1.PersistentVolumeClaimRetentionPolicyType, fldPath *field.Path) field.ErrorList {
	switch t {
	case appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, t, []appsv1.PersistentVolumeClaimRetentionPolicyType{
		appsv1.DeletePersistentVolumeClaimRetentionPolicyType, appsv1.RetainPersistentVolumeClaimRetentionPolicyType})}
}

// validateStatefulSetStatus is ValidateStatefulSetStatus.
func validateStatefulSetStatus(st *appsv1.StatefulSetStatus, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	counts := []struct {
		name string
		v    int32
	}{
		{"replicas", st.Replicas}, {"readyReplicas", st.ReadyReplicas}, {"currentReplicas", st.CurrentReplicas},
		{"updatedReplicas", st.UpdatedReplicas}, {"availableReplicas", st.AvailableReplicas},
	}
	for _, c := range counts {
		errs = append(errs, validateNonnegative(c.v, fldPath.Child(c.name))...)
	}
	errs = append(errs, apimachineryvalidation.ValidateNonnegativeField(st.ObservedGeneration, fldPath.Child("observedGeneration"))...)
	if st.CollisionCount != nil {
		errs = append(errs, validateNonnegative(*st.CollisionCount, fldPath.Child("collisionCount"))...)
	}
	for _, c := range counts[1:] {
		if c.v > st.Replicas {
			errs = append(errs, field.Invalid(fldPath.Child(c.name), c.v, "cannot be greater than status.replicas"))
		}
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than status.readyReplicas"))
	}
	return errs
}
