package daemonset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// defaultRevisionHistoryLimit is apps/v1's default spec.revisionHistoryLimit.
const defaultRevisionHistoryLimit = 10

// recordRevision keeps a ControllerRevision for each template of ds, as
// Kubernetes' daemon controller does, which kubectl rollout history and
// undo read (controller.Revisions, which also adopts matching orphans):
// the current template's revision, named by hash, is the highest, and at
// most spec.revisionHistoryLimit others are kept.
func (c *Controller) recordRevision(ctx context.Context, ds *appsv1.DaemonSet, sel labels.Selector, hash string) error {
	owned, err := c.revisions.Claim(ctx, ds, sel, func(ctx context.Context) error { return c.recheck(ctx, ds) })
	if err != nil {
		return err
	}
	data, err := controller.TemplatePatch(&ds.Spec.Template)
	if err != nil {
		return err
	}
	cur, err := c.revisions.Record(ctx, ds, &ds.Spec.Template, hash, data, owned)
	if err != nil {
		return err
	}
	limit := int32(defaultRevisionHistoryLimit)
	if l := ds.Spec.RevisionHistoryLimit; l != nil {
		limit = *l
	}
	return c.revisions.Truncate(ctx, ds, owned, limit, func(cr *appsv1.ControllerRevision) bool { return cr.Name == cur.Name })
}
