// Package gc is the garbage collector: it deletes objects whose owners
// (metadata.ownerReferences) are all gone, as Kubernetes' garbage collector
// does, and carries out the three deletion propagation policies:
//
//   - background: once an owner is gone, its dependents are garbage. An
//     ownerReference is dangling when no object with the referenced name
//     and UID exists (checked against the caches, then with a GET); a
//     dependent whose owners are all dangling is deleted, one with a solid
//     owner left only loses its dangling references;
//   - foreground: an owner with a deletionTimestamp and the
//     foregroundDeletion finalizer has its dependents deleted (those that
//     have dependents of their own in the foreground too); once no
//     dependent with blockOwnerDeletion=true is left, the finalizer is
//     removed and the API server removes the owner;
//   - orphan: an owner with a deletionTimestamp and the orphan finalizer
//     has its references removed from all dependents, then the finalizer.
//
// The API server adds those finalizers from DeleteOptions.propagationPolicy.
// The collector watches every resource discovery lists as listable,
// watchable and deletable (events excepted), rediscovering periodically,
// through metadata informers of its own (k8s.io/client-go/metadata): the
// API server answers them with PartialObjectMetadata, so the caches hold
// only metadata (names, UIDs, owner references, finalizers), never specs,
// statuses or data; reads, patches and deletes go through the same
// metadata client.
//
// The decisions are pure functions in decide.go.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (logs, workqueue).
const Name = "garbage-collector"

// Informer indexes: objects by their UID and by their owners' UIDs.
const (
	uidIndex   = "uid"
	ownerIndex = "ownerUID"
)

// absentCacheSize bounds the set of owner UIDs known to be gone.
const absentCacheSize = 1024

// Options tune the collector; zero values take the defaults.
type Options struct {
	// DiscoveryPeriod is how often resources are rediscovered, to watch
	// new ones. Default 30s, as Kubernetes.
	DiscoveryPeriod time.Duration
	// Ignored resources are never watched nor collected. Default: core
	// and events.k8s.io events, as Kubernetes.
	Ignored []schema.GroupResource
}

func (o Options) withDefaults() Options {
	if o.DiscoveryPeriod <= 0 {
		o.DiscoveryPeriod = 30 * time.Second
	}
	if o.Ignored == nil {
		o.Ignored = []schema.GroupResource{{Resource: "events"}, {Group: "events.k8s.io", Resource: "events"}}
	}
	return o
}

// resourceInfo is one discovered resource.
type resourceInfo struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// monitor is the informer of one resource.
type monitor struct {
	resourceInfo
	informer cache.SharedIndexInformer
}

// Controller is the garbage collector. Build it with New; Run it once.
type Controller struct {
	discovery discovery.DiscoveryInterface
	meta      metadata.Interface
	opts      Options
	log       *slog.Logger
	queue     *controller.Queue

	mu       sync.RWMutex
	monitors map[schema.GroupVersionResource]*monitor
	kinds    map[schema.GroupKind]resourceInfo
	absent   map[types.UID]struct{}
	// startMonitor runs a new informer for the lifetime of Run.
	startMonitor func(cache.SharedIndexInformer)
}

var _ controller.Controller = (*Controller)(nil)

// New builds the collector. client's discovery lists the resources to
// watch; mc (metadata.NewForConfig) reads, watches, patches and deletes
// them, seeing only their metadata.
func New(client kubernetes.Interface, mc metadata.Interface, opts Options, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		discovery: client.Discovery(),
		meta:      mc,
		opts:      opts.withDefaults(),
		log:       log.With("controller", Name),
		monitors:  map[schema.GroupVersionResource]*monitor{},
		kinds:     map[schema.GroupKind]resourceInfo{},
		absent:    map[types.UID]struct{}{},
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run discovers the resources, watches them and collects garbage with
// workers workers until ctx ends; it stops its informers before returning.
func (c *Controller) Run(ctx context.Context, workers int) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.startMonitor = func(inf cache.SharedIndexInformer) { wg.Go(func() { inf.RunWithContext(ctx) }) }
	c.mu.Unlock()

	if err := c.resync(); err != nil {
		c.log.Warn("discovery incomplete; retrying", "err", err)
	}
	c.mu.RLock()
	var synced []cache.InformerSynced
	for _, m := range c.monitors {
		synced = append(synced, m.informer.HasSynced)
	}
	c.mu.RUnlock()
	wg.Go(func() {
		t := time.NewTicker(c.opts.DiscoveryPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := c.resync(); err != nil {
				c.log.Warn("rediscovery incomplete", "err", err)
			}
		}
	})
	return c.queue.Run(ctx, workers, synced...)
}

