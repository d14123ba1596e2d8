package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

var configmaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// metaCluster is a control plane with namespace ns holding configmaps
// cm-0..cm-4 (cm-0, cm-2 and cm-4 labelled app=a), each with a data value
// that must never show in a metadata response.
type metaCluster struct {
	rc     *rest.Config
	client kubernetes.Interface
	meta   metadata.Interface
	http   *http.Client
	url    string
	ns     string
}

const secretData = "THIS-IS-DATA-NOT-METADATA"

func startMetaCluster(t *testing.T) *metaCluster {
	t.Helper()
	c := testcluster.Start(t)
	rc := c.RESTConfig(t)
	mc, err := metadata.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	m := &metaCluster{rc: rc, client: c.Client(t), meta: mc, http: hc, url: c.URL, ns: "meta"}
	ctx := context.Background()
	_, err = m.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: m.ns}}, metav1.CreateOptions{})
	must(t, err)
	for i := range 5 {
		labels := map[string]string{"app": "b"}
		if i%2 == 0 {
			labels["app"] = "a"
		}
		_, err := m.client.CoreV1().ConfigMaps(m.ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Labels: labels, Annotations: map[string]string{"note": "n"}},
			Data:       map[string]string{"payload": secretData},
		}, metav1.CreateOptions{})
		must(t, err)
	}
	return m
}

