package gc

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// This file holds the collector's decisions as pure functions, mirroring
// attemptToDeleteItem and processDeletingDependentsItem of Kubernetes'
// garbage collector.

// ownerState is what an ownerReference points at.
type ownerState int

const (
	// ownerUnknown: not in the caches; ask the API server.
	ownerUnknown ownerState = iota
	// ownerSolid: the owner exists and is not deleting its dependents.
	ownerSolid
	// ownerDangling: no object with that name and UID exists.
	ownerDangling
	// ownerWaiting: the owner is being deleted in the foreground
	// (deletionTimestamp and the foregroundDeletion finalizer): it waits
	// for its dependents to go.
	ownerWaiting
)

// stateOf classifies an existing owner object.
func stateOf(owner metav1.Object) ownerState {
	if owner.GetDeletionTimestamp() != nil && hasFinalizer(owner, metav1.FinalizerDeleteDependents) {
		return ownerWaiting
	}
	return ownerSolid
}

// verdict is what to do with a dependent.
type verdict struct {
	// keep: nothing to do.
	keep bool
	// removeRefs: drop the ownerReferences to these owner UIDs (the
	// dependent has a solid owner left, so it stays).
	removeRefs []types.UID
	// unblock: first clear blockOwnerDeletion on every ownerReference (a
	// dependent of ours is itself deleting its dependents: a cycle).
	unblock bool
	// policy: delete the dependent with this propagation policy.
	policy metav1.DeletionPropagation
}

// decideDependent decides a dependent's fate from the states of its owners
// (by ownerReference UID), whether it has dependents of its own, and
// whether one of those is itself deleting its dependents:
//   - a solid owner keeps it; references to dangling or waiting owners are
//     removed (a waiting owner must not wait for it);
//   - otherwise, with an owner waiting and dependents of its own, it is
//     deleted in the foreground too, so the wait reaches down the chain;
//   - otherwise it is garbage, deleted with the propagation its own
//     finalizers ask for (orphan, foreground) or in the background.
func decideDependent(item metav1.Object, states map[types.UID]ownerState, hasDependents, dependentDeletingDependents bool) verdict {
	var solid, dangling, waiting []types.UID
	for _, ref := range item.GetOwnerReferences() {
		switch states[ref.UID] {
		case ownerSolid:
			solid = append(solid, ref.UID)
		case ownerWaiting:
			waiting = append(waiting, ref.UID)
		default:
			dangling = append(dangling, ref.UID)
		}
	}
	switch {
	case len(item.GetOwnerReferences()) == 0:
		return verdict{keep: true}
	case len(solid) > 0:
		if len(dangling) == 0 && len(waiting) == 0 {
			return verdict{keep: true}
		}
		return verdict{removeRefs: append(dangling, waiting...)}
	case len(waiting) > 0 && hasDependents:
		return verdict{unblock: dependentDeletingDependents, policy: metav1.DeletePropagationForeground}
	case hasFinalizer(item, metav1.FinalizerOrphanDependents):
		return verdict{policy: metav1.DeletePropagationOrphan}
	case hasFinalizer(item, metav1.FinalizerDeleteDependents):
		return verdict{policy: metav1.DeletePropagationForeground}
	default:
		return verdict{policy: metav1.DeletePropagationBackground}
	}
}

// blocksOwner reports whether dependent holds up the foreground deletion
// of the owner with UID owner: its reference to it has blockOwnerDeletion.
func blocksOwner(dependent metav1.Object, owner types.UID) bool {
	for _, ref := range dependent.GetOwnerReferences() {
		if ref.UID == owner && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
			return true
		}
	}
	return false
}

// deletingDependents reports whether obj is being deleted in the
// foreground.
func deletingDependents(obj metav1.Object) bool {
	return obj.GetDeletionTimestamp() != nil && hasFinalizer(obj, metav1.FinalizerDeleteDependents)
}

func hasFinalizer(obj metav1.Object, f string) bool {
	for _, x := range obj.GetFinalizers() {
		if x == f {
			return true
		}
	}
	return false
}

// withoutRefs returns refs minus those to the given owner UIDs, and whether
// any was dropped.
func withoutRefs(refs []metav1.OwnerReference, uids []types.UID) ([]metav1.OwnerReference, bool) {
	drop := map[types.UID]bool{}
	for _, u := range uids {
		drop[u] = true
	}
	var out []metav1.OwnerReference
	for _, r := range refs {
		if !drop[r.UID] {
			out = append(out, r)
		}
	}
	return out, len(out) != len(refs)
}

// unblocked returns refs with blockOwnerDeletion cleared, and whether any
// was set.
func unblocked(refs []metav1.OwnerReference) ([]metav1.OwnerReference, bool) {
	out := make([]metav1.OwnerReference, len(refs))
	changed := false
	for i, r := range refs {
		if r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion {
			f := false
			r.BlockOwnerDeletion = &f
			changed = true
		}
		out[i] = r
	}
	return out, changed
}
