package openapi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// refPrefix starts every $ref: all schemas are components of the document.
const refPrefix = "#/components/schemas/"

// schema is the subset of an OpenAPI 3.0 schema object that the reflected
// types need, with the Kubernetes extensions kubectl reads.
type schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Description          string             `json:"description,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	Items                *schema            `json:"items,omitempty"`
	Properties           map[string]*schema `json:"properties,omitempty"`
	AdditionalProperties *schema            `json:"additionalProperties,omitempty"`
	Required             []string           `json:"required,omitempty"`
	OneOf                []*schema          `json:"oneOf,omitempty"`
	Default              any                `json:"default,omitempty"`

	GVK                   []gvk    `json:"x-kubernetes-group-version-kind,omitempty"`
	IntOrString           bool     `json:"x-kubernetes-int-or-string,omitempty"`
	PreserveUnknownFields bool     `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
	ListType              string   `json:"x-kubernetes-list-type,omitempty"`
	ListMapKeys           []string `json:"x-kubernetes-list-map-keys,omitempty"`
	PatchMergeKey         string   `json:"x-kubernetes-patch-merge-key,omitempty"`
	PatchStrategy         string   `json:"x-kubernetes-patch-strategy,omitempty"`
}

// gvk is an entry of x-kubernetes-group-version-kind. All three keys are
// always present (group "" for core): kubectl explain compares the maps.
type gvk struct {
	Group   string `json:"group"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

// Interfaces of k8s.io/apimachinery and k8s.io/api types that shape their
// schema, checked on the pointer type (it has both method sets).
type (
	swaggerDocer interface{ SwaggerDoc() map[string]string }
	modelNamer   interface{ OpenAPIModelName() string }
	v3OneOfTyper interface{ OpenAPIV3OneOfTypes() []string }
	schemaTyper  interface{ OpenAPISchemaType() []string }
	schemaFormat interface{ OpenAPISchemaFormat() string }
)

// builtinDescription describes the apimachinery types that carry no
// SwaggerDoc.
func builtinDescription(name string) string {
	switch name {
	case "io.k8s.apimachinery.pkg.apis.meta.v1.Time":
		return "Time is a timestamp encoded as an RFC 3339 string with second precision, e.g. \"2024-01-02T15:04:05Z\"."
	case "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":
		return "MicroTime is a timestamp encoded as an RFC 3339 string with microsecond precision."
	case "io.k8s.apimachinery.pkg.apis.meta.v1.Duration":
		return "Duration is a time span encoded as a Go duration string, e.g. \"1m30s\"."
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return "Quantity is a fixed-point number with an optional suffix, written as a string (\"100m\", \"128Mi\", \"1.5G\", \"2e3\") or a number. Binary suffixes are Ki, Mi, Gi, Ti, Pi, Ei; decimal suffixes are m, k, M, G, T, P, E."
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return "IntOrString holds either an integer or a string, e.g. a port number or a port name, or a count or a percentage (\"25%\")."
	case "io.k8s.apimachinery.pkg.runtime.RawExtension":
		return "RawExtension holds an embedded object in its own serialization; in JSON it is the object itself."
	case "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1":
		return "FieldsV1 is the set of fields a manager owns, in the JSON trie format of server-side apply."
	case "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent":
		return "WatchEvent is one event of a watch stream: its type (ADDED, MODIFIED, DELETED, BOOKMARK or ERROR) and the object."
	case "io.k8s.apimachinery.pkg.runtime.Unknown":
		return "Unknown holds an object whose type is not known to the server."
	case "io.k8s.apimachinery.pkg.apis.meta.v1.Patch":
		return "Patch is the body of a PATCH request; its format is given by the Content-Type."
	case "io.k8s.apimachinery.pkg.apis.meta.v1.GroupVersion":
		return "GroupVersion is an API group and version, \"group/version\"."
	}
	return ""
}

// registry builds component schemas from Go types, once per type, for one
// Build. It is not safe for concurrent use.
type registry struct {
	schemas map[string]*schema      // component name → schema
	types   map[string]reflect.Type // component name → the Go type it describes
	names   map[reflect.Type]string // Go type → component name
	deps    map[string][]string     // component name → components it references
	kinds   map[reflect.Type][]gvk  // Go type → the kinds it is published as
	err     error                   // first failure; later calls are no-ops
}

func newRegistry() *registry {
	return &registry{
		schemas: map[string]*schema{},
		types:   map[string]reflect.Type{},
		names:   map[reflect.Type]string{},
		deps:    map[string][]string{},
		kinds:   map[reflect.Type][]gvk{},
	}
}

func (r *registry) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// declareKind records that t is published as kind k. It must be called
// before t's component is built.
func (r *registry) declareKind(t reflect.Type, k gvk) {
	r.kinds[t] = append(r.kinds[t], k)
}

// declareMetaKinds gives the shared meta types their kinds, as
// kube-apiserver publishes them: Status in v1, DeleteOptions and
// WatchEvent in v1 and in every served group-version.
func (r *registry) declareMetaKinds(gvs []groupVersion) {
	r.declareKind(reflect.TypeFor[metav1.Status](), gvk{"", "Status", "v1"})
	r.declareKind(reflect.TypeFor[metav1.APIResourceList](), gvk{"", "APIResourceList", "v1"})
	for _, t := range []reflect.Type{reflect.TypeFor[metav1.DeleteOptions](), reflect.TypeFor[metav1.WatchEvent]()} {
		r.declareKind(t, gvk{"", t.Name(), "v1"})
		for _, gv := range gvs {
			r.declareKind(t, gvk{gv.group, t.Name(), gv.version})
		}
	}
}

// kindOf returns the kind t is published as, preferring one in gv; ok is
// false when t has no declared kind.
func (r *registry) kindOf(t reflect.Type, gv groupVersion) (k gvk, ok bool) {
	ks := r.kinds[t]
	for _, k := range ks {
		if k.Group == gv.group && k.Version == gv.version {
			return k, true
		}
	}
	if len(ks) > 0 {
		return ks[0], true
	}
	return gvk{}, false
}

// ref returns a schema referring to t's component, building it if needed.
func (r *registry) ref(t reflect.Type) *schema {
	return &schema{Ref: refPrefix + r.component(t)}
}

// component returns the component name of the named struct type t,
// building its schema (and those it references) on first use.
func (r *registry) component(t reflect.Type) string {
	if name, ok := r.names[t]; ok {
		return name
	}
	name := modelName(t)
	if other, ok := r.types[name]; ok && other != t {
		r.fail(fmt.Errorf("types %v and %v both map to schema %s", other, t, name))
	}
	r.names[t] = name
	r.types[name] = t
	s := &schema{}
	r.schemas[name] = s // registered before the fields: types may be recursive
	*s = *r.describeNamed(t, name)
	if ks := r.kinds[t]; len(ks) > 0 {
		s.GVK = sortedGVKs(append([]gvk(nil), ks...))
	}
	return name
}

// describeNamed builds the component schema of the named struct type t.
func (r *registry) describeNamed(t reflect.Type, name string) *schema {
	pt := reflect.PointerTo(t)
	desc := swaggerDoc(t)[""]
	if desc == "" {
		desc = builtinDescription(name)
	}
	var format string
	if pt.Implements(reflect.TypeFor[schemaFormat]()) {
		format = reflect.New(t).Interface().(schemaFormat).OpenAPISchemaFormat()
	}
	switch {
	case pt.Implements(reflect.TypeFor[v3OneOfTyper]()):
		// Quantity (string or number), IntOrString (integer or string).
		s := &schema{Description: desc, Format: format}
		for _, typ := range reflect.New(t).Interface().(v3OneOfTyper).OpenAPIV3OneOfTypes() {
			s.OneOf = append(s.OneOf, &schema{Type: typ})
		}
		s.IntOrString = format == "int-or-string"
		return s
	case pt.Implements(reflect.TypeFor[schemaTyper]()):
		// Time, MicroTime (string, date-time), Duration (string).
		s := &schema{Description: desc, Format: format}
		if types := reflect.New(t).Interface().(schemaTyper).OpenAPISchemaType(); len(types) == 1 {
			s.Type = types[0]
		}
		return s
	case pt.Implements(reflect.TypeFor[json.Marshaler]()):
		// RawExtension, FieldsV1, runtime.Unknown: JSON of their own.
		return &schema{Description: desc, Type: "object"}
	}
	s := &schema{Description: desc, Type: "object"}
	r.addFields(t, s, map[reflect.Type]bool{})
	return s
}

// listMapKeys are the keys of the lists whose items Kubernetes tells apart
// by more than their patch merge key: k8s.io/api marks them with
// +listMapKey comments, which reflection cannot read. Server-side apply
// merges these lists by their keys.
var listMapKeys = map[reflect.Type][]string{
	reflect.TypeFor[corev1.ContainerPort]():            {"containerPort", "protocol"},
	reflect.TypeFor[corev1.ServicePort]():              {"port", "protocol"},
	reflect.TypeFor[corev1.TopologySpreadConstraint](): {"topologyKey", "whenUnsatisfiable"},
}

// keyDefaults are the defaults of list keys that a manifest may leave out,
// as kube-apiserver's schemas declare them: server-side apply needs them to
// tell the items apart.
var keyDefaults = map[reflect.Type]map[string]any{
	reflect.TypeFor[corev1.ContainerPort](): {"protocol": "TCP"},
	reflect.TypeFor[corev1.ServicePort]():   {"protocol": "TCP"},
}

// addFields adds the JSON fields of struct t to s, flattening inlined
// (`json:",inline"` or untagged embedded) structs as encoding/json does.
// Descriptions come from the SwaggerDoc of the type declaring the field.
func (r *registry) addFields(t reflect.Type, s *schema, inlining map[reflect.Type]bool) {
	if inlining[t] {
		r.fail(fmt.Errorf("%v inlines itself", t))
		return
	}
	inlining[t] = true
	defer delete(inlining, t)

	doc := swaggerDoc(t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := hasOpt(opts, "inline") || (f.Anonymous && name == "")
		if inline {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				r.addFields(ft, s, inlining)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if s.Properties[name] != nil {
			continue // shadowed: the shallower field wins, as in encoding/json
		}
		p := r.fieldSchema(f.Type)
		p.Description = doc[name]
		p.Default = keyDefaults[t][name]
		strategy, mergeKey := f.Tag.Get("patchStrategy"), f.Tag.Get("patchMergeKey")
		p.PatchStrategy, p.PatchMergeKey = strategy, mergeKey
		if p.Type == "array" && hasOpt(strategy, "merge") {
			switch {
			case listMapKeys[f.Type.Elem()] != nil:
				p.ListType, p.ListMapKeys = "map", listMapKeys[f.Type.Elem()]
			case mergeKey != "":
				p.ListType, p.ListMapKeys = "map", []string{mergeKey}
			case p.Items.Ref == "" && p.Items.Type != "object":
				p.ListType = "set"
			}
		}
		if s.Properties == nil {
			s.Properties = map[string]*schema{}
		}
		s.Properties[name] = p
		if !hasOpt(opts, "omitempty") && !hasOpt(opts, "omitzero") {
			s.Required = append(s.Required, name)
		}
	}
}

// fieldSchema returns a fresh schema for a value of type t: a $ref for
// named structs, an inline schema otherwise.
func (r *registry) fieldSchema(t reflect.Type) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[metav1.GroupVersion]() {
		return &schema{Type: "string"}
	}
	switch t.Kind() {
	case reflect.Struct:
		if t.Name() == "" {
			s := &schema{Type: "object"}
			r.addFields(t, s, map[reflect.Type]bool{})
			return s
		}
		return r.ref(t)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return &schema{Type: "string", Format: "byte"}
		}
		return &schema{Type: "array", Items: r.fieldSchema(t.Elem())}
	case reflect.Map:
		if k := t.Key(); k.Kind() != reflect.String && !k.Implements(reflect.TypeFor[encoding.TextMarshaler]()) && !isInteger(k.Kind()) {
			r.fail(fmt.Errorf("map key type %v cannot be a JSON object key", k))
		}
		return &schema{Type: "object", AdditionalProperties: r.fieldSchema(t.Elem())}
	case reflect.String:
		return &schema{Type: "string"}
	case reflect.Bool:
		return &schema{Type: "boolean"}
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		return &schema{Type: "integer", Format: "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return &schema{Type: "integer", Format: "int64"}
	case reflect.Float32:
		return &schema{Type: "number", Format: "float"}
	case reflect.Float64:
		return &schema{Type: "number", Format: "double"}
	case reflect.Interface:
		return &schema{Type: "object", PreserveUnknownFields: true}
	}
	r.fail(fmt.Errorf("cannot describe Go type %v in OpenAPI", t))
	return &schema{}
}

// closure returns the components reachable from roots.
func (r *registry) closure(roots map[string]bool) map[string]*schema {
	out := make(map[string]*schema, len(roots)*4)
	stack := make([]string, 0, len(roots))
	for name := range roots {
		stack = append(stack, name)
	}
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if out[name] != nil {
			continue
		}
		s, ok := r.schemas[name]
		if !ok {
			r.fail(fmt.Errorf("internal: no component %s", name))
			continue
		}
		out[name] = s
		deps, ok := r.deps[name]
		if !ok {
			deps = refsOf(s, nil)
			r.deps[name] = deps
		}
		stack = append(stack, deps...)
	}
	return out
}

// refsOf appends the component names s refers to.
func refsOf(s *schema, acc []string) []string {
	if s == nil {
		return acc
	}
	if s.Ref != "" {
		acc = append(acc, strings.TrimPrefix(s.Ref, refPrefix))
	}
	acc = refsOf(s.Items, acc)
	acc = refsOf(s.AdditionalProperties, acc)
	for _, p := range s.Properties {
		acc = refsOf(p, acc)
	}
	for _, o := range s.OneOf {
		acc = refsOf(o, acc)
	}
	return acc
}

// swaggerDoc returns the SwaggerDoc map of t (key "" describes the type,
// other keys are JSON field names), or nil.
func swaggerDoc(t reflect.Type) map[string]string {
	if !reflect.PointerTo(t).Implements(reflect.TypeFor[swaggerDocer]()) {
		return nil
	}
	doc := reflect.New(t).Interface().(swaggerDocer).SwaggerDoc()
	// A method promoted from an embedded field (say metav1.TypeMeta)
	// describes that field's type, not t.
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.Anonymous {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && reflect.PointerTo(ft).Implements(reflect.TypeFor[swaggerDocer]()) &&
			reflect.ValueOf(reflect.New(ft).Interface().(swaggerDocer).SwaggerDoc()).UnsafePointer() == reflect.ValueOf(doc).UnsafePointer() {
			return nil
		}
	}
	return doc
}

// modelName is the component name Kubernetes gives t: its
// OpenAPIModelName() when it has one (k8s.io/api and apimachinery types
// do), else the Go package path with the domain reversed and the type
// name, e.g. k8s.io/api/core/v1.Pod → io.k8s.api.core.v1.Pod.
func modelName(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[modelNamer]()) {
		// A method promoted from an embedded field names that field's type.
		if n := reflect.New(t).Interface().(modelNamer).OpenAPIModelName(); strings.HasSuffix(n, "."+t.Name()) {
			return n
		}
	}
	parts := strings.Split(t.PkgPath(), "/")
	if strings.Contains(parts[0], ".") {
		labels := strings.Split(parts[0], ".")
		for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
			labels[i], labels[j] = labels[j], labels[i]
		}
		parts[0] = strings.Join(labels, ".")
	}
	name := strings.Map(func(c rune) rune {
		switch c {
		case '[', ']', '*', ',', ' ', '/':
			return '_'
		}
		return c
	}, t.Name())
	return strings.Join(parts, ".") + "." + name
}

// apiGroupOfPackage returns the API group and version of a type declared
// in k8s.io/api/<dir>/<version>; ok is false for other packages.
func apiGroupOfPackage(pkgPath string) (group, version string, ok bool) {
	rest, found := strings.CutPrefix(pkgPath, "k8s.io/api/")
	if !found {
		return "", "", false
	}
	dir, version, found := strings.Cut(rest, "/")
	if !found || strings.Contains(version, "/") {
		return "", "", false
	}
	switch dir {
	case "core":
		group = ""
	case "apps", "batch", "autoscaling", "policy", "extensions":
		group = dir
	case "rbac":
		group = "rbac.authorization.k8s.io"
	case "flowcontrol":
		group = "flowcontrol.apiserver.k8s.io"
	case "apiserverinternal":
		group = "internal.apiserver.k8s.io"
	default:
		group = dir + ".k8s.io"
	}
	return group, version, true
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}