// raw sends a GET with accept and returns the response's status, Content-Type and body.
func (m *metaCluster) raw(t *testing.T, path, accept string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.url+path, nil)
	must(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := m.http.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func names(items []metav1.PartialObjectMetadata) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

func TestMetadataClient(t *testing.T) {
	m := startMetaCluster(t)
	ctx := context.Background()
	ri := m.meta.Resource(configmaps).Namespace(m.ns)

	t.Run("get", func(t *testing.T) {
		cm, err := m.client.CoreV1().ConfigMaps(m.ns).Get(ctx, "cm-1", metav1.GetOptions{})
		must(t, err)
		p, err := ri.Get(ctx, "cm-1", metav1.GetOptions{})
		must(t, err)
		if p.Name != "cm-1" || p.Namespace != m.ns || p.UID != cm.UID || p.ResourceVersion != cm.ResourceVersion ||
			p.Labels["app"] != "b" || p.Annotations["note"] != "n" || p.CreationTimestamp.IsZero() {
			t.Errorf("metadata get = %+v, want the metadata of %+v", p.ObjectMeta, cm.ObjectMeta)
		}
		// Cluster-scoped resources too.
		ns, err := m.meta.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, m.ns, metav1.GetOptions{})
		must(t, err)
		if ns.Name != m.ns || ns.UID == "" {
			t.Errorf("namespace metadata = %+v", ns.ObjectMeta)
		}
		if _, err := ri.Get(ctx, "missing", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("get missing: %v, want not found", err)
		}
	})

	t.Run("list with pagination and label selector", func(t *testing.T) {
		all, err := ri.List(ctx, metav1.ListOptions{})
		must(t, err)
		if got := names(all.Items); !slices.Equal(got, []string{"cm-0", "cm-1", "cm-2", "cm-3", "cm-4"}) || all.ResourceVersion == "" {
			t.Fatalf("list = %v rv %q", got, all.ResourceVersion)
		}
		for _, it := range all.Items {
			if it.UID == "" || it.ResourceVersion == "" {
				t.Errorf("item without uid or resourceVersion: %+v", it.ObjectMeta)
			}
		}
		var paged []string
		opts := metav1.ListOptions{Limit: 2}
		pages := 0
		for {
			l, err := ri.List(ctx, opts)
			must(t, err)
			pages++
			if len(l.Items) > 2 {
				t.Fatalf("page of %d items with limit 2", len(l.Items))
			}
			paged = append(paged, names(l.Items)...)
			if l.Continue == "" {
				break
			}
			opts.Continue = l.Continue
		}
		if !slices.Equal(paged, names(all.Items)) || pages != 3 {
			t.Errorf("paged list = %v in %d pages", paged, pages)
		}

		sel, err := ri.List(ctx, metav1.ListOptions{LabelSelector: "app=a"})
		must(t, err)
		if got := names(sel.Items); !slices.Equal(got, []string{"cm-0", "cm-2", "cm-4"}) {
			t.Errorf("app=a = %v", got)
		}
		first, err := ri.List(ctx, metav1.ListOptions{LabelSelector: "app=a", Limit: 2})
		must(t, err)
		rest, err := ri.List(ctx, metav1.ListOptions{LabelSelector: "app=a", Limit: 2, Continue: first.Continue})
		must(t, err)
		if got := append(names(first.Items), names(rest.Items)...); !slices.Equal(got, []string{"cm-0", "cm-2", "cm-4"}) || first.Continue == "" || rest.Continue != "" {
			t.Errorf("paged app=a = %v (continue %q, %q)", got, first.Continue, rest.Continue)
		}
	})

	t.Run("watch", func(t *testing.T) {
		l, err := ri.List(ctx, metav1.ListOptions{})
		must(t, err)
		w, err := ri.Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion, LabelSelector: "app=w"})
		must(t, err)
		defer w.Stop()
		cms := m.client.CoreV1().ConfigMaps(m.ns)
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{"app": "w"}}, Data: map[string]string{"k": secretData}}, metav1.CreateOptions{})
		must(t, err)
		_, err = cms.Patch(ctx, "w", types.MergePatchType, []byte(`{"metadata":{"annotations":{"x":"y"}}}`), metav1.PatchOptions{})
		must(t, err)
		must(t, cms.Delete(ctx, "w", metav1.DeleteOptions{}))
		want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
		for i, typ := range want {
			ev := nextMetaEvent(t, w)
			p, ok := ev.Object.(*metav1.PartialObjectMetadata)
			if ev.Type != typ || !ok || p.Name != "w" {
				t.Fatalf("event %d = %s %T %+v, want %s of w", i, ev.Type, ev.Object, ev.Object, typ)
			}
			if typ == watch.Modified && p.Annotations["x"] != "y" {
				t.Errorf("modified event without the new annotation: %+v", p.ObjectMeta)
			}
		}
	})

	t.Run("watch-list", func(t *testing.T) {
		yes := true
		w, err := ri.Watch(ctx, metav1.ListOptions{SendInitialEvents: &yes, AllowWatchBookmarks: true,
			ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, LabelSelector: "app=a"})
		must(t, err)
		defer w.Stop()
		var added []string
		for {
			ev := nextMetaEvent(t, w)
			p, ok := ev.Object.(*metav1.PartialObjectMetadata)
			if !ok {
				t.Fatalf("event %s carries %T", ev.Type, ev.Object)
			}
			if ev.Type == watch.Bookmark {
				if p.Annotations[metav1.InitialEventsAnnotationKey] != "true" || p.ResourceVersion == "" {
					t.Fatalf("bookmark is not the initial-events-end one: %+v", p.ObjectMeta)
				}
				break
			}
			if ev.Type != watch.Added {
				t.Fatalf("initial event %s", ev.Type)
			}
			added = append(added, p.Name)
		}
		if !slices.Equal(added, []string{"cm-0", "cm-2", "cm-4"}) {
			t.Errorf("initial events = %v", added)
		}
	})

	t.Run("patch answers metadata", func(t *testing.T) {
		p, err := ri.Patch(ctx, "cm-3", types.MergePatchType, []byte(`{"metadata":{"labels":{"patched":"yes"}}}`), metav1.PatchOptions{})
		must(t, err)
		if p.Labels["patched"] != "yes" || p.Name != "cm-3" {
			t.Errorf("patch answer = %+v", p.ObjectMeta)
		}
		cm, err := m.client.CoreV1().ConfigMaps(m.ns).Get(ctx, "cm-3", metav1.GetOptions{})
		must(t, err)
		if cm.Data["payload"] != secretData {
			t.Errorf("metadata patch touched the data: %v", cm.Data)
		}
	})

	t.Run("informer", func(t *testing.T) {
		testMetadataInformer(t, m)
	})
}

