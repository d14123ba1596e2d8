// Package openapi owns the OpenAPI v3 documents the API server publishes
// under /openapi/v3, the way kube-apiserver does, so that an unmodified
// kubectl can use them.
//
// kubectl depends on these documents in three places:
//
//   - `kubectl apply` (and create/replace with validation on) asks
//     /openapi/v3, fetches the group-version document and looks for the
//     `fieldValidation` query parameter on the PATCH operation whose
//     `x-kubernetes-group-version-kind` is the object's kind. Found, it
//     sends `fieldValidation=Strict` and leaves validation to the server;
//     not found, it falls back to OpenAPI v2, which this server does not
//     serve, and the command fails.
//   - `kubectl apply` on an existing object computes the strategic merge
//     patch from the component schemas of the document: it picks the schema
//     whose `x-kubernetes-group-version-kind` list holds the kind and follows
//     `$ref`s, reading `x-kubernetes-patch-strategy` and
//     `x-kubernetes-patch-merge-key` on the properties.
//   - `kubectl explain` takes the kind from the operations of the resource's
//     paths, then the schema carrying that kind, and prints the
//     descriptions.
//
// The schemas are generated at start-up by reflection over the k8s.io/api Go
// types: struct fields and their json tags, the types' SwaggerDoc() maps for
// the descriptions, and the patchStrategy/patchMergeKey struct tags. No code
// generation is involved; a type added to a Resource is described as soon as
// it is compiled in.
//
// Build produces immutable Documents; Documents.ServeHTTP serves them and is
// safe for concurrent use. The OpenAPI v2 document (/openapi/v2) is derived
// from them on its first request (v2.go).
package openapi

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Resource describes one served resource for the spec.
type Resource struct {
	// Group is the API group; "" is the core (legacy) group served under /api.
	Group string
	// Version is the API version, e.g. "v1".
	Version string
	// Kind is the kind of the objects, e.g. "Pod".
	Kind string
	// Plural is the resource name in URLs, e.g. "pods".
	Plural string
	// Namespaced reports whether objects live in namespaces.
	Namespaced bool
	// Type is the Go type of one object, e.g. reflect.TypeFor[corev1.Pod]().
	Type reflect.Type
	// ListType is the Go type of a list, e.g. reflect.TypeFor[corev1.PodList]().
	// It is required when Verbs holds "list" or "deletecollection".
	ListType reflect.Type
	// Verbs are the Kubernetes verbs served: get, list, watch, create,
	// update, patch, delete, deletecollection.
	//
	// Without "patch", `kubectl apply` refuses objects of this kind even
	// for a create: its validation looks for the kind's PATCH operation and,
	// not finding one, falls back to OpenAPI v2 and fails.
	Verbs []string
	// Subresources are the subresources served under an object's path.
	Subresources []Subresource
}

// Subresource describes a subresource such as status, scale, binding,
// eviction or log.
type Subresource struct {
	// Name is the path element, e.g. "status".
	Name string
	// Type is the Go type of the request and response body, e.g. the
	// parent's type for "status", autoscalingv1.Scale for "scale",
	// corev1.Binding for "binding". Nil means a plain-text body (as "log").
	//
	// The kind published for Type is the kind of the Resource in the same
	// Build that has this Type; otherwise a k8s.io/api type's group and
	// version come from its package (k8s.io/api/policy/v1 → policy/v1) and
	// any other type takes the group and version of its parent resource.
	Type reflect.Type
	// Verbs are the verbs served; nil means get, update and patch (as for
	// status and scale). Only get, create, update, patch and delete are
	// meaningful for a subresource.
	Verbs []string
}

// Documents holds the OpenAPI v3 documents of all group-versions given to
// Build, already encoded. It is immutable and safe for concurrent use.
type Documents struct {
	modTime   time.Time
	index     []byte
	indexHash string
	docs      map[string]encodedDoc // key: "api/v1", "apis/apps/v1"
	swagger   v2Doc                 // /openapi/v2, built on its first request
}

type encodedDoc struct {
	body []byte
	hash string
}

