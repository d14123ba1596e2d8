package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

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
// An update of a service is charged what it adds (its type can change to
// NodePort or LoadBalancer); other updates are not charged, as Kubernetes'
// evaluators handle only creates of other kinds (and pods' resize, which
// is not served). Deletions are not admitted: the controller's recount
// releases them. Events are not charged, as in Kubernetes.

// maxQuotaRetries bounds the compare-and-swap retries of one quota.
const maxQuotaRetries = 10

// anyQuota keeps every quota, for the cache that tells whether a namespace
// has any.
func anyQuota([]byte) *struct{} { return &struct{}{} }

// charge is an object's charge to quotas: obj of resource gr, adding
// usage; refuse words a refusal.
type charge struct {
	gr     schema.GroupResource
	obj    runtime.Object
	usage  corev1.ResourceList
	refuse func(string, ...any) error
}

// chargeQuotas checks obj, a new object of info's resource, against the
// quotas of its namespace and charges it to those that count it (unless
// dryRun). For an update, old is the object it replaces, and obj is
// charged only what it uses beyond old, as in Kubernetes. refund takes
// the charges back, for a write that then fails.
func (s *Server) chargeQuotas(ctx context.Context, info *reqInfo, admName string, obj, old runtime.Object, dryRun bool) (refund func(), err error) {
	refund = func() {}
	gr := info.res.gvr.GroupResource()
	// As kube-apiserver's quota admission, which ignores core events
	// only: events.k8s.io/v1 writes are charged to count/events.events.k8s.io.
	if !info.res.namespaced || gr == corev1.Resource("events") {
		return refund, nil
	}
	if qs, known := s.resourceQuotas.prefixed(info.namespace + "/"); known && len(qs) == 0 {
		return refund, nil
	}
	page, err := s.store.List(ctx, storage.Prefix("resourcequotas", info.namespace), storage.ListOptions{})
	if err != nil {
		return refund, storageError(err, corev1.Resource("resourcequotas"), "")
	}
	usage := quota.Usage(gr, obj, s.now())
	if old != nil {
		usage = quota.Subtract(usage, quota.Usage(gr, old, s.now()))
	}
	c := &charge{gr: gr, obj: obj, usage: usage, refuse: func(format string, args ...any) error {
		return apierrors.NewForbidden(gr, admName, fmt.Errorf(format, args...))
	}}
	// Every quota is checked before any is charged.
	var due []storage.Object
	for _, so := range page.Items {
		q, err := decodeQuota(so.Value)
		if err != nil {
			return refund, err
		}
		if _, ok, err := c.apply(q); err != nil {
			return refund, err
		} else if ok {
			due = append(due, so)
		}
	}
	if dryRun {
		return refund, nil
	}
	var charged []chargedQuota
	refund = func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, cq := range charged {
			if _, err := s.updateQuota(ctx, storage.Object{Key: cq.key}, func(q *corev1.ResourceQuota) (bool, error) {
				q.Status.Used = quota.Subtract(q.Status.Used, cq.amount)
				return true, nil
			}); err != nil {
				s.log.Warn("resource quota: taking back the charge of a failed create (the controller's next recount will)", "quota", cq.key, "err", err)
			}
		}
	}
	for _, so := range due {
		var amount corev1.ResourceList
		ok, err := s.updateQuota(ctx, so, func(q *corev1.ResourceQuota) (bool, error) {
			var ok bool
			var err error
			amount, ok, err = c.apply(q)
			return ok, err
		})
		if err != nil {
			refund()
			return func() {}, err
		}
		if ok {
			charged = append(charged, chargedQuota{key: so.Key, amount: amount})
		}
	}
	return refund, nil
}

// chargedQuota is what a charge added to the quota at key.
type chargedQuota struct {
	key    string
	amount corev1.ResourceList
}

// updateQuota changes the quota so (so.Key alone: read it first) with
// change (which says whether it changed it), reading it again as long as
// its compare-and-swap loses to another write; ok is false when the quota
// is gone or change made no change.
func (s *Server) updateQuota(ctx context.Context, so storage.Object, change func(*corev1.ResourceQuota) (bool, error)) (ok bool, err error) {
	for range maxQuotaRetries {
		if so.Value == nil {
			so, err = s.store.Get(ctx, so.Key)
			if errors.Is(err, storage.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, storageError(err, corev1.Resource("resourcequotas"), "")
			}
		}
		q, err := decodeQuota(so.Value)
		if err != nil {
			return false, err
		}
		if ok, err := change(q); err != nil || !ok {
			return false, err
		}
		value, err := encodeStored(q)
		if err != nil {
			return false, err
		}
		rev, err := s.store.Update(ctx, so.Key, value, so.Rev, so.Lease)
		if err == nil {
			s.wrote("resourcequotas", rev)
			return true, nil
		}
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return false, storageError(err, corev1.Resource("resourcequotas"), q.Name)
		}
		so = storage.Object{Key: so.Key}
	}
	return false, apierrors.NewConflict(corev1.Resource("resourcequotas"), "", errors.New("the quotas of the namespace changed too often; try again"))
}

func decodeQuota(value []byte) (*corev1.ResourceQuota, error) {
	q := &corev1.ResourceQuota{}
	if err := json.Unmarshal(value, q); err != nil {
		return nil, fmt.Errorf("decode resource quota: %w", err)
	}
	return q, nil
}

// apply adds the charge to q's status.used when q counts the object, and
// returns what it added; an error is the refusal to admit the object. As
// in Kubernetes, a quota counts what its status says it limits, and the
// resources an object of its kind counts towards decide whether it
// applies (a pod without a memory limit meets a quota on limits.memory).
func (c *charge) apply(q *corev1.ResourceQuota) (corev1.ResourceList, bool, error) {
	hard := q.Status.Hard
	restricted := quota.Matching(c.gr, quota.Names(hard))
	if len(restricted) == 0 || !quota.InScope(q, c.obj) {
		return nil, false, nil
	}
	if pod, ok := c.obj.(*corev1.Pod); ok {
		if err := quota.Constraints(quota.Mask(hard, restricted), pod); err != nil {
			return nil, false, c.refuse("failed quota: %s: %v", q.Name, err)
		}
	}
	var unknown []string
	for _, name := range restricted {
		if _, ok := q.Status.Used[name]; !ok {
			unknown = append(unknown, string(name))
		}
	}
	if len(unknown) > 0 {
		return nil, false, c.refuse("status unknown for quota: %s, resources: %s", q.Name, strings.Join(unknown, ","))
	}
	requested := corev1.ResourceList{}
	for _, name := range restricted {
		if u := c.usage[name]; !u.IsZero() {
			requested[name] = u
		}
	}
	if len(requested) == 0 {
		return nil, false, nil
	}
	used := quota.Add(q.Status.Used, requested)
	var exceeded []corev1.ResourceName
	for _, name := range quota.Names(requested) {
		if u, h := used[name], hard[name]; u.Cmp(h) > 0 {
			exceeded = append(exceeded, name)
		}
	}
	if len(exceeded) > 0 {
		return nil, false, c.refuse("exceeded quota: %s, requested: %s, used: %s, limited: %s", q.Name,
			quota.String(quota.Mask(requested, exceeded)), quota.String(quota.Mask(q.Status.Used, exceeded)), quota.String(quota.Mask(hard, exceeded)))
	}
	q.Status.Used = used
	return requested, true, nil
}
