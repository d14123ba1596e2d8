// Package resourcequota is the resource quota controller, as Kubernetes'
// is: it keeps each ResourceQuota's status, hard as its spec says and used
// as counted in its namespace by package quota's rules, so the API
// server's admission can charge new objects to it. It recounts a
// namespace's quotas when one's spec changes, at the informers' resyncs,
// and when a pod or service in it goes or stops counting, or an object of
// a resource a quota counts (count/<resource>.<group>, watched through
// metadata informers started for the resources quotas name) goes:
// deletions are released this way, as by Kubernetes' replenishment. A resource the API does not
// serve is left out of status.used: the admission then refuses what the
// quota would count ("status unknown").
package resourcequota

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
	"github.com/wasmfleet/wasmfleet/controlplane/quota"
)

// Name is the controller's name (logs, workqueue).
const Name = "resourcequota"

// Controller is the resource quota controller. Build it with New; Run it
// once.
type Controller struct {
	client   kubernetes.Interface
	meta     metadata.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	quotas   corelisters.ResourceQuotaLister
	pods     corelisters.PodLister
	services corelisters.ServiceLister
	synced   []cache.InformerSynced
	queue    *controller.Queue
	now      func() time.Time
	log      *slog.Logger

	mu sync.Mutex
	// ctx is Run's, for the counters started later.
	ctx context.Context
	// counters are the metadata informers of the resources quotas count
	// by object; missed says when the API was last found not to serve one.
	counters map[schema.GroupResource]cache.SharedIndexInformer
	missed   map[schema.GroupResource]time.Time
}

// rediscover is how long a resource the API did not serve is taken as
// still missing before discovery is asked again.
const rediscover = time.Minute

var _ controller.Controller = (*Controller)(nil)

// New builds the controller on factory's ResourceQuota, Pod and Service
// informers (registering its handlers; the caller starts the factory);
// other resources are counted through mc.
func New(client kubernetes.Interface, mc metadata.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	qi, pi, si := factory.Core().V1().ResourceQuotas(), factory.Core().V1().Pods(), factory.Core().V1().Services()
	c := &Controller{
		client:   client,
		meta:     mc,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery())),
		quotas:   qi.Lister(),
		pods:     pi.Lister(),
		services: si.Lister(),
		synced:   []cache.InformerSynced{qi.Informer().HasSynced, pi.Informer().HasSynced, si.Informer().HasSynced},
		now:      time.Now,
		log:      log.With("controller", Name),
		counters: map[schema.GroupResource]cache.SharedIndexInformer{},
		missed:   map[schema.GroupResource]time.Time{},
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	// As Kubernetes: a quota is recounted when its spec changes (not on
	// the admission's charges to its status) and on the informer's
	// resyncs; what is deleted or stops counting releases its share at
	// once; what is created was charged by the admission.
	qi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueNamespace,
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.ResourceQuota), obj.(*corev1.ResourceQuota)
			if o.ResourceVersion == n.ResourceVersion || !quota.Equal(o.Spec.Hard, n.Spec.Hard) {
				c.enqueueNamespace(obj)
			}
		},
	})
	pi.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			if quota.Counted(old.(*corev1.Pod), c.now()) != quota.Counted(obj.(*corev1.Pod), c.now()) {
				c.enqueueQuoted(obj)
			}
		},
		DeleteFunc: c.enqueueQuoted,
	})
	si.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			if !quota.Equal(quota.Usage(quota.Services, old, c.now()), quota.Usage(quota.Services, obj, c.now())) {
				c.enqueueQuoted(obj)
			}
		},
		DeleteFunc: c.enqueueQuoted,
	})
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run keeps the quotas' status with workers workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	return c.queue.Run(ctx, workers, c.synced...)
}

// enqueueNamespace queues the namespace of obj.
func (c *Controller) enqueueNamespace(obj any) {
	obj = controller.Untomb(obj)
	if m, err := meta.Accessor(obj); err == nil {
		c.queue.Add(m.GetNamespace())
	}
}

// enqueueQuoted queues the namespace of obj when it has quotas.
func (c *Controller) enqueueQuoted(obj any) {
	obj = controller.Untomb(obj)
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	if qs, err := c.quotas.ResourceQuotas(m.GetNamespace()).List(labels.Everything()); err == nil && len(qs) > 0 {
		c.queue.Add(m.GetNamespace())
	}
}

