package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/openapi"
)

// Server-side apply and field ownership (metadata.managedFields) are
// apimachinery's field manager, the code kube-apiserver runs, over type
// information read from the served OpenAPI schemas.
//
// One difference from kube-apiserver, for the speed of plain writes:
// ownership is tracked from an object's first apply on. A create or update
// of an object that was never applied records no managed fields (as
// kube-apiserver's field manager does with its track-on-create probability
// at 0); the first apply then finds the fields it changes owned by
// "before-first-apply" and reports conflicts with that manager.
type fieldManagers struct {
	docs   *openapi.Documents
	scheme *runtime.Scheme
	// convertor converts objects between versions, views' included.
	convertor runtime.ObjectConvertor

	once sync.Once
	tc   managedfields.TypeConverter
	err  error

	mu sync.Mutex
	m  map[fieldManagerKey]*managedfields.FieldManager
}

type fieldManagerKey struct {
	gvk         schema.GroupVersionKind
	subresource string
}

// get returns the field manager of res (subresource "" or "status").
func (f *fieldManagers) get(res *resource, subresource string) (*managedfields.FieldManager, error) {
	gvk := res.gvk()
	// As kube-apiserver's strategies: the main resource does not set the
	// status, and /status sets nothing else.
	var ignored *fieldpath.Set
	switch {
	case subresource == "status":
		ignored = fieldpath.NewSet(fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata"))
	case res.status:
		ignored = fieldpath.NewSet(fieldpath.MakePathOrDie("status"))
	}
	var reset map[fieldpath.APIVersion]fieldpath.Filter
	if ignored != nil {
		reset = map[fieldpath.APIVersion]fieldpath.Filter{fieldpath.APIVersion(gvk.GroupVersion().String()): fieldpath.NewExcludeSetFilter(ignored)}
	}
	return f.forKind(gvk, subresource, reset)
}

// forKind returns the field manager of gvk's objects through subresource,
// made on first use.
func (f *fieldManagers) forKind(gvk schema.GroupVersionKind, subresource string, reset map[fieldpath.APIVersion]fieldpath.Filter) (*managedfields.FieldManager, error) {
	f.once.Do(func() {
		schemas, err := f.docs.Schemas()
		if err != nil {
			f.err = err
			return
		}
		f.tc, f.err = managedfields.NewTypeConverter(schemas, false)
	})
	if f.err != nil {
		return nil, fmt.Errorf("server-side apply: %w", f.err)
	}
	key := fieldManagerKey{gvk, subresource}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fm := f.m[key]; fm != nil {
		return fm, nil
	}
	fm, err := managedfields.NewDefaultFieldManager(f.tc, f.convertor, f.scheme, f.scheme, gvk, gvk.GroupVersion(), subresource, reset)
	if err != nil {
		return nil, fmt.Errorf("server-side apply for %s: %w", gvk.Kind, err)
	}
	if f.m == nil {
		f.m = map[fieldManagerKey]*managedfields.FieldManager{}
	}
	f.m[key] = fm
	return fm, nil
}

// isApply reports whether r is a server-side apply patch.
func isApply(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return r.Method == http.MethodPatch && mt == "application/apply-patch+yaml"
}

// managerName is the field manager a request writes as: its fieldManager
// parameter, else its User-Agent up to the first "/", as kube-apiserver
// names it.
func managerName(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua, _, _ := strings.Cut(r.UserAgent(), "/")
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

// applier returns the mutation of a server-side apply: body (the applied
// configuration, YAML or JSON) merged into the current object by the field
// manager of info's resource, which sets the managed fields of
// info.manager and refuses changes to fields other managers own unless the
// request forces them.
func (s *Server) applier(r *http.Request, body []byte, info *reqInfo) (func(runtime.Object) (runtime.Object, error), error) {
	applied, err := decodeApplied(r, body)
	if err != nil {
		return nil, err
	}
	if ns := applied.GetNamespace(); ns != "" && ns != info.namespace {
		return nil, badRequest("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", ns, info.namespace)
	}
	if applied.GetName() != info.name {
		return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", applied.GetName(), info.name)
	}
	fm, err := s.fields.get(info.res, info.subresource)
	if err != nil {
		return nil, err
	}
	return func(cur runtime.Object) (runtime.Object, error) {
		cur.GetObjectKind().SetGroupVersionKind(info.res.gvk())
		out, err := fm.Apply(cur, applied.DeepCopy(), info.manager, force(r))
		if err != nil {
			return nil, applyError(err)
		}
		if u, ok := out.(*unstructured.Unstructured); ok {
			obj := info.res.new()
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
				return nil, badRequest("the applied object could not be converted: %v", err)
			}
			out = obj
		}
		return out, checkKind(out, info.res)
	}, nil
}

// decodeApplied decodes an apply configuration, YAML or JSON, answering
// keys given twice as the request's fieldValidation asks.
func decodeApplied(r *http.Request, body []byte) (*unstructured.Unstructured, error) {
	j, dups, err := toJSON(r, body)
	if err != nil {
		return nil, err
	}
	// As kube-apiserver: an apply configuration's unknown fields are the
	// field manager's errors; its duplicate keys are fieldValidation's.
	if err := checkFields(r, dups); err != nil {
		return nil, err
	}
	applied := &unstructured.Unstructured{}
	if err := applied.UnmarshalJSON(j); err != nil {
		return nil, badRequest("the apply configuration could not be decoded: %v", err)
	}
	return applied, nil
}

// force reports whether an apply forces conflicts (checkWriteOptions
// refused a force that is not a boolean).
func force(r *http.Request) bool {
	f, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	return f
}

// applyError is an apply's failure as an API error: the field manager's
// conflicts are already, anything else is a bad apply configuration.
func applyError(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	return badRequest("%v", err)
}

// trackFields sets obj's managed fields after an update by manager: those
// the mutation computed (an apply's or a scale's, left in managed), or, on
// an object whose fields are tracked, the update's own record of them. An
// object never applied stays untracked.
func (s *Server) trackFields(info *reqInfo, cur, obj runtime.Object, managed []metav1.ManagedFieldsEntry) {
	m := mustMeta(obj)
	if info.ownFields {
		m.SetManagedFields(managed)
		return
	}
	if len(mustMeta(cur).GetManagedFields()) == 0 {
		return
	}
	fm, err := s.fields.get(info.res, info.subresource)
	if err != nil {
		s.log.Warn("managed fields not updated", "resource", info.res.gvr.Resource, "err", err)
		m.SetManagedFields(mustMeta(cur).GetManagedFields())
		return
	}
	gvk := info.res.gvk()
	cur.GetObjectKind().SetGroupVersionKind(gvk)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	m.SetManagedFields(managed)
	out := fm.UpdateNoErrors(cur, obj, info.manager)
	m.SetManagedFields(mustMeta(out).GetManagedFields())
}

// trackScale records a scale by manager in the managed fields of obj (the
// scaled object, live the scale before): as kube-apiserver's ScaleHandler,
// the manager owns spec.replicas "with subresource scale". An object never
// applied stays untracked.
func (s *Server) trackScale(res *resource, live, want *autoscalingv1.Scale, obj runtime.Object, manager string) {
	m := mustMeta(obj)
	if len(m.GetManagedFields()) == 0 {
		return
	}
	if parent, err := s.scaleFields(res, live, want, m.GetManagedFields(), manager); err != nil {
		s.log.Warn("managed fields not updated", "resource", res.gvr.Resource, "err", err)
	} else {
		m.SetManagedFields(parent)
	}
}

// applyScale is a server-side apply to the scale subresource of parent
// (live, its Scale), as kube-apiserver's: the parent's managed fields are
// mapped onto the Scale, the apply configuration in body is applied by
// manager, and the result's managed fields are mapped back onto parent.
func (s *Server) applyScale(r *http.Request, body []byte, res *resource, live *autoscalingv1.Scale, parent runtime.Object, manager string) (*autoscalingv1.Scale, error) {
	applied, err := decodeApplied(r, body)
	if err != nil {
		return nil, err
	}
	if n := applied.GetName(); n != "" && n != live.Name {
		return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", n, live.Name)
	}
	h, entries, fm, err := s.scaleFieldManager(res, mustMeta(parent).GetManagedFields())
	if err != nil {
		return nil, err
	}
	live = live.DeepCopy()
	live.ManagedFields = entries
	live.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	out, err := fm.Apply(live, applied, manager, force(r))
	if err != nil {
		return nil, applyError(err)
	}
	want := &autoscalingv1.Scale{}
	if u, ok := out.(*unstructured.Unstructured); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, want); err != nil {
			return nil, badRequest("the applied scale could not be converted: %v", err)
		}
	} else if want, ok = out.(*autoscalingv1.Scale); !ok {
		return nil, fmt.Errorf("apply to scale returned a %T", out)
	}
	fields, err := h.ToParent(want.ManagedFields)
	if err != nil {
		return nil, err
	}
	mustMeta(parent).SetManagedFields(fields)
	return want, nil
}

