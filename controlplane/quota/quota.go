// Package quota is how Kubernetes counts what a ResourceQuota limits, for
// both its ends: the API server's admission, which charges a new object to
// the quotas of its namespace (and refuses it beyond their hard limits),
// and the resourcequota controller, which recounts what each quota's
// namespace holds. It follows Kubernetes' evaluators:
//
//   - pods: "pods" (pods not yet Succeeded or Failed, nor past their
//     deletion grace period), "count/pods" (all pods), and the compute
//     resources of those counted: cpu and memory (their requests),
//     requests.* and limits.* of cpu, memory and ephemeral-storage, and
//     requests.* of hugepages and extended resources; a quota on cpu or
//     memory needs every container to name them;
//   - services: "services", "count/services", "services.nodeports",
//     "services.loadbalancers";
//   - configmaps, secrets, resourcequotas, replicationcontrollers,
//     persistentvolumeclaims: their name and "count/<resource>";
//   - any other resource: "count/<resource>.<group>".
//
// A quota's scopes (Terminating, NotTerminating, BestEffort,
// NotBestEffort, PriorityClass, CrossNamespacePodAffinity) apply to pods;
// a quota with scopes counts nothing else.
package quota

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	resourcehelper "k8s.io/component-helpers/resource"
)

var one = *resource.NewQuantity(1, resource.DecimalSI)

// legacy are the core resources whose plain name counts them too.
var legacy = map[string]bool{"configmaps": true, "secrets": true, "resourcequotas": true, "replicationcontrollers": true, "persistentvolumeclaims": true, "services": true}

// CountName is the object-count resource of gr: count/<resource> in the
// core group, count/<resource>.<group> otherwise.
func CountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName("count/" + gr.Resource)
	}
	return corev1.ResourceName("count/" + gr.Resource + "." + gr.Group)
}

// ParseCountName returns the resource a count/ name counts.
func ParseCountName(name corev1.ResourceName) (schema.GroupResource, bool) {
	rest, ok := strings.CutPrefix(string(name), "count/")
	if !ok || rest == "" {
		return schema.GroupResource{}, false
	}
	res, group, _ := strings.Cut(rest, ".")
	return schema.GroupResource{Group: group, Resource: res}, true
}

// Usage is what obj, an object of gr, uses of a quota (before scopes; see
// Matches).
func Usage(gr schema.GroupResource, obj any, now time.Time) corev1.ResourceList {
	u := corev1.ResourceList{CountName(gr): one}
	if gr.Group == "" && legacy[gr.Resource] {
		u[corev1.ResourceName(gr.Resource)] = one
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		if Counted(o, now) {
			opts := resourcehelper.PodResourcesOptions{}
			add(u, computeUsage(resourcehelper.PodRequests(o, opts), resourcehelper.PodLimits(o, opts)))
		}
	case *corev1.Service:
		if o.Spec.Type == corev1.ServiceTypeLoadBalancer {
			u[corev1.ResourceServicesLoadBalancers] = one
		}
		if o.Spec.Type == corev1.ServiceTypeNodePort ||
			(o.Spec.Type == corev1.ServiceTypeLoadBalancer && (o.Spec.AllocateLoadBalancerNodePorts == nil || *o.Spec.AllocateLoadBalancerNodePorts)) {
			u[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(o.Spec.Ports)), resource.DecimalSI)
		}
	}
	return u
}

// Matching returns the names among names that objects of gr count
// towards, as Kubernetes' evaluators' MatchingResources: for pods, "pods",
// "count/pods" and the compute resources; for services, their four; for
// other resources, their count/ name and the legacy plain name.
func Matching(gr schema.GroupResource, names []corev1.ResourceName) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, name := range names {
		var ok bool
		switch {
		case gr == Pods:
			ok = PodResource(name)
		case gr == Services:
			ok = ServiceResource(name)
		default:
			counted, isCount := CountedResource(name)
			ok = isCount && counted == gr
		}
		if ok {
			out = append(out, name)
		}
	}
	return out
}

// Pods and Services are the resources with evaluators of their own.
var (
	Pods     = corev1.Resource("pods")
	Services = corev1.Resource("services")
)

