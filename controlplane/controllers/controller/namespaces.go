package controller

import (
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// NamespaceActive reports whether namespace name, read from lister, exists
// and is not being deleted: the controllers that give every namespace an
// object (serviceaccount, rootcacert) leave the others alone.
func NamespaceActive(lister corelisters.NamespaceLister, name string) (bool, error) {
	ns, err := lister.Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return ns.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceTerminating, nil
}

// CreateErr is err of a create, nil when the object exists already or its
// namespace is being deleted (the API refuses new objects there), as the
// controllers that fill namespaces treat those.
func CreateErr(err error) error {
	if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		return nil
	}
	return err
}