// Build returns the documents for all group-versions of resources. It
// reports an error for an incomplete or contradictory Resource (missing
// names or types, a type that is not a struct, an unknown verb, a plural
// served twice in one group-version, a Go type that cannot be described).
func Build(resources []Resource) (*Documents, error) {
	if len(resources) == 0 {
		return nil, fmt.Errorf("openapi: no resources")
	}
	for i := range resources {
		if err := validateResource(&resources[i]); err != nil {
			return nil, fmt.Errorf("openapi: resource %d (%s): %w", i, resources[i].Plural, err)
		}
	}

	reg := newRegistry()
	// Group resources by group-version, keeping the order of first
	// appearance for deterministic output.
	var gvOrder []groupVersion
	byGV := map[groupVersion][]*Resource{}
	for i := range resources {
		r := &resources[i]
		gv := groupVersion{r.Group, r.Version}
		if _, ok := byGV[gv]; !ok {
			gvOrder = append(gvOrder, gv)
		}
		for _, other := range byGV[gv] {
			if other.Plural == r.Plural {
				return nil, fmt.Errorf("openapi: %s served twice in %s", r.Plural, gv)
			}
		}
		byGV[gv] = append(byGV[gv], r)
		reg.declareKind(r.Type, gvk{r.Group, r.Kind, r.Version})
		if r.ListType != nil {
			reg.declareKind(r.ListType, gvk{r.Group, r.Kind + "List", r.Version})
		}
	}
	// Subresource bodies that are no served resource's Type (Scale,
	// Binding, Eviction) are kinds of the group-version of their k8s.io/api
	// package, or else of their parent's.
	for i := range resources {
		r := &resources[i]
		for _, s := range r.Subresources {
			if s.Type == nil || len(reg.kinds[s.Type]) > 0 {
				continue
			}
			group, version, ok := apiGroupOfPackage(s.Type.PkgPath())
			if !ok {
				group, version = r.Group, r.Version
			}
			reg.declareKind(s.Type, gvk{group, s.Type.Name(), version})
		}
	}
	reg.declareMetaKinds(gvOrder)

	d := &Documents{modTime: time.Now(), docs: make(map[string]encodedDoc, len(gvOrder))}
	index := indexDoc{Paths: make(map[string]indexEntry, len(gvOrder))}
	for _, gv := range gvOrder {
		doc, err := buildDocument(reg, gv, byGV[gv])
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", gv, err)
		}
		body, err := marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("openapi: encode %s: %w", gv, err)
		}
		h := hashOf(body)
		key := gv.apiPath()
		d.docs[key] = encodedDoc{body: body, hash: h}
		index.Paths[key] = indexEntry{ServerRelativeURL: serverRelativeURL(key, h)}
	}
	var err error
	if d.index, err = marshal(index); err != nil {
		return nil, fmt.Errorf("openapi: encode index: %w", err)
	}
	d.indexHash = hashOf(d.index)
	return d, nil
}