// PodResource reports whether pods are what name counts: pods, their
// compute resources, requests.* (other than of storage, which claims
// use), limits.* and hugepages.
func PodResource(name corev1.ResourceName) bool {
	switch name {
	case corev1.ResourcePods, "count/pods", corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		return true
	case corev1.ResourceRequestsStorage:
		return false
	}
	n := string(name)
	return strings.HasPrefix(n, corev1.DefaultResourceRequestsPrefix) || strings.HasPrefix(n, "limits.") || strings.HasPrefix(n, corev1.ResourceHugePagesPrefix)
}

// ServiceResource reports whether services are what name counts.
func ServiceResource(name corev1.ResourceName) bool {
	switch name {
	case corev1.ResourceServices, "count/services", corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers:
		return true
	}
	return false
}

// CountedResource returns the resource whose objects name counts (a
// count/ name or a legacy plain name other than pods and services).
func CountedResource(name corev1.ResourceName) (schema.GroupResource, bool) {
	switch name {
	case corev1.ResourceConfigMaps, corev1.ResourceSecrets, corev1.ResourceQuotas, corev1.ResourceReplicationControllers, corev1.ResourcePersistentVolumeClaims:
		return corev1.Resource(string(name)), true
	}
	return ParseCountName(name)
}

// Counted reports whether a pod's compute resources (and "pods") count:
// not when it has ended, nor once its deletion's grace period is over.
func Counted(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if dt, g := pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds; dt != nil && g != nil {
		return !now.After(dt.Add(time.Duration(*g) * time.Second))
	}
	return true
}

// computeUsage is Kubernetes' podComputeUsageHelper: "pods" and the
// compute resources of requests and limits.
func computeUsage(requests, limits corev1.ResourceList) corev1.ResourceList {
	u := corev1.ResourceList{corev1.ResourcePods: one}
	for _, r := range []struct{ plain, req, lim corev1.ResourceName }{
		{corev1.ResourceCPU, corev1.ResourceRequestsCPU, corev1.ResourceLimitsCPU},
		{corev1.ResourceMemory, corev1.ResourceRequestsMemory, corev1.ResourceLimitsMemory},
		{corev1.ResourceEphemeralStorage, corev1.ResourceRequestsEphemeralStorage, corev1.ResourceLimitsEphemeralStorage},
	} {
		if q, ok := requests[r.plain]; ok {
			u[r.plain], u[r.req] = q, q
		}
		if q, ok := limits[r.plain]; ok {
			u[r.lim] = q
		}
	}
	for name, q := range requests {
		switch {
		case strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix):
			u[name] = q
			u[corev1.DefaultResourceRequestsPrefix+name] = q
		case extended(name):
			u[corev1.DefaultResourceRequestsPrefix+name] = q
		}
	}
	return u
}

// extended reports whether name is an extended resource: qualified,
// outside kubernetes.io, not requests.*.
func extended(name corev1.ResourceName) bool {
	n := string(name)
	return strings.Contains(n, "/") && !strings.Contains(n, corev1.ResourceDefaultNamespacePrefix) &&
		!strings.HasPrefix(n, corev1.DefaultResourceRequestsPrefix)
}

