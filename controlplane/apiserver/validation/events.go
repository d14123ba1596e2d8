package validation

import (
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// EventsGroupVersion is events.k8s.io/v1, the API whose writes of Events
// get the strict checks of ValidateEventCreate and ValidateEventUpdate.
var EventsGroupVersion = schema.GroupVersion{Group: "events.k8s.io", Version: "v1"}

// ValidateEventCreate returns the field errors of a new Event written
// through the API version gv, given in its core/v1 form (what is stored for
// both groups), as kube-apiserver's ValidateEventCreate: every event passes
// the legacy (core/v1) checks; one written through events.k8s.io/v1 must
// also have an eventTime, a type of Normal or Warning, a valid series and
// none of the deprecated fields (source, firstTimestamp, lastTimestamp,
// count). As in Kubernetes, the paths are those of the core/v1 form
// (involvedObject, message), where the legacy checks find them.
func ValidateEventCreate(ev *corev1.Event, gv schema.GroupVersion) field.ErrorList {
	errs := validateEvent(ev)
	if gv != EventsGroupVersion {
		return normalize(errs)
	}
	errs = append(errs, validateEventSeries(ev)...)
	if ev.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if ev.Type != corev1.EventTypeNormal && ev.Type != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", ev.Type)))
	}
	if !ev.FirstTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("firstTimestamp"), "", "needs to be unset"))
	}
	if !ev.LastTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("lastTimestamp"), "", "needs to be unset"))
	}
	if ev.Count != 0 {
		errs = append(errs, field.Invalid(field.NewPath("count"), "", "needs to be unset"))
	}
	if ev.Source.Component != "" || ev.Source.Host != "" {
		errs = append(errs, field.Invalid(field.NewPath("source"), "", "needs to be unset"))
	}
	return normalize(errs)
}

// ValidateEventUpdate returns the field errors of replacing old with ev
// through the API version gv, both in their core/v1 form, as
// kube-apiserver's ValidateEventUpdate: core/v1 may change an event freely
// (that is how its count and lastTimestamp move); events.k8s.io/v1 may
// change only its series (checked again when it changes) and metadata.
func ValidateEventUpdate(ev, old *corev1.Event, gv schema.GroupVersion) field.ErrorList {
	errs := validateEventUpdate(ev, old)
	if gv != EventsGroupVersion {
		return normalize(errs)
	}
	if !reflect.DeepEqual(ev.Series, old.Series) {
		errs = append(errs, validateEventSeries(ev)...)
	}
	for _, f := range []struct {
		name     string
		new, old any
	}{
		{"involvedObject", ev.InvolvedObject, old.InvolvedObject},
		{"reason", ev.Reason, old.Reason},
		{"message", ev.Message, old.Message},
		{"source", ev.Source, old.Source},
		{"firstTimestamp", ev.FirstTimestamp, old.FirstTimestamp},
		{"lastTimestamp", ev.LastTimestamp, old.LastTimestamp},
		{"count", ev.Count, old.Count},
		{"type", ev.Type, old.Type},
		{"eventTime", ev.EventTime, old.EventTime},
		{"action", ev.Action, old.Action},
		{"related", ev.Related, old.Related},
		{"reportingController", ev.ReportingController, old.ReportingController},
		{"reportingInstance", ev.ReportingInstance, old.ReportingInstance},
	} {
		errs = append(errs, validateImmutable(f.new, f.old, field.NewPath(f.name))...)
	}
	return normalize(errs)
}

// validateEventSeries is Kubernetes' validateV1EventSeries: a series has
// been seen at least twice, the last time at lastObservedTime.
func validateEventSeries(ev *corev1.Event) field.ErrorList {
	if ev.Series == nil {
		return nil
	}
	var errs field.ErrorList
	if ev.Series.Count < 2 {
		errs = append(errs, field.Invalid(field.NewPath("series", "count"), "", "should be at least 2"))
	}
	if ev.Series.LastObservedTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("series", "lastObservedTime"), ""))
	}
	return errs
}