// resync discovers the served resources and starts informers for new
// ones. A partial discovery failure still uses what was found.
func (c *Controller) resync() error {
	lists, derr := c.discovery.ServerPreferredResources()
	if len(lists) == 0 && derr != nil {
		return fmt.Errorf("discover resources: %w", derr)
	}
	kinds := map[schema.GroupKind]resourceInfo{}
	var watch []resourceInfo
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			info := resourceInfo{gvr: gv.WithResource(r.Name), namespaced: r.Namespaced}
			kinds[gv.WithKind(r.Kind).GroupKind()] = info
			if slices.Contains(c.opts.Ignored, info.gvr.GroupResource()) {
				continue
			}
			verbs := sets(r.Verbs)
			if verbs["list"] && verbs["watch"] && verbs["delete"] {
				watch = append(watch, info)
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for gk, info := range kinds {
		c.kinds[gk] = info
	}
	for _, info := range watch {
		if _, ok := c.monitors[info.gvr]; ok {
			continue
		}
		m := &monitor{resourceInfo: info, informer: c.newInformer(info.gvr)}
		c.monitors[info.gvr] = m
		c.startMonitor(m.informer)
	}
	if derr != nil {
		return fmt.Errorf("discover resources: %w", derr)
	}
	return nil
}

func sets(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func (c *Controller) newInformer(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	inf := metadatainformer.NewFilteredMetadataInformer(c.meta, gvr, metav1.NamespaceAll, 0, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
		uidIndex: func(obj any) ([]string, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			return []string{string(m.GetUID())}, nil
		},
		ownerIndex: func(obj any) ([]string, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			var uids []string
			for _, r := range m.GetOwnerReferences() {
				uids = append(uids, string(r.UID))
			}
			return uids, nil
		},
	}, nil).Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onChange(gvr, nil, obj) },
		UpdateFunc: func(old, obj any) { c.onChange(gvr, old, obj) },
		DeleteFunc: func(obj any) { c.onDelete(obj) },
	})
	return inf
}

// key is the queue key of an object: group/version/resource/namespace/name.
func key(gvr schema.GroupVersionResource, m metav1.Object) string {
	return strings.Join([]string{gvr.Group, gvr.Version, gvr.Resource, m.GetNamespace(), m.GetName()}, "/")
}

func parseKey(k string) (schema.GroupVersionResource, string, string, error) {
	p := strings.Split(k, "/")
	if len(p) != 5 {
		return schema.GroupVersionResource{}, "", "", fmt.Errorf("bad key %q", k)
	}
	return schema.GroupVersionResource{Group: p[0], Version: p[1], Resource: p[2]}, p[3], p[4], nil
}

// onChange queues an object that has owners or is being deleted with a
// propagation finalizer, and the owners it may be holding up.
func (c *Controller) onChange(gvr schema.GroupVersionResource, old, obj any) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if len(m.GetOwnerReferences()) > 0 || (m.GetDeletionTimestamp() != nil &&
		(hasFinalizer(m, metav1.FinalizerOrphanDependents) || hasFinalizer(m, metav1.FinalizerDeleteDependents))) {
		c.queue.Add(key(gvr, m))
	}
	refs := m.GetOwnerReferences()
	if old != nil {
		if om, err := meta.Accessor(old); err == nil {
			refs = append(slices.Clone(refs), om.GetOwnerReferences()...)
		}
	}
	c.queueWaitingOwners(m.GetNamespace(), refs)
}

