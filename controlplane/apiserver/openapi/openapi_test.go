package openapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

type obj = map[string]any

func mustBuild(t testing.TB, rs []Resource) *Documents {
	t.Helper()
	d, err := Build(rs)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return d
}

// decoded returns the document of key ("api/v1", "apis/apps/v1") as
// generic JSON.
func decoded(t testing.TB, d *Documents, key string) obj {
	t.Helper()
	doc, ok := d.docs[key]
	if !ok {
		t.Fatalf("no document %q", key)
	}
	var m obj
	if err := json.Unmarshal(doc.body, &m); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	return m
}

// dig follows keys through nested objects; nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func schemaOf(t *testing.T, doc obj, name string) obj {
	t.Helper()
	s, ok := dig(doc, "components", "schemas", name).(obj)
	if !ok {
		t.Fatalf("no schema %s", name)
	}
	return s
}

func TestEveryRefResolvesInItsDocument(t *testing.T) {
	d := mustBuild(t, servedResources())
	if len(d.docs) != 6 {
		t.Errorf("got %d documents, want 6", len(d.docs))
	}
	for key := range d.docs {
		doc := decoded(t, d, key)
		schemas := dig(doc, "components", "schemas").(obj)
		refs := 0
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case obj:
				if ref, ok := v["$ref"].(string); ok {
					refs++
					name, ok := strings.CutPrefix(ref, refPrefix)
					if !ok || schemas[name] == nil {
						t.Errorf("%s: %s: unresolved $ref %q", key, path, ref)
					}
				}
				for k, e := range v {
					walk(path+"/"+k, e)
				}
			case []any:
				for _, e := range v {
					walk(path+"[]", e)
				}
			}
		}
		walk("", doc)
		if refs == 0 {
			t.Errorf("%s: no $ref at all", key)
		}
		// Every component is reachable, none is dead weight either way.
		for _, shared := range []string{
			"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
			"io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
			"io.k8s.apimachinery.pkg.apis.meta.v1.Status",
			"io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
			"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
			"io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
		} {
			if schemas[shared] == nil {
				t.Errorf("%s: shared schema %s missing", key, shared)
			}
		}
		if got := doc["openapi"]; got != "3.0.0" {
			t.Errorf("%s: openapi = %v", key, got)
		}
	}
}

