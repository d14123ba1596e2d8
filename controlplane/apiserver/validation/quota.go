package validation

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file mirrors the ResourceQuota, LimitRange and ServiceAccount parts of
// k8s.io/kubernetes/pkg/apis/core/validation and the resource name helpers of
// k8s.io/kubernetes/pkg/apis/core/helper they use.

// ---- resource names

// standardResourceNames are the unprefixed resource names Kubernetes knows
// (besides hugepages-*), those validateResourceName accepts.
var standardResourceNames = sets.New[corev1.ResourceName](
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourceConfigMaps, corev1.ResourcePersistentVolumeClaims,
	corev1.ResourceStorage, corev1.ResourceRequestsStorage,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

// standardQuotaResourceNames are the unprefixed names a quota may limit
// (besides hugepages-* and requests.hugepages-*).
var standardQuotaResourceNames = sets.New[corev1.ResourceName](
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsStorage, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourcePersistentVolumeClaims, corev1.ResourceConfigMaps,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

// integerResourceNames are counted in whole units.
var integerResourceNames = sets.New[corev1.ResourceName](
	corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
	corev1.ResourceSecrets, corev1.ResourceConfigMaps, corev1.ResourcePersistentVolumeClaims,
	corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
)

func isQuotaHugePages(name corev1.ResourceName) bool {
	return isHugePages(name) || strings.HasPrefix(string(name), corev1.ResourceRequestsHugePagesPrefix)
}

// validateResourceName: a qualified name, and if unprefixed one Kubernetes
// knows.
func validateResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	if errs := validateQualifiedName(string(name), fldPath); len(errs) > 0 {
		return errs
	}
	if !strings.Contains(string(name), "/") && !standardResourceNames.Has(name) && !isQuotaHugePages(name) {
		return field.ErrorList{field.Invalid(fldPath, name, "must be a standard resource type or fully qualified")}
	}
	return nil
}

func isStandardQuotaResource(name corev1.ResourceName) bool {
	return standardQuotaResourceNames.Has(name) || isQuotaHugePages(name)
}

func validateQuotaResourceName(name corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	errs := validateResourceName(name, fldPath)
	if !strings.Contains(string(name), "/") && !isStandardQuotaResource(name) {
		errs = append(errs, field.Invalid(fldPath, name, "must be a standard resource for quota"))
	}
	return errs
}

// validateQuotaQuantity: not negative, and whole for counted resources.
func validateQuotaQuantity(name corev1.ResourceName, q resource.Quantity, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(fldPath, q.String(), apimachineryvalidation.IsNegativeErrorMsg))
	}
	if (integerResourceNames.Has(name) || isExtendedResource(name)) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(fldPath, q, "must be an integer"))
	}
	return errs
}

// ---- ResourceQuota

// standardQuotaScopes are the scopes a quota may name.
var standardQuotaScopes = sets.New(
	corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
	corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort,
	corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity,
	corev1.ResourceQuotaScopeVolumeAttributesClass,
)

// podComputeQuotaResources and pods are what the pod scopes can limit.
var podComputeQuotaResources = sets.New[corev1.ResourceName](
	corev1.ResourceCPU, corev1.ResourceMemory,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory,
)

// quotaScopeFits says whether scope may restrict a quota on a standard
// resource. Scopes other than the pod ones are not restricted here.
func quotaScopeFits(scope corev1.ResourceQuotaScope, name corev1.ResourceName) bool {
	switch scope {
	case corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeNotBestEffort,
		corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return name == corev1.ResourcePods || podComputeQuotaResources.Has(name)
	case corev1.ResourceQuotaScopeBestEffort:
		return name == corev1.ResourcePods
	}
	return true
}

// conflictingQuotaScopes may not be combined.
var conflictingQuotaScopes = [][2]corev1.ResourceQuotaScope{
	{corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort},
	{corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating},
}

