package validation

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file mirrors the validation of coordination.k8s.io Leases,
// node.k8s.io RuntimeClasses, scheduling.k8s.io PriorityClasses,
// rbac.authorization.k8s.io objects, autoscaling Scale, policy Eviction
// and PodDisruptionBudgets.

// ---- Lease

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	errs := validateObjectMeta(&l.ObjectMeta, true, nameIsDNSSubdomain)
	spec := &l.Spec
	specPath := field.NewPath("spec")
	if d := spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(specPath.Child("leaseDurationSeconds"), d, "must be greater than 0"))
	}
	if t := spec.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(specPath.Child("leaseTransitions"), t, "must be greater than or equal to 0"))
	}
	if s := spec.Strategy; s != nil {
		p := specPath.Child("strategy")
		if strings.Contains(string(*s), "/") {
			errs = append(errs, validateQualifiedName(string(*s), p)...)
		} else if *s != coordinationv1.OldestEmulationVersion {
			errs = append(errs, field.NotSupported(p, *s, []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}))
		}
	}
	if h := spec.PreferredHolder; h != nil && *h != "" && (spec.Strategy == nil || *spec.Strategy == "") {
		errs = append(errs, field.Forbidden(specPath.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

func validateLeaseUpdate(l, old *coordinationv1.Lease) field.ErrorList {
	return append(validateObjectMetaUpdate(&l.ObjectMeta, &old.ObjectMeta), validateLease(l)...)
}

// ---- RuntimeClass

func validateRuntimeClass(rc *nodev1.RuntimeClass) field.ErrorList {
	errs := validateObjectMeta(&rc.ObjectMeta, false, nameIsDNSSubdomain)
	errs = append(errs, nameErrors(nameIsDNSLabel(rc.Handler, false), field.NewPath("handler"), rc.Handler)...)
	if rc.Overhead != nil {
		errs = append(errs, validateResourceRequirements(&corev1.ResourceRequirements{Limits: rc.Overhead.PodFixed}, nil, field.NewPath("overhead", "podFixed"))...)
	}
	if s := rc.Scheduling; s != nil {
		p := field.NewPath("scheduling")
		errs = append(errs, validateLabels(s.NodeSelector, p.Child("nodeSelector"))...)
		tp := p.Child("tolerations")
		errs = append(errs, validateTolerations(s.Tolerations, tp)...)
		seen := map[corev1.Toleration]bool{}
		for i, t := range s.Tolerations {
			key := corev1.Toleration{Key: t.Key, Operator: t.Operator, Value: t.Value, Effect: t.Effect}
			if seen[key] {
				errs = append(errs, field.Duplicate(tp.Index(i), t))
			}
			seen[key] = true
		}
	}
	return errs
}

func validateRuntimeClassUpdate(rc, old *nodev1.RuntimeClass) field.ErrorList {
	errs := validateObjectMetaUpdate(&rc.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateRuntimeClass(rc)...)
	return append(errs, validateImmutable(rc.Handler, old.Handler, field.NewPath("handler"))...)
}

// ---- PriorityClass

// Kubernetes' priorities: users may define classes up to
// HighestUserPriority; the system classes are above it.
const (
	HighestUserPriority     = 1000000000
	SystemClusterCritical   = "system-cluster-critical"
	SystemNodeCritical      = "system-node-critical"
	systemPriorityPrefix    = "system-"
	systemCriticalPriority  = 2 * HighestUserPriority
	systemNodeCriticalExtra = 1000
)

// SystemPriorityClasses are the classes every cluster has, as in
// Kubernetes.
func SystemPriorityClasses() []*schedulingv1.PriorityClass {
	return []*schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: SystemNodeCritical}, Value: systemCriticalPriority + systemNodeCriticalExtra,
			Description: "Used for system critical pods that must not be moved from their current node."},
		{ObjectMeta: metav1.ObjectMeta{Name: SystemClusterCritical}, Value: systemCriticalPriority,
			Description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."},
	}
}

// IsSystemPriorityClass reports whether name is one of
// SystemPriorityClasses.
func IsSystemPriorityClass(name string) bool {
	return name == SystemNodeCritical || name == SystemClusterCritical
}

func validatePriorityClass(pc *schedulingv1.PriorityClass) field.ErrorList {
	errs := validateObjectMeta(&pc.ObjectMeta, false, nameIsDNSSubdomain)
	if strings.HasPrefix(pc.Name, systemPriorityPrefix) {
		if msg := systemPriorityClassProblem(pc); msg != "" {
			errs = append(errs, field.Forbidden(field.NewPath("metadata", "name"),
				"priority class names with '"+systemPriorityPrefix+"' prefix are reserved for system use only. error: "+msg))
		}
	} else if pc.Value > HighestUserPriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"), fmt.Sprintf("maximum allowed value of a user defined priority is %v", HighestUserPriority)))
	}
	if pc.PreemptionPolicy == nil {
		errs = append(errs, field.Required(field.NewPath("preemptionPolicy"), ""))
	} else {
		errs = append(errs, validateEnum(*pc.PreemptionPolicy, field.NewPath("preemptionPolicy"), corev1.PreemptLowerPriority, corev1.PreemptNever)...)
	}
	return errs
}

