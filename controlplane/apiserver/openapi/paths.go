package openapi

import (
	"reflect"
	"strings"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// document is one group-version's OpenAPI 3.0 document.
type document struct {
	OpenAPI    string               `json:"openapi"`
	Info       info                 `json:"info"`
	Paths      map[string]*pathItem `json:"paths"`
	Components components           `json:"components"`
}

type info struct {
	Title   string `json:"title"`
	Version string `json:"version"`
}

type components struct {
	Schemas map[string]*schema `json:"schemas"`
}

type pathItem struct {
	Get        *operation   `json:"get,omitempty"`
	Put        *operation   `json:"put,omitempty"`
	Post       *operation   `json:"post,omitempty"`
	Delete     *operation   `json:"delete,omitempty"`
	Patch      *operation   `json:"patch,omitempty"`
	Parameters []*parameter `json:"parameters,omitempty"`
}

// operation carries, besides the OpenAPI fields, the two extensions
// kubectl reads: x-kubernetes-action and x-kubernetes-group-version-kind
// (a single object here, unlike the list on schemas).
type operation struct {
	Description string               `json:"description,omitempty"`
	OperationID string               `json:"operationId"`
	Tags        []string             `json:"tags,omitempty"`
	Parameters  []*parameter         `json:"parameters,omitempty"`
	RequestBody *requestBody         `json:"requestBody,omitempty"`
	Responses   map[string]*response `json:"responses"`
	Action      string               `json:"x-kubernetes-action,omitempty"`
	GVK         *gvk                 `json:"x-kubernetes-group-version-kind,omitempty"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *schema `json:"schema"`
}

type requestBody struct {
	Content  map[string]*mediaType `json:"content"`
	Required bool                  `json:"required,omitempty"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type response struct {
	Description string                `json:"description"`
	Content     map[string]*mediaType `json:"content,omitempty"`
}

// patchContentTypes are the content types of PATCH request bodies; kubectl
// apply looks for the strategic merge one before computing a strategic
// merge patch.
func patchContentTypes() []string {
	return []string{
		"application/json-patch+json",
		"application/merge-patch+json",
		"application/strategic-merge-patch+json",
		"application/apply-patch+yaml",
	}
}

// Query and path parameters, described in our own words after the
// Kubernetes API conventions.
func queryParam(name, typ, desc string) *parameter {
	return &parameter{Name: name, In: "query", Description: desc, Schema: &schema{Type: typ}}
}

func pathParam(name, desc string) *parameter {
	return &parameter{Name: name, In: "path", Description: desc, Required: true, Schema: &schema{Type: "string"}}
}

func paramPretty() *parameter {
	return queryParam("pretty", "string", "If 'true', the output is pretty-printed.")
}

func paramNamespace() *parameter {
	return pathParam("namespace", "The namespace of the objects.")
}

func paramDryRun() *parameter {
	return queryParam("dryRun", "string", "When present, the request is processed but nothing is persisted. The only valid value is All: every dry-run stage is run.")
}

// writeParams are the query parameters of create and replace operations.
// fieldValidation must be among them for kubectl to leave strict field
// validation to the server.
func writeParams() []*parameter {
	return []*parameter{
		paramDryRun(),
		queryParam("fieldManager", "string", "The name of the actor or entity making the change, at most 128 printable characters. Required for apply patches (application/apply-patch+yaml), optional otherwise."),
		queryParam("fieldValidation", "string", "How the server treats unknown or duplicate fields in the request object: Ignore drops them silently, Warn accepts the request and returns a warning for each such field, Strict rejects the request."),
	}
}

// patchParams are writeParams and force.
func patchParams() []*parameter {
	return append(writeParams(),
		queryParam("force", "boolean", "Force an apply patch: take over fields managed by other field managers. Must be unset for other patch types."))
}

func deleteParams() []*parameter {
	return []*parameter{
		paramDryRun(),
		queryParam("gracePeriodSeconds", "integer", "Seconds to wait before the object is deleted; 0 deletes immediately. Unset uses the default of the kind."),
		queryParam("orphanDependents", "boolean", "Deprecated, use propagationPolicy. If true, dependents are orphaned; if false, they are deleted."),
		queryParam("propagationPolicy", "string", "Whether and how garbage collection deletes dependents: Orphan, Background or Foreground."),
	}
}

func listParams() []*parameter {
	return []*parameter{
		queryParam("labelSelector", "string", "Only objects whose labels match this selector. Defaults to everything."),
		queryParam("fieldSelector", "string", "Only objects whose fields match this selector. Defaults to everything."),
		queryParam("limit", "integer", "The maximum number of objects to return. When more exist, the list's metadata.continue is set to fetch the next chunk."),
		queryParam("continue", "string", "The continue token of a previous chunked list, to fetch the next chunk."),
		queryParam("resourceVersion", "string", "The resource version the list must be served from; see resourceVersionMatch. Defaults to the most recent."),
		queryParam("resourceVersionMatch", "string", "How resourceVersion applies to a list: Exact or NotOlderThan."),
		queryParam("timeoutSeconds", "integer", "The time limit of the list or watch call."),
	}
}

func watchParams() []*parameter {
	return []*parameter{
		queryParam("watch", "boolean", "Watch for changes from resourceVersion and stream them as watch events instead of returning a list."),
		queryParam("allowWatchBookmarks", "boolean", "Ask for BOOKMARK events carrying the current resource version. Ignored unless watching."),
		queryParam("sendInitialEvents", "boolean", "Start a watch with an ADDED event per existing object, then a BOOKMARK annotated k8s.io/initial-events-end. Needs resourceVersionMatch=NotOlderThan."),
	}
}

func logParams() []*parameter {
	return []*parameter{
		queryParam("container", "string", "The container to return the log of. Defaults to the only container, if there is one."),
		queryParam("follow", "boolean", "Follow the log stream."),
		queryParam("previous", "boolean", "Return the log of the previous, terminated instance of the container."),
		queryParam("sinceSeconds", "integer", "Only log lines newer than this many seconds."),
		queryParam("tailLines", "integer", "Only this many lines from the end of the log."),
		queryParam("limitBytes", "integer", "Stop after this many bytes."),
		queryParam("timestamps", "boolean", "Prefix every line with an RFC 3339 timestamp."),
	}
}

func concat(lists ...[]*parameter) []*parameter {
	var out []*parameter
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// docBuilder assembles one group-version document.
type docBuilder struct {
	reg   *registry
	gv    groupVersion
	name  string // operationId infix: CoreV1, AppsV1, RbacAuthorizationV1
	tag   string // core_v1, apps_v1, rbacAuthorization_v1
	paths map[string]*pathItem
	roots map[string]bool // components referenced by operations
}

func buildDocument(reg *registry, gv groupVersion, resources []*Resource) (*document, error) {
	group := groupCamel(gv.group)
	b := &docBuilder{
		reg:   reg,
		gv:    gv,
		name:  group + upperFirst(gv.version),
		tag:   lowerFirst(group) + "_" + gv.version,
		paths: map[string]*pathItem{},
		roots: map[string]bool{},
	}
	prefix := "/" + gv.apiPath()
	b.paths[prefix+"/"] = &pathItem{Get: &operation{
		Description: "get available resources",
		OperationID: "get" + b.name + "APIResources",
		Tags:        []string{b.tag},
		Responses:   b.responses(b.ref(reflect.TypeFor[metav1.APIResourceList]()), "200"),
	}}
	for _, r := range resources {
		b.addResource(prefix, r)
	}
	// Shared meta types every document carries, as kube-apiserver's do.
	for _, t := range []reflect.Type{
		reflect.TypeFor[metav1.WatchEvent](),
		reflect.TypeFor[metav1.Status](),
		reflect.TypeFor[metav1.DeleteOptions](),
	} {
		b.ref(t)
	}
	schemas := reg.closure(b.roots)
	if reg.err != nil {
		return nil, reg.err
	}
	return &document{
		OpenAPI:    "3.0.0",
		Info:       info{Title: "wasmfleet", Version: gv.String()},
		Paths:      b.paths,
		Components: components{Schemas: schemas},
	}, nil
}

// ref returns a reference to t's component and roots it in the document.
func (b *docBuilder) ref(t reflect.Type) *schema {
	s := b.reg.ref(t)
	b.roots[strings.TrimPrefix(s.Ref, refPrefix)] = true
	return s
}

func (b *docBuilder) addResource(prefix string, r *Resource) {
	kind := gvk{r.Group, r.Kind, r.Version}
	verbs := map[string]bool{}
	for _, v := range r.Verbs {
		verbs[v] = true
	}
	obj := b.ref(r.Type)
	var list *schema
	if r.ListType != nil {
		list = b.ref(r.ListType)
	}

	scope, collection := "", prefix+"/"+r.Plural
	pathParams := []*parameter{paramPretty()}
	if r.Namespaced {
		scope = "Namespaced"
		collection = prefix + "/namespaces/{namespace}/" + r.Plural
		pathParams = []*parameter{paramNamespace(), paramPretty()}
	}
	id := func(action, suffix string) string { return action + b.name + suffix + scope + r.Kind }
	op := func(action, xAction, desc string) *operation {
		return &operation{
			Description: desc, OperationID: id(action, ""), Tags: []string{b.tag},
			Action: xAction, GVK: &kind,
		}
	}

	listOp := func(o *operation) *operation {
		o.Parameters = listParams()
		if verbs["watch"] {
			o.Parameters = concat(listParams(), watchParams())
		}
		o.Responses = b.responses(list, "200")
		o.Responses["200"].Content["application/json;stream=watch"] = &mediaType{Schema: list}
		return o
	}

	// Collection: list, create, deletecollection.
	coll := &pathItem{Parameters: pathParams}
	if verbs["list"] {
		coll.Get = listOp(op("list", "list", "list or watch objects of kind "+r.Kind))
	}
	if verbs["create"] {
		o := op("create", "post", "create a "+r.Kind)
		o.Parameters = writeParams()
		o.RequestBody = body(obj, "application/json", "application/yaml")
		o.Responses = b.responses(obj, "200", "201", "202")
		coll.Post = o
	}
	if verbs["deletecollection"] {
		o := op("delete", "deletecollection", "delete collection of "+r.Kind)
		o.OperationID = id("delete", "Collection")
		o.Parameters = concat(deleteParams(), listParams())
		o.RequestBody = body(b.ref(reflect.TypeFor[metav1.DeleteOptions]()), "application/json")
		o.Responses = b.responses(b.ref(reflect.TypeFor[metav1.Status]()), "200")
		coll.Delete = o
	}
	b.add(collection, coll)

	// All namespaces: list only.
	if r.Namespaced && verbs["list"] {
		o := listOp(op("list", "list", "list or watch objects of kind "+r.Kind))
		o.OperationID = "list" + b.name + r.Kind + "ForAllNamespaces"
		b.add(prefix+"/"+r.Plural, &pathItem{Get: o, Parameters: []*parameter{paramPretty()}})
	}

	// One object: read, replace, patch, delete.
	itemPath := collection + "/{name}"
	nameParam := pathParam("name", "The name of the "+r.Kind+".")
	itemParams := concat([]*parameter{nameParam}, pathParams)
	item := &pathItem{Parameters: itemParams}
	if verbs["get"] {
		o := op("read", "get", "read the specified "+r.Kind)
		o.Responses = b.responses(obj, "200")
		item.Get = o
	}
	if verbs["update"] {
		item.Put = b.replaceOp(op("replace", "put", "replace the specified "+r.Kind), obj)
	}
	if verbs["patch"] {
		item.Patch = b.patchOp(op("patch", "patch", "partially update the specified "+r.Kind), obj)
	}
	if verbs["delete"] {
		o := op("delete", "delete", "delete a "+r.Kind)
		o.Parameters = deleteParams()
		o.RequestBody = body(b.ref(reflect.TypeFor[metav1.DeleteOptions]()), "application/json")
		o.Responses = b.responses(b.ref(reflect.TypeFor[metav1.Status]()), "200", "202")
		item.Delete = o
	}
	b.add(itemPath, item)

	for _, sub := range r.Subresources {
		b.addSubresource(itemPath, itemParams, r, kind, scope, sub)
	}
}

func (b *docBuilder) addSubresource(itemPath string, params []*parameter, r *Resource, parent gvk, scope string, sub Subresource) {
	verbs := sub.Verbs
	if verbs == nil {
		verbs = []string{"get", "update", "patch"}
	}
	kind := parent
	var obj *schema
	if sub.Type != nil {
		obj = b.ref(sub.Type)
		if k, ok := b.reg.kindOf(sub.Type, b.gv); ok {
			kind = k
		}
	}
	suffix := upperFirst(sub.Name)
	op := func(action, xAction, desc string) *operation {
		return &operation{
			Description: desc, OperationID: action + b.name + scope + r.Kind + suffix, Tags: []string{b.tag},
			Action: xAction, GVK: &kind,
		}
	}
	item := &pathItem{Parameters: params}
	for _, v := range verbs {
		switch v {
		case "get":
			o := op("read", "get", "read "+sub.Name+" of the specified "+r.Kind)
			if obj != nil {
				o.Responses = b.responses(obj, "200")
			} else {
				if sub.Name == "log" {
					o.Parameters = logParams()
				}
				o.Responses = map[string]*response{
					"200": {Description: "OK", Content: map[string]*mediaType{"text/plain": {Schema: &schema{Type: "string"}}}},
					"401": {Description: "Unauthorized"},
				}
			}
			item.Get = o
		case "create":
			o := op("create", "post", "create "+sub.Name+" of a "+r.Kind)
			o.Parameters = writeParams()
			if obj != nil {
				o.RequestBody = body(obj, "application/json", "application/yaml")
				o.Responses = b.responses(obj, "200", "201", "202")
			} else {
				o.Responses = b.responses(b.ref(reflect.TypeFor[metav1.Status]()), "200", "201", "202")
			}
			item.Post = o
		case "update":
			if obj != nil {
				item.Put = b.replaceOp(op("replace", "put", "replace "+sub.Name+" of the specified "+r.Kind), obj)
			}
		case "patch":
			if obj != nil {
				item.Patch = b.patchOp(op("patch", "patch", "partially update "+sub.Name+" of the specified "+r.Kind), obj)
			}
		case "delete":
			o := op("delete", "delete", "delete "+sub.Name+" of a "+r.Kind)
			o.Parameters = deleteParams()
			o.RequestBody = body(b.ref(reflect.TypeFor[metav1.DeleteOptions]()), "application/json")
			o.Responses = b.responses(b.ref(reflect.TypeFor[metav1.Status]()), "200", "202")
			item.Delete = o
		}
	}
	b.add(itemPath+"/"+sub.Name, item)
}

func (b *docBuilder) replaceOp(o *operation, obj *schema) *operation {
	o.Parameters = writeParams()
	o.RequestBody = body(obj, "application/json", "application/yaml")
	o.Responses = b.responses(obj, "200", "201")
	return o
}

// patchOp fills a PATCH operation. kubectl apply takes the presence of
// fieldValidation among these operation-level parameters as the server's
// promise to validate fields itself.
func (b *docBuilder) patchOp(o *operation, obj *schema) *operation {
	o.Parameters = patchParams()
	o.RequestBody = body(b.ref(reflect.TypeFor[metav1.Patch]()), patchContentTypes()...)
	o.Responses = b.responses(obj, "200", "201")
	return o
}

// add merges item into the path (a path is added once per resource, but
// be safe against two resources colliding).
func (b *docBuilder) add(path string, item *pathItem) {
	if item.Get == nil && item.Put == nil && item.Post == nil && item.Delete == nil && item.Patch == nil {
		return
	}
	old, ok := b.paths[path]
	if !ok {
		b.paths[path] = item
		return
	}
	for _, m := range []struct{ dst, src **operation }{
		{&old.Get, &item.Get}, {&old.Put, &item.Put}, {&old.Post, &item.Post},
		{&old.Delete, &item.Delete}, {&old.Patch, &item.Patch},
	} {
		if *m.dst == nil {
			*m.dst = *m.src
		}
	}
}

func body(s *schema, contentTypes ...string) *requestBody {
	rb := &requestBody{Content: map[string]*mediaType{}, Required: true}
	for _, ct := range contentTypes {
		rb.Content[ct] = &mediaType{Schema: s}
	}
	return rb
}

// responses answers s as JSON and YAML for each of the given codes (200,
// 201, 202), and 401 without a body.
func (b *docBuilder) responses(s *schema, codes ...string) map[string]*response {
	out := map[string]*response{"401": {Description: "Unauthorized"}}
	for _, code := range codes {
		out[code] = &response{Description: statusText(code), Content: map[string]*mediaType{
			"application/json": {Schema: s},
			"application/yaml": {Schema: s},
		}}
	}
	return out
}

func statusText(code string) string {
	switch code {
	case "201":
		return "Created"
	case "202":
		return "Accepted"
	}
	return "OK"
}

// groupCamel is the group as it appears in operation ids: "" → Core,
// apps → Apps, rbac.authorization.k8s.io → RbacAuthorization.
func groupCamel(group string) string {
	if group == "" {
		return "Core"
	}
	group = strings.TrimSuffix(group, ".k8s.io")
	var sb strings.Builder
	for _, part := range strings.FieldsFunc(group, func(r rune) bool { return r == '.' || r == '-' }) {
		sb.WriteString(upperFirst(part))
	}
	return sb.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}