func hasConflictingScopes(scopes sets.Set[corev1.ResourceQuotaScope]) bool {
	for _, pair := range conflictingQuotaScopes {
		if scopes.Has(pair[0]) && scopes.Has(pair[1]) {
			return true
		}
	}
	return false
}

// scopeMisfits lists the standard resources of hard that scope may not
// restrict.
func scopeMisfits(scope corev1.ResourceQuotaScope, hard corev1.ResourceList) []corev1.ResourceName {
	var misfits []corev1.ResourceName
	for name := range hard {
		if isStandardQuotaResource(name) && !quotaScopeFits(scope, name) {
			misfits = append(misfits, name)
		}
	}
	slices.Sort(misfits)
	return misfits
}

func validateResourceQuota(q *corev1.ResourceQuota) field.ErrorList {
	errs := validateObjectMeta(&q.ObjectMeta, true, nameIsDNSSubdomain)
	errs = append(errs, validateResourceQuotaSpec(&q.Spec, field.NewPath("spec"))...)
	return append(errs, validateResourceQuotaStatus(&q.Status, field.NewPath("status"))...)
}

func validateQuotaResourceList(list corev1.ResourceList, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range list {
		p := fldPath.Key(string(name))
		errs = append(errs, validateQuotaResourceName(name, p)...)
		errs = append(errs, validateQuotaQuantity(name, q, p)...)
	}
	return errs
}

func validateResourceQuotaStatus(status *corev1.ResourceQuotaStatus, fldPath *field.Path) field.ErrorList {
	errs := validateQuotaResourceList(status.Hard, fldPath.Child("hard"))
	return append(errs, validateQuotaResourceList(status.Used, fldPath.Child("used"))...)
}

