package modules

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The HTTP API, served by the API server next to the Kubernetes API.
const (
	// Group is the API group of the module endpoints.
	Group = "modules.wasmfleet.io"
	// PathPrefix is every path Handler answers.
	PathPrefix = "/apis/" + Group + "/"
	// CollectionPath lists modules (GET); CollectionPath/NAME:TAG pushes
	// (PUT, body = the module) and CollectionPath/REF describes one (GET).
	CollectionPath = PathPrefix + "v1/modules"
	// MediaType is the Content-Type of a pushed module.
	MediaType = "application/wasm"
)

// PushResult answers a push.
type PushResult struct {
	Name   string `json:"name"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// ModuleList answers a list.
type ModuleList struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Items      []Module `json:"items"`
}

var groupResource = schema.GroupResource{Group: Group, Resource: "modules"}

// Handler serves the module API on s:
//
//	PUT  /apis/modules.wasmfleet.io/v1/modules/NAME:TAG  body: the module (application/wasm)
//	     → 200 {"name","tag","digest","size"}
//	GET  /apis/modules.wasmfleet.io/v1/modules           → 200 {"kind":"ModuleList","items":[Module...]}
//	GET  /apis/modules.wasmfleet.io/v1/modules/REF       → 200 Module (REF: NAME:TAG or NAME@sha256:<hex>)
//
// The push body is streamed to the store and may be up to the store's
// MaxModuleSize (not the API's 3 MiB object limit). The handler does not
// authenticate or authorize: the API server does that before calling it
// (apiserver.Config.Extra). It writes only successful answers; on failure it
// writes nothing and returns the error, a Kubernetes API error
// (k8s.io/apimachinery/pkg/api/errors) for the caller's mistakes (400 bad
// reference or not wasm, 404, 405, 413 too large, 415 wrong media type),
// any other error for the server's.
func Handler(s *Store) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		rest, ok := strings.CutPrefix(r.URL.Path, CollectionPath)
		if !ok || (rest != "" && rest[0] != '/') {
			return apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path)
		}
		ref := strings.TrimPrefix(rest, "/")
		switch {
		case ref == "" && r.Method == http.MethodGet:
			mods, err := s.List(r.Context())
			if err != nil {
				return err
			}
			if mods == nil {
				mods = []Module{}
			}
			return writeJSON(w, ModuleList{Kind: "ModuleList", APIVersion: Group + "/v1", Items: mods})
		case ref == "":
			return apierrors.NewMethodNotSupported(groupResource, strings.ToLower(r.Method))
		case r.Method == http.MethodPut:
			return push(s, w, r, ref)
		case r.Method == http.MethodGet:
			m, err := s.Stat(r.Context(), ref)
			if err != nil {
				return apiError(err, ref)
			}
			return writeJSON(w, m)
		default:
			return apierrors.NewMethodNotSupported(groupResource, strings.ToLower(r.Method))
		}
	}
}

func push(s *Store, w http.ResponseWriter, r *http.Request, ref string) error {
	rf, err := ParseRef(ref)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != MediaType && mt != "application/octet-stream") {
			return &apierrors.StatusError{ErrStatus: metav1.Status{
				Status:  metav1.StatusFailure,
				Code:    http.StatusUnsupportedMediaType,
				Reason:  metav1.StatusReasonUnsupportedMediaType,
				Message: fmt.Sprintf("a module is pushed as %s or application/octet-stream, not %q", MediaType, ct),
			}}
		}
	}
	if r.ContentLength > s.MaxModuleSize() {
		return tooLarge(s, r.ContentLength)
	}
	body := http.MaxBytesReader(w, r.Body, s.MaxModuleSize())
	digest, size, err := s.Put(r.Context(), ref, body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(s, -1)
		}
		return apiError(err, ref)
	}
	return writeJSON(w, PushResult{Name: rf.Name, Tag: rf.Tag, Digest: digest, Size: size})
}

func tooLarge(s *Store, n int64) error {
	msg := fmt.Sprintf("module is larger than the limit of %s", FormatSize(s.MaxModuleSize()))
	if n >= 0 {
		msg = fmt.Sprintf("module of %s is larger than the limit of %s", FormatSize(n), FormatSize(s.MaxModuleSize()))
	}
	return apierrors.NewRequestEntityTooLargeError(msg)
}

// apiError turns a Store error into the API error the caller should see.
func apiError(err error, ref string) error {
	switch {
	case errors.Is(err, ErrInvalidRef), errors.Is(err, ErrNotWasm):
		return apierrors.NewBadRequest(err.Error())
	case errors.Is(err, ErrTooLarge):
		return apierrors.NewRequestEntityTooLargeError(err.Error())
	case errors.Is(err, ErrNotFound):
		return apierrors.NewNotFound(groupResource, ref)
	}
	return err
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}
