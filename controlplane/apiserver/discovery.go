package apiserver

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// serveDiscovery answers the discovery documents: /api, /apis,
// /apis/<group>, /api/v1 and /apis/<group>/<version>, and the aggregated
// ones of /api and /apis for clients that ask for them first (kubectl and
// client-go do: two requests instead of one per group-version). It reports
// false when p is none of them.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, p string) bool {
	p = strings.TrimSuffix(p, "/")
	if p == "/api" || p == "/apis" {
		w.Header().Set("Vary", "Accept")
		if version := aggregatedVersion(r.Header.Get("Accept")); version != "" {
			b, err := json.Marshal(s.aggregated(p == "/api", version))
			if err != nil {
				s.writeError(w, r, err)
				return true
			}
			w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v="+version+";as=APIGroupDiscoveryList")
			w.WriteHeader(http.StatusOK)
			w.Write(b)
			return true
		}
	}
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

// aggregatedVersion returns the version of apidiscovery.k8s.io (v2 or
// v2beta1, the same document) that accept asks for in JSON before plain
// JSON, or "" for the plain discovery documents.
func aggregatedVersion(accept string) string {
	for _, clause := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		switch {
		case mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["as"] == "APIGroupDiscoveryList" &&
			(params["v"] == "v2" || params["v"] == "v2beta1"):
			return params["v"]
		case mt == "application/json" && len(params) == 0, mt == "*/*", mt == "application/*":
			return ""
		}
	}
	return ""
}

// aggregated is the aggregated discovery document of the core group (/api)
// or of the others (/apis), made of the same resource lists as the plain
// documents.
func (s *Server) aggregated(core bool, version string) *apidiscoveryv2.APIGroupDiscoveryList {
	list := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/" + version}}
	groups := map[string]int{}
	for _, gv := range s.reg.groups {
		if (gv.Group == "") != core {
			continue
		}
		var resources []apidiscoveryv2.APIResourceDiscovery
		parents := map[string]int{}
		for _, r := range s.resourceList(gv).APIResources {
			kind := &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind}
			if r.Version != "" {
				kind.Group, kind.Version = r.Group, r.Version
			}
			name, sub, isSub := strings.Cut(r.Name, "/")
			if isSub {
				i := parents[name]
				resources[i].Subresources = append(resources[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: sub, ResponseKind: kind, Verbs: r.Verbs})
				continue
			}
			scope := apidiscoveryv2.ScopeCluster
			if r.Namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			parents[name] = len(resources)
			resources = append(resources, apidiscoveryv2.APIResourceDiscovery{Resource: name, ResponseKind: kind, Scope: scope,
				SingularResource: r.SingularName, Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories})
		}
		v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Resources: resources, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		if i, ok := groups[gv.Group]; ok {
			list.Items[i].Versions = append(list.Items[i].Versions, v)
			continue
		}
		groups[gv.Group] = len(list.Items)
		list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}, Versions: []apidiscoveryv2.APIVersionDiscovery{v}})
	}
	return list
}