// sync recounts the quotas of namespace ns.
func (c *Controller) sync(ctx context.Context, ns string) error {
	qs, err := c.quotas.ResourceQuotas(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, q := range qs {
		if err := c.syncQuota(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("namespace %s: %v", ns, errs)
	}
	return nil
}

func (c *Controller) syncQuota(ctx context.Context, q *corev1.ResourceQuota) error {
	used, err := c.count(q)
	if err != nil {
		return err
	}
	// The informer's copy may lack the admission's latest charges: then
	// the count may too, so count again once the informers have caught
	// up. The write is conditional on the version counted against, so a
	// charge made meanwhile is not lost: it makes the write conflict.
	live, err := c.client.CoreV1().ResourceQuotas(q.Namespace).Get(ctx, q.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if live.ResourceVersion != q.ResourceVersion {
		return fmt.Errorf("quota %s/%s changed since it was counted", q.Namespace, q.Name)
	}
	if quota.Equal(q.Status.Hard, q.Spec.Hard) && quota.Equal(q.Status.Used, used) {
		return nil
	}
	q = q.DeepCopy()
	q.Status.Hard, q.Status.Used = q.Spec.Hard.DeepCopy(), used
	_, err = c.client.CoreV1().ResourceQuotas(q.Namespace).UpdateStatus(ctx, q, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// count returns what q's namespace uses of each resource q limits and the
// controller can count.
func (c *Controller) count(q *corev1.ResourceQuota) (corev1.ResourceList, error) {
	used := corev1.ResourceList{}
	now := c.now()
	var podNames, serviceNames []corev1.ResourceName
	for name := range q.Spec.Hard {
		switch {
		case quota.PodResource(name):
			podNames = append(podNames, name)
		case quota.ServiceResource(name):
			serviceNames = append(serviceNames, name)
		default:
			gr, ok := quota.CountedResource(name)
			if !ok {
				continue // not countable: its status stays unknown
			}
			n, known, err := c.countObjects(gr, q)
			if err != nil {
				return nil, err
			}
			if known {
				used[name] = *resource.NewQuantity(int64(n), resource.DecimalSI)
			}
		}
	}
	for _, name := range append(podNames, serviceNames...) {
		used[name] = resource.MustParse("0")
	}
	if len(podNames) > 0 {
		pods, err := c.pods.Pods(q.Namespace).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			if quota.InScope(q, p) {
				used = quota.Add(used, quota.Mask(quota.Usage(quota.Pods, p, now), podNames))
			}
		}
	}
	if len(serviceNames) > 0 && quota.InScope(q, nil) {
		svcs, err := c.services.Services(q.Namespace).List(labels.Everything())
		if err != nil {
			return nil, err
		}
		for _, s := range svcs {
			used = quota.Add(used, quota.Mask(quota.Usage(quota.Services, s, now), serviceNames))
		}
	}
	return used, nil
}

// countObjects counts the objects of gr in q's namespace that q counts
// (none when it has scopes); known is false when the API does not serve
// gr.
func (c *Controller) countObjects(gr schema.GroupResource, q *corev1.ResourceQuota) (n int, known bool, err error) {
	inf, err := c.counter(gr)
	if err != nil || inf == nil {
		return 0, false, err
	}
	if !quota.InScope(q, nil) {
		return 0, true, nil
	}
	objs, err := inf.GetIndexer().ByIndex(cache.NamespaceIndex, q.Namespace)
	return len(objs), err == nil, err
}

// counter returns the synced metadata informer of gr, starting it the
// first time (nil when the API does not serve gr).
func (c *Controller) counter(gr schema.GroupResource) (cache.SharedIndexInformer, error) {
	c.mu.Lock()
	inf, ok := c.counters[gr]
	ctx := c.ctx
	if t, miss := c.missed[gr]; !ok && miss && time.Since(t) < rediscover {
		c.mu.Unlock()
		return nil, nil
	}
	if !ok {
		gvr, err := c.mapper.ResourceFor(gr.WithVersion(""))
		switch {
		case meta.IsNoMatchError(err):
			c.missed[gr] = time.Now()
			c.mapper.Reset() // the API may serve it later
		case err != nil:
			c.mu.Unlock()
			return nil, err
		default:
			inf = metadatainformer.NewFilteredMetadataInformer(c.meta, gvr, metav1.NamespaceAll, 0,
				cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
			inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.enqueueQuoted})
			go inf.Run(ctx.Done())
			c.counters[gr] = inf
		}
	}
	c.mu.Unlock()
	if inf == nil {
		return nil, nil
	}
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("informer of %s did not sync: %w", gr, context.Cause(ctx))
	}
	return inf, nil
}
