package namespace

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// This file builds the namespace status conditions of a deletion pass as
// Kubernetes' namespace controller does (status_condition_utils.go): pure
// functions of what the pass found.

// conditionTypes are the conditions the controller maintains, in order.
var conditionTypes = []corev1.NamespaceConditionType{
	corev1.NamespaceDeletionDiscoveryFailure,
	corev1.NamespaceDeletionGVParsingFailure,
	corev1.NamespaceDeletionContentFailure,
	corev1.NamespaceContentRemaining,
	corev1.NamespaceFinalizersRemaining,
}

var okMessages = map[corev1.NamespaceConditionType]string{
	corev1.NamespaceDeletionDiscoveryFailure: "All resources successfully discovered",
	corev1.NamespaceDeletionGVParsingFailure: "All legacy kube types successfully parsed",
	corev1.NamespaceDeletionContentFailure:   "All content successfully deleted, may be waiting on finalization",
	corev1.NamespaceContentRemaining:         "All content successfully removed",
	corev1.NamespaceFinalizersRemaining:      "All content-preserving finalizers finished",
}

var okReasons = map[corev1.NamespaceConditionType]string{
	corev1.NamespaceDeletionDiscoveryFailure: "ResourcesDiscovered",
	corev1.NamespaceDeletionGVParsingFailure: "ParsedGroupVersions",
	corev1.NamespaceDeletionContentFailure:   "ContentDeleted",
	corev1.NamespaceContentRemaining:         "ContentRemoved",
	corev1.NamespaceFinalizersRemaining:      "ContentHasNoFinalizers",
}

// passResult is what one deletion pass over a namespace's content found.
type passResult struct {
	discoveryErr error
	deleteErrs   []error
	// remaining counts the objects left per resource, and per finalizer
	// the objects that carry it.
	remaining  map[schema.GroupVersionResource]int
	finalizers map[string]int
}

// conditions returns the failure conditions of a pass (the others are
// reported as their "ok" variants by applyConditions).
func (r passResult) conditions(now time.Time) []corev1.NamespaceCondition {
	ts := metav1.NewTime(now)
	var out []corev1.NamespaceCondition
	if r.discoveryErr != nil {
		msg := r.discoveryErr.Error()
		var gerr *discovery.ErrGroupDiscoveryFailed
		if errors.As(r.discoveryErr, &gerr) {
			msg = fmt.Sprintf("Discovery failed for some groups, %d failing: %v", len(gerr.Groups), r.discoveryErr)
		}
		out = append(out, corev1.NamespaceCondition{Type: corev1.NamespaceDeletionDiscoveryFailure, Status: corev1.ConditionTrue,
			LastTransitionTime: ts, Reason: "DiscoveryFailed", Message: msg})
	}
	if len(r.deleteErrs) > 0 {
		msgs := make([]string, 0, len(r.deleteErrs))
		for _, e := range r.deleteErrs {
			msgs = append(msgs, e.Error())
		}
		sort.Strings(msgs)
		out = append(out, corev1.NamespaceCondition{Type: corev1.NamespaceDeletionContentFailure, Status: corev1.ConditionTrue,
			LastTransitionTime: ts, Reason: "ContentDeletionFailed",
			Message: fmt.Sprintf("Failed to delete all resource types, %d remaining: %v", len(r.deleteErrs), strings.Join(msgs, ", "))})
	}
	var left []string
	for gvr, n := range r.remaining {
		if n > 0 {
			left = append(left, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n))
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		out = append(out, corev1.NamespaceCondition{Type: corev1.NamespaceContentRemaining, Status: corev1.ConditionTrue,
			LastTransitionTime: ts, Reason: "SomeResourcesRemain",
			Message: fmt.Sprintf("Some resources are remaining: %s", strings.Join(left, ", "))})
	}
	var fins []string
	for f, n := range r.finalizers {
		if n > 0 {
			fins = append(fins, fmt.Sprintf("%s in %d resource instances", f, n))
		}
	}
	if len(fins) > 0 {
		sort.Strings(fins)
		out = append(out, corev1.NamespaceCondition{Type: corev1.NamespaceFinalizersRemaining, Status: corev1.ConditionTrue,
			LastTransitionTime: ts, Reason: "SomeFinalizersRemain",
			Message: fmt.Sprintf("Some content in the namespace has finalizers remaining: %s", strings.Join(fins, ", "))})
	}
	return out
}

// applyConditions sets every maintained condition type on status: the
// failure from failures or else its "ok" variant (status False). It keeps
// lastTransitionTime unless the status flips, and reports whether anything
// changed.
func applyConditions(status *corev1.NamespaceStatus, failures []corev1.NamespaceCondition, now time.Time) bool {
	changed := false
	for _, typ := range conditionTypes {
		want := findCondition(failures, typ)
		if want == nil {
			want = &corev1.NamespaceCondition{Type: typ, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(now),
				Reason: okReasons[typ], Message: okMessages[typ]}
		}
		cur := findCondition(status.Conditions, typ)
		switch {
		case cur == nil:
			status.Conditions = append(status.Conditions, *want)
			changed = true
		case cur.Status != want.Status || cur.Reason != want.Reason || cur.Message != want.Message:
			if cur.Status != want.Status {
				cur.LastTransitionTime = metav1.NewTime(now)
			}
			cur.Status, cur.Reason, cur.Message = want.Status, want.Reason, want.Message
			changed = true
		}
	}
	return changed
}

func findCondition(conds []corev1.NamespaceCondition, typ corev1.NamespaceConditionType) *corev1.NamespaceCondition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// podEstimate is how long the remaining pods of a namespace may still take
// to go: for each pod being deleted the time left on its grace clock
// (deletionTimestamp), for one not yet deleted its grace period, and stale
// (a pod whose clock ran out, waiting for its node) when there is none of
// either; at least a second while any remain. Finished pods count nothing.
func podEstimate(pods []corev1.Pod, now time.Time, stale time.Duration) time.Duration {
	var est time.Duration
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		d := stale
		switch {
		case p.DeletionTimestamp != nil:
			if left := p.DeletionTimestamp.Sub(now); left > 0 {
				d = left
			}
		case p.Spec.TerminationGracePeriodSeconds != nil:
			d = time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
		}
		est = max(est, d, time.Second)
	}
	return est
}