// systemPriorityClassProblem says how pc differs from the system class of
// its name ("" when it does not).
func systemPriorityClassProblem(pc *schedulingv1.PriorityClass) string {
	for _, sys := range SystemPriorityClasses() {
		if sys.Name != pc.Name {
			continue
		}
		if sys.Value != pc.Value {
			return fmt.Sprintf("value of %v PriorityClass must be %v", sys.Name, sys.Value)
		}
		if sys.GlobalDefault != pc.GlobalDefault {
			return fmt.Sprintf("globalDefault of %v PriorityClass must be %v", sys.Name, sys.GlobalDefault)
		}
		return ""
	}
	return fmt.Sprintf("%v is not a known system priority class", pc.Name)
}

func validatePriorityClassUpdate(pc, old *schedulingv1.PriorityClass) field.ErrorList {
	errs := validateObjectMetaUpdate(&pc.ObjectMeta, &old.ObjectMeta)
	if pc.Value != old.Value {
		errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
	}
	// As Kubernetes: nothing else is checked on an update.
	return append(errs, validateImmutable(pc.PreemptionPolicy, old.PreemptionPolicy, field.NewPath("preemptionPolicy"))...)
}

// ---- RBAC

// validateRBACName: RBAC names only need to be usable as a path segment.
func validateRBACName(name string, prefix bool) []string {
	return path.ValidatePathSegmentName(name, prefix)
}

func validateRole(r *rbacv1.Role) field.ErrorList {
	errs := validateObjectMeta(&r.ObjectMeta, true, validateRBACName)
	for i, rule := range r.Rules {
		errs = append(errs, validatePolicyRule(rule, true, field.NewPath("rules").Index(i))...)
	}
	return errs
}

func validateRoleUpdate(r, old *rbacv1.Role) field.ErrorList {
	return append(validateRole(r), validateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta)...)
}

func validateClusterRole(r *rbacv1.ClusterRole) field.ErrorList {
	errs := validateObjectMeta(&r.ObjectMeta, false, validateRBACName)
	for i, rule := range r.Rules {
		errs = append(errs, validatePolicyRule(rule, false, field.NewPath("rules").Index(i))...)
	}
	if r.AggregationRule != nil {
		p := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(r.AggregationRule.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(p, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range r.AggregationRule.ClusterRoleSelectors {
			sel := &r.AggregationRule.ClusterRoleSelectors[i]
			errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p.Index(i))...)
			if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
				errs = append(errs, field.Invalid(p.Index(i), sel, "invalid label selector."))
			}
		}
	}
	return errs
}

func validateClusterRoleUpdate(r, old *rbacv1.ClusterRole) field.ErrorList {
	return append(validateClusterRole(r), validateObjectMetaUpdate(&r.ObjectMeta, &old.ObjectMeta)...)
}

