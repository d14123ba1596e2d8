// Package namespace is the namespace controller: when a namespace is being
// deleted (the API server sets its deletionTimestamp and phase Terminating
// and keeps spec.finalizers ["kubernetes"]), it deletes all of the
// namespace's content — every namespaced resource discovery lists as
// deletable, with deletecollection where served, else object by object,
// background propagation, pods gracefully — reports progress in the
// namespace's status conditions as Kubernetes does
// (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGVParsingFailure,
// NamespaceDeletionContentFailure, NamespaceContentRemaining,
// NamespaceFinalizersRemaining), and once nothing is left removes the
// "kubernetes" finalizer through the namespaces/{name}/finalize subresource,
// after which the API server removes the namespace. Content held by its own
// finalizers keeps the namespace Terminating until they are removed.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (logs, workqueue).
const Name = "namespace"

// Options tune the controller; zero values take Kubernetes' defaults.
type Options struct {
	// FinalizerEstimate is how long content held by finalizers is assumed
	// to take to go (Kubernetes' finalizerEstimateSeconds, 15s); the
	// namespace is checked again after half of it plus a second.
	FinalizerEstimate time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.FinalizerEstimate <= 0 {
		o.FinalizerEstimate = 15 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Controller is the namespace controller. Build it with New; Run it once.
type Controller struct {
	client     kubernetes.Interface
	discovery  discovery.DiscoveryInterface
	dyn        dynamic.Interface
	namespaces corelisters.NamespaceLister
	synced     cache.InformerSynced
	queue      *controller.Queue
	opts       Options
	log        *slog.Logger
}

var _ controller.Controller = (*Controller)(nil)

// New builds the controller on factory's Namespace informer (registering
// its handlers; the caller starts the factory). client.Discovery() lists
// the namespaced resources and dyn deletes them.
func New(client kubernetes.Interface, dyn dynamic.Interface, factory informers.SharedInformerFactory, opts Options, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	inf := factory.Core().V1().Namespaces()
	c := &Controller{
		client:     client,
		discovery:  client.Discovery(),
		dyn:        dyn,
		namespaces: inf.Lister(),
		synced:     inf.Informer().HasSynced,
		opts:       opts.withDefaults(),
		log:        log.With("controller", Name),
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	enqueue := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	return c
}

// Name implements controller.Controller.
func (c *Controller) Name() string { return Name }

// Run deletes namespaces' content with workers workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.Run(ctx, workers, c.synced)
}

// sync advances the deletion of one namespace.
func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	ns = ns.DeepCopy()
	if ns.Status.Phase != corev1.NamespaceTerminating {
		ns.Status.Phase = corev1.NamespaceTerminating
		if ns, err = c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("mark namespace %s terminating: %w", name, err)
		}
	}
	wait, err := c.deleteContent(ctx, ns)
	if err != nil {
		return fmt.Errorf("delete content of namespace %s: %w", name, err)
	}
	if wait > 0 {
		c.queue.AddAfter(name, wait/2+time.Second)
		return nil
	}
	return c.finalize(ctx, name)
}

// deleteContent deletes everything in ns, records the outcome in its
// conditions and returns how long what remains may take to go (0: nothing
// remains). Discovery failures do not stop it: it deletes what it found.
func (c *Controller) deleteContent(ctx context.Context, ns *corev1.Namespace) (time.Duration, error) {
	res := passResult{remaining: map[schema.GroupVersionResource]int{}, finalizers: map[string]int{}}
	lists, derr := c.discovery.ServerPreferredNamespacedResources()
	var errs []error
	if derr != nil {
		res.discoveryErr = derr
		errs = append(errs, derr)
	}
	var wait time.Duration
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range l.APIResources {
			verbs := map[string]bool{}
			for _, v := range r.Verbs {
				verbs[v] = true
			}
			if !verbs["delete"] {
				continue
			}
			gvr := gv.WithResource(r.Name)
			w, err := c.deleteResource(ctx, gvr, verbs, ns.Name, &res)
			wait = max(wait, w)
			if err != nil {
				res.deleteErrs = append(res.deleteErrs, err)
				errs = append(errs, err)
			}
		}
	}
	now := c.opts.Now()
	if applyConditions(&ns.Status, res.conditions(now), now) {
		// As Kubernetes: a failed condition update does not fail the pass;
		// the next one writes them again.
		if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			c.log.Debug("update namespace conditions", "namespace", ns.Name, "err", err)
		}
	}
	return wait, errors.Join(errs...)
}

// deleteResource deletes all objects of gvr in ns and counts what is left
// into res; it returns how long those may take to go.
func (c *Controller) deleteResource(ctx context.Context, gvr schema.GroupVersionResource, verbs map[string]bool, ns string, res *passResult) (time.Duration, error) {
	ri := c.dyn.Resource(gvr).Namespace(ns)
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	collection := verbs["deletecollection"]
	if collection {
		err := ri.DeleteCollection(ctx, opts, metav1.ListOptions{})
		switch {
		case apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err):
			collection = false
		case err != nil:
			return 0, fmt.Errorf("delete %s: %w", gvr.GroupResource(), err)
		}
	}
	if !verbs["list"] {
		return 0, nil
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if apierrors.IsMethodNotSupported(err) || apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	if !collection {
		for i := range list.Items {
			item := &list.Items[i]
			if item.GetDeletionTimestamp() != nil {
				continue
			}
			uid := item.GetUID()
			o := opts
			o.Preconditions = &metav1.Preconditions{UID: &uid}
			if err := ri.Delete(ctx, item.GetName(), o); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return 0, fmt.Errorf("delete %s %s: %w", gvr.GroupResource(), item.GetName(), err)
			}
		}
		if list, err = ri.List(ctx, metav1.ListOptions{}); err != nil {
			return 0, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
		}
	}
	if len(list.Items) == 0 {
		return 0, nil
	}
	res.remaining[gvr] += len(list.Items)
	withFinalizers := false
	for _, item := range list.Items {
		for _, f := range item.GetFinalizers() {
			res.finalizers[f]++
			withFinalizers = true
		}
	}
	if gvr.Group == "" && gvr.Resource == "pods" {
		pods := make([]corev1.Pod, len(list.Items))
		for i := range list.Items {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &pods[i]); err != nil {
				return 0, fmt.Errorf("decode pod: %w", err)
			}
		}
		return podEstimate(pods, c.opts.Now(), c.opts.FinalizerEstimate), nil
	}
	if withFinalizers {
		return c.opts.FinalizerEstimate, nil
	}
	return 0, fmt.Errorf("unexpected items still remain in namespace: %s for gvr: %v", ns, gvr)
}

// finalize removes the "kubernetes" finalizer through the finalize
// subresource.
func (c *Controller) finalize(ctx context.Context, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		fins := slices.DeleteFunc(slices.Clone(ns.Spec.Finalizers), func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
		if len(fins) == len(ns.Spec.Finalizers) {
			return nil
		}
		ns.Spec.Finalizers = fins
		_, err = c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize namespace %s: %w", name, err)
	}
	c.log.Info("namespace content deleted, finalized", "namespace", name)
	return nil
}
