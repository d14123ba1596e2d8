package apiserver_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// TestAggregatedDiscovery: /api and /apis answer the aggregated discovery
// documents to clients that ask for them first (kubectl, client-go), with
// the groups and resources of the plain documents, which clients that do
// not ask still get.
func TestAggregatedDiscovery(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	for _, tc := range []struct{ accept, contentType string }{
		{"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
			"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
		{"application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
			"application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"},
		{"application/json", "application/json"},
		{"", "application/json"},
	} {
		req, err := http.NewRequest(http.MethodGet, c.url+"/apis", nil)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", tc.accept)
		resp, err := hc.Do(req)
		must(t, err)
		var doc metav1.TypeMeta
		must(t, json.NewDecoder(resp.Body).Decode(&doc))
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("Accept %q: Content-Type %q, want %q", tc.accept, got, tc.contentType)
		}
		if want := map[bool]string{true: "APIGroupDiscoveryList", false: "APIGroupList"}[tc.contentType != "application/json"]; doc.Kind != want {
			t.Errorf("Accept %q: a %s, want %s", tc.accept, doc.Kind, want)
		}
	}

	// client-go sees the same groups and resources either way.
	aggregated, err := discovery.NewDiscoveryClientForConfig(c.rest)
	must(t, err)
	legacy, err := discovery.NewDiscoveryClientForConfig(c.rest)
	must(t, err)
	legacy.UseLegacyDiscovery = true
	ag, ar, err := aggregated.ServerGroupsAndResources()
	must(t, err)
	lg, lr, err := legacy.ServerGroupsAndResources()
	must(t, err)
	if groupNames(ag) != groupNames(lg) {
		t.Errorf("groups: aggregated %s, plain %s", groupNames(ag), groupNames(lg))
	}
	byGV := func(lists []*metav1.APIResourceList) map[string][]string {
		m := map[string][]string{}
		for _, l := range lists {
			m[l.GroupVersion] = resources(l)
		}
		return m
	}
	if got, want := byGV(ar), byGV(lr); !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("resources aggregated:\n %v\nplain:\n %v", got, want)
	}
	// And the document says what it is.
	req, err := http.NewRequest(http.MethodGet, c.url+"/api", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
	resp, err := hc.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var core apidiscoveryv2.APIGroupDiscoveryList
	must(t, json.NewDecoder(resp.Body).Decode(&core))
	if len(core.Items) != 1 || core.Items[0].Name != "" || core.Items[0].Versions[0].Version != "v1" ||
		core.Items[0].Versions[0].Freshness != apidiscoveryv2.DiscoveryFreshnessCurrent {
		t.Errorf("core group: %+v", core.Items)
	}
}

func groupNames(groups []*metav1.APIGroup) string {
	var s string
	for _, g := range groups {
		s += g.Name + "=" + g.PreferredVersion.GroupVersion + " "
	}
	return s
}

// resources lays out what clients read of a resource list (a resource's
// group and version are the list's unless it names its own).
func resources(l *metav1.APIResourceList) []string {
	var out []string
	for _, r := range l.APIResources {
		gv := l.GroupVersion
		if r.Version != "" {
			gv = schema.GroupVersion{Group: r.Group, Version: r.Version}.String()
		}
		out = append(out, r.Name+" "+r.Kind+" "+gv+" "+map[bool]string{true: "namespaced", false: "cluster"}[r.Namespaced]+" "+
			joined(r.ShortNames)+" "+joined(r.Categories)+" "+joined(r.Verbs))
	}
	slices.Sort(out)
	return out
}

func joined(xs []string) string {
	b, _ := json.Marshal(xs)
	return string(b)
}