func TestKindsCarryGroupVersionKind(t *testing.T) {
	d := mustBuild(t, servedResources())
	core := decoded(t, d, "api/v1")
	for name, want := range map[string]obj{
		"io.k8s.api.core.v1.Pod":                      {"group": "", "version": "v1", "kind": "Pod"},
		"io.k8s.api.core.v1.PodList":                  {"group": "", "version": "v1", "kind": "PodList"},
		"io.k8s.api.core.v1.Binding":                  {"group": "", "version": "v1", "kind": "Binding"},
		"io.k8s.api.policy.v1.Eviction":               {"group": "policy", "version": "v1", "kind": "Eviction"},
		"io.k8s.apimachinery.pkg.apis.meta.v1.Status": {"group": "", "version": "v1", "kind": "Status"},
	} {
		got, _ := schemaOf(t, core, name)["x-kubernetes-group-version-kind"].([]any)
		if !slices.ContainsFunc(got, func(e any) bool { return reflect.DeepEqual(e, any(want)) }) {
			t.Errorf("%s: x-kubernetes-group-version-kind = %v, want it to hold %v", name, got, want)
		}
	}
	apps := decoded(t, d, "apis/apps/v1")
	got := schemaOf(t, apps, "io.k8s.api.autoscaling.v1.Scale")["x-kubernetes-group-version-kind"]
	if want := []any{obj{"group": "autoscaling", "version": "v1", "kind": "Scale"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Scale GVK = %v, want %v", got, want)
	}
	rbac := decoded(t, d, "apis/rbac.authorization.k8s.io/v1")
	got = schemaOf(t, rbac, "io.k8s.api.rbac.v1.ClusterRole")["x-kubernetes-group-version-kind"]
	if want := []any{obj{"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ClusterRole GVK = %v, want %v", got, want)
	}
	// Non-kinds carry none.
	if v, ok := schemaOf(t, core, "io.k8s.api.core.v1.PodSpec")["x-kubernetes-group-version-kind"]; ok {
		t.Errorf("PodSpec has a GVK: %v", v)
	}
}

// TestWriteOperationsOfferFieldValidation checks what kubectl's
// query-param verifier looks for: a PATCH operation tagged with the kind
// that lists fieldValidation among its own query parameters (path-level
// parameters are not consulted). POST and PUT carry it too.
func TestWriteOperationsOfferFieldValidation(t *testing.T) {
	d := mustBuild(t, servedResources())
	patched := map[string]bool{}
	for key := range d.docs {
		doc := decoded(t, d, key)
		for path, item := range doc["paths"].(obj) {
			for _, method := range []string{"patch", "put", "post"} {
				op, ok := item.(obj)[method].(obj)
				if !ok {
					continue
				}
				var names []string
				for _, p := range op["parameters"].([]any) {
					if p.(obj)["in"] == "query" {
						names = append(names, p.(obj)["name"].(string))
					}
				}
				for _, want := range []string{"fieldValidation", "fieldManager", "dryRun"} {
					if !slices.Contains(names, want) {
						t.Errorf("%s %s: query parameters %v lack %s", method, path, names, want)
					}
				}
				k, ok := op["x-kubernetes-group-version-kind"].(obj)
				if !ok {
					t.Errorf("%s %s: no x-kubernetes-group-version-kind object", method, path)
					continue
				}
				if method != "patch" {
					continue
				}
				patched[k["group"].(string)+"/"+k["version"].(string)+"/"+k["kind"].(string)] = true
				content := dig(op, "requestBody", "content").(obj)
				for _, ct := range patchContentTypes() {
					if content[ct] == nil {
						t.Errorf("patch %s: request body lacks %s", path, ct)
					}
				}
				if op["x-kubernetes-action"] != "patch" {
					t.Errorf("patch %s: x-kubernetes-action = %v", path, op["x-kubernetes-action"])
				}
			}
		}
	}
	for _, r := range servedResources() {
		if k := r.Group + "/" + r.Version + "/" + r.Kind; !patched[k] {
			t.Errorf("no PATCH operation for %s", k)
		}
	}
	if !patched["autoscaling/v1/Scale"] {
		t.Errorf("no PATCH operation for the scale subresource")
	}
}

func TestOperations(t *testing.T) {
	d := mustBuild(t, servedResources())
	type want struct {
		path, method, id, action string
		kind                     obj
	}
	pod := obj{"group": "", "version": "v1", "kind": "Pod"}
	deploy := obj{"group": "apps", "version": "v1", "kind": "Deployment"}
	for doc, wants := range map[string][]want{
		"api/v1": {
			{"/api/v1/namespaces/{namespace}/pods", "get", "listCoreV1NamespacedPod", "list", pod},
			{"/api/v1/namespaces/{namespace}/pods", "post", "createCoreV1NamespacedPod", "post", pod},
			{"/api/v1/namespaces/{namespace}/pods", "delete", "deleteCoreV1CollectionNamespacedPod", "deletecollection", pod},
			{"/api/v1/pods", "get", "listCoreV1PodForAllNamespaces", "list", pod},
			{"/api/v1/namespaces/{namespace}/pods/{name}", "get", "readCoreV1NamespacedPod", "get", pod},
			{"/api/v1/namespaces/{namespace}/pods/{name}", "put", "replaceCoreV1NamespacedPod", "put", pod},
			{"/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patchCoreV1NamespacedPod", "patch", pod},
			{"/api/v1/namespaces/{namespace}/pods/{name}", "delete", "deleteCoreV1NamespacedPod", "delete", pod},
			{"/api/v1/namespaces/{namespace}/pods/{name}/status", "patch", "patchCoreV1NamespacedPodStatus", "patch", pod},
			{"/api/v1/namespaces/{namespace}/pods/{name}/binding", "post", "createCoreV1NamespacedPodBinding", "post",
				obj{"group": "", "version": "v1", "kind": "Binding"}},
			{"/api/v1/namespaces/{namespace}/pods/{name}/eviction", "post", "createCoreV1NamespacedPodEviction", "post",
				obj{"group": "policy", "version": "v1", "kind": "Eviction"}},
			{"/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "readCoreV1NamespacedPodLog", "get", pod},
			{"/api/v1/namespaces", "get", "listCoreV1Namespace", "list", obj{"group": "", "version": "v1", "kind": "Namespace"}},
			{"/api/v1/nodes/{name}", "patch", "patchCoreV1Node", "patch", obj{"group": "", "version": "v1", "kind": "Node"}},
		},
		"apis/apps/v1": {
			{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "patch", "patchAppsV1NamespacedDeployment", "patch", deploy},
			{"/apis/apps/v1/deployments", "get", "listAppsV1DeploymentForAllNamespaces", "list", deploy},
			{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "patch", "patchAppsV1NamespacedDeploymentScale", "patch",
				obj{"group": "autoscaling", "version": "v1", "kind": "Scale"}},
		},
		"apis/rbac.authorization.k8s.io/v1": {
			{"/apis/rbac.authorization.k8s.io/v1/clusterroles", "get", "listRbacAuthorizationV1ClusterRole", "list",
				obj{"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole"}},
		},
	} {
		m := decoded(t, d, doc)
		for _, w := range wants {
			op, ok := dig(m, "paths", w.path, w.method).(obj)
			if !ok {
				t.Errorf("%s: no %s %s", doc, w.method, w.path)
				continue
			}
			if op["operationId"] != w.id || op["x-kubernetes-action"] != w.action ||
				!reflect.DeepEqual(op["x-kubernetes-group-version-kind"], any(w.kind)) {
				t.Errorf("%s %s: operationId %v, action %v, gvk %v; want %s, %s, %v", w.method, w.path,
					op["operationId"], op["x-kubernetes-action"], op["x-kubernetes-group-version-kind"], w.id, w.action, w.kind)
			}
		}
	}
	// Cluster-scoped resources have no namespaced paths.
	core := decoded(t, d, "api/v1")
	if dig(core, "paths", "/api/v1/namespaces/{namespace}/nodes") != nil {
		t.Errorf("namespaced path for nodes")
	}
	// The watch parameters are on list operations of watchable resources.
	var names []string
	for _, p := range dig(core, "paths", "/api/v1/namespaces/{namespace}/pods", "get", "parameters").([]any) {
		names = append(names, p.(obj)["name"].(string))
	}
	for _, want := range []string{"watch", "labelSelector", "fieldSelector", "resourceVersion", "limit", "continue", "sendInitialEvents"} {
		if !slices.Contains(names, want) {
			t.Errorf("list pods lacks parameter %s (has %v)", want, names)
		}
	}
}

func TestSchemasFollowKubernetes(t *testing.T) {
	d := mustBuild(t, servedResources())
	core := decoded(t, d, "api/v1")
	apps := decoded(t, d, "apis/apps/v1")

	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	container := schemaOf(t, core, "io.k8s.api.core.v1.Container")
	check("Container.required", container["required"], []any{"name"})
	check("Container.image.type", dig(container, "properties", "image", "type"), "string")
	check("Container.ports merge key", dig(container, "properties", "ports", "x-kubernetes-patch-merge-key"), "containerPort")
	check("Container.resources $ref", dig(container, "properties", "resources", "$ref"), refPrefix+"io.k8s.api.core.v1.ResourceRequirements")
	check("Container.name description", dig(container, "properties", "name", "description"), corev1.Container{}.SwaggerDoc()["name"])

	spec := schemaOf(t, core, "io.k8s.api.core.v1.PodSpec")
	check("PodSpec.containers patch strategy", dig(spec, "properties", "containers", "x-kubernetes-patch-strategy"), "merge")
	check("PodSpec.containers list type", dig(spec, "properties", "containers", "x-kubernetes-list-type"), "map")
	check("PodSpec.volumes patch strategy", dig(spec, "properties", "volumes", "x-kubernetes-patch-strategy"), "merge,retainKeys")
	check("PodSpec.runtimeClassName", dig(spec, "properties", "runtimeClassName", "type"), "string")
	check("PodSpec.nodeSelector", dig(spec, "properties", "nodeSelector", "additionalProperties", "type"), "string")
	check("PodSpec.terminationGracePeriodSeconds format", dig(spec, "properties", "terminationGracePeriodSeconds", "format"), "int64")

	meta := schemaOf(t, core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
	check("ObjectMeta.creationTimestamp", dig(meta, "properties", "creationTimestamp", "$ref"), refPrefix+"io.k8s.apimachinery.pkg.apis.meta.v1.Time")
	check("ObjectMeta.finalizers list type", dig(meta, "properties", "finalizers", "x-kubernetes-list-type"), "set")
	check("ObjectMeta.ownerReferences merge key", dig(meta, "properties", "ownerReferences", "x-kubernetes-patch-merge-key"), "uid")
	check("ObjectMeta.required", meta["required"], nil)

	timeSchema := schemaOf(t, core, "io.k8s.apimachinery.pkg.apis.meta.v1.Time")
	check("Time.type", timeSchema["type"], "string")
	check("Time.format", timeSchema["format"], "date-time")
	check("MicroTime.format", schemaOf(t, core, "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime")["format"], "date-time")

	quantity := schemaOf(t, core, "io.k8s.apimachinery.pkg.api.resource.Quantity")
	check("Quantity.oneOf", quantity["oneOf"], []any{obj{"type": "string"}, obj{"type": "number"}})
	intstr := schemaOf(t, core, "io.k8s.apimachinery.pkg.util.intstr.IntOrString")
	check("IntOrString.oneOf", intstr["oneOf"], []any{obj{"type": "integer"}, obj{"type": "string"}})
	check("IntOrString.x-kubernetes-int-or-string", intstr["x-kubernetes-int-or-string"], true)
	check("IntOrString.format", intstr["format"], "int-or-string")
	check("ResourceRequirements.limits", dig(schemaOf(t, core, "io.k8s.api.core.v1.ResourceRequirements"), "properties", "limits", "additionalProperties", "$ref"),
		refPrefix+"io.k8s.apimachinery.pkg.api.resource.Quantity")
	check("RawExtension.type", schemaOf(t, core, "io.k8s.apimachinery.pkg.runtime.RawExtension")["type"], "object")
	check("FieldsV1.type", schemaOf(t, core, "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1")["type"], "object")
	check("Secret.data", dig(schemaOf(t, core, "io.k8s.api.core.v1.Secret"), "properties", "data", "additionalProperties"),
		obj{"type": "string", "format": "byte"})
	check("Pod.metadata description", dig(schemaOf(t, core, "io.k8s.api.core.v1.Pod"), "properties", "metadata", "description"),
		corev1.Pod{}.SwaggerDoc()["metadata"])
	check("PodList.required", schemaOf(t, core, "io.k8s.api.core.v1.PodList")["required"], []any{"items"})
	// Inlined TypeMeta: apiVersion and kind are properties of the kind.
	check("Pod.kind", dig(schemaOf(t, core, "io.k8s.api.core.v1.Pod"), "properties", "kind", "type"), "string")

	dspec := schemaOf(t, apps, "io.k8s.api.apps.v1.DeploymentSpec")
	check("DeploymentSpec.required", dspec["required"], []any{"selector", "template"})
	check("DeploymentSpec.strategy", dig(dspec, "properties", "strategy", "x-kubernetes-patch-strategy"), "retainKeys")
	check("RollingUpdateDeployment.maxSurge", dig(schemaOf(t, apps, "io.k8s.api.apps.v1.RollingUpdateDeployment"), "properties", "maxSurge", "$ref"),
		refPrefix+"io.k8s.apimachinery.pkg.util.intstr.IntOrString")
}

// TestReflectionCornerCases covers what the k8s.io/api types do not
// exercise: types without model names or docs, promoted methods, anonymous
// structs, interfaces, recursion.
func TestReflectionCornerCases(t *testing.T) {
	type Widget struct {
		Name     string          `json:"name"`
		Children []Widget        `json:"children,omitempty"`
		Anything any             `json:"anything,omitempty"`
		Inline   struct{ X int } `json:"inline"`
		Skipped  string          `json:"-"`
		hidden   string
		Ratio    float64 `json:"ratio,omitzero"`
		NoTag    bool
	}
	type WidgetList struct {
		Items []Widget `json:"items"`
	}
	_ = Widget{}.hidden
	d := mustBuild(t, []Resource{{
		Group: "example.wasmfleet.io", Version: "v1alpha1", Kind: "Widget", Plural: "widgets",
		Type: reflect.TypeFor[Widget](), ListType: reflect.TypeFor[WidgetList](), Verbs: []string{"get", "list"},
	}})
	doc := decoded(t, d, "apis/example.wasmfleet.io/v1alpha1")
	name := "com.github.wasmfleet.wasmfleet.controlplane.apiserver.openapi.Widget"
	w := schemaOf(t, doc, name)
	props := w["properties"].(obj)
	for _, p := range []string{"name", "children", "anything", "inline", "ratio", "NoTag"} {
		if props[p] == nil {
			t.Errorf("Widget lacks property %s: %v", p, props)
		}
	}
	for _, p := range []string{"Skipped", "-", "hidden"} {
		if props[p] != nil {
			t.Errorf("Widget has property %s", p)
		}
	}
	if got := dig(props, "children", "items", "$ref"); got != refPrefix+name {
		t.Errorf("recursive $ref = %v", got)
	}
	if got := dig(props, "inline", "properties", "X", "format"); got != "int64" {
		t.Errorf("anonymous struct not inlined: %v", props["inline"])
	}
	if got := w["required"]; !reflect.DeepEqual(got, []any{"name", "inline", "NoTag"}) {
		t.Errorf("required = %v", got)
	}
	if got := w["x-kubernetes-group-version-kind"]; !reflect.DeepEqual(got, []any{obj{"group": "example.wasmfleet.io", "version": "v1alpha1", "kind": "Widget"}}) {
		t.Errorf("GVK = %v", got)
	}
}

func TestBuildRejectsBadResources(t *testing.T) {
	pod := func(mod func(*Resource)) []Resource {
		r := kubectlResources()[0]
		mod(&r)
		return []Resource{r}
	}
	for name, rs := range map[string][]Resource{
		"none":            nil,
		"no kind":         pod(func(r *Resource) { r.Kind = "" }),
		"no version":      pod(func(r *Resource) { r.Version = "" }),
		"no plural":       pod(func(r *Resource) { r.Plural = "" }),
		"no type":         pod(func(r *Resource) { r.Type = nil }),
		"pointer type":    pod(func(r *Resource) { r.Type = reflect.TypeFor[*corev1.Pod]() }),
		"unknown verb":    pod(func(r *Resource) { r.Verbs = []string{"get", "frobnicate"} }),
		"list, no list":   pod(func(r *Resource) { r.ListType = nil }),
		"bad subresource": pod(func(r *Resource) { r.Subresources = []Subresource{{Name: "log", Verbs: []string{"patch"}}} }),
		"twice":           append(kubectlResources()[:1:1], kubectlResources()[0]),
		"chan field": {{Version: "v1", Kind: "Bad", Plural: "bads", Verbs: []string{"get"},
			Type: reflect.TypeFor[struct{ C chan int }]()}},
	} {
		if _, err := Build(rs); err == nil {
			t.Errorf("%s: Build succeeded", name)
		}
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a, b := mustBuild(t, servedResources()), mustBuild(t, servedResources())
	if string(a.index) != string(b.index) {
		t.Errorf("index differs between builds:\n%s\n%s", a.index, b.index)
	}
}

func TestServeHTTP(t *testing.T) {
	d := mustBuild(t, kubectlResources())
	srv := httptest.NewServer(d)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// The index.
	resp, err := client.Get(srv.URL + "/openapi/v3")
	if err != nil {
		t.Fatal(err)
	}
	var index indexDoc
	if err := json.NewDecoder(resp.Body).Decode(&index); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("index Content-Type %q", ct)
	}
	if len(index.Paths) != 2 || index.Paths["api/v1"].ServerRelativeURL == "" || index.Paths["apis/apps/v1"].ServerRelativeURL == "" {
		t.Fatalf("index = %+v", index)
	}

	// A document at its hashed URL is immutable.
	u := index.Paths["apis/apps/v1"].ServerRelativeURL
	hash := strings.TrimPrefix(u, "/openapi/v3/apis/apps/v1?hash=")
	if len(hash) != 128 || hash != strings.ToUpper(hash) {
		t.Errorf("hash %q: want 128 upper-case hex digits", hash)
	}
	resp = get(u, "Accept", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Etag") != `"`+hash+`"` || resp.Header.Get("Cache-Control") != "public, immutable" {
		t.Errorf("GET %s: %d %v", u, resp.StatusCode, resp.Header)
	}
	// Without a hash: served, not marked immutable.
	resp = get("/openapi/v3/apis/apps/v1")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "" {
		t.Errorf("GET without hash: %d %v", resp.StatusCode, resp.Header)
	}
	// A stale hash is redirected to the current one.
	resp = get("/openapi/v3/apis/apps/v1?hash=0123")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != u {
		t.Errorf("stale hash: %d Location %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), u)
	}
	// Revalidation.
	resp = get(u, "If-None-Match", `"`+hash+`"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	for path, code := range map[string]int{
		"/openapi/v3/apis/batch/v1": 404,
		"/openapi/v3/apis/apps":     404,
		"/openapi/v3x":              404,
		"/openapi/v2":               200,
		"/openapi/v2/":              404,
		"/openapi/v3/":              200,
		"/openapi/v3/api/v1?hash=":  200,
		"/openapi/v3/apis/apps/v1/": 200,
	} {
		if resp := get(path); resp.StatusCode != code {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, code)
		}
	}
	if resp := get("/openapi/v3/api/v1", "Accept", "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"); resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("protobuf only: %d, want 406", resp.StatusCode)
	}
	resp, err = client.Post(srv.URL+"/openapi/v3", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	if _, err := url.Parse(u); err != nil {
		t.Error(err)
	}
}

// BenchmarkBuild measures Build for the resource set of DESIGN.md; it runs
// at API server start.
func BenchmarkBuild(b *testing.B) {
	rs := servedResources()
	var d *Documents
	for b.Loop() {
		d = mustBuild(b, rs)
	}
	total := 0
	for _, doc := range d.docs {
		total += len(doc.body)
	}
	b.ReportMetric(float64(total), "spec-bytes")
}

// TestDocumentSizes logs the size of each document (go test -v).
func TestDocumentSizes(t *testing.T) {
	d := mustBuild(t, servedResources())
	keys := slices.Sorted(maps.Keys(d.docs))
	for _, k := range keys {
		var m obj
		if err := json.Unmarshal(d.docs[k].body, &m); err != nil {
			t.Fatal(err)
		}
		t.Logf("%-36s %7d bytes, %3d paths, %3d schemas", k, len(d.docs[k].body),
			len(m["paths"].(obj)), len(dig(m, "components", "schemas").(obj)))
	}
}
