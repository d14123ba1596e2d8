package apiserver

import (
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// reqInfo is what a resource request addresses.
type reqInfo struct {
	verb        string
	res         *resource
	namespace   string
	name        string
	subresource string
	// manager names the writer for managed fields (see managerName);
	// ownFields says the mutation set them itself (an apply, a scale).
	manager   string
	ownFields bool
	// out is what the response carries, negotiated from Accept by handle
	// (see partial.go).
	out output
}

// parse resolves /api/v1/... and /apis/<group>/<version>/... paths.
func (s *Server) parse(r *http.Request) (*reqInfo, error) {
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	var gv schema.GroupVersion
	switch {
	case parts[0] == "api" && len(parts) >= 2:
		gv, parts = schema.GroupVersion{Version: parts[1]}, parts[2:]
	case parts[0] == "apis" && len(parts) >= 3:
		gv, parts = schema.GroupVersion{Group: parts[1], Version: parts[2]}, parts[3:]
	default:
		return nil, notFound(r.URL.Path)
	}
	// The deprecated /watch/ prefix that kube-apiserver still serves:
	// .../watch/<resource>[/<name>] is a GET with watch=true, a name
	// selecting metadata.name.
	legacyWatch := len(parts) > 0 && parts[0] == "watch"
	if legacyWatch {
		if r.Method != http.MethodGet {
			// As kube-apiserver, whose router has only GET routes there.
			return nil, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, r.Method, schema.GroupResource{}, "", "405: Method Not Allowed", 0, false)
		}
		parts = parts[1:]
	}
	if len(parts) == 0 {
		return nil, notFound(r.URL.Path)
	}
	info := &reqInfo{}
	// namespaces/<ns>/<resource>... unless it is the namespace object itself.
	if parts[0] == "namespaces" && len(parts) >= 3 && (gv.Group != "" || (parts[2] != "status" && parts[2] != "finalize")) {
		info.namespace, parts = parts[1], parts[2:]
	}
	res := s.reg.lookup(gv, parts[0])
	if res == nil {
		return nil, notFound(r.URL.Path)
	}
	info.res = res
	if len(parts) > 3 {
		return nil, notFound(r.URL.Path)
	}
	if len(parts) >= 2 {
		info.name = parts[1]
	}
	if len(parts) == 3 {
		info.subresource = parts[2]
		if !res.hasSubresource(info.subresource) {
			return nil, notFound(r.URL.Path)
		}
	}
	if res.namespaced && info.namespace == "" && info.name != "" {
		return nil, notFound(r.URL.Path)
	}
	if !res.namespaced && info.namespace != "" {
		return nil, notFound(r.URL.Path)
	}
	if info.namespace != "" {
		if errs := validation.IsDNS1123Label(info.namespace); len(errs) > 0 {
			return nil, badRequest("invalid namespace %q: %s", info.namespace, strings.Join(errs, "; "))
		}
	}
	if legacyWatch {
		if info.subresource != "" {
			return nil, notFound(r.URL.Path)
		}
		if err := watchLegacy(r, info); err != nil {
			return nil, err
		}
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case info.name != "":
			info.verb = "get"
		case queryBool(q, "watch"):
			info.verb = "watch"
		default:
			info.verb = "list"
		}
	case http.MethodPost:
		info.verb = "create"
	case http.MethodPut:
		info.verb = "update"
	case http.MethodPatch:
		info.verb = "patch"
	case http.MethodDelete:
		info.verb = "delete"
		if info.name == "" {
			info.verb = "deletecollection"
		}
	default:
		return nil, apierrors.NewMethodNotSupported(res.gvr.GroupResource(), r.Method)
	}
	if !res.allows(info) {
		return nil, apierrors.NewMethodNotSupported(res.gvr.GroupResource(), info.verb)
	}
	return info, nil
}

// watchLegacy makes a request of a /watch/ path the watch of its
// collection: watch=true, and the name it gives as the field selector on
// metadata.name, which a field selector it has must then be.
func watchLegacy(r *http.Request, info *reqInfo) error {
	q := r.URL.Query()
	q.Set("watch", "true")
	if info.name != "" {
		fs, err := fields.ParseSelector(q.Get("fieldSelector"))
		if err != nil {
			return badRequest("invalid fieldSelector: %v", err)
		}
		if fs.Empty() {
			q.Set("fieldSelector", fields.OneTermEqualSelector("metadata.name", info.name).String())
		} else if name, ok := fs.RequiresExactMatch("metadata.name"); !ok || name != info.name {
			return badRequest("fieldSelector metadata.name doesn't match requested name")
		}
		info.name = ""
	}
	r.URL.RawQuery = q.Encode()
	return nil
}

// hasSubresource reports whether name is a subresource of r.
func (r *resource) hasSubresource(name string) bool {
	switch name {
	case "status":
		return r.status
	case "scale":
		return r.scale
	case "binding", "eviction", "log", "exec", "attach", "portforward":
		return r.gvr.Resource == "pods"
	case "finalize":
		return r.gvr.Resource == "namespaces"
	}
	return false
}

// allows reports whether the verb is served for the addressed path.
func (r *resource) allows(info *reqInfo) bool {
	switch info.subresource {
	case "binding", "eviction":
		return info.verb == "create"
	case "log":
		return info.verb == "get"
	case "exec", "attach", "portforward":
		return info.verb == "get" || info.verb == "create"
	case "status", "scale", "finalize":
		return info.verb == "get" || info.verb == "update" || info.verb == "patch"
	}
	switch {
	case info.name != "" && info.verb == "create",
		info.name == "" && (info.verb == "update" || info.verb == "patch"),
		// All namespaces at once: only reads.
		r.namespaced && info.namespace == "" && info.verb != "list" && info.verb != "watch":
		return false
	}
	for _, v := range r.verbs {
		if v == info.verb {
			return true
		}
	}
	return false
}

func notFound(path string) error {
	err := apierrors.NewNotFound(schema.GroupResource{}, "")
	err.ErrStatus.Message = "the server could not find the requested resource"
	// Empty, not nil, as kube-apiserver sends it: kubectl debug reads
	// Details of a 404 without checking.
	err.ErrStatus.Details = &metav1.StatusDetails{}
	return err
}
