package apiserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
)

// newEventsV1 is a valid events.k8s.io/v1 Event about pod p.
func newEventsV1(name string, p *corev1.Pod) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: testNS},
		EventTime:           metav1.NowMicro(),
		ReportingController: "wasmfleet.io/test-controller",
		ReportingInstance:   "test-controller-1",
		Action:              "Testing",
		Reason:              "Tested",
		Regarding:           corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, APIVersion: "v1"},
		Related:             &corev1.ObjectReference{Kind: "Node", Name: "edge-1", APIVersion: "v1"},
		Note:                "a note",
		Type:                corev1.EventTypeNormal,
	}
}

// TestEventsV1Broadcaster: client-go's events.k8s.io/v1 EventBroadcaster
// (what kube-scheduler and modern controllers record with) records an
// event, and the same event again as a series (a strategic merge patch);
// both groups read it, field by field converted, from one etcd key stored
// as core/v1.
func TestEventsV1Broadcaster(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	p, err := c.client.CoreV1().Pods(testNS).Create(ctx, pod("sensor", "", "", nil), metav1.CreateOptions{})
	must(t, err)

	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: c.client.EventsV1()})
	stop := make(chan struct{})
	b.StartRecordingToSink(stop)
	t.Cleanup(func() { close(stop); b.Shutdown() })
	rec := b.NewRecorder(scheme.Scheme, "wasmfleet-test-controller")
	rec.Eventf(p, nil, corev1.EventTypeWarning, "FailedMount", "Mounting", "volume %s not found", "data")

	var ev *eventsv1.Event
	eventuallyTrue(t, "the recorded event", func() bool {
		l, err := c.client.EventsV1().Events(testNS).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=sensor,reason=FailedMount"})
		must(t, err)
		if len(l.Items) == 1 {
			ev = &l.Items[0]
		}
		return ev != nil
	})
	if ev.Note != "volume data not found" || ev.Action != "Mounting" || ev.Type != corev1.EventTypeWarning ||
		ev.ReportingController != "wasmfleet-test-controller" || ev.ReportingInstance == "" || ev.EventTime.IsZero() ||
		ev.Regarding.UID != p.UID || ev.Regarding.Kind != "Pod" {
		t.Fatalf("recorded event read through events.k8s.io/v1: %+v", ev)
	}

	core, err := c.client.CoreV1().Events(testNS).Get(ctx, ev.Name, metav1.GetOptions{})
	must(t, err)
	if core.Message != ev.Note || core.Reason != "FailedMount" || core.Action != "Mounting" || core.Type != corev1.EventTypeWarning ||
		core.InvolvedObject != ev.Regarding || core.ReportingController != ev.ReportingController ||
		core.ReportingInstance != ev.ReportingInstance || !core.EventTime.Equal(&ev.EventTime) ||
		core.ResourceVersion != ev.ResourceVersion || core.UID != ev.UID {
		t.Fatalf("the same event through core/v1: %+v\nevents.k8s.io/v1: %+v", core, ev)
	}
	// One object, stored as core/v1 JSON under the core events' key.
	_, value, ok := etcdKV(t, c, "/registry/events/"+testNS+"/"+ev.Name)
	if !ok || !strings.Contains(string(value), `"apiVersion":"v1"`) || !strings.Contains(string(value), `"message":"volume data not found"`) {
		t.Fatalf("stored: %s", value)
	}
	checkStored(t, c, "/registry/events/"+testNS+"/"+ev.Name, core)
	for _, prefix := range []string{"/registry/events.k8s.io/", "/registry/events.events.k8s.io/"} {
		if resp, err := c.etcd.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
			t.Errorf("keys under %s: %v %v", prefix, resp, err)
		}
	}

	// The same event again makes a series: the broadcaster patches it.
	rec.Eventf(p, nil, corev1.EventTypeWarning, "FailedMount", "Mounting", "volume %s not found", "data")
	eventuallyTrue(t, "the series", func() bool {
		core, err = c.client.CoreV1().Events(testNS).Get(ctx, ev.Name, metav1.GetOptions{})
		must(t, err)
		return core.Series != nil
	})
	if core.Series.Count != 2 || core.Series.LastObservedTime.IsZero() {
		t.Errorf("series through core/v1: %+v", core.Series)
	}
	ev2, err := c.client.EventsV1().Events(testNS).Get(ctx, ev.Name, metav1.GetOptions{})
	must(t, err)
	if ev2.Series == nil || ev2.Series.Count != 2 || !ev2.Series.LastObservedTime.Equal(&core.Series.LastObservedTime) || ev2.Note != ev.Note {
		t.Errorf("series through events.k8s.io/v1: %+v", ev2)
	}
}

