package apiserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/util/proto"
)

// TestOpenAPIV2: client-go's discovery reads /openapi/v2 in protobuf, and
// tools parse it as Argo CD's cluster cache does: every served kind has a
// model, kubectl explains from it, and kubectl's OpenAPI v2 fallback
// finds fieldValidation on the PATCH of each kind.
func TestOpenAPIV2(t *testing.T) {
	c := startAPI(t)
	doc, err := c.client.Discovery().OpenAPISchema()
	must(t, err)
	models, err := proto.NewOpenAPIData(doc)
	must(t, err)
	parser, err := managedfields.NewGVKParser(models, false)
	must(t, err)
	lists, err := c.client.Discovery().ServerPreferredResources()
	must(t, err)
	kinds := 0
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		must(t, err)
		for _, r := range l.APIResources {
			if parser.Type(gv.WithKind(r.Kind)) == nil {
				t.Errorf("no model of %s", gv.WithKind(r.Kind))
			}
			kinds++
		}
	}
	if kinds < 20 {
		t.Fatalf("only %d kinds discovered", kinds)
	}

	// kubectl reads it for explain's v2 output.
	mustContain(t, c.kubectl(t, "", "explain", "deployments.spec.replicas", "--output=plaintext-openapiv2"),
		"KIND:     Deployment", "FIELD:    replicas <integer>", "Number of desired pods")

	hc := rawClient(t, c, true)
	code, body := rawDo(t, c, hc, http.MethodGet, "/openapi/v2", "", nil, http.Header{"Accept": {"application/json"}})
	if code != http.StatusOK {
		t.Fatalf("GET /openapi/v2 as JSON: %d %.300s", code, body)
	}
	type operation struct {
		Parameters []struct{ Name, In string }            `json:"parameters"`
		GVK        *struct{ Group, Version, Kind string } `json:"x-kubernetes-group-version-kind"`
	}
	var v2 struct {
		Swagger     string                                `json:"swagger"`
		Paths       map[string]struct{ Patch *operation } `json:"paths"`
		Definitions map[string]json.RawMessage            `json:"definitions"`
	}
	must(t, json.Unmarshal(body, &v2))
	if v2.Swagger != "2.0" || len(v2.Definitions) < 100 {
		t.Fatalf("swagger %q with %d definitions", v2.Swagger, len(v2.Definitions))
	}
	if strings.Contains(string(body), "#/components/schemas/") {
		t.Errorf("the v2 document refers to v3 components")
	}
	patchable := map[string]bool{}
	for _, item := range v2.Paths {
		op := item.Patch
		if op == nil || op.GVK == nil {
			continue
		}
		for _, p := range op.Parameters {
			if p.Name == "fieldValidation" && p.In == "query" {
				patchable[op.GVK.Kind] = true
			}
		}
	}
	for _, kind := range []string{"Pod", "Deployment", "ConfigMap", "Namespace", "Node", "Lease", "RuntimeClass"} {
		if !patchable[kind] {
			t.Errorf("no PATCH of %s with fieldValidation", kind)
		}
	}

	// Caching and negotiation, as kube-apiserver.
	get := func(ifNoneMatch string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, c.url+"/openapi/v2", nil)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := hc.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp
	}
	etag := get("").Header.Get("Etag")
	if code := get(etag).StatusCode; etag == "" || code != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d", etag, code)
	}
	if code, _ := rawDo(t, c, hc, http.MethodGet, "/openapi/v2", "", nil, http.Header{"Accept": {"text/html"}}); code != http.StatusNotAcceptable {
		t.Errorf("Accept text/html: %d", code)
	}
}
