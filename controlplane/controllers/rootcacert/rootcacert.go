// Package rootcacert is wasmfleet's root CA certificate publisher, as
// Kubernetes' root-ca-certificate-publisher: every namespace that is not
// being deleted has a ConfigMap named "kube-root-ca.crt" whose only key,
// "ca.crt", holds the CA certificate that the API server's serving
// certificate chains to, for workloads to verify the API with. A
// ConfigMap deleted is created again, and one whose data changed is set
// back.
//
// The CA is the API server's own, read from its unauthenticated /cacerts
// endpoint when Run starts (the controller manager may run apart from the
// server, with a kubeconfig).
package rootcacert

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/controller"
)

// Name is the controller's name (queue, logs), Kubernetes'.
const Name = "root-ca-certificate-publisher"

const (
	// ConfigMapName is the ConfigMap published in every namespace.
	ConfigMapName = "kube-root-ca.crt"
	// Key is its one key.
	Key = "ca.crt"
	// DescriptionAnnotation and Description are the annotation Kubernetes
	// sets on it.
	DescriptionAnnotation = "kubernetes.io/description"
	Description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. " +
		"No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller is the root CA certificate publisher. Create it with New;
// Run it once.
type Controller struct {
	client   kubernetes.Interface
	nsLister corelisters.NamespaceLister
	cmLister corelisters.ConfigMapLister
	synced   []cache.InformerSynced
	queue    *controller.Queue
	log      *slog.Logger
	ca       string // set by Run before the workers start
}

var _ controller.Controller = (*Controller)(nil)

// New returns a root CA certificate publisher using factory's Namespace
// and ConfigMap informers, whose event handlers it registers now: start
// factory after New (Run waits for the caches).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	ns := factory.Core().V1().Namespaces()
	cm := factory.Core().V1().ConfigMaps()
	c := &Controller{
		client:   client,
		nsLister: ns.Lister(),
		cmLister: cm.Lister(),
		synced:   []cache.InformerSynced{ns.Informer().HasSynced, cm.Informer().HasSynced},
		log:      log.With("controller", Name),
	}
	c.queue = controller.NewQueue(Name, log, c.sync)
	ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.queue.Enqueue,
		UpdateFunc: func(_, cur any) { c.queue.Enqueue(cur) },
	})
	ours := func(obj any) {
		if cm, ok := controller.Untomb(obj).(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
			c.queue.Add(cm.Namespace)
		}
	}
	cm.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { ours(cur) },
		DeleteFunc: ours,
	})
	return c
}

// Name returns the controller's name.
func (c *Controller) Name() string { return Name }

// Run reads the CA, retrying every few seconds until it gets it, then runs
// workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		ca, err := c.client.CoreV1().RESTClient().Get().AbsPath("/cacerts").DoRaw(ctx)
		if err != nil || len(ca) == 0 {
			c.log.Warn("cannot read the API server's CA from /cacerts yet", "err", err)
			return false, nil
		}
		c.ca = string(ca)
		return true, nil
	})
	if err != nil {
		return nil // ctx ended
	}
	return c.queue.Run(ctx, workers, c.synced...)
}

// sync publishes the CA in the namespace named key.
func (c *Controller) sync(ctx context.Context, key string) error {
	if active, err := controller.NamespaceActive(c.nsLister, key); !active || err != nil {
		return err
	}
	data := map[string]string{Key: c.ca}
	cm, err := c.cmLister.ConfigMaps(key).Get(ConfigMapName)
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Annotations: map[string]string{DescriptionAnnotation: Description}},
			Data:       data,
		}
		if _, err := c.client.CoreV1().ConfigMaps(key).Create(ctx, cm, metav1.CreateOptions{}); controller.CreateErr(err) != nil {
			return fmt.Errorf("create %s/%s: %w", key, ConfigMapName, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	// As Kubernetes: nothing to do while the data is the CA and there is a
	// description (any); else both are set.
	if maps.Equal(cm.Data, data) && cm.Annotations[DescriptionAnnotation] != "" {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = data
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[DescriptionAnnotation] = Description
	if _, err := c.client.CoreV1().ConfigMaps(key).Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update %s/%s: %w", key, ConfigMapName, err)
	}
	return nil
}