func validatePolicyRule(rule rbacv1.PolicyRule, namespaced bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(rule.Verbs) == 0 {
		errs = append(errs, field.Required(fldPath.Child("verbs"), "verbs must contain at least one value"))
	}
	if len(rule.NonResourceURLs) > 0 {
		if namespaced {
			errs = append(errs, field.Invalid(fldPath.Child("nonResourceURLs"), rule.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
		}
		if len(rule.APIGroups) > 0 || len(rule.Resources) > 0 || len(rule.ResourceNames) > 0 {
			errs = append(errs, field.Invalid(fldPath.Child("nonResourceURLs"), rule.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
		}
		return errs
	}
	if len(rule.APIGroups) == 0 {
		errs = append(errs, field.Required(fldPath.Child("apiGroups"), "resource rules must supply at least one api group"))
	}
	if len(rule.Resources) == 0 {
		errs = append(errs, field.Required(fldPath.Child("resources"), "resource rules must supply at least one resource"))
	}
	return errs
}

func validateRoleBinding(b *rbacv1.RoleBinding) field.ErrorList {
	errs := validateObjectMeta(&b.ObjectMeta, true, validateRBACName)
	errs = append(errs, validateRoleRef(b.RoleRef, []string{"Role", "ClusterRole"})...)
	for i, s := range b.Subjects {
		errs = append(errs, validateSubject(s, true, field.NewPath("subjects").Index(i))...)
	}
	return errs
}

func validateRoleBindingUpdate(b, old *rbacv1.RoleBinding) field.ErrorList {
	errs := append(validateRoleBinding(b), validateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta)...)
	if b.RoleRef != old.RoleRef {
		errs = append(errs, field.Invalid(field.NewPath("roleRef"), b.RoleRef, "cannot change roleRef"))
	}
	return errs
}

func validateClusterRoleBinding(b *rbacv1.ClusterRoleBinding) field.ErrorList {
	errs := validateObjectMeta(&b.ObjectMeta, false, validateRBACName)
	errs = append(errs, validateRoleRef(b.RoleRef, []string{"ClusterRole"})...)
	for i, s := range b.Subjects {
		errs = append(errs, validateSubject(s, false, field.NewPath("subjects").Index(i))...)
	}
	return errs
}

func validateClusterRoleBindingUpdate(b, old *rbacv1.ClusterRoleBinding) field.ErrorList {
	errs := append(validateClusterRoleBinding(b), validateObjectMetaUpdate(&b.ObjectMeta, &old.ObjectMeta)...)
	if b.RoleRef != old.RoleRef {
		errs = append(errs, field.Invalid(field.NewPath("roleRef"), b.RoleRef, "cannot change roleRef"))
	}
	return errs
}

func validateRoleRef(ref rbacv1.RoleRef, kinds []string) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(p.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	found := false
	for _, k := range kinds {
		found = found || ref.Kind == k
	}
	if !found {
		errs = append(errs, field.NotSupported(p.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, nameErrors(validateRBACName(ref.Name, false), p.Child("name"), ref.Name)...)
	}
	return errs
}

func validateSubject(s rbacv1.Subject, namespaced bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			errs = append(errs, nameErrors(apimachineryvalidation.ValidateServiceAccountName(s.Name, false), fldPath.Child("name"), s.Name)...)
		}
		if s.APIGroup != "" {
			errs = append(errs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			errs = append(errs, field.Required(fldPath.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			errs = append(errs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("kind"), s.Kind, []string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return errs
}

// ---- Scale and Eviction (subresource bodies)

func validateScale(s *autoscalingv1.Scale) field.ErrorList {
	errs := validateObjectMeta(&s.ObjectMeta, true, nameIsDNSSubdomain)
	if s.Spec.Replicas < 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "replicas"), s.Spec.Replicas, "must be greater than or equal to 0"))
	}
	return errs
}

// validateEviction checks the eviction's delete options. Its name is the
// pod's and is checked against the request path by the API server.
func validateEviction(e *policyv1.Eviction) field.ErrorList {
	if e.DeleteOptions == nil {
		return nil
	}
	var errs field.ErrorList
	for _, err := range metav1validation.ValidateDeleteOptions(e.DeleteOptions) {
		err.Field = "deleteOptions." + err.Field
		errs = append(errs, err)
	}
	return errs
}

// ---- PodDisruptionBudget

// validatePodDisruptionBudget is Kubernetes' ValidatePodDisruptionBudget:
// at most one of minAvailable and maxUnavailable, each a non-negative
// integer or a percentage up to 100%, a valid selector and a known
// unhealthyPodEvictionPolicy; and its status update's checks: counts not
// negative, valid conditions. The name need only be a path segment.
func validatePodDisruptionBudget(pdb *policyv1.PodDisruptionBudget) field.ErrorList {
	errs := validateObjectMeta(&pdb.ObjectMeta, true, path.ValidatePathSegmentName)
	spec, p := &pdb.Spec, field.NewPath("spec")
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(p, spec, "minAvailable and maxUnavailable cannot be both set"))
	}
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"minAvailable", spec.MinAvailable}, {"maxUnavailable", spec.MaxUnavailable}} {
		if f.v != nil {
			errs = append(errs, validatePositiveIntOrPercent(*f.v, p.Child(f.name))...)
			errs = append(errs, isNotMoreThan100Percent(*f.v, p.Child(f.name))...)
		}
	}
	errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	if policy := spec.UnhealthyPodEvictionPolicy; policy != nil {
		errs = append(errs, validateEnum(*policy, p.Child("unhealthyPodEvictionPolicy"), policyv1.IfHealthyBudget, policyv1.AlwaysAllow)...)
	}
	st, sp := &pdb.Status, field.NewPath("status")
	for _, f := range []struct {
		name string
		n    int32
	}{{"disruptionsAllowed", st.DisruptionsAllowed}, {"currentHealthy", st.CurrentHealthy}, {"desiredHealthy", st.DesiredHealthy}, {"expectedPods", st.ExpectedPods}} {
		errs = append(errs, apimachineryvalidation.ValidateNonnegativeField(int64(f.n), sp.Child(f.name))...)
	}
	return append(errs, metav1validation.ValidateConditions(st.Conditions, sp.Child("conditions"))...)
}

func validatePodDisruptionBudgetUpdate(pdb, old *policyv1.PodDisruptionBudget) field.ErrorList {
	return append(validateObjectMetaUpdate(&pdb.ObjectMeta, &old.ObjectMeta), validatePodDisruptionBudget(pdb)...)
}