// TestEventsV1ReadsCoreEvents: an event written through core/v1, the old
// way (source, count, first and last timestamps), reads through
// events.k8s.io/v1 with its deprecated fields; list, field selectors
// (events.k8s.io's names), patch, server-side apply and delete through
// either group act on the one object.
func TestEventsV1ReadsCoreEvents(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	first := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	last := metav1.NewTime(time.Now().Truncate(time.Second))
	core, err := c.client.CoreV1().Events(testNS).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "sensor.1", Labels: map[string]string{"site": "north"}},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: "sensor", UID: "u-1", APIVersion: "v1", FieldPath: "spec.containers{main}"},
		Reason:         "Pulled", Message: "module sensor:v1 pulled", Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "wasmfleet-agent", Host: "edge-1"},
		FirstTimestamp: first, LastTimestamp: last, Count: 3,
	}, metav1.CreateOptions{})
	must(t, err)
	evs := c.client.EventsV1().Events(testNS)
	ev, err := evs.Get(ctx, "sensor.1", metav1.GetOptions{})
	must(t, err)
	if ev.Kind != "" && ev.Kind != "Event" {
		t.Errorf("kind %q", ev.Kind)
	}
	if ev.Note != core.Message || ev.Regarding != core.InvolvedObject || ev.DeprecatedSource != core.Source ||
		!ev.DeprecatedFirstTimestamp.Equal(&first) || !ev.DeprecatedLastTimestamp.Equal(&last) || ev.DeprecatedCount != 3 ||
		ev.Reason != "Pulled" || ev.Type != corev1.EventTypeNormal || !ev.EventTime.IsZero() || ev.Series != nil ||
		ev.ResourceVersion != core.ResourceVersion || ev.UID != core.UID || ev.Labels["site"] != "north" {
		t.Fatalf("core/v1 event through events.k8s.io/v1: %+v", ev)
	}
	// The wire form is events.k8s.io/v1's.
	raw, err := c.client.EventsV1().RESTClient().Get().Namespace(testNS).Resource("events").Name("sensor.1").DoRaw(ctx)
	must(t, err)
	var wire map[string]any
	must(t, json.Unmarshal(raw, &wire))
	if wire["apiVersion"] != "events.k8s.io/v1" || wire["kind"] != "Event" || wire["note"] != "module sensor:v1 pulled" || wire["message"] != nil || wire["involvedObject"] != nil {
		t.Errorf("wire form: %s", raw)
	}

	// A second event, new-style, through events.k8s.io/v1.
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: testNS, UID: "u-2"}}
	_, err = evs.Create(ctx, newEventsV1("db.1", p), metav1.CreateOptions{})
	must(t, err)

	for _, tc := range []struct {
		selector string
		want     string
	}{
		{"", "db.1,sensor.1"},
		{"regarding.name=sensor", "sensor.1"},
		{"regarding.kind=Pod,regarding.uid=u-2", "db.1"},
		{"regarding.fieldPath=spec.containers{main}", "sensor.1"},
		{"reason=Tested", "db.1"},
		{"type=Normal", "db.1,sensor.1"},
		{"reportingController=wasmfleet.io/test-controller", "db.1"},
		{"source=wasmfleet-agent", "sensor.1"},
		{"source=wasmfleet.io/test-controller", "db.1"}, // no source: its reporting controller
		{"metadata.name=db.1", "db.1"},
		{"metadata.namespace=" + testNS + ",type!=Normal", ""},
	} {
		l, err := evs.List(ctx, metav1.ListOptions{FieldSelector: tc.selector})
		must(t, err)
		var got []string
		for _, e := range l.Items {
			got = append(got, e.Name)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("events.k8s.io/v1 events with %q: %v, want %s", tc.selector, got, tc.want)
		}
	}
	// The core names are core/v1's, not events.k8s.io's, and the reverse.
	if _, err := evs.List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=sensor"}); !apierrors.IsBadRequest(err) {
		t.Errorf("involvedObject.name through events.k8s.io/v1: %v, want BadRequest", err)
	}
	if _, err := c.client.CoreV1().Events(testNS).List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=sensor"}); !apierrors.IsBadRequest(err) {
		t.Errorf("regarding.name through core/v1: %v, want BadRequest", err)
	}
	l, err := c.client.CoreV1().Events(testNS).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=db,reportingComponent=wasmfleet.io/test-controller"})
	must(t, err)
	if len(l.Items) != 1 || l.Items[0].Message != "a note" {
		t.Errorf("core/v1 list of the events.k8s.io/v1 event: %+v", l.Items)
	}

	// Patches through events.k8s.io/v1 use its field names (and its
	// rules: the deprecated fields are immutable there, not in core/v1).
	ev, err = evs.Patch(ctx, "sensor.1", types.MergePatchType, []byte(`{"metadata":{"labels":{"patched":"yes"}}}`), metav1.PatchOptions{})
	must(t, err)
	core, err = c.client.CoreV1().Events(testNS).Get(ctx, "sensor.1", metav1.GetOptions{})
	must(t, err)
	if core.Labels["patched"] != "yes" || core.Count != 3 || ev.DeprecatedCount != 3 || core.ResourceVersion != ev.ResourceVersion {
		t.Errorf("after the patch: core %+v, events %+v", core, ev)
	}
	if _, err := evs.Patch(ctx, "sensor.1", types.MergePatchType, []byte(`{"deprecatedCount":4}`), metav1.PatchOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("patching deprecatedCount through events.k8s.io/v1: %v, want Invalid", err)
	}
	core, err = c.client.CoreV1().Events(testNS).Patch(ctx, "sensor.1", types.MergePatchType, []byte(`{"count":4}`), metav1.PatchOptions{})
	must(t, err)
	if core.Count != 4 {
		t.Errorf("count after the core/v1 patch: %d", core.Count)
	}
	ev, err = evs.Patch(ctx, "sensor.1", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"site":null}}}`), metav1.PatchOptions{})
	must(t, err)
	if _, ok := ev.Labels["site"]; ok || ev.Labels["patched"] != "yes" {
		t.Errorf("after the strategic merge patch: %v", ev.Labels)
	}
	ev, err = evs.Patch(ctx, "sensor.1", types.JSONPatchType, []byte(`[{"op":"test","path":"/note","value":"module sensor:v1 pulled"},{"op":"test","path":"/deprecatedCount","value":4},{"op":"add","path":"/metadata/labels/json","value":"patch"}]`), metav1.PatchOptions{})
	must(t, err)
	if ev.Labels["json"] != "patch" {
		t.Errorf("after the JSON patch: labels %v", ev.Labels)
	}

	// Server-side apply through both groups: each manager owns its fields
	// in the version it applied, and neither loses the other's.
	applyEv := `{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"db.1","namespace":"default","labels":{"by":"events"}}}`
	_, err = evs.Patch(ctx, "db.1", types.ApplyPatchType, []byte(applyEv), metav1.PatchOptions{FieldManager: "events-applier"})
	must(t, err)
	applyCore := `{"apiVersion":"v1","kind":"Event","metadata":{"name":"db.1","namespace":"default","labels":{"by-core":"yes"}}}`
	core, err = c.client.CoreV1().Events(testNS).Patch(ctx, "db.1", types.ApplyPatchType, []byte(applyCore), metav1.PatchOptions{FieldManager: "core-applier"})
	must(t, err)
	versions := map[string]string{}
	for _, m := range core.ManagedFields {
		versions[m.Manager] = m.APIVersion
	}
	if versions["events-applier"] != "events.k8s.io/v1" || versions["core-applier"] != "v1" || core.Labels["by"] != "events" || core.Labels["by-core"] != "yes" {
		t.Errorf("after applies through both groups: labels %v, managers %v", core.Labels, versions)
	}
	// A conflict across the groups names the other manager.
	conflict := `{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"db.1","namespace":"default","labels":{"by-core":"no"}}}`
	_, err = evs.Patch(ctx, "db.1", types.ApplyPatchType, []byte(conflict), metav1.PatchOptions{FieldManager: "events-applier"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "core-applier") {
		t.Errorf("conflicting apply through events.k8s.io/v1: %v", err)
	}

	// Deleted through one group, gone from both.
	must(t, evs.Delete(ctx, "sensor.1", metav1.DeleteOptions{}))
	if _, err := c.client.CoreV1().Events(testNS).Get(ctx, "sensor.1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after delete through events.k8s.io/v1: %v", err)
	}
	must(t, c.client.CoreV1().Events(testNS).Delete(ctx, "db.1", metav1.DeleteOptions{}))
	if _, err := evs.Get(ctx, "db.1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after delete through core/v1: %v", err)
	}
	for _, name := range []string{"db.2", "db.3"} {
		_, err = evs.Create(ctx, newEventsV1(name, p), metav1.CreateOptions{})
		must(t, err)
	}
	must(t, evs.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{FieldSelector: "regarding.name=db"}))
	if l, err := c.client.CoreV1().Events(testNS).List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("after deleting the collection through events.k8s.io/v1: %v %v", err, l)
	}
}

// TestEventsV1Watch: a watch through events.k8s.io/v1 sees the events
// written through core/v1, converted, in JSON and in protobuf (each
// encoding made per group, not shared with core/v1 watchers), and with a
// field selector of its own names.
func TestEventsV1Watch(t *testing.T) {
	c := startAPI(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	protoCfg := rest.CopyConfig(c.rest)
	protoCfg.ContentType = "application/vnd.kubernetes.protobuf"
	protoCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	proto, err := kubernetes.NewForConfig(protoCfg)
	must(t, err)

	jsonW, err := c.client.EventsV1().Events(testNS).Watch(ctx, metav1.ListOptions{})
	must(t, err)
	defer jsonW.Stop()
	protoW, err := proto.EventsV1().Events(testNS).Watch(ctx, metav1.ListOptions{})
	must(t, err)
	defer protoW.Stop()
	coreW, err := proto.CoreV1().Events(testNS).Watch(ctx, metav1.ListOptions{})
	must(t, err)
	defer coreW.Stop()
	selW, err := c.client.EventsV1().Events(testNS).Watch(ctx, metav1.ListOptions{FieldSelector: "regarding.name=db"})
	must(t, err)
	defer selW.Stop()

	evs := c.client.CoreV1().Events(testNS)
	for _, name := range []string{"sensor", "db"} {
		_, err := evs.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name + ".1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: name},
			Reason:         "Pulled", Message: name + " pulled", Type: corev1.EventTypeNormal,
			Source: corev1.EventSource{Component: "wasmfleet-agent"}, Count: 1,
		}, metav1.CreateOptions{})
		must(t, err)
	}
	next := func(w watch.Interface) watch.Event {
		t.Helper()
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			return e
		case <-ctx.Done():
			t.Fatal("timed out waiting for a watch event")
		}
		return watch.Event{}
	}
	for _, w := range []watch.Interface{jsonW, protoW} {
		for _, name := range []string{"sensor", "db"} {
			e := next(w)
			ev, ok := e.Object.(*eventsv1.Event)
			if e.Type != watch.Added || !ok || ev.Name != name+".1" || ev.Note != name+" pulled" || ev.Regarding.Name != name ||
				ev.DeprecatedSource.Component != "wasmfleet-agent" || ev.DeprecatedCount != 1 {
				t.Fatalf("events.k8s.io/v1 watch: %s %#v", e.Type, e.Object)
			}
		}
	}
	for _, name := range []string{"sensor", "db"} {
		e := next(coreW)
		if ev, ok := e.Object.(*corev1.Event); e.Type != watch.Added || !ok || ev.Name != name+".1" || ev.Message != name+" pulled" {
			t.Fatalf("core/v1 watch beside it: %s %#v", e.Type, e.Object)
		}
	}
	if e := next(selW); e.Type != watch.Added || e.Object.(*eventsv1.Event).Name != "db.1" {
		t.Fatalf("selected watch: %s %#v", e.Type, e.Object)
	}

	// A change through core/v1, a delete through events.k8s.io/v1.
	_, err = evs.Patch(ctx, "db.1", types.MergePatchType, []byte(`{"count":2,"message":"db pulled again"}`), metav1.PatchOptions{})
	must(t, err)
	must(t, c.client.EventsV1().Events(testNS).Delete(ctx, "db.1", metav1.DeleteOptions{}))
	for _, w := range []watch.Interface{jsonW, protoW, selW} {
		if e := next(w); e.Type != watch.Modified || e.Object.(*eventsv1.Event).Note != "db pulled again" || e.Object.(*eventsv1.Event).DeprecatedCount != 2 {
			t.Fatalf("modified: %s %#v", e.Type, e.Object)
		}
		if e := next(w); e.Type != watch.Deleted || e.Object.(*eventsv1.Event).Name != "db.1" {
			t.Fatalf("deleted: %s %#v", e.Type, e.Object)
		}
	}
}

// TestEventsV1Validation: events.k8s.io/v1 refuses what kube-apiserver's
// events/v1 validation refuses, with 422 and a cause per field, and writes
// nothing; updates may change the series and metadata only.
func TestEventsV1Validation(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	evs := c.client.EventsV1().Events(testNS)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sensor", Namespace: testNS}}
	for _, tc := range []struct {
		name   string
		mutate func(*eventsv1.Event)
		fields []string
	}{
		{"reporting fields", func(e *eventsv1.Event) {
			e.ReportingController, e.ReportingInstance, e.Action, e.Reason = "", "", "", ""
		},
			[]string{"reportingController", "reportingInstance", "action", "reason"}},
		{"event time", func(e *eventsv1.Event) { e.EventTime = metav1.MicroTime{} }, []string{"eventTime"}},
		{"long fields", func(e *eventsv1.Event) {
			e.Note, e.Action, e.Reason, e.ReportingInstance = strings.Repeat("n", 1025), strings.Repeat("a", 129), strings.Repeat("r", 129), strings.Repeat("i", 129)
		}, []string{"message", "action", "reason", "reportingInstance"}},
		{"type", func(e *eventsv1.Event) { e.Type = "Info" }, []string{"type"}},
		{"series", func(e *eventsv1.Event) { e.Series = &eventsv1.EventSeries{Count: 1} }, []string{"series.count", "series.lastObservedTime"}},
		{"deprecated fields", func(e *eventsv1.Event) {
			e.DeprecatedSource = corev1.EventSource{Component: "c"}
			e.DeprecatedCount, e.DeprecatedFirstTimestamp, e.DeprecatedLastTimestamp = 1, metav1.Now(), metav1.Now()
		}, []string{"source", "count", "firstTimestamp", "lastTimestamp"}},
		{"name", func(e *eventsv1.Event) { e.Name = "Not_A_Name" }, []string{"metadata.name"}},
	} {
		ev := newEventsV1("bad", p)
		tc.mutate(ev)
		_, err := evs.Create(ctx, ev, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: %v, want Invalid", tc.name, err)
			continue
		}
		st := err.(apierrors.APIStatus).Status()
		got := map[string]bool{}
		for _, cause := range st.Details.Causes {
			got[cause.Field] = true
		}
		for _, f := range tc.fields {
			if !got[f] {
				t.Errorf("%s: no cause for %s in %+v", tc.name, f, st.Details.Causes)
			}
		}
		if st.Details.Group != "events.k8s.io" || st.Details.Kind != "Event" {
			t.Errorf("%s: details %+v", tc.name, st.Details)
		}
		if _, err := c.client.CoreV1().Events(testNS).Get(ctx, ev.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: the invalid event was written: %v", tc.name, err)
		}
	}
	// The same old-style event is fine through core/v1.
	_, err := c.client.CoreV1().Events(testNS).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "old"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: "sensor"},
		Reason:         "Pulled", Message: "pulled", Type: corev1.EventTypeNormal, Source: corev1.EventSource{Component: "c"}, Count: 1,
	}, metav1.CreateOptions{})
	must(t, err)

	// Updates through events.k8s.io/v1: series and metadata only. (In
	// protobuf, as client-go sends typed objects when asked to.)
	protoCfg := rest.CopyConfig(c.rest)
	protoCfg.ContentType = "application/vnd.kubernetes.protobuf"
	protoCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	proto, err := kubernetes.NewForConfig(protoCfg)
	must(t, err)
	evs = proto.EventsV1().Events(testNS)
	ev, err := evs.Create(ctx, newEventsV1("good", p), metav1.CreateOptions{})
	must(t, err)
	if ev.Note != "a note" || ev.Regarding.Name != "sensor" || ev.ResourceVersion == "" {
		t.Fatalf("created in protobuf: %+v", ev)
	}
	ev.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NowMicro()}
	ev.Labels = map[string]string{"seen": "twice"}
	ev, err = evs.Update(ctx, ev, metav1.UpdateOptions{})
	must(t, err)
	changed := ev.DeepCopy()
	changed.Note, changed.Regarding.Name, changed.ReportingInstance = "another note", "db", "other"
	_, err = evs.Update(ctx, changed, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("changing immutable fields: %v, want Invalid", err)
	}
	got := map[string]bool{}
	for _, cause := range err.(apierrors.APIStatus).Status().Details.Causes {
		got[cause.Field] = true
	}
	for _, f := range []string{"message", "involvedObject", "reportingInstance"} {
		if !got[f] {
			t.Errorf("immutable %s: no cause in %v", f, got)
		}
	}
	// core/v1 may change the message (kube-apiserver lets it).
	core, err := c.client.CoreV1().Events(testNS).Get(ctx, "good", metav1.GetOptions{})
	must(t, err)
	core.Message = "changed through core/v1"
	_, err = c.client.CoreV1().Events(testNS).Update(ctx, core, metav1.UpdateOptions{})
	must(t, err)
	if ev, err = evs.Get(ctx, "good", metav1.GetOptions{}); err != nil || ev.Note != "changed through core/v1" {
		t.Errorf("after the core/v1 update: %v %+v", err, ev)
	}
}

// TestKubectlEventsV1: the real kubectl discovers, explains, lists (as a
// table), reads and creates events.k8s.io/v1 Events.
func TestKubectlEventsV1(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	_, err := c.client.CoreV1().Events(testNS).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "sensor.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: "sensor"},
		Reason:         "Pulled", Message: "module sensor:v1 pulled", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "wasmfleet-agent"}, Count: 1, FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
	}, metav1.CreateOptions{})
	must(t, err)

	raw := c.kubectl(t, "", "get", "--raw", "/apis/events.k8s.io/v1")
	var rl metav1.APIResourceList
	must(t, json.Unmarshal([]byte(raw), &rl))
	if rl.GroupVersion != "events.k8s.io/v1" || len(rl.APIResources) != 1 || rl.APIResources[0].Name != "events" ||
		rl.APIResources[0].Kind != "Event" || !rl.APIResources[0].Namespaced || strings.Join(rl.APIResources[0].ShortNames, ",") != "ev" {
		t.Errorf("/apis/events.k8s.io/v1: %s", raw)
	}
	mustContain(t, c.kubectl(t, "", "api-resources", "--api-group=events.k8s.io"), "events", "ev", "events.k8s.io/v1", "true", "Event")
	mustContain(t, c.kubectl(t, "", "api-versions"), "events.k8s.io/v1")

	// kubectl explain names a group-version with --api-version: it reads
	// what follows the resource's first dot as fields, for every resource
	// (deployments.v1.apps too), whatever the server.
	mustContain(t, c.kubectl(t, "", "explain", "events", "--api-version=events.k8s.io/v1"), "GROUP:", "events.k8s.io", "KIND:", "Event", "VERSION:", "v1",
		"regarding", "note", "reportingController", "deprecatedCount")
	mustContain(t, c.kubectl(t, "", "explain", "events.series", "--api-version=events.k8s.io/v1"), "lastObservedTime")
	mustContain(t, c.kubectl(t, "", "explain", "events", "--api-version=events.k8s.io/v1", "--output=plaintext-openapiv2"), "KIND:", "Event", "note")

	out := c.kubectl(t, "", "get", "events.v1.events.k8s.io")
	mustContain(t, out, "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", "Normal", "Pulled", "pod/sensor", "module sensor:v1 pulled")
	out = c.kubectl(t, "", "get", "events.v1.events.k8s.io", "sensor.1", "-o", "yaml")
	mustContain(t, out, "apiVersion: events.k8s.io/v1", "note: module sensor:v1 pulled", "regarding:", "deprecatedSource:", "deprecatedCount: 1")
	mustContain(t, c.kubectl(t, "", "get", "events.events.k8s.io", "--field-selector", "regarding.name=sensor", "-o", "name"), "event.events.k8s.io/sensor.1")
	// Plain "events" and "ev" stay core/v1, as with kube-apiserver.
	mustContain(t, c.kubectl(t, "", "get", "ev", "sensor.1", "-o", "jsonpath={.apiVersion} {.message}"), "v1 module sensor:v1 pulled")

	// Created and applied from a manifest through events.k8s.io/v1.
	manifest := `apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: db.1
