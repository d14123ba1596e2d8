package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"reflect"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
)

// Revisions keeps the ControllerRevisions of a workload kind (DaemonSet,
// StatefulSet) as Kubernetes' controller history does, which kubectl
// rollout history and undo read: one revision per pod template, named
// <owner>-<hash> (RevisionName), labelled with the template's labels and
// HashLabel=<hash>, holding the patch that restores the template
// (TemplatePatch), controlled by the owner. The current template's
// revision is the highest numbered; a template rolled back to gets its
// old revision renumbered. Stateless apart from its client and lister;
// safe for concurrent use.
type Revisions struct {
	Client kubernetes.Interface
	Lister appslisters.ControllerRevisionLister
	Kind   schema.GroupVersionKind
	// HashLabel is the label that carries a revision's hash: kube's
	// history.ControllerRevisionHashLabel (HistoryHashLabel) for
	// StatefulSets, appsv1.DefaultDaemonSetUniqueLabelKey for DaemonSets.
	HashLabel string
}

// HistoryHashLabel is kube's history.ControllerRevisionHashLabel, the hash
// label of the revisions its controller history makes (StatefulSets').
const HistoryHashLabel = "controller.kubernetes.io/hash"

// RevisionName is kube's ControllerRevisionName: <prefix>-<hash>, the
// prefix cut to 223 characters so the name stays within 253.
func RevisionName(prefix, hash string) string {
	if len(prefix) > 223 {
		prefix = prefix[:223]
	}
	return prefix + "-" + hash
}

// Claim returns the revisions owner controls, oldest (lowest revision)
// first, as Kubernetes' ClaimControllerRevisions: from the cache, those it
// controls and its selector matches, and orphans the selector matches,
// which it adopts (after recheck, which fails when owner is gone or being
// deleted); it releases those it controls that the selector no longer
// matches.
func (r Revisions) Claim(ctx context.Context, owner metav1.Object, sel labels.Selector, recheck func(context.Context) error) ([]*appsv1.ControllerRevision, error) {
	all, err := r.Lister.ControllerRevisions(owner.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list controller revisions: %w", err)
	}
	revisions := r.Client.AppsV1().ControllerRevisions(owner.GetNamespace())
	var (
		owned     []*appsv1.ControllerRevision
		rechecked bool
	)
	for _, cr := range all {
		matches := sel.Matches(labels.Set(cr.Labels))
		ref := metav1.GetControllerOf(cr)
		switch {
		case ref != nil && ref.UID != owner.GetUID():
			continue
		case ref != nil && !matches:
			patch := fmt.Appendf(nil, `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":%q}],"uid":%q}}`, owner.GetUID(), cr.UID)
			if _, err := revisions.Patch(ctx, cr.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				return nil, fmt.Errorf("release controller revision %s: %w", cr.Name, err)
			}
			continue
		case ref == nil:
			if !matches || cr.DeletionTimestamp != nil {
				continue
			}
			if !rechecked {
				if err := recheck(ctx); err != nil {
					return nil, err
				}
				rechecked = true
			}
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
				"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(owner, r.Kind)},
				"uid":             cr.UID,
			}})
			if err != nil {
				return nil, err
			}
			adopted, err := revisions.Patch(ctx, cr.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsConflict(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("adopt controller revision %s: %w", cr.Name, err)
			}
			cr = adopted
		}
		owned = append(owned, cr)
	}
	slices.SortStableFunc(owned, func(a, b *appsv1.ControllerRevision) int { return cmp.Compare(a.Revision, b.Revision) })
	return owned, nil
}

// Record makes the revision RevisionName(owner, hash) the newest of owned
// (owner's revisions, from Claim): it creates it with data, or, when it
// exists with data but is not the newest, renumbers it. It returns that
// revision as stored, which is another owner's or holds other data than
// data when the name collides, then left as it is, as kube's
// CreateControllerRevision (the StatefulSet controller then raises its
// collisionCount and tries another hash; the DaemonSet controller goes on
// without a revision until the garbage collector removes a deleted
// DaemonSet's).
func (r Revisions) Record(ctx context.Context, owner metav1.Object, template *corev1.PodTemplateSpec, hash string, data []byte, owned []*appsv1.ControllerRevision) (*appsv1.ControllerRevision, error) {
	name := RevisionName(owner.GetName(), hash)
	var (
		cur    *appsv1.ControllerRevision
		newest int64
	)
	for _, cr := range owned {
		newest = max(newest, cr.Revision)
		if cr.Name == name {
			cur = cr
		}
	}
	revisions := r.Client.AppsV1().ControllerRevisions(owner.GetNamespace())
	switch {
	case cur == nil:
		lbls := maps.Clone(template.Labels)
		if lbls == nil {
			lbls = map[string]string{}
		}
		lbls[r.HashLabel] = hash
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: owner.GetNamespace(), Labels: lbls, Annotations: maps.Clone(owner.GetAnnotations()),
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, r.Kind)}},
			Data:     runtime.RawExtension{Raw: data},
			Revision: newest + 1,
		}
		created, err := revisions.Create(ctx, cr, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Not in the cache yet, a deleted owner's of the same name
			// (which the garbage collector is about to remove), or a
			// collision: the stored one says which.
			created, err = revisions.Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("create controller revision %s: %w", name, err)
		}
		return created, nil
	case !EqualRevisionData(cur.Data.Raw, data):
		return cur, nil // a collision
	case cur.Revision < newest:
		up := cur.DeepCopy()
		up.Revision = newest + 1
		updated, err := revisions.Update(ctx, up, metav1.UpdateOptions{})
		if err != nil {
			return nil, fmt.Errorf("update controller revision %s: %w", name, err)
		}
		return updated, nil
	}
	return cur, nil
}

// Truncate deletes the oldest of owned (owner's revisions) that live does
// not keep, until at most limit of those are left
// (spec.revisionHistoryLimit).
func (r Revisions) Truncate(ctx context.Context, owner metav1.Object, owned []*appsv1.ControllerRevision, limit int32, live func(*appsv1.ControllerRevision) bool) error {
	var history []*appsv1.ControllerRevision
	for _, cr := range owned {
		if !live(cr) {
			history = append(history, cr)
		}
	}
	slices.SortStableFunc(history, func(a, b *appsv1.ControllerRevision) int { return cmp.Compare(a.Revision, b.Revision) })
	revisions := r.Client.AppsV1().ControllerRevisions(owner.GetNamespace())
	for len(history) > int(max(limit, 0)) {
		if err := revisions.Delete(ctx, history[0].Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete controller revision %s: %w", history[0].Name, err)
		}
		history = history[1:]
	}
	return nil
}

// TemplatePatch is the strategic merge patch that restores template, what
// a ControllerRevision holds and kubectl rollout undo applies:
// {"spec":{"template":{..., "$patch":"replace"}}}.
func TemplatePatch(template *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(template)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// TemplateOf returns the pod template a TemplatePatch holds.
func TemplateOf(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var p struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &p); err != nil {
		return nil, fmt.Errorf("controller revision %s: %w", cr.Name, err)
	}
	return &p.Spec.Template, nil
}

// HashRevision is Kubernetes' HashControllerRevision: the FNV-1 32-bit
// hash (fnv.New32) of a revision's data and, when set, the owner's
// collision count in decimal, its decimal value safe-encoded.
func HashRevision(data []byte, collisionCount *int32) string {
	h := fnv.New32()
	h.Write(data)
	if collisionCount != nil {
		fmt.Fprint(h, *collisionCount)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// EqualRevisionData reports whether two revisions' data are the same JSON.
func EqualRevisionData(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
