package gc

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func ref(uid string, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "owner-" + uid, UID: types.UID(uid), BlockOwnerDeletion: &block}
}

func obj(fins []string, refs ...metav1.OwnerReference) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Name: "item", UID: "item-uid", Finalizers: fins, OwnerReferences: refs}
}

func TestDecideDependent(t *testing.T) {
	a, b := ref("a", false), ref("b", true)
	st := func(kv ...any) map[types.UID]ownerState {
		m := map[types.UID]ownerState{}
		for i := 0; i < len(kv); i += 2 {
			m[types.UID(kv[i].(string))] = kv[i+1].(ownerState)
		}
		return m
	}
	for _, tc := range []struct {
		name       string
		item       *metav1.ObjectMeta
		states     map[types.UID]ownerState
		hasDeps    bool
		depDeleteD bool
		want       verdict
	}{
		{"no owners", obj(nil), nil, false, false, verdict{keep: true}},
		{"owner solid", obj(nil, a), st("a", ownerSolid), false, false, verdict{keep: true}},
		{"owner gone: background", obj(nil, a), st("a", ownerDangling), false, false, verdict{policy: metav1.DeletePropagationBackground}},
		{"unresolved counts as gone", obj(nil, a), st(), false, false, verdict{policy: metav1.DeletePropagationBackground}},
		{"one of two owners gone: drop its reference", obj(nil, a, b), st("a", ownerDangling, "b", ownerSolid), false, false,
			verdict{removeRefs: []types.UID{"a"}}},
		{"both owners gone", obj(nil, a, b), st("a", ownerDangling, "b", ownerDangling), false, false, verdict{policy: metav1.DeletePropagationBackground}},
		{"solid owner, other waiting: drop the waiting one", obj(nil, a, b), st("a", ownerSolid, "b", ownerWaiting), true, false,
			verdict{removeRefs: []types.UID{"b"}}},
		{"owner waiting, no dependents: background", obj(nil, b), st("b", ownerWaiting), false, false, verdict{policy: metav1.DeletePropagationBackground}},
		{"owner waiting, has dependents: foreground", obj(nil, b), st("b", ownerWaiting), true, false, verdict{policy: metav1.DeletePropagationForeground}},
		{"owner waiting, dependent also waiting: unblock first", obj(nil, b), st("b", ownerWaiting), true, true,
			verdict{unblock: true, policy: metav1.DeletePropagationForeground}},
		{"garbage with orphan finalizer: orphan", obj([]string{metav1.FinalizerOrphanDependents}, a), st("a", ownerDangling), true, false,
			verdict{policy: metav1.DeletePropagationOrphan}},
		{"garbage with foreground finalizer: foreground", obj([]string{metav1.FinalizerDeleteDependents}, a), st("a", ownerDangling), false, false,
			verdict{policy: metav1.DeletePropagationForeground}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decideDependent(tc.item, tc.states, tc.hasDeps, tc.depDeleteD)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decideDependent = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStateAndBlocking(t *testing.T) {
	now := metav1.Now()
	deleting := &metav1.ObjectMeta{DeletionTimestamp: &now, Finalizers: []string{metav1.FinalizerDeleteDependents}}
	orphaning := &metav1.ObjectMeta{DeletionTimestamp: &now, Finalizers: []string{metav1.FinalizerOrphanDependents}}
	finalizerOnly := &metav1.ObjectMeta{Finalizers: []string{metav1.FinalizerDeleteDependents}}
	for _, tc := range []struct {
		name string
		obj  metav1.Object
		want ownerState
	}{
		{"plain", &metav1.ObjectMeta{}, ownerSolid},
		{"foreground deleting", deleting, ownerWaiting},
		{"orphan deleting: still solid for its dependents", orphaning, ownerSolid},
		{"finalizer without deletion", finalizerOnly, ownerSolid},
	} {
		if got := stateOf(tc.obj); got != tc.want {
			t.Errorf("%s: stateOf = %v, want %v", tc.name, got, tc.want)
		}
	}
	d := obj(nil, ref("a", false), ref("b", true))
	if blocksOwner(d, "a") || !blocksOwner(d, "b") || blocksOwner(d, "c") {
		t.Error("blocksOwner wrong")
	}
	refs, changed := unblocked(d.OwnerReferences)
	if !changed || *refs[1].BlockOwnerDeletion || !*d.OwnerReferences[1].BlockOwnerDeletion {
		t.Errorf("unblocked = %+v, %v (input must stay)", refs, changed)
	}
	if _, changed := unblocked(refs); changed {
		t.Error("unblocked twice changed")
	}
	rest, changed := withoutRefs(d.OwnerReferences, []types.UID{"a"})
	if !changed || len(rest) != 1 || rest[0].UID != "b" {
		t.Errorf("withoutRefs = %+v, %v", rest, changed)
	}
}
