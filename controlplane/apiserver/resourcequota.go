package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/wasmfleet/wasmfleet/controlplane/quota"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// The ResourceQuota admission of a new object, as Kubernetes' plugin does
// it: the object is charged to each quota of its namespace that limits
// what it uses (and whose scopes it is in), by adding its usage to the
// quota's status.used in the same compare-and-swap way as any update; it
// is refused (403) when that would exceed the quota's hard limits, when a
// quota limiting cpu or memory finds a container without them, or while
// the resourcequota controller has not yet counted what the quota limits.
// Deletions are not admitted: the controller's recount releases them.
// Events are not charged, as in Kubernetes.

// maxQuotaRetries bounds the compare-and-swap retries of one quota.
const maxQuotaRetries = 10

// anyQuota keeps every quota, for the cache that tells whether a namespace
// has any.
func anyQuota([]byte) *struct{} { return &struct{}{} }

// chargeQuotas checks obj, a new object of info's resource, against the
// quotas of its namespace and charges it to those that count it (unless
// dryRun).
func (s *Server) chargeQuotas(ctx context.Context, info *reqInfo, admName string, obj runtime.Object, dryRun bool) error {
	gr := info.res.gvr.GroupResource()
	if !info.res.namespaced || gr == corev1.Resource("events") {
		return nil
	}
	if qs, known := s.resourceQuotas.prefixed(info.namespace + "/"); known && len(qs) == 0 {
		return nil
	}
	page, err := s.store.List(ctx, storage.Prefix("resourcequotas", info.namespace), storage.ListOptions{})
	if err != nil {
		return storageError(err, corev1.Resource("resourcequotas"), "")
	}
	usage := quota.Usage(gr, obj, s.now())
	refuse := func(format string, args ...any) error {
		return apierrors.NewForbidden(gr, admName, fmt.Errorf(format, args...))
	}
	// Every quota is checked before any is charged.
	var charges []storage.Object
	for _, so := range page.Items {
		q, err := decodeQuota(so.Value)
		if err != nil {
			return err
		}
		charged, err := chargeQuota(q, obj, usage, refuse)
		if err != nil {
			return err
		}
		if charged {
			charges = append(charges, so)
		}
	}
	if dryRun {
		return nil
	}
	for _, so := range charges {
		if err := s.chargeOne(ctx, so, obj, usage, refuse); err != nil {
			return err
		}
	}
	return nil
}

// chargeOne charges obj to the quota in so, reading it again as long as
// its compare-and-swap loses to another write.
func (s *Server) chargeOne(ctx context.Context, so storage.Object, obj runtime.Object, usage corev1.ResourceList, refuse func(string, ...any) error) error {
	for range maxQuotaRetries {
		q, err := decodeQuota(so.Value)
		if err != nil {
			return err
		}
		charged, err := chargeQuota(q, obj, usage, refuse)
		if err != nil || !charged {
			return err
		}
		value, err := encodeStored(q)
		if err != nil {
			return err
		}
		rev, err := s.store.Update(ctx, so.Key, value, so.Rev, so.Lease)
		if err == nil {
			s.wrote("resourcequotas", rev)
			return nil
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil // deleted meanwhile: nothing to charge
		}
		if !errors.Is(err, storage.ErrConflict) {
			return storageError(err, corev1.Resource("resourcequotas"), q.Name)
		}
		if so, err = s.store.Get(ctx, so.Key); errors.Is(err, storage.ErrNotFound) {
			return nil
		} else if err != nil {
			return storageError(err, corev1.Resource("resourcequotas"), q.Name)
		}
	}
	return apierrors.NewConflict(corev1.Resource("resourcequotas"), "", errors.New("the quotas of the namespace changed too often; try again"))
}

func decodeQuota(value []byte) (*corev1.ResourceQuota, error) {
	q := &corev1.ResourceQuota{}
	if err := json.Unmarshal(value, q); err != nil {
		return nil, fmt.Errorf("decode resource quota: %w", err)
	}
	return q, nil
}

// chargeQuota adds usage, obj's, to q's status.used when q counts obj, and
// says whether it did; an error is the refusal to admit obj.
func chargeQuota(q *corev1.ResourceQuota, obj runtime.Object, usage corev1.ResourceList, refuse func(string, ...any) error) (bool, error) {
	hard := q.Status.Hard
	// As Kubernetes, a quota counts what its status says it limits.
	limited := quota.Names(quota.Mask(usage, quota.Names(hard)))
	if len(limited) == 0 || !quota.InScope(q, obj) {
		return false, nil
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		if err := quota.Constraints(hard, pod); err != nil {
			return false, refuse("failed quota: %s: %v", q.Name, err)
		}
	}
	var unknown []string
	for _, name := range limited {
		if _, ok := q.Status.Used[name]; !ok {
			unknown = append(unknown, string(name))
		}
	}
	if len(unknown) > 0 {
		return false, refuse("status unknown for quota: %s, resources: %s", q.Name, strings.Join(unknown, ","))
	}
	requested := corev1.ResourceList{}
	for _, name := range limited {
		if u := usage[name]; !u.IsZero() {
			requested[name] = u
		}
	}
	if len(requested) == 0 {
		return false, nil
	}
	used := quota.Add(q.Status.Used, requested)
	var exceeded []corev1.ResourceName
	for _, name := range quota.Names(requested) {
		if u, h := used[name], hard[name]; u.Cmp(h) > 0 {
			exceeded = append(exceeded, name)
		}
	}
	if len(exceeded) > 0 {
		return false, refuse("exceeded quota: %s, requested: %s, used: %s, limited: %s", q.Name,
			quota.String(quota.Mask(requested, exceeded)), quota.String(quota.Mask(q.Status.Used, exceeded)), quota.String(quota.Mask(hard, exceeded)))
	}
	q.Status.Used = used
	return true, nil
}
