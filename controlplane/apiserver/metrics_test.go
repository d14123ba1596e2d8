package apiserver_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// TestRequestMetricLabels: apiserver_request_total has kube-apiserver's
// labels and values, so that its dashboards and alerts read it.
func TestRequestMetricLabels(t *testing.T) {
	c := startAPI(t)
	reg := prometheus.NewRegistry()
	api, err := apiserver.New(apiserver.Config{
		Store: storage.New(c.etcd),
		Authenticate: func(string) (apiserver.User, bool) {
			return apiserver.User{Name: "admin", Groups: []string{apiserver.Admin}}, true
		},
		Metrics: reg,
	})
	must(t, err)
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m"},"data":{"k":"v"}}`
	for _, req := range []struct{ method, path, contentType, body string }{
		{http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json", cm},
		{http.MethodPost, "/api/v1/namespaces/default/configmaps?dryRun=All", "application/json", strings.Replace(cm, `"m"`, `"dry"`, 1)},
		{http.MethodGet, "/api/v1/namespaces/default/configmaps/m", "", ""},
		{http.MethodGet, "/api/v1/configmaps", "", ""},
		{http.MethodGet, "/api/v1/namespaces/default/configmaps", "", ""},
		{http.MethodPatch, "/api/v1/namespaces/default/configmaps/m?fieldManager=t", "application/apply-patch+yaml", cm},
		{http.MethodPatch, "/api/v1/namespaces/default/configmaps/m", "application/merge-patch+json", `{"data":{"k":"w"}}`},
		{http.MethodGet, "/apis/apps/v1/namespaces/default/deployments?watch=true&timeoutSeconds=1", "", ""},
		{http.MethodGet, "/version", "", ""},
	} {
		r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
		r.Header.Set("Authorization", "Bearer x")
		if req.contentType != "" {
			r.Header.Set("Content-Type", req.contentType)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, r)
		if rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", req.method, req.path, rec.Code, rec.Body)
		}
	}
	want := []string{
		`code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="",verb="GET",version=""`,
		`code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="cluster",subresource="",verb="LIST",version="v1"`,
		`code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"`,
		`code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="APPLY",version="v1"`,
		`code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"`,
		`code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="PATCH",version="v1"`,
		`code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="namespace",subresource="",verb="WATCH",version="v1"`,
		`code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"`,
		`code="201",component="apiserver",dry_run="All",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"`,
	}
	families, err := reg.Gather()
	must(t, err)
	var got []string
	for _, f := range families {
		if f.GetName() != "apiserver_request_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if m.GetCounter().GetValue() != 1 {
				t.Errorf("%v counted %v times", labels, m.GetCounter().GetValue())
			}
			got = append(got, strings.Join(labels, ","))
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("apiserver_request_total series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
