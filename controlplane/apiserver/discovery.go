package apiserver

import (
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// serveDiscovery answers the plain (not aggregated) discovery documents:
// /api, /apis, /apis/<group>, /api/v1 and /apis/<group>/<version>. It
// reports false when p is none of them.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, p string) bool {
	p = strings.TrimSuffix(p, "/")
	switch {
	case p == "/api":
		writeObject(w, http.StatusOK, &metav1.APIVersions{
			TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
			Versions:                   []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}},
		})
		return true
	case p == "/apis":
		list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
		for _, gv := range s.reg.groups {
			if gv.Group != "" {
				list.Groups = append(list.Groups, apiGroup(gv))
			}
		}
		writeObject(w, http.StatusOK, list)
		return true
	}
	for _, gv := range s.reg.groups {
		switch p {
		case "/apis/" + gv.Group:
			g := apiGroup(gv)
			g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
			writeObject(w, http.StatusOK, &g)
			return true
		case apiPath(gv):
			writeObject(w, http.StatusOK, s.resourceList(gv))
			return true
		}
	}
	return false
}

func apiGroup(gv schema.GroupVersion) metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	return metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}
}

func (s *Server) resourceList(gv schema.GroupVersion) *metav1.APIResourceList {
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	add := func(r metav1.APIResource) { list.APIResources = append(list.APIResources, r) }
	rw := metav1.Verbs{"get", "patch", "update"}
	for _, res := range s.reg.list {
		if res.gvr.GroupVersion() != gv {
			continue
		}
		name, ns := res.gvr.Resource, res.namespaced
		add(metav1.APIResource{Name: name, SingularName: res.singular, Namespaced: ns, Kind: res.kind,
			Verbs: res.verbs, ShortNames: res.shortNames, Categories: res.categories})
		if res.status {
			add(metav1.APIResource{Name: name + "/status", Namespaced: ns, Kind: res.kind, Verbs: rw})
		}
		if res.scale {
			add(metav1.APIResource{Name: name + "/scale", Namespaced: ns, Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: rw})
		}
		switch name {
		case "pods":
			add(metav1.APIResource{Name: "pods/binding", Namespaced: true, Kind: "Binding", Verbs: metav1.Verbs{"create"}})
			add(metav1.APIResource{Name: "pods/eviction", Namespaced: true, Group: "policy", Version: "v1", Kind: "Eviction", Verbs: metav1.Verbs{"create"}})
			if s.cfg.PodLogs != nil {
				add(metav1.APIResource{Name: "pods/log", Namespaced: true, Kind: "Pod", Verbs: metav1.Verbs{"get"}})
			}
		case "namespaces":
			add(metav1.APIResource{Name: "namespaces/finalize", Kind: "Namespace", Verbs: metav1.Verbs{"update"}})
		}
	}
	return list
}
