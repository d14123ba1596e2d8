package validation

import (
	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file mirrors the ReplicationController part of
// k8s.io/kubernetes/pkg/apis/core/validation. Unlike a ReplicaSet's, a
// ReplicationController's selector may change.

func validateReplicationController(rc *corev1.ReplicationController) field.ErrorList {
	errs := validateObjectMeta(&rc.ObjectMeta, true, nameIsDNSSubdomain)
	return append(errs, validateReplicationControllerSpec(&rc.Spec, field.NewPath("spec"))...)
}

// validateReplicationControllerUpdate is
// ValidateReplicationControllerUpdate and, for writes of /status,
// ValidateReplicationControllerStatusUpdate (a status kept from old, as
// other writes keep it, passes).
func validateReplicationControllerUpdate(rc, old *corev1.ReplicationController) field.ErrorList {
	errs := validateObjectMetaUpdate(&rc.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateReplicationControllerSpec(&rc.Spec, field.NewPath("spec"))...)
	return append(errs, validateReplicationControllerStatus(&rc.Status, field.NewPath("status"))...)
}

// validateReplicationControllerStatus is Kubernetes'
// ValidateReplicationControllerStatus: counts not negative, none above
// replicas, available not above ready.
func validateReplicationControllerStatus(st *corev1.ReplicationControllerStatus, fldPath *field.Path) field.ErrorList {
	errs := validateNonnegative(st.Replicas, fldPath.Child("replicas"))
	errs = append(errs, validateNonnegative(st.FullyLabeledReplicas, fldPath.Child("fullyLabeledReplicas"))...)
	errs = append(errs, validateNonnegative(st.ReadyReplicas, fldPath.Child("readyReplicas"))...)
	errs = append(errs, validateNonnegative(st.AvailableReplicas, fldPath.Child("availableReplicas"))...)
	errs = append(errs, apimachineryvalidation.ValidateNonnegativeField(st.ObservedGeneration, fldPath.Child("observedGeneration"))...)
	const msg = "cannot be greater than status.replicas"
	if st.FullyLabeledReplicas > st.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("fullyLabeledReplicas"), st.FullyLabeledReplicas, msg))
	}
	if st.ReadyReplicas > st.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("readyReplicas"), st.ReadyReplicas, msg))
	}
	if st.AvailableReplicas > st.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, msg))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return errs
}

// validateReplicationControllerSpec is Kubernetes'
// ValidateReplicationControllerSpec: minReadySeconds and replicas not
// negative, a selector that is not empty, a template it matches
// (validatePodTemplateFor).
func validateReplicationControllerSpec(spec *corev1.ReplicationControllerSpec, fldPath *field.Path) field.ErrorList {
	errs := validateNonnegative(spec.MinReadySeconds, fldPath.Child("minReadySeconds"))
	sel := labels.SelectorFromSet(spec.Selector)
	if sel.Empty() {
		errs = append(errs, field.Required(fldPath.Child("selector"), ""))
	}
	if spec.Replicas != nil {
		errs = append(errs, validateNonnegative(*spec.Replicas, fldPath.Child("replicas"))...)
	}
	tPath := fldPath.Child("template")
	if spec.Template == nil {
		return append(errs, field.Required(tPath, ""))
	}
	return append(errs, validatePodTemplateFor(sel, spec.Template, "ReplicationController", tPath)...)
}
