// Package serviceaccount is wasmfleet's service account controller, as
// Kubernetes' serviceaccount-controller: every namespace that is not being
// deleted has a ServiceAccount named "default", created with the
// namespace and again when it is deleted. Namespaces are queued when they
// are added or change, and a namespace's key again when its "default"
// ServiceAccount is deleted; a namespace being deleted is left alone, and
// a create the API refuses because the namespace is terminating ends the
// sync quietly, as in Kubernetes.
package serviceaccount

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs), Kubernetes'.
const Name = "serviceaccount-controller"

// Default is the ServiceAccount every namespace gets.
const Default = "default"

// Controller is the service account controller. Create it with New; Run
// it once.
type Controller struct {
	client   kubernetes.Interface
	nsLister corelisters.NamespaceLister
	saLister corelisters.ServiceAccountLister
	synced   []cache.InformerSynced
	queue    *controller.Queue
}

var _ controller.Controller = (*Controller)(nil)

// New returns a service account controller using factory's Namespace and
// ServiceAccount informers, whose event handlers it registers now: start
// factory after New (Run waits for the caches).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	ns := factory.Core().V1().Namespaces()
	sa := factory.Core().V1().ServiceAccounts()
	c := &Controller{
		client:   client,
		nsLister: ns.Lister(),
		saLister: sa.Lister(),
		synced:   []cache.InformerSynced{ns.Informer().HasSynced, sa.Informer().HasSynced},
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
	})
	sa.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if sa, ok := controller.Untomb(obj).(*corev1.ServiceAccount); ok && sa.Name == Default {
				c.queue.Add(sa.Namespace)
			}
		},
	})
	return c
}

// Name returns the controller's name.
func (c *Controller) Name() string { return Name }

// Run runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.Run(ctx, workers, c.synced...)
}

// sync creates the default ServiceAccount of the namespace named key when
// it is missing.
func (c *Controller) sync(ctx context.Context, key string) error {
	if active, err := controller.NamespaceActive(c.nsLister, key); !active || err != nil {
		return err
	}
	if _, err := c.saLister.ServiceAccounts(key).Get(Default); err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: Default}}
	if _, err := c.client.CoreV1().ServiceAccounts(key).Create(ctx, sa, metav1.CreateOptions{}); controller.CreateErr(err) != nil {
		return fmt.Errorf("create service account %s/%s: %w", key, Default, err)
	}
	return nil
}
