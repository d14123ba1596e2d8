package apiserver

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// A view is a resource served from the storage of another, in another
// version of the same kind, as kube-apiserver serves events.k8s.io/v1
// Events from the core/v1 Events in etcd: one object under one key
// (/registry/events/<ns>/<name>), stored as core/v1 JSON, published once on
// the core events subject, read, listed, watched, patched, applied and
// deleted through either group.
//
// The handlers work on objects of the view's own type (what clients send
// and read, what its validation, field selectors, tables, patches and
// field manager see); they convert at the edges of storage only: decode
// (stored value → object), storedValue (object → stored value) and wire
// (stored value → what the client reads).
type view struct {
	// storage is the resource whose objects are stored.
	storage *resource
	// toStorage and fromStorage convert an object of the view's type to
	// and from the storage resource's type, without sharing memory with
	// their argument.
	toStorage, fromStorage func(runtime.Object) runtime.Object
}

// stored is the resource whose objects r's are: r itself, or a view's
// storage.
func (r *resource) stored() *resource {
	if r.view != nil {
		return r.view.storage
	}
	return r
}

// decode decodes a stored object as an object of res, with its
// resourceVersion: for a view, the stored object converted.
func (s *Server) decode(res *resource, so storage.Object) (runtime.Object, error) {
	if res.view == nil {
		return s.decodeStored(res, so)
	}
	obj, err := s.decodeStored(res.view.storage, so)
	if err != nil {
		return nil, err
	}
	out := res.view.fromStorage(obj)
	out.GetObjectKind().SetGroupVersionKind(res.gvk())
	return out, nil
}

// storedValue encodes obj, an object of res, as it is stored: for a view,
// as the storage resource's object.
func storedValue(res *resource, obj runtime.Object) ([]byte, error) {
	if res.view != nil {
		obj = res.view.toStorage(obj)
		obj.GetObjectKind().SetGroupVersionKind(res.view.storage.gvk())
	}
	return encodeStored(obj)
}

// wire is the JSON a client of res reads of a stored value written at rev:
// the value itself with its resourceVersion or, for a view, the value
// converted to the view's type.
func (s *Server) wire(res *resource, value []byte, rev int64) ([]byte, error) {
	if res.view == nil {
		return storage.InjectResourceVersion(value, rev), nil
	}
	obj, err := s.decode(res, storage.Object{Value: value, Rev: rev})
	if err != nil {
		return nil, err
	}
	return encodeStored(obj)
}

// eventsView serves events.k8s.io/v1 Events from the core/v1 Events.
func eventsView(core *resource) *view {
	return &view{
		storage:     core,
		toStorage:   func(o runtime.Object) runtime.Object { return eventToCore(o.(*eventsv1.Event)) },
		fromStorage: func(o runtime.Object) runtime.Object { return eventFromCore(o.(*corev1.Event)) },
	}
}