func validateResourceQuotaSpec(spec *corev1.ResourceQuotaSpec, fldPath *field.Path) field.ErrorList {
	errs := validateQuotaResourceList(spec.Hard, fldPath.Child("hard"))

	if len(spec.Scopes) > 0 {
		p := fldPath.Child("scopes")
		seen := sets.New[corev1.ResourceQuotaScope]()
		for _, scope := range spec.Scopes {
			if !standardQuotaScopes.Has(scope) {
				errs = append(errs, field.Invalid(p, spec.Scopes, "unsupported scope"))
			}
			for range scopeMisfits(scope, spec.Hard) {
				errs = append(errs, field.Invalid(p, spec.Scopes, "unsupported scope applied to resource"))
			}
			seen.Insert(scope)
		}
		if hasConflictingScopes(seen) {
			errs = append(errs, field.Invalid(p, spec.Scopes, "conflicting scopes"))
		}
	}

	if spec.ScopeSelector != nil {
		p := fldPath.Child("scopeSelector", "matchExpressions")
		seen := sets.New[corev1.ResourceQuotaScope]()
		for _, req := range spec.ScopeSelector.MatchExpressions {
			if !standardQuotaScopes.Has(req.ScopeName) {
				errs = append(errs, field.Invalid(p.Child("scopeName"), req.ScopeName, "unsupported scope"))
			}
			for range scopeMisfits(req.ScopeName, spec.Hard) {
				errs = append(errs, field.Invalid(p, spec.ScopeSelector, "unsupported scope applied to resource"))
			}
			switch req.ScopeName {
			case corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort,
				corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
				corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
				if req.Operator != corev1.ScopeSelectorOpExists {
					errs = append(errs, field.Invalid(p.Child("operator"), req.Operator,
						"must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"))
				}
			}
			switch req.Operator {
			case corev1.ScopeSelectorOpIn, corev1.ScopeSelectorOpNotIn:
				if len(req.Values) == 0 {
					errs = append(errs, field.Required(p.Child("values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
				}
			case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist:
				if len(req.Values) != 0 {
					errs = append(errs, field.Invalid(p.Child("values"), req.Values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
				}
			default:
				errs = append(errs, field.Invalid(p.Child("operator"), req.Operator, "not a valid selector operator"))
			}
			seen.Insert(req.ScopeName)
		}
		if hasConflictingScopes(seen) {
			errs = append(errs, field.Invalid(p, spec.Scopes, "conflicting scopes"))
		}
	}
	return errs
}

// validateResourceQuotaUpdate: the scopes are immutable (as a set). The
// status is checked too: a /status update carries the quota controller's
// hard and used, and a spec update keeps the stored status.
func validateResourceQuotaUpdate(q, old *corev1.ResourceQuota) field.ErrorList {
	errs := validateObjectMetaUpdate(&q.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateResourceQuotaSpec(&q.Spec, field.NewPath("spec"))...)
	errs = append(errs, validateResourceQuotaStatus(&q.Status, field.NewPath("status"))...)
	if !sets.New(q.Spec.Scopes...).Equal(sets.New(old.Spec.Scopes...)) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "scopes"), q.Spec.Scopes, apimachineryvalidation.FieldImmutableErrorMsg))
	}
	return errs
}

// ---- LimitRange

var standardLimitTypes = sets.New(corev1.LimitTypePod, corev1.LimitTypeContainer, corev1.LimitTypePersistentVolumeClaim)

func validateLimitRange(lr *corev1.LimitRange) field.ErrorList {
	errs := validateObjectMeta(&lr.ObjectMeta, true, nameIsDNSSubdomain)
	limitsPath := field.NewPath("spec", "limits")
	types := sets.New[corev1.LimitType]()
	for i := range lr.Spec.Limits {
		errs = append(errs, validateLimitRangeItem(&lr.Spec.Limits[i], types, limitsPath.Index(i))...)
	}
	return errs
}

func validateLimitRangeItem(item *corev1.LimitRangeItem, types sets.Set[corev1.LimitType], p *field.Path) field.ErrorList {
	var errs field.ErrorList
	typePath := p.Child("type")
	if nameErrs := validateQualifiedName(string(item.Type), typePath); len(nameErrs) > 0 {
		errs = append(errs, nameErrs...)
	} else if !strings.Contains(string(item.Type), "/") && !standardLimitTypes.Has(item.Type) {
		errs = append(errs, field.Invalid(typePath, item.Type, "must be a standard limit type or fully qualified"))
	}
	if types.Has(item.Type) {
		errs = append(errs, field.Duplicate(typePath, item.Type))
	}
	types.Insert(item.Type)

	checkNames := func(list corev1.ResourceList, name string) {
		for r := range list {
			rp := p.Child(name).Key(string(r))
			if item.Type == corev1.LimitTypePod || item.Type == corev1.LimitTypeContainer {
				errs = append(errs, validateContainerResourceName(r, rp)...)
			} else {
				errs = append(errs, validateResourceName(r, rp)...)
			}
		}
	}
	checkNames(item.Max, "max")
	checkNames(item.Min, "min")
	defaults, defaultRequests := item.Default, item.DefaultRequest
	if item.Type == corev1.LimitTypePod {
		if len(item.Default) > 0 {
			errs = append(errs, field.Forbidden(p.Child("default"), "may not be specified when `type` is 'Pod'"))
		}
		if len(item.DefaultRequest) > 0 {
			errs = append(errs, field.Forbidden(p.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
		}
		// Not compared below.
		defaults, defaultRequests = nil, nil
	} else {
		checkNames(item.Default, "default")
		checkNames(item.DefaultRequest, "defaultRequest")
	}
	if item.Type == corev1.LimitTypePersistentVolumeClaim {
		_, hasMin := item.Min[corev1.ResourceStorage]
		_, hasMax := item.Max[corev1.ResourceStorage]
		if !hasMin && !hasMax {
			errs = append(errs, field.Required(p.Child("limits"), "either minimum or maximum storage value is required, but neither was provided"))
		}
	}
	checkNames(item.MaxLimitRequestRatio, "maxLimitRequestRatio")

	names := sets.New[corev1.ResourceName]()
	for _, list := range []corev1.ResourceList{item.Max, item.Min, defaults, defaultRequests, item.MaxLimitRequestRatio} {
		for r := range list {
			names.Insert(r)
		}
	}
	for _, r := range sets.List(names) {
		key := string(r)
		minQ, hasMin := item.Min[r]
		maxQ, hasMax := item.Max[r]
		def, hasDef := defaults[r]
		defReq, hasDefReq := defaultRequests[r]
		ratio, hasRatio := item.MaxLimitRequestRatio[r]

		if hasMin && hasMax && minQ.Cmp(maxQ) > 0 {
			errs = append(errs, field.Invalid(p.Child("min").Key(key), minQ, fmt.Sprintf("min value %s is greater than max value %s", minQ.String(), maxQ.String())))
		}
		if hasDefReq && hasMin && minQ.Cmp(defReq) > 0 {
			errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("min value %s is greater than default request value %s", minQ.String(), defReq.String())))
		}
		if hasDefReq && hasMax && defReq.Cmp(maxQ) > 0 {
			errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("default request value %s is greater than max value %s", defReq.String(), maxQ.String())))
		}
		if hasDefReq && hasDef && defReq.Cmp(def) > 0 {
			errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("default request value %s is greater than default limit value %s", defReq.String(), def.String())))
		}
		if hasDef && hasMin && minQ.Cmp(def) > 0 {
			errs = append(errs, field.Invalid(p.Child("default").Key(key), minQ, fmt.Sprintf("min value %s is greater than default value %s", minQ.String(), def.String())))
		}
		if hasDef && hasMax && def.Cmp(maxQ) > 0 {
			errs = append(errs, field.Invalid(p.Child("default").Key(key), maxQ, fmt.Sprintf("default value %s is greater than max value %s", def.String(), maxQ.String())))
		}
		if hasRatio && ratio.Cmp(*resource.NewQuantity(1, resource.DecimalSI)) < 0 {
			errs = append(errs, field.Invalid(p.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is less than 1", ratio.String())))
		}
		if hasRatio && hasMin && hasMax {
			if limit := maxOverMin(minQ, maxQ, ratio); limit.exceeded {
				errs = append(errs, field.Invalid(p.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is greater than max/min = %f", ratio.String(), limit.value)))
			}
		}
		// Resources that cannot be overcommitted need equal defaults.
		if !isOvercommitAllowed(r) && hasDef && hasDefReq && def.Cmp(defReq) != 0 {
			errs = append(errs, field.Invalid(p.Child("defaultRequest").Key(key), defReq, fmt.Sprintf("default value %s must equal to defaultRequest value %s in %s", def.String(), defReq.String(), key)))
		}
	}
	return errs
}

// ratioLimit is the outcome of comparing a maxLimitRequestRatio with max/min.
type ratioLimit struct {
	value    float64
	exceeded bool
}

// maxOverMin compares ratio with maxQ/minQ, in thousandths while all three
// fit, else in units.
func maxOverMin(minQ, maxQ, ratio resource.Quantity) ratioLimit {
	r, lo, hi := float64(ratio.Value()), float64(minQ.Value()), float64(maxQ.Value())
	if ratio.Value() < resource.MaxMilliValue && minQ.Value() < resource.MaxMilliValue && maxQ.Value() < resource.MaxMilliValue {
		r = float64(ratio.MilliValue()) / 1000
		lo, hi = float64(minQ.MilliValue()), float64(maxQ.MilliValue())
	}
	limit := hi / lo
	return ratioLimit{value: limit, exceeded: r > limit}
}

func validateLimitRangeUpdate(lr, old *corev1.LimitRange) field.ErrorList {
	return append(validateObjectMetaUpdate(&lr.ObjectMeta, &old.ObjectMeta), validateLimitRange(lr)...)
}

// ---- ServiceAccount

func validateServiceAccount(sa *corev1.ServiceAccount) field.ErrorList {
	return validateObjectMeta(&sa.ObjectMeta, true, apimachineryvalidation.ValidateServiceAccountName)
}

func validateServiceAccountUpdate(sa, old *corev1.ServiceAccount) field.ErrorList {
	return append(validateObjectMetaUpdate(&sa.ObjectMeta, &old.ObjectMeta), validateServiceAccount(sa)...)
}