// onDelete queues the dependents of a deleted object (they may be garbage
// now) and its owners (they may be waiting for it).
func (c *Controller) onDelete(obj any) {
	obj = controller.Untomb(obj)
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	for _, d := range c.dependents(m.GetUID()) {
		c.queue.Add(key(d.gvr, d.obj))
	}
	c.queueWaitingOwners(m.GetNamespace(), m.GetOwnerReferences())
}

// queueWaitingOwners queues the cached owners among refs that are being
// deleted in the foreground.
func (c *Controller) queueWaitingOwners(ns string, refs []metav1.OwnerReference) {
	for _, ref := range refs {
		if m, owner, ok := c.cachedOwner(ns, ref); ok && deletingDependents(owner) {
			c.queue.Add(key(m.gvr, owner))
		}
	}
}

// cachedOwner finds the owner ref points at in the caches.
func (c *Controller) cachedOwner(ns string, ref metav1.OwnerReference) (*monitor, metav1.Object, bool) {
	info, ok := c.kind(ref)
	if !ok {
		return nil, nil, false
	}
	c.mu.RLock()
	m := c.monitors[info.gvr]
	c.mu.RUnlock()
	if m == nil {
		return nil, nil, false
	}
	objs, err := m.informer.GetIndexer().ByIndex(uidIndex, string(ref.UID))
	if err != nil {
		return nil, nil, false
	}
	for _, o := range objs {
		om, err := meta.Accessor(o)
		if err != nil || om.GetName() != ref.Name || (info.namespaced && om.GetNamespace() != ns) {
			continue
		}
		return m, om, true
	}
	return nil, nil, false
}