// scaleFieldManager returns the handler that maps the managed fields of a
// parent (of res) onto its Scale and back, as kube-apiserver's, those
// fields mapped onto the Scale, and the Scale's field manager.
func (s *Server) scaleFieldManager(res *resource, parent []metav1.ManagedFieldsEntry) (*managedfields.ScaleHandler, []metav1.ManagedFieldsEntry, *managedfields.FieldManager, error) {
	gv := res.gvk().GroupVersion()
	h := managedfields.NewScaleHandler(parent, gv, managedfields.ResourcePathMappings{gv.String(): fieldpath.MakePathOrDie("spec", "replicas")})
	entries, err := h.ToSubresource()
	if err != nil {
		return nil, nil, nil, err
	}
	fm, err := s.fields.forKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"), "scale", nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return h, entries, fm, nil
}

// scaleFields is trackScale's work: the parent's managed fields after the
// scale.
func (s *Server) scaleFields(res *resource, live, want *autoscalingv1.Scale, parent []metav1.ManagedFieldsEntry, manager string) ([]metav1.ManagedFieldsEntry, error) {
	h, entries, fm, err := s.scaleFieldManager(res, parent)
	if err != nil {
		return nil, err
	}
	live, want = live.DeepCopy(), want.DeepCopy()
	live.ManagedFields, want.ManagedFields = entries, entries
	want.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	out := fm.UpdateNoErrors(live, want, manager)
	return h.ToParent(mustMeta(out).GetManagedFields())
}
