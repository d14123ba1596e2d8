package controller

import (
	"maps"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// ControllerOf returns obj's controlling owner reference, or nil.
func ControllerOf(obj metav1.Object) *metav1.OwnerReference {
	return metav1.GetControllerOf(obj)
}

// PodFromTemplate builds a pod for owner (of kind gvk) from template: the
// template's labels, annotations, finalizers and spec, generateName
// "<owner>-", the owner's namespace, and a controller owner reference with
// blockOwnerDeletion as Kubernetes' controllers set it.
func PodFromTemplate(template *corev1.PodTemplateSpec, owner metav1.Object, gvk schema.GroupVersionKind) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    owner.GetName() + "-",
			Namespace:       owner.GetNamespace(),
			Labels:          maps.Clone(template.Labels),
			Annotations:     maps.Clone(template.Annotations),
			Finalizers:      append([]string(nil), template.Finalizers...),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)},
		},
		Spec: *template.Spec.DeepCopy(),
	}
}

// Resolve returns the cached object ref names, when ref refers to kind
// and the object is the one it names (the same uid); get reads the cache
// by name. A controller resolves its objects' controller references so.
func Resolve[T metav1.Object](ref *metav1.OwnerReference, kind schema.GroupVersionKind, get func(name string) (T, error)) (T, bool) {
	var none T
	if ref == nil || ref.Kind != kind.Kind || ref.APIVersion != kind.GroupVersion().String() {
		return none, false
	}
	obj, err := get(ref.Name)
	if err != nil || obj.GetUID() != ref.UID {
		return none, false
	}
	return obj, true
}

// OwnedPodHandlers are the pod informer handlers of a controller that
// keeps expectations per owner, as the DaemonSet and StatefulSet
// controllers: a pod's creation and the start of its deletion are observed
// for its owner (resolve finds the owner of a controller reference in a
// namespace), which is queued; a pod released by an owner, or an orphan
// whose labels changed, goes to enqueueMatching, which queues the owners
// that may adopt it.
func OwnedPodHandlers[T metav1.Object](resolve func(ns string, ref *metav1.OwnerReference) (T, bool), exp *Expectations, q *Queue, enqueueMatching func(*corev1.Pod)) cache.ResourceEventHandlerFuncs {
	key := func(owner T) string { return owner.GetNamespace() + "/" + owner.GetName() }
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			pod, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			if ref := ControllerOf(pod); ref != nil {
				if owner, ok := resolve(pod.Namespace, ref); ok {
					exp.CreationObserved(key(owner))
					q.Enqueue(owner)
				}
				return
			}
			enqueueMatching(pod)
		},
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := cur.(*corev1.Pod)
			if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion {
				return
			}
			oldRef, curRef := ControllerOf(o), ControllerOf(n)
			if oldRef != nil && (curRef == nil || oldRef.UID != curRef.UID) {
				if owner, ok := resolve(o.Namespace, oldRef); ok {
					q.Enqueue(owner)
				}
			}
			if curRef != nil {
				if owner, ok := resolve(n.Namespace, curRef); ok {
					if o.DeletionTimestamp == nil && n.DeletionTimestamp != nil {
						// A graceful deletion: count it now, the pod may
						// stay for its grace period.
						exp.DeletionObserved(key(owner))
					}
					q.Enqueue(owner)
				}
				return
			}
			if !reflect.DeepEqual(o.Labels, n.Labels) || oldRef != nil {
				enqueueMatching(n)
			}
		},
		DeleteFunc: func(obj any) {
			pod, ok := Untomb(obj).(*corev1.Pod)
			if !ok {
				return
			}
			owner, ok := resolve(pod.Namespace, ControllerOf(pod))
			if !ok {
				return
			}
			if pod.DeletionTimestamp == nil {
				// Graceful deletions were counted when the timestamp
				// appeared.
				exp.DeletionObserved(key(owner))
			}
			q.Enqueue(owner)
		},
	}
}

// Untomb returns the object of an informer's delete event: obj, or, when
// the watch missed the deletion, the last state its tombstone holds.
func Untomb(obj any) any {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return tomb.Obj
	}
	return obj
}
