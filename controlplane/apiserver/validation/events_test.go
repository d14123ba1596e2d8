package validation

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testNewEvent is a valid events.k8s.io/v1 Event in its core/v1 form.
func testNewEvent() *corev1.Event {
	ev := testEvent()
	ev.EventTime = metav1.NewMicroTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ev.Action, ev.ReportingController, ev.ReportingInstance = "Binding", "default-scheduler", "default-scheduler-edge-1"
	return ev
}

func TestValidateEventCreateByVersion(t *testing.T) {
	core := corev1.SchemeGroupVersion
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Event)
		core   []want // through core/v1
		events []want // through events.k8s.io/v1
	}{
		{name: "valid", mutate: func(*corev1.Event) {}},
		{name: "old-style event", mutate: func(e *corev1.Event) {
			e.EventTime, e.Action, e.ReportingController, e.ReportingInstance = metav1.MicroTime{}, "", "", ""
			e.Source = corev1.EventSource{Component: "kubelet"}
			e.Count, e.FirstTimestamp, e.LastTimestamp = 1, metav1.Now(), metav1.Now()
		}, events: []want{required("eventTime"), invalid("source"), invalid("count"), invalid("firstTimestamp"), invalid("lastTimestamp")}},
		{name: "reporting fields", mutate: func(e *corev1.Event) { e.ReportingController, e.ReportingInstance, e.Action, e.Reason = "", "", "", "" },
			core:   []want{required("reportingController"), invalid("reportingController"), required("reportingInstance"), required("action"), required("reason")},
			events: []want{required("reportingController"), invalid("reportingController"), required("reportingInstance"), required("action"), required("reason")}},
		{name: "lengths", mutate: func(e *corev1.Event) {
			e.Action, e.Reason, e.ReportingInstance, e.Message = strings.Repeat("a", 129), strings.Repeat("r", 129), strings.Repeat("i", 129), strings.Repeat("n", 1025)
		}, core: []want{invalid("action"), invalid("reason"), invalid("reportingInstance"), invalid("message")},
			events: []want{invalid("action"), invalid("reason"), invalid("reportingInstance"), invalid("message")}},
		{name: "type", mutate: func(e *corev1.Event) { e.Type = "Info" }, events: []want{invalid("type")}},
		{name: "series", mutate: func(e *corev1.Event) { e.Series = &corev1.EventSeries{Count: 1} },
			events: []want{invalid("series.count"), required("series.lastObservedTime")}},
		{name: "good series", mutate: func(e *corev1.Event) { e.Series = &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NowMicro()} }},
		{name: "cluster-scoped object outside default and kube-system", mutate: func(e *corev1.Event) {
			e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "edge-1"}
			e.Namespace = "team-a"
		}, core: []want{invalid("involvedObject.namespace")}, events: []want{invalid("involvedObject.namespace")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testNewEvent()
			tc.mutate(e)
			expectErrors(t, ValidateEventCreate(e, core), tc.core...)
			expectErrors(t, ValidateEventCreate(e, EventsGroupVersion), tc.events...)
		})
	}
}

func TestValidateEventUpdateByVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Event)
		events []want // through events.k8s.io/v1; core/v1 takes them all
	}{
		{name: "labels", mutate: func(e *corev1.Event) { e.Labels = map[string]string{"a": "b"} }},
		{name: "series", mutate: func(e *corev1.Event) { e.Series = &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NowMicro()} }},
		{name: "bad series", mutate: func(e *corev1.Event) { e.Series = &corev1.EventSeries{Count: 1, LastObservedTime: metav1.NowMicro()} },
			events: []want{invalid("series.count")}},
		{name: "immutable", mutate: func(e *corev1.Event) {
			e.InvolvedObject.Name, e.Message, e.Action, e.ReportingInstance = "db", "other", "Preempting", "other-instance"
			e.Related = &corev1.ObjectReference{Kind: "Node", Name: "edge-1"}
		}, events: []want{invalid("involvedObject"), invalid("message"), invalid("action"), invalid("reportingInstance"), invalid("related")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := testNewEvent()
			stamp(old)
			e := old.DeepCopy()
			tc.mutate(e)
			expectErrors(t, ValidateEventUpdate(e, old, corev1.SchemeGroupVersion))
			expectErrors(t, ValidateEventUpdate(e, old, EventsGroupVersion), tc.events...)
		})
	}
}