// nextMetaEvent waits for the next watch event.
func nextMetaEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		if ev.Type == watch.Error {
			t.Fatalf("watch error: %+v", ev.Object)
		}
		return ev
	case <-time.After(time.Minute):
		t.Fatal("no watch event within a minute")
	}
	return watch.Event{}
}

// seen records what an informer's handlers were told.
type seen struct {
	mu     sync.Mutex
	events []string
}

func (s *seen) add(typ string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	name := "?"
	if p, ok := obj.(*metav1.PartialObjectMetadata); ok {
		name = p.Name
	}
	s.mu.Lock()
	s.events = append(s.events, typ+" "+name)
	s.mu.Unlock()
}

func (s *seen) has(e string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.events, e)
}

func testMetadataInformer(t *testing.T, m *metaCluster) {
	ctx, cancel := context.WithCancel(context.Background())
	// Record the informer's requests: it should sync with a streaming
	// watch-list (client-go's WatchListClient is on), not a LIST.
	var reqs metaRequestLog
	rc := rest.CopyConfig(m.rc)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &loggingRT{&reqs, rt} })
	mc, err := metadata.NewForConfig(rc)
	must(t, err)
	factory := metadatainformer.NewFilteredSharedInformerFactory(mc, 0, m.ns, nil)
	inf := factory.ForResource(configmaps)
	var s seen
	_, err = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.add("add", obj) },
		UpdateFunc: func(_, obj any) { s.add("update", obj) },
		DeleteFunc: func(obj any) { s.add("delete", obj) },
	})
	must(t, err)
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }()
	for gvr, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("%s did not sync", gvr)
		}
	}
	objs, err := inf.Lister().List(labels.Everything())
	must(t, err)
	var got []string
	for _, o := range objs {
		p, ok := o.(*metav1.PartialObjectMetadata)
		if !ok {
			t.Fatalf("cached %T", o)
		}
		got = append(got, p.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"cm-0", "cm-1", "cm-2", "cm-3", "cm-4"}) {
		t.Fatalf("synced cache = %v", got)
	}
	if len(reqs.list()) == 0 {
		t.Error("informer requests not recorded")
	}
	for _, q := range reqs.list() {
		if !strings.Contains(q, "watch=true") || !strings.Contains(q, "sendInitialEvents=true") {
			t.Errorf("informer sent %s, want only watch-list requests", q)
		}
	}

	cms := m.client.CoreV1().ConfigMaps(m.ns)
	bg := context.Background()
	_, err = cms.Create(bg, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "inf"}, Data: map[string]string{"k": secretData}}, metav1.CreateOptions{})
	must(t, err)
	eventuallyTrue(t, "add seen", func() bool { return s.has("add inf") })
	_, err = cms.Patch(bg, "inf", types.MergePatchType, []byte(`{"metadata":{"labels":{"v":"2"}}}`), metav1.PatchOptions{})
	must(t, err)
	eventuallyTrue(t, "update seen", func() bool {
		o, ok, _ := inf.Informer().GetStore().GetByKey(m.ns + "/inf")
		return s.has("update inf") && ok && o.(*metav1.PartialObjectMetadata).Labels["v"] == "2"
	})
	must(t, cms.Delete(bg, "inf", metav1.DeleteOptions{}))
	eventuallyTrue(t, "delete seen", func() bool { return s.has("delete inf") })
}

// metaRequestLog records the queries of requests through it.
type metaRequestLog struct {
	mu   sync.Mutex
	reqs []string
}

type loggingRT struct {
	log  *metaRequestLog
	next http.RoundTripper
}

func (l *loggingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	l.log.mu.Lock()
	l.log.reqs = append(l.log.reqs, r.Method+" "+r.URL.RequestURI())
	l.log.mu.Unlock()
	return l.next.RoundTrip(r)
}