func (c *Controller) kind(ref metav1.OwnerReference) (resourceInfo, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return resourceInfo{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	info, ok := c.kinds[gv.WithKind(ref.Kind).GroupKind()]
	return info, ok
}

// dependent is a cached object with an owner reference.
type dependent struct {
	gvr schema.GroupVersionResource
	obj metav1.Object
}

// dependents returns the cached objects that reference owner.
func (c *Controller) dependents(owner types.UID) []dependent {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []dependent
	for gvr, m := range c.monitors {
		objs, err := m.informer.GetIndexer().ByIndex(ownerIndex, string(owner))
		if err != nil {
			continue
		}
		for _, o := range objs {
			if om, err := meta.Accessor(o); err == nil {
				out = append(out, dependent{gvr, om})
			}
		}
	}
	return out
}

// sync handles one object: an owner being deleted with the orphan or
// foreground finalizer, or a dependent whose owners may be gone.
func (c *Controller) sync(ctx context.Context, k string) error {
	gvr, ns, name, err := parseKey(k)
	if err != nil {
		return nil
	}
	c.mu.RLock()
	m := c.monitors[gvr]
	c.mu.RUnlock()
	if m == nil {
		return nil
	}
	ck := name
	if ns != "" {
		ck = ns + "/" + name
	}
	o, exists, err := m.informer.GetIndexer().GetByKey(ck)
	if err != nil || !exists {
		return err
	}
	obj, err := meta.Accessor(o)
	if err != nil {
		return nil
	}
	if obj.GetDeletionTimestamp() != nil {
		if hasFinalizer(obj, metav1.FinalizerOrphanDependents) {
			if err := c.orphan(ctx, gvr, obj); err != nil {
				return err
			}
		}
		if hasFinalizer(obj, metav1.FinalizerDeleteDependents) {
			return c.deleteDependents(ctx, gvr, obj)
		}
		return nil
	}
	if len(obj.GetOwnerReferences()) == 0 {
		return nil
	}
	return c.attemptToDelete(ctx, gvr, obj)
}

// orphan removes the references to owner from all its dependents, then the
// owner's orphan finalizer.
func (c *Controller) orphan(ctx context.Context, gvr schema.GroupVersionResource, owner metav1.Object) error {
	var errs []error
	for _, d := range c.dependents(owner.GetUID()) {
		err := c.updateMeta(ctx, d.gvr, d.obj, func(m metav1.Object) bool {
			refs, changed := withoutRefs(m.GetOwnerReferences(), []types.UID{owner.GetUID()})
			m.SetOwnerReferences(refs)
			return changed
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("orphan %s %s/%s: %w", d.gvr.Resource, d.obj.GetNamespace(), d.obj.GetName(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.log.Debug("orphaned dependents", "owner", key(gvr, owner))
	return c.removeFinalizer(ctx, gvr, owner, metav1.FinalizerOrphanDependents)
}

// deleteDependents advances the foreground deletion of owner: it queues its
// dependents (they are garbage now) and removes the foregroundDeletion
// finalizer once none with blockOwnerDeletion is left.
func (c *Controller) deleteDependents(ctx context.Context, gvr schema.GroupVersionResource, owner metav1.Object) error {
	blocking := 0
	for _, d := range c.dependents(owner.GetUID()) {
		if blocksOwner(d.obj, owner.GetUID()) {
			blocking++
		}
		if d.obj.GetDeletionTimestamp() == nil {
			c.queue.Add(key(d.gvr, d.obj))
		}
	}
	if blocking > 0 {
		return nil
	}
	return c.removeFinalizer(ctx, gvr, owner, metav1.FinalizerDeleteDependents)
}

// attemptToDelete collects item if its owners are gone (see
// decideDependent). The caches answer the common case, all owners solid;
// otherwise the item and its unresolved owners are read from the API
// server before anything is written.
func (c *Controller) attemptToDelete(ctx context.Context, gvr schema.GroupVersionResource, cached metav1.Object) error {
	allSolid := true
	for _, ref := range cached.GetOwnerReferences() {
		if st, _ := c.ownerState(ctx, cached, ref, false); st != ownerSolid {
			allSolid = false
			break
		}
	}
	if allSolid {
		return nil
	}
	item, err := c.get(ctx, gvr, cached.GetNamespace(), cached.GetName())
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if item.GetUID() != cached.GetUID() || item.GetDeletionTimestamp() != nil {
		return nil
	}
	states := map[types.UID]ownerState{}
	for _, ref := range item.GetOwnerReferences() {
		st, err := c.ownerState(ctx, item, ref, true)
		if err != nil {
			return err
		}
		states[ref.UID] = st
	}
	deps := c.dependents(item.GetUID())
	cycle := false
	for _, d := range deps {
		if deletingDependents(d.obj) {
			cycle = true
		}
	}
	v := decideDependent(item, states, len(deps) > 0, cycle)
	switch {
	case v.keep:
		return nil
	case len(v.removeRefs) > 0:
		c.log.Debug("removing references to gone owners", "object", key(gvr, item), "owners", v.removeRefs)
		return c.updateMeta(ctx, gvr, item, func(m metav1.Object) bool {
			refs, changed := withoutRefs(m.GetOwnerReferences(), v.removeRefs)
			m.SetOwnerReferences(refs)
			return changed
		})
	}
	if v.unblock {
		err := c.updateMeta(ctx, gvr, item, func(m metav1.Object) bool {
			refs, changed := unblocked(m.GetOwnerReferences())
			m.SetOwnerReferences(refs)
			return changed
		})
		if err != nil {
			return err
		}
	}
	c.log.Debug("deleting garbage", "object", key(gvr, item), "propagation", v.policy)
	uid := item.GetUID()
	err = c.resource(gvr, item.GetNamespace()).Delete(ctx, item.GetName(), metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: &v.policy,
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s: %w", key(gvr, item), err)
	}
	return nil
}

// ownerState resolves one ownerReference of item: from the caches, and
// when live from the API server if the caches do not have the owner.
func (c *Controller) ownerState(ctx context.Context, item metav1.Object, ref metav1.OwnerReference, live bool) (ownerState, error) {
	info, ok := c.kind(ref)
	if !ok {
		if !live {
			return ownerUnknown, nil
		}
		return ownerUnknown, fmt.Errorf("owner %s of %s/%s: kind %s of %s is not served", ref.Name, item.GetNamespace(), item.GetName(), ref.Kind, ref.APIVersion)
	}
	ns := ""
	if info.namespaced {
		if item.GetNamespace() == "" {
			// A cluster-scoped object cannot have a namespaced owner.
			return ownerDangling, nil
		}
		ns = item.GetNamespace()
	}
	if _, owner, ok := c.cachedOwner(ns, ref); ok {
		return stateOf(owner), nil
	}
	c.mu.RLock()
	_, gone := c.absent[ref.UID]
	c.mu.RUnlock()
	if gone {
		return ownerDangling, nil
	}
	if !live {
		return ownerUnknown, nil
	}
	owner, err := c.get(ctx, info.gvr, ns, ref.Name)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return ownerUnknown, fmt.Errorf("get owner %s %s/%s: %w", info.gvr.Resource, ns, ref.Name, err)
	case owner.GetUID() == ref.UID:
		return stateOf(owner), nil
	}
	c.mu.Lock()
	if len(c.absent) >= absentCacheSize {
		clear(c.absent)
	}
	c.absent[ref.UID] = struct{}{}
	c.mu.Unlock()
	return ownerDangling, nil
}

func (c *Controller) resource(gvr schema.GroupVersionResource, ns string) metadata.ResourceInterface {
	if ns == "" {
		return c.meta.Resource(gvr)
	}
	return c.meta.Resource(gvr).Namespace(ns)
}

func (c *Controller) get(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (metav1.Object, error) {
	p, err := c.resource(gvr, ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// removeFinalizer removes finalizer from obj (the live object with obj's
// UID).
func (c *Controller) removeFinalizer(ctx context.Context, gvr schema.GroupVersionResource, obj metav1.Object, finalizer string) error {
	return c.updateMeta(ctx, gvr, obj, func(m metav1.Object) bool {
		old := m.GetFinalizers()
		fins := slices.DeleteFunc(slices.Clone(old), func(f string) bool { return f == finalizer })
		m.SetFinalizers(fins)
		return len(fins) != len(old)
	})
}

// updateMeta reads the live object with obj's name and UID, lets mutate
// change its ownerReferences or finalizers (reporting whether it did) and
// writes them back with a JSON merge patch conditioned on the
// resourceVersion read, retrying on conflict. A vanished object is fine.
func (c *Controller) updateMeta(ctx context.Context, gvr schema.GroupVersionResource, obj metav1.Object, mutate func(metav1.Object) bool) error {
	ri := c.resource(gvr, obj.GetNamespace())
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.GetUID() != obj.GetUID() {
			return nil
		}
		before := struct {
			refs []metav1.OwnerReference
			fins []string
		}{cur.GetOwnerReferences(), cur.GetFinalizers()}
		if !mutate(cur) {
			return nil
		}
		md := map[string]any{"uid": cur.GetUID(), "resourceVersion": cur.GetResourceVersion()}
		if refs := cur.GetOwnerReferences(); !slices.EqualFunc(refs, before.refs, ownerRefEqual) {
			if len(refs) == 0 {
				md["ownerReferences"] = nil
			} else {
				md["ownerReferences"] = refs
			}
		}
		if fins := cur.GetFinalizers(); !slices.Equal(fins, before.fins) {
			if len(fins) == 0 {
				md["finalizers"] = nil
			} else {
				md["finalizers"] = fins
			}
		}
		patch, err := json.Marshal(map[string]any{"metadata": md})
		if err != nil {
			return err
		}
		_, err = ri.Patch(ctx, obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update %s: %w", key(gvr, obj), err)
	}
	return nil
}

func ownerRefEqual(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && a.Name == b.Name && a.Kind == b.Kind && a.APIVersion == b.APIVersion &&
		ptrEq(a.Controller, b.Controller) && ptrEq(a.BlockOwnerDeletion, b.BlockOwnerDeletion)
}

func ptrEq(a, b *bool) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
