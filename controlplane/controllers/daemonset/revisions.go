package daemonset

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// defaultRevisionHistoryLimit is apps/v1's default spec.revisionHistoryLimit.
const defaultRevisionHistoryLimit = 10

// recordRevision keeps a ControllerRevision for each template of ds, as
// Kubernetes' daemon controller does, which kubectl rollout history and
// undo read: the current template's revision is the highest (a template
// rolled back to gets its old revision renumbered), and at most
// spec.revisionHistoryLimit others are kept.
func (c *Controller) recordRevision(ctx context.Context, ds *appsv1.DaemonSet, hash string) error {
	all, err := c.crLister.ControllerRevisions(ds.Namespace).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list controller revisions: %w", err)
	}
	var (
		owned  []*appsv1.ControllerRevision
		cur    *appsv1.ControllerRevision
		newest int64
	)
	name := ds.Name + "-" + hash
	for _, r := range all {
		if !metav1.IsControlledBy(r, ds) {
			continue
		}
		newest = max(newest, r.Revision)
		if r.Name == name {
			cur = r
		} else {
			owned = append(owned, r)
		}
	}
	revisions := c.client.AppsV1().ControllerRevisions(ds.Namespace)
	switch {
	case cur == nil:
		data, err := templatePatch(ds)
		if err != nil {
			return err
		}
		lbls := maps.Clone(ds.Spec.Template.Labels)
		if lbls == nil {
			lbls = map[string]string{}
		}
		lbls[RevisionHashLabel] = hash
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace, Labels: lbls, Annotations: maps.Clone(ds.Annotations),
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, controllerKind)}},
			Data:     runtime.RawExtension{Raw: data},
			Revision: newest + 1,
		}
		// AlreadyExists: the revision of a deleted DaemonSet of the same
		// name, which the garbage collector is about to remove.
		if _, err := revisions.Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create controller revision %s: %w", name, err)
		}
	case cur.Revision < newest:
		up := cur.DeepCopy()
		up.Revision = newest + 1
		if _, err := revisions.Update(ctx, up, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update controller revision %s: %w", name, err)
		}
	}
	limit := defaultRevisionHistoryLimit
	if l := ds.Spec.RevisionHistoryLimit; l != nil {
		limit = int(*l)
	}
	slices.SortFunc(owned, func(a, b *appsv1.ControllerRevision) int { return cmp.Compare(a.Revision, b.Revision) })
	for len(owned) > limit {
		if err := revisions.Delete(ctx, owned[0].Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete controller revision %s: %w", owned[0].Name, err)
		}
		owned = owned[1:]
	}
	return nil
}

// templatePatch is the strategic merge patch that restores ds's template,
// what kubectl rollout undo applies: {"spec":{"template":{...,
// "$patch":"replace"}}}.
func templatePatch(ds *appsv1.DaemonSet) ([]byte, error) {
	b, err := json.Marshal(ds.Spec.Template)
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