// eventToCore converts an events.k8s.io/v1 Event to its core/v1 form, field
// by field, as Kubernetes' Convert_v1_Event_To_core_Event: note is the
// message, regarding the involvedObject, and the deprecated* fields the
// core ones they were renamed from.
func eventToCore(in *eventsv1.Event) *corev1.Event {
	in = in.DeepCopy()
	out := &corev1.Event{
		TypeMeta:            metav1.TypeMeta{Kind: "Event", APIVersion: "v1"},
		ObjectMeta:          in.ObjectMeta,
		InvolvedObject:      in.Regarding,
		Reason:              in.Reason,
		Message:             in.Note,
		Source:              in.DeprecatedSource,
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               in.DeprecatedCount,
		Type:                in.Type,
		EventTime:           in.EventTime,
		Action:              in.Action,
		Related:             in.Related,
		ReportingController: in.ReportingController,
		ReportingInstance:   in.ReportingInstance,
	}
	if in.Series != nil {
		out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	return out
}

// eventFromCore is eventToCore's inverse (Kubernetes'
// Convert_core_Event_To_v1_Event).
func eventFromCore(in *corev1.Event) *eventsv1.Event {
	in = in.DeepCopy()
	out := &eventsv1.Event{
		TypeMeta:                 metav1.TypeMeta{Kind: "Event", APIVersion: eventsv1.SchemeGroupVersion.String()},
		ObjectMeta:               in.ObjectMeta,
		EventTime:                in.EventTime,
		ReportingController:      in.ReportingController,
		ReportingInstance:        in.ReportingInstance,
		Action:                   in.Action,
		Reason:                   in.Reason,
		Regarding:                in.InvolvedObject,
		Related:                  in.Related,
		Note:                     in.Message,
		Type:                     in.Type,
		DeprecatedSource:         in.Source,
		DeprecatedFirstTimestamp: in.FirstTimestamp,
		DeprecatedLastTimestamp:  in.LastTimestamp,
		DeprecatedCount:          in.Count,
	}
	if in.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	return out
}

// eventsFieldLabels maps the field selectors of events.k8s.io/v1 Events to
// the core/v1 fields they select on, as Kubernetes'
// AddFieldLabelConversionsForEvent (metadata.name and metadata.namespace
// are every resource's).
var eventsFieldLabels = map[string]string{
	"reason":                    "reason",
	"regarding.kind":            "involvedObject.kind",
	"regarding.namespace":       "involvedObject.namespace",
	"regarding.name":            "involvedObject.name",
	"regarding.uid":             "involvedObject.uid",
	"regarding.apiVersion":      "involvedObject.apiVersion",
	"regarding.resourceVersion": "involvedObject.resourceVersion",
	"regarding.fieldPath":       "involvedObject.fieldPath",
	"reportingController":       "reportingComponent",
	"source":                    "source",
	"type":                      "type",
}

// eventsFields are the selectable fields of an events.k8s.io/v1 Event: the
// core/v1 event's, under their events.k8s.io names.
func eventsFields(o runtime.Object) fields.Set {
	core := eventFields(eventToCore(o.(*eventsv1.Event)))
	f := make(fields.Set, len(eventsFieldLabels))
	for label, coreLabel := range eventsFieldLabels {
		f[label] = core[coreLabel]
	}
	return f
}

// validateCreate returns the field errors of obj, a new object of res: for
// an events.k8s.io/v1 Event, those of its core/v1 form by the rules of
// events.k8s.io/v1, as kube-apiserver validates it.
func validateCreate(res *resource, obj runtime.Object) field.ErrorList {
	if ev, ok := obj.(*eventsv1.Event); ok {
		return validation.ValidateEventCreate(eventToCore(ev), res.gvr.GroupVersion())
	}
	return validation.ValidateCreate(obj)
}

// validateUpdate is validateCreate's counterpart for obj replacing old.
func validateUpdate(res *resource, obj, old runtime.Object) field.ErrorList {
	if ev, ok := obj.(*eventsv1.Event); ok {
		oldEv, ok := old.(*eventsv1.Event)
		if !ok {
			return field.ErrorList{field.InternalError(field.NewPath(""), fmt.Errorf("cannot update %T from a stored %T", obj, old))}
		}
		return validation.ValidateEventUpdate(eventToCore(ev), eventToCore(oldEv), res.gvr.GroupVersion())
	}
	return validation.ValidateUpdate(obj, old)
}

// viewConvertor is the scheme's object convertor that also converts
// between the versions of a kind that views serve (core/v1 and
// events.k8s.io/v1 Events), as kube-apiserver's scheme does through their
// internal version: the field managers need it to read the managed fields
// that an apply through one group recorded while applying through the other.
type viewConvertor struct {
	runtime.ObjectConvertor
	reg *registry
}

// ConvertToVersion converts in, typed or unstructured, to target.
func (c viewConvertor) ConvertToVersion(in runtime.Object, target runtime.GroupVersioner) (runtime.Object, error) {
	from := in.GetObjectKind().GroupVersionKind()
	if to, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{from}); !ok || to.GroupVersion() != from.GroupVersion() {
		for _, res := range c.reg.list {
			if res.view == nil {
				continue
			}
			var conv func(runtime.Object) runtime.Object
			var src, dst *resource
			switch st := res.view.storage; {
			case from == st.gvk() && targets(target, res.gvk()):
				src, dst, conv = st, res, res.view.fromStorage
			case from == res.gvk() && targets(target, st.gvk()):
				src, dst, conv = res, st, res.view.toStorage
			default:
				continue
			}
			typed := in
			if u, ok := in.(runtime.Unstructured); ok {
				typed = src.new()
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), typed); err != nil {
					return nil, fmt.Errorf("convert %s to %s: %w", from, dst.gvk(), err)
				}
			}
			out := conv(typed)
			out.GetObjectKind().SetGroupVersionKind(dst.gvk())
			return out, nil
		}
	}
	return c.ObjectConvertor.ConvertToVersion(in, target)
}

// targets reports whether target converts to gvk.
func targets(target runtime.GroupVersioner, gvk schema.GroupVersionKind) bool {
	got, ok := target.KindForGroupVersionKinds([]schema.GroupVersionKind{gvk})
	return ok && got == gvk
}