// ServeHTTP serves GET (and HEAD) /openapi/v3, the index
// {"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=<HASH>"},…}},
// and /openapi/v3/<api/v1|apis/GROUP/VERSION>[?hash=HASH], the OpenAPI 3.0
// document of one group-version, as application/json with the hash as
// ETag. As kube-apiserver does, a request carrying the current hash gets
// "Cache-Control: public, immutable", and one carrying a stale hash is
// redirected (301) to the current URL. Unknown paths get 404, other
// methods 405, an Accept header that rules out JSON 406. It serves
// /openapi/v2 too (see serveV2).
func (d *Documents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/openapi/v2" {
		d.serveV2(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/openapi/v3")
	if !ok || (rest != "" && rest[0] != '/') {
		http.NotFound(w, r)
		return
	}
	key := strings.Trim(rest, "/")
	if !acceptsJSON(r.Header.Get("Accept")) {
		http.Error(w, "only application/json is served", http.StatusNotAcceptable)
		return
	}
	if key == "" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Etag", strconv.Quote(d.indexHash))
		http.ServeContent(w, r, "", d.modTime, bytes.NewReader(d.index))
		return
	}
	doc, ok := d.docs[key]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Etag", strconv.Quote(doc.hash))
	w.Header().Add("Vary", "Accept")
	if h := r.URL.Query().Get("hash"); h != "" {
		if h != doc.hash {
			http.Redirect(w, r, serverRelativeURL(key, doc.hash), http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
	}
	http.ServeContent(w, r, "", d.modTime, bytes.NewReader(doc.body))
}

// acceptsJSON reports whether an Accept header admits application/json.
// kubectl sends "application/json"; an empty header accepts anything.
func acceptsJSON(accept string) bool {
	if accept == "" {
		return true
	}
	for _, clause := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(clause, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/json", "application/*", "*/*":
			return true
		}
	}
	return false
}

type indexDoc struct {
	Paths map[string]indexEntry `json:"paths"`
}

type indexEntry struct {
	ServerRelativeURL string `json:"serverRelativeURL"`
}

func serverRelativeURL(key, hash string) string {
	return "/openapi/v3/" + key + "?" + url.Values{"hash": {hash}}.Encode()
}

// hashOf is kube-apiserver's: the upper-case hex SHA-512 of the document.
func hashOf(b []byte) string {
	sum := sha512.Sum512(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// marshal encodes v as compact JSON without HTML escaping (descriptions
// contain '<' and '&').
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type groupVersion struct{ group, version string }

func (gv groupVersion) String() string {
	if gv.group == "" {
		return gv.version
	}
	return gv.group + "/" + gv.version
}

// apiPath is the key of the group-version in the index: "api/v1" or
// "apis/apps/v1".
func (gv groupVersion) apiPath() string {
	if gv.group == "" {
		return "api/" + gv.version
	}
	return "apis/" + gv.group + "/" + gv.version
}

func knownVerb(v string) bool {
	switch v {
	case "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

func validateResource(r *Resource) error {
	switch {
	case r.Version == "":
		return fmt.Errorf("no Version")
	case r.Kind == "":
		return fmt.Errorf("no Kind")
	case r.Plural == "":
		return fmt.Errorf("no Plural")
	case r.Type == nil:
		return fmt.Errorf("no Type")
	case r.Type.Kind() != reflect.Struct:
		return fmt.Errorf("Type %v is not a struct", r.Type)
	case strings.Contains(r.Plural, "/"):
		return fmt.Errorf("Plural %q contains '/'", r.Plural)
	}
	if r.ListType != nil && r.ListType.Kind() != reflect.Struct {
		return fmt.Errorf("ListType %v is not a struct", r.ListType)
	}
	for _, v := range r.Verbs {
		if !knownVerb(v) {
			return fmt.Errorf("unknown verb %q", v)
		}
		if (v == "list" || v == "deletecollection") && r.ListType == nil {
			return fmt.Errorf("verb %q needs a ListType", v)
		}
	}
	seen := map[string]bool{}
	for _, s := range r.Subresources {
		if s.Name == "" || strings.Contains(s.Name, "/") {
			return fmt.Errorf("bad subresource name %q", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("subresource %q given twice", s.Name)
		}
		seen[s.Name] = true
		if s.Type != nil && s.Type.Kind() != reflect.Struct {
			return fmt.Errorf("subresource %s: Type %v is not a struct", s.Name, s.Type)
		}
		for _, v := range s.Verbs {
			switch v {
			case "get", "create", "delete":
			case "update", "patch":
				if s.Type == nil {
					return fmt.Errorf("subresource %s: verb %q needs a Type", s.Name, v)
				}
			default:
				return fmt.Errorf("subresource %s: unsupported verb %q", s.Name, v)
			}
		}
		if s.Type == nil && s.Verbs == nil {
			return fmt.Errorf("subresource %s: no Type, so Verbs must be given (get, create or delete)", s.Name)
		}
	}
	return nil
}

func sortedGVKs(in []gvk) []gvk {
	sort.Slice(in, func(i, j int) bool {
		a, b := in[i], in[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Kind < b.Kind
	})
	out := in[:0]
	for _, g := range in {
		if len(out) == 0 || g != out[len(out)-1] {
			out = append(out, g)
		}
	}
	return out
}

// Schemas returns the component schemas of every document, by name, as
// kube-openapi schemas: what apimachinery's server-side apply
// (managedfields.NewTypeConverter) reads the types' structure from.
func (d *Documents) Schemas() (map[string]*spec.Schema, error) {
	out := map[string]*spec.Schema{}
	for key, doc := range d.docs {
		var parsed struct {
			Components struct {
				Schemas map[string]*spec.Schema `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(doc.body, &parsed); err != nil {
			return nil, fmt.Errorf("openapi: decode %s: %w", key, err)
		}
		maps.Copy(out, parsed.Components.Schemas)
	}
	return out, nil
}