eventTime: "2026-01-02T03:04:05.000000Z"
reportingController: wasmfleet.io/kubectl-test
reportingInstance: kubectl-test-1
action: Testing
reason: Tested
regarding: {kind: Pod, namespace: default, name: db}
note: created by kubectl
type: Normal
`
	mustContain(t, c.kubectl(t, manifest, "create", "-f", "-"), "event.events.k8s.io/db.1 created")
	mustContain(t, c.kubectl(t, strings.Replace(manifest, "name: db.1", "name: db.2", 1), "apply", "--server-side", "-f", "-"), "event.events.k8s.io/db.2 serverside-applied")
	mustContain(t, c.kubectl(t, strings.Replace(manifest, "name: db.1", "name: db.3", 1), "apply", "-f", "-"), "event.events.k8s.io/db.3 created")
	mustContain(t, c.kubectl(t, "", "get", "events", "db.1", "-o", "jsonpath={.message} {.reportingComponent} {.involvedObject.name}"), "created by kubectl wasmfleet.io/kubectl-test db")
	if out, err := c.kubectlErr(t, strings.Replace(manifest, "reason: Tested", "reason: ''", 1), "create", "-f", "-"); err == nil || !strings.Contains(out, "reason: Required value") {
		t.Errorf("kubectl create of an invalid events.k8s.io/v1 event: %v\n%s", err, out)
	}
	mustContain(t, c.kubectl(t, "", "delete", "events.events.k8s.io", "db.1"), `event.events.k8s.io "db.1" deleted`)
}

// TestEventWritesRenewTTL: as kube-apiserver, every write of an event, not
// only its creation, gives it the event TTL, so a recurring event lives on
// while it recurs: one stored without a lease (as before event-ttl was
// set) gets one when it is updated.
func TestEventWritesRenewTTL(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	evs := c.client.CoreV1().Events(testNS)
	ev, err := evs.Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "recurring"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: "sensor"},
		Reason:         "BackOff", Message: "back-off", Type: corev1.EventTypeWarning, Source: corev1.EventSource{Component: "c"}, Count: 1,
	}, metav1.CreateOptions{})
	must(t, err)
	const key = "/registry/events/" + testNS + "/recurring"
	resp, err := c.etcd.Get(ctx, key)
	must(t, err)
	if len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("created event: %+v, want it under a lease", resp.Kvs)
	}
	_, err = c.etcd.Put(ctx, key, string(resp.Kvs[0].Value))
	must(t, err)
	ev, err = evs.Get(ctx, "recurring", metav1.GetOptions{})
	must(t, err)
	ev.Count = 2
	_, err = evs.Update(ctx, ev, metav1.UpdateOptions{})
	must(t, err)
	resp, err = c.etcd.Get(ctx, key)
	must(t, err)
	if len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Errorf("updated event: %+v, want it under a lease", resp.Kvs)
	}
}
