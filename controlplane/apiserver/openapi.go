package apiserver

import (
	"reflect"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/openapi"
)

// buildOpenAPI describes the served resources for /openapi/v3 and v2.
func buildOpenAPI(reg *registry, podLogs bool) (*openapi.Documents, error) {
	var rs []openapi.Resource
	for _, res := range reg.list {
		o := openapi.Resource{
			Group: res.gvr.Group, Version: res.gvr.Version, Kind: res.kind, Plural: res.gvr.Resource,
			Namespaced: res.namespaced, Type: res.typ, ListType: res.listType, Verbs: res.verbs,
		}
		if res.status {
			o.Subresources = append(o.Subresources, openapi.Subresource{Name: "status", Type: res.typ})
		}
		if res.scale {
			o.Subresources = append(o.Subresources, openapi.Subresource{Name: "scale", Type: reflect.TypeFor[autoscalingv1.Scale]()})
		}
		switch res.gvr.Resource {
		case "pods":
			create := []string{"create"}
			o.Subresources = append(o.Subresources,
				openapi.Subresource{Name: "binding", Type: reflect.TypeFor[corev1.Binding](), Verbs: create},
				openapi.Subresource{Name: "eviction", Type: reflect.TypeFor[policyv1.Eviction](), Verbs: create})
			if podLogs {
				o.Subresources = append(o.Subresources, openapi.Subresource{Name: "log", Verbs: []string{"get"}})
			}
		case "namespaces":
			o.Subresources = append(o.Subresources, openapi.Subresource{Name: "finalize", Type: res.typ, Verbs: []string{"update"}})
		}
		rs = append(rs, o)
	}
	return openapi.Build(rs)
}
