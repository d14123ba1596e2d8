package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// kind is what the controller reads and writes of the objects it runs,
// seen as ReplicaSets: ReplicaSets themselves, or ReplicationControllers
// converted to and from ReplicaSets (as Kubernetes' replication manager
// runs the ReplicaSet controller's code through adapters).
type kind struct {
	// name names the queue and the logs, component the events' source.
	name, component string
	// gvk is the owner reference kind of the pods it creates.
	gvk      schema.GroupVersionKind
	informer cache.SharedIndexInformer
	// convert returns an object of the informer as a ReplicaSet.
	convert func(obj any) (*appsv1.ReplicaSet, bool)
	// get and list read the informer's cache.
	get  func(ns, name string) (*appsv1.ReplicaSet, error)
	list func(ns string) ([]*appsv1.ReplicaSet, error)
	// fetch reads the object from the API, updateStatus writes its status.
	fetch        func(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error)
	updateStatus func(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error)
	// terminating: the kind's status has terminatingReplicas.
	terminating bool
}

// replicaSets is the kind of the ReplicaSet controller.
func replicaSets(client kubernetes.Interface, factory informers.SharedInformerFactory) *kind {
	inf := factory.Apps().V1().ReplicaSets()
	lister := inf.Lister()
	return &kind{
		name:      Name,
		component: "replicaset-controller",
		gvk:       appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		informer:  inf.Informer(),
		convert: func(obj any) (*appsv1.ReplicaSet, bool) {
			rs, ok := obj.(*appsv1.ReplicaSet)
			return rs, ok
		},
		get: func(ns, name string) (*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).Get(name) },
		list: func(ns string) ([]*appsv1.ReplicaSet, error) {
			return lister.ReplicaSets(ns).List(labels.Everything())
		},
		fetch: func(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error) {
			return client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		updateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
			return client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
		},
		terminating: true,
	}
}

// replicationControllers is the kind of the ReplicationController
// controller: its ReplicationControllers converted by RCToRS and RSToRC.
func replicationControllers(client kubernetes.Interface, factory informers.SharedInformerFactory) *kind {
	inf := factory.Core().V1().ReplicationControllers()
	lister := inf.Lister()
	return &kind{
		name:      RCName,
		component: "replication-controller",
		gvk:       rcKind,
		informer:  inf.Informer(),
		convert: func(obj any) (*appsv1.ReplicaSet, bool) {
			rc, ok := obj.(*corev1.ReplicationController)
			if !ok {
				return nil, false
			}
			return RCToRS(rc), true
		},
		get: func(ns, name string) (*appsv1.ReplicaSet, error) {
			rc, err := lister.ReplicationControllers(ns).Get(name)
			if err != nil {
				return nil, err
			}
			return RCToRS(rc), nil
		},
		list: func(ns string) ([]*appsv1.ReplicaSet, error) {
			rcs, err := lister.ReplicationControllers(ns).List(labels.Everything())
			out := make([]*appsv1.ReplicaSet, len(rcs))
			for i, rc := range rcs {
				out[i] = RCToRS(rc)
			}
			return out, err
		},
		fetch: func(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error) {
			rc, err := client.CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return RCToRS(rc), nil
		},
		updateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
			rc, err := client.CoreV1().ReplicationControllers(rs.Namespace).UpdateStatus(ctx, RSToRC(rs), metav1.UpdateOptions{})
			if err != nil {
				return nil, err
			}
			return RCToRS(rc), nil
		},
	}
}

// rcKind is the kind of ReplicationControllers.
var rcKind = corev1.SchemeGroupVersion.WithKind("ReplicationController")

// RCToRS converts rc to the ReplicaSet the controller runs: its selector
// map as matchLabels, its template (empty when it has none), its status.
// The ReplicaSet shares rc's metadata (treat it as read-only) and has rc's
// kind in its TypeMeta, so that the events recorded on it name rc.
func RCToRS(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: rcKind.GroupVersion().String(), Kind: rcKind.Kind},
		ObjectMeta: rc.ObjectMeta,
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        rc.Spec.Replicas,
			MinReadySeconds: rc.Spec.MinReadySeconds,
			Selector:        &metav1.LabelSelector{MatchLabels: rc.Spec.Selector},
		},
		Status: appsv1.ReplicaSetStatus{
			Replicas:             rc.Status.Replicas,
			FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
			ReadyReplicas:        rc.Status.ReadyReplicas,
			AvailableReplicas:    rc.Status.AvailableReplicas,
			ObservedGeneration:   rc.Status.ObservedGeneration,
		},
	}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetConditionType(c.Type), Status: c.Status, LastTransitionTime: c.LastTransitionTime,
			Reason: c.Reason, Message: c.Message,
		})
	}
	return rs
}

// RSToRC converts back a ReplicaSet RCToRS returned: the selector is its
// matchLabels, the status drops terminatingReplicas, which
// ReplicationControllers do not have.
func RSToRC(rs *appsv1.ReplicaSet) *corev1.ReplicationController {
	rc := &corev1.ReplicationController{
		ObjectMeta: rs.ObjectMeta,
		Spec: corev1.ReplicationControllerSpec{
			Replicas:        rs.Spec.Replicas,
			MinReadySeconds: rs.Spec.MinReadySeconds,
			Template:        &rs.Spec.Template,
		},
		Status: corev1.ReplicationControllerStatus{
			Replicas:             rs.Status.Replicas,
			FullyLabeledReplicas: rs.Status.FullyLabeledReplicas,
			ReadyReplicas:        rs.Status.ReadyReplicas,
			AvailableReplicas:    rs.Status.AvailableReplicas,
			ObservedGeneration:   rs.Status.ObservedGeneration,
		},
	}
	if rs.Spec.Selector != nil {
		rc.Spec.Selector = rs.Spec.Selector.MatchLabels
	}
	for _, c := range rs.Status.Conditions {
		rc.Status.Conditions = append(rc.Status.Conditions, corev1.ReplicationControllerCondition{
			Type: corev1.ReplicationControllerConditionType(c.Type), Status: c.Status, LastTransitionTime: c.LastTransitionTime,
			Reason: c.Reason, Message: c.Message,
		})
	}
	return rc
}