// Selectors are a quota's scopes and scope selector as requirements.
func Selectors(q *corev1.ResourceQuota) []corev1.ScopedResourceSelectorRequirement {
	var s []corev1.ScopedResourceSelectorRequirement
	for _, scope := range q.Spec.Scopes {
		s = append(s, corev1.ScopedResourceSelectorRequirement{ScopeName: scope, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		s = append(s, q.Spec.ScopeSelector.MatchExpressions...)
	}
	return s
}

// InScope reports whether obj is in each of quota q's scopes (scopes
// apply to pods: a quota with scopes counts nothing else).
func InScope(q *corev1.ResourceQuota, obj any) bool {
	for _, sel := range Selectors(q) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || !inScope(pod, sel) {
			return false
		}
	}
	return true
}

// inScope is Kubernetes' podMatchesScopeFunc.
func inScope(pod *corev1.Pod, sel corev1.ScopedResourceSelectorRequirement) bool {
	switch sel.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return terminating(pod)
	case corev1.ResourceQuotaScopeNotTerminating:
		return !terminating(pod)
	case corev1.ResourceQuotaScopeBestEffort:
		return bestEffort(pod)
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !bestEffort(pod)
	case corev1.ResourceQuotaScopePriorityClass:
		if sel.Operator == corev1.ScopeSelectorOpExists {
			return pod.Spec.PriorityClassName != ""
		}
		op := map[corev1.ScopeSelectorOperator]selection.Operator{
			corev1.ScopeSelectorOpIn: selection.In, corev1.ScopeSelectorOpNotIn: selection.NotIn, corev1.ScopeSelectorOpDoesNotExist: selection.DoesNotExist,
		}[sel.Operator]
		r, err := labels.NewRequirement(string(sel.ScopeName), op, sel.Values)
		if err != nil {
			return false
		}
		set := labels.Set{}
		if pod.Spec.PriorityClassName != "" {
			set[string(corev1.ResourceQuotaScopePriorityClass)] = pod.Spec.PriorityClassName
		}
		return labels.NewSelector().Add(*r).Matches(set)
	case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return crossNamespaceAffinity(pod)
	}
	return false
}

func terminating(pod *corev1.Pod) bool {
	return pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0
}

func bestEffort(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				if l.Cpu().Sign() != 0 || l.Memory().Sign() != 0 {
					return false
				}
			}
		}
	}
	return true
}

func crossNamespaceAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	var terms []corev1.PodAffinityTerm
	if a.PodAffinity != nil {
		terms = append(terms, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	if a.PodAntiAffinity != nil {
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
	}
	for _, t := range terms {
		if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
			return true
		}
	}
	return false
}

// Constraints is Kubernetes' pod constraint: a quota limiting cpu or
// memory (requests.*, limits.* or plain) needs every container to name
// them.
func Constraints(hard corev1.ResourceList, pod *corev1.Pod) error {
	checked := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory}
	missing := map[corev1.ResourceName][]string{}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			have := computeUsage(c.Resources.Requests, c.Resources.Limits)
			for _, name := range checked {
				if _, limited := hard[name]; !limited {
					continue
				}
				if _, ok := have[name]; !ok {
					missing[name] = append(missing[name], c.Name)
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var msgs []string
	for _, name := range sortedNames(missing) {
		cs := missing[name]
		slices.Sort(cs)
		msgs = append(msgs, fmt.Sprintf("%s for: %s", name, strings.Join(slices.Compact(cs), ",")))
	}
	return fmt.Errorf("must specify %s", strings.Join(msgs, "; "))
}

// Add returns a + b (a new list).
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	sum := a.DeepCopy()
	if sum == nil {
		sum = corev1.ResourceList{}
	}
	add(sum, b)
	return sum
}

func add(to, from corev1.ResourceList) {
	for name, q := range from {
		if have, ok := to[name]; ok {
			have.Add(q)
			to[name] = have
		} else {
			to[name] = q.DeepCopy()
		}
	}
}

// Subtract returns a - b (a new list), no entry below zero.
func Subtract(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	for name, q := range b {
		if have, ok := out[name]; ok {
			have.Sub(q)
			if have.Sign() < 0 {
				have = *resource.NewQuantity(0, have.Format)
			}
			out[name] = have
		}
	}
	return out
}

// Mask returns the entries of l named in names.
func Mask(l corev1.ResourceList, names []corev1.ResourceName) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, name := range names {
		if q, ok := l[name]; ok {
			out[name] = q
		}
	}
	return out
}

// Names returns l's names, sorted.
func Names(l corev1.ResourceList) []corev1.ResourceName { return sortedNames(l) }

func sortedNames[V any](m map[corev1.ResourceName]V) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// String prints l as Kubernetes' quota messages do: name=value, sorted,
// comma-separated.
func String(l corev1.ResourceList) string {
	var parts []string
	for _, name := range sortedNames(l) {
		q := l[name]
		parts = append(parts, fmt.Sprintf("%v=%v", name, q.String()))
	}
	return strings.Join(parts, ",")
}

// Equal reports whether a and b hold the same quantities.
func Equal(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, q := range a {
		if o, ok := b[name]; !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}
