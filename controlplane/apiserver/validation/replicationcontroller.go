package validation

import (
	corev1 "k8s.io/api/core/v1"
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

func validateReplicationControllerUpdate(rc, old *corev1.ReplicationController) field.ErrorList {
	errs := validateObjectMetaUpdate(&rc.ObjectMeta, &old.ObjectMeta)
	return append(errs, validateReplicationControllerSpec(&rc.Spec, field.NewPath("spec"))...)
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
