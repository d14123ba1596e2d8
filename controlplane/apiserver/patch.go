package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
)

// JSON patches are bounded as kube-apiserver bounds them: without a limit
// a few hundred bytes of "copy" operations, each doubling a subtree into
// itself, grow the document exponentially and exhaust memory.
const (
	maxJSONPatchOperations = 10000
	maxJSONPatchCopyBytes  = MaxBodyBytes
)

// jsonPatchLimit sets json-patch v4's copy limit, a package variable of the
// library (as kube-apiserver does); the Once orders the write before every
// Apply.
var jsonPatchLimit sync.Once

// applyPatch applies a patch body to cur (JSON) by the request's
// Content-Type; schema is an object of the patched type, for strategic
// merge keys.
func applyPatch(r *http.Request, patch, cur []byte, schema runtime.Object) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	var (
		out []byte
		err error
	)
	switch mt {
	case "application/json-patch+json":
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err != nil {
			return nil, badRequest("invalid JSON patch: %v", err)
		}
		if len(p) > maxJSONPatchOperations {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(p)))
		}
		jsonPatchLimit.Do(func() { jsonpatch.AccumulatedCopySizeLimit = maxJSONPatchCopyBytes })
		out, err = p.Apply(cur)
		var tooBig *jsonpatch.AccumulatedCopySizeError
		if errors.As(err, &tooBig) {
			return nil, apierrors.NewRequestEntityTooLargeError(tooBig.Error())
		}
		if err != nil {
			// 422 Invalid, as kube-apiserver (with its reason kept): a
			// failed "test" is how JSON patches lock optimistically.
			return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
				Reason: metav1.StatusReasonInvalid, Message: "the patch could not be applied: " + err.Error()}}
		}
	case "application/merge-patch+json":
		out, err = jsonpatch.MergePatch(cur, patch)
	case "application/strategic-merge-patch+json":
		out, err = strategicMergePatch(cur, patch, schema)
	default:
		return nil, unsupportedMediaType(ct)
	}
	if err != nil {
		return nil, badRequest("the patch could not be applied: %v", err)
	}
	return out, nil
}

// strategicMergePatch is apimachinery's StrategicMergePatch, which panics
// on some malformed patches (a $setElementOrder list of objects for a list
// of strings or an atomic list, ...): such a panic is the patch's fault and
// is answered as a patch that does not apply, not a reset connection.
func strategicMergePatch(cur, patch []byte, schema runtime.Object) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("malformed strategic merge patch: %v", p)
		}
	}()
	return strategicpatch.StrategicMergePatch(cur, patch, schema)
}

// patcher returns the mutation that applies a PATCH body to the current
// object.
func (s *Server) patcher(r *http.Request, body []byte, res *resource) (func(runtime.Object, []byte) (runtime.Object, error), error) {
	// Refused before the object is read, as kube-apiserver: a client
	// tells a 415 from a missing object.
	switch mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt {
	case "application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json":
	default:
		return nil, unsupportedMediaType(r.Header.Get("Content-Type"))
	}
	return func(_ runtime.Object, curJSON []byte) (runtime.Object, error) {
		out, err := applyPatch(r, body, curJSON, res.new())
		if err != nil {
			return nil, err
		}
		obj := res.new()
		if err := decodePatched(r, body, out, obj); err != nil {
			return nil, err
		}
		return obj, checkKind(obj, res)
	}, nil
}

// jsonPatchOp is one JSON patch operation, for the strict decoding of a
// patch's operations.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from"`
	Value any    `json:"value"`
}

// decodePatched decodes out, the object that r's patch body made, into
// obj as kube-apiserver's patch handler does. An object that does not
// decode is 422 Invalid on the field "patch": the patch made it. The
// patch's own strict errors (fields given twice; unknown fields of JSON
// patch operations) join the unknown fields of out, and all are answered
// by the request's fieldValidation: refused as 422 (Strict), a Warning
// each (Warn, the default) or nothing (Ignore).
func decodePatched(r *http.Request, patch, out []byte, obj any) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	directive := r.URL.Query().Get("fieldValidation")
	var strictErrs []error
	if directive != metav1.FieldValidationIgnore {
		var (
			errs []error
			err  error
		)
		if mt == "application/json-patch+json" {
			var ops []jsonPatchOp
			errs, err = sigsjson.UnmarshalStrict(patch, &ops)
			for i, e := range errs {
				errs[i] = fmt.Errorf("json patch %v", e)
			}
		} else {
			var m map[string]any
			errs, err = sigsjson.UnmarshalStrict(patch, &m)
		}
		if err != nil {
			return badRequest("error decoding patch: %v", err)
		}
		strictErrs = errs
	}
	// kube-apiserver shows a strategic merge patch, the others' result.
	shown := string(out)
	if mt == "application/strategic-merge-patch+json" {
		shown = string(patch)
	}
	errs, err := decodeJSON(out, obj)
	if err != nil {
		return patchInvalid(shown, err.Error())
	}
	strictErrs = append(strictErrs, errs...)
	if len(strictErrs) == 0 {
		return nil
	}
	switch directive {
	case metav1.FieldValidationStrict:
		return patchInvalid(shown, runtime.NewStrictDecodingError(strictErrs).Error())
	case metav1.FieldValidationIgnore:
	default:
		for _, e := range strictErrs {
			warn(r.Context(), e.Error())
		}
	}
	return nil
}

// patchInvalid is kube-apiserver's answer to a patch that made an object
// it cannot take: 422 Invalid, of no kind or name, on the field "patch".
func patchInvalid(shown, detail string) error {
	return apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{field.Invalid(field.NewPath("patch"), shown, detail)})
}