func (l *metaRequestLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	metaJSON      = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
	metaListJSON  = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
	metaProto     = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
	metaListProto = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
)

// TestMetadataWire checks the bytes: JSON shape, protobuf envelopes and
// frames, and 406 for conversions not served.
func TestMetadataWire(t *testing.T) {
	m := startMetaCluster(t)
	base := "/api/v1/namespaces/" + m.ns + "/configmaps"

	t.Run("json get", func(t *testing.T) {
		code, ct, b := m.raw(t, base+"/cm-0", metaJSON+",application/json")
		if code != http.StatusOK || ct != "application/json" {
			t.Fatalf("%d %s: %s", code, ct, b)
		}
		var got map[string]any
		must(t, json.Unmarshal(b, &got))
		if got["kind"] != "PartialObjectMetadata" || got["apiVersion"] != "meta.k8s.io/v1" {
			t.Errorf("kind/apiVersion = %v %v", got["kind"], got["apiVersion"])
		}
		md, _ := got["metadata"].(map[string]any)
		if md["name"] != "cm-0" || md["resourceVersion"] == "" || md["uid"] == "" {
			t.Errorf("metadata = %v", md)
		}
		for k := range got {
			if k != "kind" && k != "apiVersion" && k != "metadata" {
				t.Errorf("unexpected top-level field %q", k)
			}
		}
		if strings.Contains(string(b), secretData) {
			t.Errorf("data leaked into metadata: %s", b)
		}
		// v1beta1 is served too.
		_, _, b = m.raw(t, base+"/cm-0", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1")
		must(t, json.Unmarshal(b, &got))
		if got["apiVersion"] != "meta.k8s.io/v1beta1" {
			t.Errorf("v1beta1 apiVersion = %v", got["apiVersion"])
		}
	})

	t.Run("json list", func(t *testing.T) {
		code, _, b := m.raw(t, base+"?limit=2&labelSelector=app%3Da", metaListJSON)
		if code != http.StatusOK {
			t.Fatalf("%d: %s", code, b)
		}
		var got struct {
			Kind, APIVersion string
			Metadata         map[string]any
			Items            []map[string]any
		}
		must(t, json.Unmarshal(b, &got))
		if got.Kind != "PartialObjectMetadataList" || got.APIVersion != "meta.k8s.io/v1" || got.Metadata["resourceVersion"] == "" || got.Metadata["continue"] == "" || len(got.Items) != 2 {
			t.Fatalf("list = %s", b)
		}
		for _, it := range got.Items {
			if it["kind"] != "PartialObjectMetadata" || it["apiVersion"] != "meta.k8s.io/v1" || len(it) != 3 {
				t.Errorf("item = %v", it)
			}
		}
		if strings.Contains(string(b), secretData) {
			t.Errorf("data leaked into metadata list: %s", b)
		}
	})

	decoder := protobuf.NewSerializer(metainternalversionscheme.Scheme, metainternalversionscheme.Scheme)
	t.Run("protobuf get and list", func(t *testing.T) {
		code, ct, b := m.raw(t, base+"/cm-1", metaProto+","+metaJSON+",application/json")
		if code != http.StatusOK || ct != "application/vnd.kubernetes.protobuf" || !strings.HasPrefix(string(b), "k8s\x00") {
			t.Fatalf("%d %s: %q", code, ct, b)
		}
		obj, gvk, err := decoder.Decode(b, nil, nil)
		must(t, err)
		p, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok || gvk.Kind != "PartialObjectMetadata" || gvk.GroupVersion() != metav1.SchemeGroupVersion || p.Name != "cm-1" || p.UID == "" {
			t.Fatalf("decoded %s %T %+v", gvk, obj, obj)
		}

		code, ct, b = m.raw(t, base+"?limit=3", metaListProto)
		if code != http.StatusOK || ct != "application/vnd.kubernetes.protobuf" {
			t.Fatalf("%d %s: %q", code, ct, b)
		}
		obj, _, err = decoder.Decode(b, nil, nil)
		must(t, err)
		l, ok := obj.(*metav1.PartialObjectMetadataList)
		if !ok || len(l.Items) != 3 || l.Continue == "" || l.ResourceVersion == "" || l.Items[0].Name != "cm-0" {
			t.Fatalf("decoded %T %+v", obj, obj)
		}
	})

	t.Run("watches", func(t *testing.T) {
		// JSON: newline-delimited events, each a PartialObjectMetadata.
		resp := m.watch(t, base+"?watch=true&labelSelector=app%3Da&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", metaJSON)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("json watch Content-Type %q", ct)
		}
		sc := bufio.NewScanner(resp.Body)
		var kinds []string
		for range 4 { // cm-0, cm-2, cm-4, the initial-events-end bookmark
			if !sc.Scan() {
				t.Fatalf("json watch ended: %v", sc.Err())
			}
			if strings.Contains(sc.Text(), secretData) {
				t.Errorf("data in a metadata watch: %s", sc.Text())
			}
			var ev struct {
				Type   string
				Object map[string]any
			}
			must(t, json.Unmarshal(sc.Bytes(), &ev))
			kinds = append(kinds, ev.Type+" "+ev.Object["kind"].(string))
		}
		resp.Body.Close()
		want := []string{"ADDED PartialObjectMetadata", "ADDED PartialObjectMetadata", "ADDED PartialObjectMetadata", "BOOKMARK PartialObjectMetadata"}
		if !slices.Equal(kinds, want) {
			t.Errorf("json watch events = %v", kinds)
		}

		// Protobuf: length-prefixed WatchEvent frames.
		resp = m.watch(t, base+"?watch=true&fieldSelector=metadata.name%3Dcm-2", metaProto+","+metaJSON)
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.kubernetes.protobuf;stream=watch" {
			t.Errorf("protobuf watch Content-Type %q", ct)
		}
		var n [4]byte
		_, err := io.ReadFull(resp.Body, n[:])
		must(t, err)
		frame := make([]byte, binary.BigEndian.Uint32(n[:]))
		_, err = io.ReadFull(resp.Body, frame)
		must(t, err)
		var ev metav1.WatchEvent
		must(t, ev.Unmarshal(frame))
		obj, _, err := decoder.Decode(ev.Object.Raw, nil, nil)
		must(t, err)
		if p, ok := obj.(*metav1.PartialObjectMetadata); ev.Type != "ADDED" || !ok || p.Name != "cm-2" {
			t.Errorf("protobuf watch event %s %T %+v", ev.Type, obj, obj)
		}
	})

	t.Run("not acceptable", func(t *testing.T) {
		for _, tc := range []struct{ path, accept string }{
			{base + "/cm-0", "application/json;as=Foo;g=meta.k8s.io;v=v1"},
			{base + "/cm-0", "application/json;as=PartialObjectMetadata;g=example.com;v=v1"},
			{base + "/cm-0", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2"},
			{base + "/cm-0", metaListJSON},
			{base, metaJSON},
			{base + "?watch=true", metaListJSON},
			{base + "/cm-0", "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"},
		} {
			code, _, b := m.raw(t, tc.path, tc.accept)
			var st metav1.Status
			_ = json.Unmarshal(b, &st)
			if code != http.StatusNotAcceptable || st.Reason != metav1.StatusReasonNotAcceptable {
				t.Errorf("GET %s Accept %s = %d %s, want 406 NotAcceptable", tc.path, tc.accept, code, b)
			}
		}
		// An unserved conversion with a plain fallback gets the object.
		code, _, b := m.raw(t, base+"/cm-0", "application/json;as=Foo;g=meta.k8s.io;v=v1,application/json")
		if code != http.StatusOK || !strings.Contains(string(b), secretData) {
			t.Errorf("fallback to the object = %d %s", code, b)
		}
		// Creating with an unserved conversion writes nothing.
		req, err := http.NewRequest(http.MethodPost, m.url+base, strings.NewReader(`{"metadata":{"name":"no"}}`))
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json;as=Foo;g=meta.k8s.io;v=v1")
		resp, err := m.http.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotAcceptable {
			t.Errorf("create with Accept as=Foo = %d, want 406", resp.StatusCode)
		}
		if code, _, _ := m.raw(t, base+"/no", ""); code != http.StatusNotFound {
			t.Errorf("refused create stored the object: GET = %d", code)
		}
	})
}

