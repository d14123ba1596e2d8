package apiserver

import (
	"context"
	"encoding/json"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// isDefaultIngressClass, set to "true" on an IngressClass, makes it the
// class of new Ingresses that name none.
const isDefaultIngressClass = "ingressclass.kubernetes.io/is-default-class"

// admitIngress is kube-apiserver's DefaultIngressClass admission: a new
// Ingress that names no class (neither spec.ingressClassName nor the
// deprecated kubernetes.io/ingress.class annotation) gets the default
// IngressClass; of several defaults, the newest (then the first by name).
func (s *Server) admitIngress(ctx context.Context, ing *networkingv1.Ingress) error {
	if ing.Spec.IngressClassName != nil {
		return nil
	}
	if _, ok := ing.Annotations["kubernetes.io/ingress.class"]; ok {
		return nil
	}
	page, err := s.store.List(ctx, storage.Prefix("ingressclasses", ""), storage.ListOptions{})
	if err != nil {
		return storageError(err, networkingv1.Resource("ingressclasses"), "")
	}
	var def *networkingv1.IngressClass
	for _, o := range page.Items {
		var ic networkingv1.IngressClass
		if json.Unmarshal(o.Value, &ic) != nil || ic.Annotations[isDefaultIngressClass] != "true" {
			continue
		}
		if def == nil || ic.CreationTimestamp.After(def.CreationTimestamp.Time) ||
			ic.CreationTimestamp.Equal(&def.CreationTimestamp) && ic.Name < def.Name {
			def = &ic
		}
	}
	if def != nil {
		ing.Spec.IngressClassName = new(def.Name)
	}
	return nil
}
