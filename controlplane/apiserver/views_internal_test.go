package apiserver

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEventConversionRoundTrips: random Events of either group convert to
// the other and back unchanged, so no field is lost on the way through
// storage (a field added to k8s.io/api and not to the conversion fails
// here), and the conversion shares no memory with its input.
func TestEventConversionRoundTrips(t *testing.T) {
	f := randomObjects(3)
	for range 300 {
		core := &corev1.Event{}
		f.Fill(core)
		core.TypeMeta = metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}
		want := core.DeepCopy()
		ev := eventFromCore(core)
		if got := eventToCore(ev); !reflect.DeepEqual(got, want) {
			t.Fatalf("core/v1 → events.k8s.io/v1 → core/v1 changed the event:\ngot  %#v\nwant %#v", got, want)
		}
		if ev.Labels != nil {
			ev.Labels["changed"] = "yes"
		}
		if ev.Related != nil {
			ev.Related.Name += "-changed"
		}
		if !reflect.DeepEqual(core, want) {
			t.Fatal("the converted event shares memory with its source")
		}

		ev = &eventsv1.Event{}
		f.Fill(ev)
		ev.TypeMeta = metav1.TypeMeta{Kind: "Event", APIVersion: "events.k8s.io/v1"}
		wantEv := ev.DeepCopy()
		if got := eventFromCore(eventToCore(ev)); !reflect.DeepEqual(got, wantEv) {
			t.Fatalf("events.k8s.io/v1 → core/v1 → events.k8s.io/v1 changed the event:\ngot  %#v\nwant %#v", got, wantEv)
		}
	}
}

// TestEventConversionFields: the renamed fields land where Kubernetes'
// conversion puts them.
func TestEventConversionFields(t *testing.T) {
	now := metav1.Now()
	micro := metav1.NewMicroTime(now.Time)
	ev := &eventsv1.Event{
		ObjectMeta:               metav1.ObjectMeta{Name: "e", Namespace: "default"},
		EventTime:                micro,
		Series:                   &eventsv1.EventSeries{Count: 3, LastObservedTime: micro},
		ReportingController:      "ctl",
		ReportingInstance:        "ctl-1",
		Action:                   "Act",
		Reason:                   "Why",
		Regarding:                corev1.ObjectReference{Kind: "Pod", Name: "p"},
		Related:                  &corev1.ObjectReference{Kind: "Node", Name: "n"},
		Note:                     "note",
		Type:                     "Normal",
		DeprecatedSource:         corev1.EventSource{Component: "c", Host: "h"},
		DeprecatedFirstTimestamp: now,
		DeprecatedLastTimestamp:  now,
		DeprecatedCount:          4,
	}
	c := eventToCore(ev)
	want := &corev1.Event{
		TypeMeta:   metav1.TypeMeta{Kind: "Event", APIVersion: "v1"},
		ObjectMeta: ev.ObjectMeta, InvolvedObject: ev.Regarding, Reason: "Why", Message: "note",
		Source: ev.DeprecatedSource, FirstTimestamp: now, LastTimestamp: now, Count: 4, Type: "Normal",
		EventTime: micro, Series: &corev1.EventSeries{Count: 3, LastObservedTime: micro}, Action: "Act",
		Related: ev.Related, ReportingController: "ctl", ReportingInstance: "ctl-1",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %#v\nwant %#v", c, want)
	}
}

// TestEventsFieldLabels: every field selector of events.k8s.io/v1 names a
// selectable field of core/v1 events, and selects its value.
func TestEventsFieldLabels(t *testing.T) {
	core := &corev1.Event{
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p", UID: "u", APIVersion: "v1", ResourceVersion: "7", FieldPath: "spec"},
		Reason:         "R", Type: "Warning", ReportingController: "ctl",
	}
	coreFields := eventFields(core)
	evFields := eventsFields(eventFromCore(core))
	for label, coreLabel := range eventsFieldLabels {
		if _, ok := coreFields[coreLabel]; !ok {
			t.Errorf("%s maps to %s, not a field of core/v1 events", label, coreLabel)
		}
		if evFields[label] != coreFields[coreLabel] {
			t.Errorf("%s = %q, %s = %q", label, evFields[label], coreLabel, coreFields[coreLabel])
		}
	}
	if evFields["source"] != "ctl" || evFields["reportingController"] != "ctl" || evFields["regarding.name"] != "p" {
		t.Errorf("fields %v", evFields)
	}
}
