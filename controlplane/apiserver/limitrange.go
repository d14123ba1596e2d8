package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	resourcehelper "k8s.io/component-helpers/resource"
)

// The LimitRanger admission of a new pod, as Kubernetes' LimitRanger
// plugin does it: the LimitRanges of the pod's namespace give its
// containers the requests and limits they leave out (and an annotation
// says which), and a pod outside their min, max or maxLimitRequestRatio is
// refused. For a wasm container the memory limit is its guest's memory
// cap, so a namespace's LimitRange bounds every module run in it. Pod
// updates are not checked: their containers' resources cannot change.

// limitRangerAnnotation records what the admission set on a pod.
const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// limitRangeOf keeps a limit range for the cache.
func limitRangeOf(value []byte) *corev1.LimitRange {
	lr := &corev1.LimitRange{}
	if json.Unmarshal(value, lr) != nil {
		return nil
	}
	return lr
}

// podLimitRanges returns the limit ranges of namespace ns.
func (s *Server) podLimitRanges(ctx context.Context, ns string) ([]*corev1.LimitRange, error) {
	lrs, err := s.limitRanges.list(ctx, s.store, "limitranges", ns)
	if err != nil {
		return nil, storageError(err, corev1.Resource("limitranges"), "")
	}
	return lrs, nil
}

// admitLimitRanges is the plugin's mutating half: each Container item's
// default and defaultRequest fill what a container leaves out.
func admitLimitRanges(pod *corev1.Pod, lrs []*corev1.LimitRange) {
	for _, lr := range lrs {
		var def corev1.ResourceRequirements
		for _, item := range lr.Spec.Limits {
			if item.Type == corev1.LimitTypeContainer {
				def.Limits = mergeList(def.Limits, item.Default)
				def.Requests = mergeList(def.Requests, item.DefaultRequest)
			}
		}
		var set []string
		for i := range pod.Spec.Containers {
			set = defaultResources(&pod.Spec.Containers[i], def, "container", set)
		}
		for i := range pod.Spec.InitContainers {
			set = defaultResources(&pod.Spec.InitContainers[i], def, "init container", set)
		}
		if len(set) > 0 {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[limitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(set, "; ")
		}
	}
}

// mergeList returns to with from's entries set (to may be nil).
func mergeList(to, from corev1.ResourceList) corev1.ResourceList {
	if to == nil {
		to = corev1.ResourceList{}
	}
	for k, v := range from {
		to[k] = v.DeepCopy()
	}
	return to
}

// defaultResources gives c the default limits and requests it lacks and
// adds what it set to set, as the plugin's annotation words it.
func defaultResources(c *corev1.Container, def corev1.ResourceRequirements, kind string, set []string) []string {
	fill := func(have *corev1.ResourceList, defaults corev1.ResourceList, what string) {
		if *have == nil {
			*have = corev1.ResourceList{}
		}
		var names []string
		for k, v := range defaults {
			if _, ok := (*have)[k]; !ok {
				(*have)[k] = v.DeepCopy()
				names = append(names, string(k))
			}
		}
		if len(names) > 0 {
			sort.Strings(names)
			set = append(set, fmt.Sprintf("%s %s for %s %s", strings.Join(names, ", "), what, kind, c.Name))
		}
	}
	fill(&c.Resources.Requests, def.Requests, "request")
	fill(&c.Resources.Limits, def.Limits, "limit")
	return set
}

// validateLimitRanges is the plugin's validating half: every container
// (Container items) and the pod as a whole (Pod items, its containers'
// sums without the overhead) within min, max and maxLimitRequestRatio.
func validateLimitRanges(admName string, pod *corev1.Pod, lrs []*corev1.LimitRange) error {
	for _, lr := range lrs {
		var errs []error
		for _, item := range lr.Spec.Limits {
			switch item.Type {
			case corev1.LimitTypeContainer:
				for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
					for _, c := range cs {
						errs = append(errs, checkLimits(item, c.Resources.Requests, c.Resources.Limits)...)
					}
				}
			case corev1.LimitTypePod:
				opts := resourcehelper.PodResourcesOptions{ExcludeOverhead: true}
				errs = append(errs, checkLimits(item, resourcehelper.PodRequests(pod, opts), resourcehelper.PodLimits(pod, opts))...)
			}
		}
		if len(errs) > 0 {
			return podRejected(admName, "%s", utilerrors.NewAggregate(errs).Error())
		}
	}
	return nil
}

// checkLimits checks requests and limits against item's constraints, in
// the order of the resources' names.
func checkLimits(item corev1.LimitRangeItem, requests, limits corev1.ResourceList) []error {
	var errs []error
	each := func(constraints corev1.ResourceList, check func(name corev1.ResourceName, enforced apiresource.Quantity) error) {
		names := make([]corev1.ResourceName, 0, len(constraints))
		for name := range constraints {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if err := check(name, constraints[name]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	t := item.Type
	each(item.Min, func(name corev1.ResourceName, lo apiresource.Quantity) error {
		req, hasReq := requests[name]
		lim, hasLim := limits[name]
		switch {
		case !hasReq:
			return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, t, lo.String())
		case lo.Cmp(req) > 0:
			return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, t, lo.String(), req.String())
		case hasLim && lo.Cmp(lim) > 0:
			return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, t, lo.String(), lim.String())
		}
		return nil
	})
	each(item.Max, func(name corev1.ResourceName, hi apiresource.Quantity) error {
		req, hasReq := requests[name]
		lim, hasLim := limits[name]
		switch {
		case !hasLim:
			return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, t, hi.String())
		case lim.Cmp(hi) > 0:
			return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, t, hi.String(), lim.String())
		case hasReq && req.Cmp(hi) > 0:
			return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, t, hi.String(), req.String())
		}
		return nil
	})
	each(item.MaxLimitRequestRatio, func(name corev1.ResourceName, ratio apiresource.Quantity) error {
		req, hasReq := requests[name]
		lim, hasLim := limits[name]
		if !hasReq || req.IsZero() {
			return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, t, ratio.String())
		}
		if !hasLim || lim.IsZero() {
			return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, t, ratio.String())
		}
		// In thousandths where they fit, as the plugin compares.
		r, l, most := float64(req.Value()), float64(lim.Value()), float64(ratio.Value())
		if req.Value() <= apiresource.MaxMilliValue && lim.Value() <= apiresource.MaxMilliValue && ratio.Value() <= apiresource.MaxMilliValue {
			r, l = float64(req.MilliValue()), float64(lim.MilliValue())
		}
		if ratio.Value() <= apiresource.MaxMilliValue {
			most = float64(ratio.MilliValue()) / 1000
		}
		if observed := l / r; observed > most {
			return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, t, ratio.String(), observed)
		}
		return nil
	})
	return errs
}