// watch opens a watch stream with accept.
func (m *metaCluster) watch(t *testing.T, path, accept string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+path, nil)
	must(t, err)
	req.Header.Set("Accept", accept)
	resp, err := m.http.Do(req)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("watch %s = %d %s", path, resp.StatusCode, b)
	}
	return resp
}

// TestTypedProtobufWatch: a watch that accepts protobuf (as client-go's
// typed informers do) gets length-prefixed WatchEvent frames carrying the
// objects themselves, with and without selectors, and the same event
// encoded once for both of two watchers.
func TestTypedProtobufWatch(t *testing.T) {
	const protobufType = "application/vnd.kubernetes.protobuf"
	decoder := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	m := startMetaCluster(t)
	base := "/api/v1/namespaces/" + m.ns + "/configmaps"
	list, err := m.client.CoreV1().ConfigMaps(m.ns).List(context.Background(), metav1.ListOptions{})
	must(t, err)
	from := "&resourceVersion=" + list.ResourceVersion
	all := m.watch(t, base+"?watch=true"+from, protobufType+",application/json")
	all2 := m.watch(t, base+"?watch=true"+from, protobufType+",application/json")
	sel := m.watch(t, base+"?watch=true&labelSelector=app%3Da"+from, protobufType)
	for _, r := range []*http.Response{all, all2, sel} {
		if ct := r.Header.Get("Content-Type"); ct != protobufType+";stream=watch" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	ctx := context.Background()
	cm, err := m.client.CoreV1().ConfigMaps(m.ns).Get(ctx, "cm-1", metav1.GetOptions{})
	must(t, err)
	cm.Labels["app"] = "a" // starts matching the selector
	cm.Data["payload"] = "changed"
	cm, err = m.client.CoreV1().ConfigMaps(m.ns).Update(ctx, cm, metav1.UpdateOptions{})
	must(t, err)

	next := func(r *http.Response) (string, []byte, *corev1.ConfigMap) {
		t.Helper()
		var n [4]byte
		_, err := io.ReadFull(r.Body, n[:])
		must(t, err)
		frame := make([]byte, binary.BigEndian.Uint32(n[:]))
		_, err = io.ReadFull(r.Body, frame)
		must(t, err)
		var ev metav1.WatchEvent
		must(t, ev.Unmarshal(frame))
		obj, _, err := decoder.Decode(ev.Object.Raw, nil, nil)
		must(t, err)
		got, ok := obj.(*corev1.ConfigMap)
		if !ok {
			t.Fatalf("%s event carries %T", ev.Type, obj)
		}
		return ev.Type, ev.Object.Raw, got
	}
	typ, raw, got := next(all)
	if typ != "MODIFIED" || got.Name != "cm-1" || got.Data["payload"] != "changed" || got.ResourceVersion != cm.ResourceVersion || got.UID != cm.UID {
		t.Errorf("all-namespace watch: %s %+v", typ, got)
	}
	if typ2, raw2, _ := next(all2); typ2 != typ || !bytes.Equal(raw2, raw) {
		t.Errorf("second watcher got %s, a different encoding", typ2)
	}
	if typ, _, got := next(sel); typ != "ADDED" || got.Name != "cm-1" || got.ResourceVersion != cm.ResourceVersion {
		t.Errorf("selector watch: %s %s, want ADDED cm-1 (it started to match)", typ, got.Name)
	}
}
