package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// This file sends the API server what no well-behaved client sends and
// checks that each request is refused with the right Status and that
// nothing reaches etcd.

// rejected sends one request and checks it was refused with code and
// reason and that the etcd revision did not move. It returns the Status.
func rejected(t *testing.T, c *cluster, hc *http.Client, method, path, contentType string, body io.Reader, header http.Header, code int, reason metav1.StatusReason) metav1.Status {
	t.Helper()
	before := etcdRevision(t, c)
	got, b := rawDo(t, c, hc, method, path, contentType, body, header)
	if got != code {
		t.Errorf("%s %s: HTTP %d, want %d: %.400s", method, path, got, code, b)
	}
	st := statusOf(t, got, b)
	if st.Reason != reason {
		t.Errorf("%s %s: reason %q, want %q: %s", method, path, st.Reason, reason, st.Message)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("%s %s: a refused request wrote to etcd (revision %d → %d)", method, path, before, after)
	}
	return st
}

// causeFields are the field paths of a Status's causes.
func causeFields(st metav1.Status) []string {
	if st.Details == nil {
		return nil
	}
	var fs []string
	for _, c := range st.Details.Causes {
		fs = append(fs, c.Field)
	}
	return fs
}

// patterned is a reader of n bytes (n < 0: endless) whose length the
// HTTP client cannot know, so the body goes chunked.
type patterned struct{ n int64 }

func (p *patterned) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if p.n > 0 && int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = 'a'
	}
	if p.n > 0 {
		p.n -= int64(len(b))
	}
	return len(b), nil
}

func TestBadInputBodyTooLarge(t *testing.T) {
	c := startAPI(t)
	// A well-formed ConfigMap just over the limit.
	big := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"` +
		strings.Repeat("x", apiserver.MaxBodyBytes) + `"}}`)
	for _, proto := range []struct {
		name  string
		http2 bool
	}{{"HTTP/1.1", false}, {"HTTP/2.0", true}} {
		hc := rawClient(t, c, proto.http2)
		if resp, err := hc.Get(c.url + "/version"); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
			if resp.Proto != proto.name {
				t.Fatalf("client speaks %s, want %s", resp.Proto, proto.name)
			}
		}
		t.Run(proto.name+"/content-length", func(t *testing.T) {
			start := time.Now()
			rejected(t, c, hc, http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json",
				bytes.NewReader(big), nil, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
			t.Logf("answered in %v", time.Since(start))
		})
		t.Run(proto.name+"/chunked", func(t *testing.T) {
			start := time.Now()
			rejected(t, c, hc, http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json",
				io.MultiReader(bytes.NewReader(big)), nil, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
			t.Logf("answered in %v", time.Since(start))
		})
		t.Run(proto.name+"/endless", func(t *testing.T) {
			// A body that never ends can only be answered by a server
			// that stops reading at the limit.
			start := time.Now()
			rejected(t, c, hc, http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json",
				&patterned{n: -1}, nil, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
			t.Logf("answered in %v", time.Since(start))
		})
		t.Run(proto.name+"/update and patch", func(t *testing.T) {
			for _, m := range []struct{ method, ct string }{{http.MethodPut, "application/json"}, {http.MethodPatch, "application/merge-patch+json"}} {
				rejected(t, c, hc, m.method, "/api/v1/namespaces/default/configmaps/big", m.ct,
					&patterned{n: apiserver.MaxBodyBytes + 1}, nil, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
			}
		})
	}
	// Under the limit, valid, but more than etcd takes in one request
	// (1.5 MiB): 413 as well, from the store, and nothing written.
	t.Run("larger than etcd takes", func(t *testing.T) {
		var env strings.Builder
		for i := range 20000 {
			fmt.Fprintf(&env, `{"name":"V%05d","value":"%s"},`, i, strings.Repeat("x", 80))
		}
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"huge"},"spec":{"containers":[{"name":"c","image":"i","env":[` +
			strings.TrimSuffix(env.String(), ",") + `]}]}}`
		if len(pod) >= apiserver.MaxBodyBytes || len(pod) < 1600<<10 {
			t.Fatalf("fixture is %d bytes", len(pod))
		}
		st := rejected(t, c, rawClient(t, c, true), http.MethodPost, "/api/v1/namespaces/default/pods", "application/json",
			strings.NewReader(pod), nil, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge)
		if !strings.Contains(st.Message, "too large for etcd") {
			t.Errorf("message %q", st.Message)
		}
	})
	// Exactly the limit is fine (padded with whitespace: a ConfigMap's
	// data may not exceed 1 MiB).
	hc := rawClient(t, c, true)
	obj := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"limit"},"data":{"k":"v"}}`
	exact := obj + strings.Repeat(" ", apiserver.MaxBodyBytes-len(obj))
	if len(exact) != apiserver.MaxBodyBytes {
		t.Fatalf("fixture is %d bytes", len(exact))
	}
	if code, b := rawDo(t, c, hc, http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json", strings.NewReader(exact), nil); code != http.StatusCreated {
		t.Errorf("a body of exactly %d bytes: %d %.300s", apiserver.MaxBodyBytes, code, b)
	}
}

func TestBadInputMalformed(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	cms := "/api/v1/namespaces/default/configmaps"
	for _, tc := range []struct {
		name, ct, body string
		code           int
		reason         metav1.StatusReason
	}{
		{"truncated JSON", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"`, 400, metav1.StatusReasonBadRequest},
		{"JSON garbage", "application/json", `not json at all`, 400, metav1.StatusReasonBadRequest},
		{"JSON array", "application/json", `[1,2,3]`, 400, metav1.StatusReasonBadRequest},
		{"JSON wrong type", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":1}}`, 400, metav1.StatusReasonBadRequest},
		{"JSON trailing garbage", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}} {`, 400, metav1.StatusReasonBadRequest},
		{"empty body", "application/json", ``, 400, metav1.StatusReasonBadRequest},
		{"YAML unclosed flow", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n", 400, metav1.StatusReasonBadRequest},
		{"YAML bad indentation", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   labels: y\n", 400, metav1.StatusReasonBadRequest},
		{"YAML tab", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: x\n", 400, metav1.StatusReasonBadRequest},
		{"wrong kind", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest},
		{"wrong apiVersion", "application/json", `{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}`, 400, metav1.StatusReasonBadRequest},
		{"unsupported media type", "application/xml", `<configmap/>`, 415, metav1.StatusReasonUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejected(t, c, hc, http.MethodPost, cms, tc.ct, strings.NewReader(tc.body), nil, tc.code, tc.reason)
		})
	}
}

func TestBadInputUnknownPaths(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`
	for _, p := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/namespaces/default/widgets"},
		{http.MethodPost, "/api/v1/namespaces/default/widgets"},
		{http.MethodGet, "/api/v1/widgets"},
		{http.MethodGet, "/api/v2/pods"},
		{http.MethodGet, "/apis/nope.example.com/v1/widgets"},
		{http.MethodPost, "/apis/nope.example.com/v1/namespaces/default/widgets"},
		{http.MethodGet, "/apis/nope.example.com/v1"},
		{http.MethodGet, "/apis/nope.example.com"},
		{http.MethodGet, "/apis/apps/v1/pods"},
		{http.MethodGet, "/api/v1/namespaces/default/pods/x/nonsense"},
		{http.MethodGet, "/api/v1/namespaces/default/configmaps/x/status"},
		{http.MethodGet, "/api/v1/namespaces/default/pods/a/b/c/d"},
		{http.MethodGet, "/nonsense"},
	} {
		t.Run(p.method+p.path, func(t *testing.T) {
			rejected(t, c, hc, p.method, p.path, "application/json", strings.NewReader(body), nil, http.StatusNotFound, metav1.StatusReasonNotFound)
		})
	}
}

// TestBadInputListOptions: a list's or watch's resourceVersion,
// resourceVersionMatch and sendInitialEvents are checked as kube-apiserver
// checks them, and refused with a Status rather than ignored.
func TestBadInputListOptions(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const pods = "/api/v1/namespaces/default/pods?"
	for _, q := range []struct {
		query  string
		code   int
		reason metav1.StatusReason
		msg    string
	}{
		{"resourceVersion=abc", http.StatusBadRequest, metav1.StatusReasonBadRequest, `invalid resourceVersion "abc"`},
		{"limit=ten", http.StatusBadRequest, metav1.StatusReasonBadRequest, `invalid limit "ten"`},
		{"resourceVersion=-3", http.StatusBadRequest, metav1.StatusReasonBadRequest, `invalid resourceVersion "-3"`},
		{"resourceVersion=abc&watch=true", http.StatusBadRequest, metav1.StatusReasonBadRequest, `invalid resourceVersion "abc"`},
		{"resourceVersionMatch=Foo&resourceVersion=1", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `Unsupported value: "Foo"`},
		{"resourceVersionMatch=NotOlderThan", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "resourceVersionMatch is forbidden unless resourceVersion is provided"},
		{"resourceVersionMatch=Exact&resourceVersion=0", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `resourceVersionMatch "exact" is forbidden for resourceVersion "0"`},
		{"sendInitialEvents=true", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "sendInitialEvents is forbidden for list"},
		{"sendInitialEvents=maybe&watch=true", http.StatusBadRequest, metav1.StatusReasonBadRequest, `invalid sendInitialEvents "maybe"`},
		{"sendInitialEvents=true&watch=true", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"},
		{"resourceVersionMatch=NotOlderThan&resourceVersion=1&watch=true", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"},
	} {
		t.Run(q.query, func(t *testing.T) {
			st := rejected(t, c, hc, http.MethodGet, pods+q.query, "", nil, nil, q.code, q.reason)
			if !strings.Contains(st.Message, q.msg) {
				t.Errorf("message %q lacks %q", st.Message, q.msg)
			}
		})
	}
	// What client-go's reflector and kubectl send still works, and a
	// negative limit is none, as in kube-apiserver.
	for _, q := range []string{"resourceVersion=0", "resourceVersion=1&resourceVersionMatch=NotOlderThan", "limit=500&resourceVersion=0", "limit=-1",
		"watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
		"watch=true&resourceVersion=0&timeoutSeconds=1"} {
		if code, b := rawDo(t, c, hc, http.MethodGet, pods+q, "", nil, nil); code != http.StatusOK {
			t.Errorf("GET ?%s: %d %.300s", q, code, b)
		}
	}
}

// TestTooLargeResourceVersion: a read at a resource version etcd has not
// reached (a client that kept its versions across an etcd restore) gets
// kube-apiserver's 504 with the cause ResourceVersionTooLarge, on which
// client-go's reflector lists again from the latest revision, instead of
// older data or a watch that stays silent until etcd catches up.
func TestTooLargeResourceVersion(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const cms = "/api/v1/namespaces/default/configmaps"
	if code, b := rawDo(t, c, hc, http.MethodPost, cms, "application/json", strings.NewReader(`{"metadata":{"name":"there"}}`), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	now := etcdRevision(t, c)
	ahead := strconv.FormatInt(now+1000, 10)
	for _, path := range []string{
		cms + "/there?resourceVersion=" + ahead,
		cms + "/missing?resourceVersion=" + ahead,
		cms + "?resourceVersion=" + ahead,
		cms + "?resourceVersionMatch=NotOlderThan&resourceVersion=" + ahead,
		cms + "?resourceVersionMatch=Exact&resourceVersion=" + ahead,
		cms + "?limit=1&resourceVersion=" + ahead,
		cms + "?watch=true&resourceVersion=" + ahead,
		cms + "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=" + ahead,
	} {
		st := rejected(t, c, hc, http.MethodGet, path, "", nil, nil, http.StatusGatewayTimeout, metav1.StatusReasonTimeout)
		if want := fmt.Sprintf("Too large resource version: %s, current: %d", ahead, now); !strings.Contains(st.Message, want) {
			t.Errorf("GET %s: message %q lacks %q", path, st.Message, want)
		}
		if !apierrors.HasStatusCause(&apierrors.StatusError{ErrStatus: st}, metav1.CauseTypeResourceVersionTooLarge) {
			t.Errorf("GET %s: no cause %s: %+v", path, metav1.CauseTypeResourceVersionTooLarge, st.Details)
		}
	}
	rejected(t, c, hc, http.MethodGet, cms+"/there?resourceVersion=abc", "", nil, nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	// Versions etcd has reached are served.
	cur := strconv.FormatInt(now, 10)
	for _, path := range []string{cms + "/there?resourceVersion=" + cur, cms + "/there?resourceVersion=0", cms + "?resourceVersion=" + cur,
		cms + "?resourceVersionMatch=Exact&resourceVersion=" + cur, cms + "?watch=true&timeoutSeconds=1&resourceVersion=" + cur} {
		if code, b := rawDo(t, c, hc, http.MethodGet, path, "", nil, nil); code != http.StatusOK {
			t.Errorf("GET %s: %d %.300s", path, code, b)
		}
	}
}

// TestBadInputWriteOptions: a write's dryRun, fieldManager,
// fieldValidation and force are checked as kube-apiserver checks them; a
// misspelt dryRun is refused rather than taken for a real write.
func TestBadInputWriteOptions(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const cms = "/api/v1/namespaces/default/configmaps"
	cm := func(name string) io.Reader {
		return strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"}}`)
	}
	if code, b := rawDo(t, c, hc, http.MethodPost, cms, "application/json", cm("there"), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, q := range []struct {
		name, method, path, contentType string
		body                            io.Reader
		msg                             string
	}{
		{"create dryRun", http.MethodPost, cms + "?dryRun=all", "application/json", cm("a"), `dryRun: Unsupported value: ["all"]`},
		{"create fieldValidation", http.MethodPost, cms + "?fieldValidation=Bogus", "application/json", cm("a"), `fieldValidation: Unsupported value: "Bogus"`},
		{"create fieldManager", http.MethodPost, cms + "?fieldManager=" + strings.Repeat("m", 129), "application/json", cm("a"), "fieldManager: Too long"},
		{"update dryRun", http.MethodPut, cms + "/there?dryRun=All&dryRun=Some", "application/json", cm("there"), "dryRun: Unsupported value"},
		{"merge patch with force", http.MethodPatch, cms + "/there?force=true", "application/merge-patch+json", strings.NewReader(`{"data":{"k":"v"}}`), "force: Forbidden: may not be specified for non-apply patch"},
		{"apply without fieldManager", http.MethodPatch, cms + "/there", "application/apply-patch+yaml", cm("there"), "fieldManager: Required value: is required for apply patch"},
		{"delete dryRun", http.MethodDelete, cms + "/there?dryRun=Yes", "", nil, "dryRun: Unsupported value"},
		{"delete propagationPolicy", http.MethodDelete, cms + "/there?propagationPolicy=Foo", "", nil, `propagationPolicy: Unsupported value: "Foo"`},
	} {
		t.Run(q.name, func(t *testing.T) {
			st := rejected(t, c, hc, q.method, q.path, q.contentType, q.body, nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			if !strings.Contains(st.Message, q.msg) {
				t.Errorf("message %q lacks %q", st.Message, q.msg)
			}
		})
	}
	// A real dry run answers and writes nothing.
	before := etcdRevision(t, c)
	if code, b := rawDo(t, c, hc, http.MethodPost, cms+"?dryRun=All", "application/json", cm("dry"), nil); code != http.StatusCreated {
		t.Errorf("dry-run create: %d %s", code, b)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("a dry run wrote to etcd (revision %d → %d)", before, after)
	}
}

func TestBadInputInvalidNames(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	for _, name := range []string{"Bad_Name", strings.Repeat("a", 300), "", "has space", "../escape", "a/b"} {
		for _, kind := range []struct{ path, body string }{
			{"/api/v1/namespaces/default/configmaps", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q}}`},
			{"/api/v1/namespaces/default/pods", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q},"spec":{"containers":[{"name":"main","image":"hello:v1"}]}}`},
			{"/api/v1/nodes", `{"apiVersion":"v1","kind":"Node","metadata":{"name":%q}}`},
		} {
			t.Run(fmt.Sprintf("%.20s%s", name, kind.path), func(t *testing.T) {
				st := rejected(t, c, hc, http.MethodPost, kind.path, "application/json", strings.NewReader(fmt.Sprintf(kind.body, name)), nil,
					http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
				if fs := causeFields(st); !slices.Contains(fs, "metadata.name") {
					t.Errorf("causes %v do not name metadata.name", fs)
				}
			})
		}
	}
	// Invalid names on the URL of an existing collection are 404 or 400,
	// never a write.
	for _, p := range []string{"/api/v1/namespaces/Bad_NS/configmaps", "/api/v1/namespaces/" + strings.Repeat("n", 300) + "/configmaps"} {
		before := etcdRevision(t, c)
		code, b := rawDo(t, c, hc, http.MethodPost, p, "application/json", strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`), nil)
		if code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("POST %.60s: %d %s", p, code, b)
		}
		statusOf(t, code, b)
		if etcdRevision(t, c) != before {
			t.Errorf("POST %.60s wrote to etcd", p)
		}
	}
}

func TestBadInputMissingRequired(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	pods := "/api/v1/namespaces/default/pods"
	for _, tc := range []struct {
		name, body string
		causes     []string
	}{
		{"no containers", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{}}`, []string{"spec.containers"}},
		{"no spec", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`, []string{"spec.containers"}},
		{"container without image", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"main"}]}}`, []string{"spec.containers[0].image"}},
		{"container without name", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"image":"hello:v1"}]}}`, []string{"spec.containers[0].name"}},
		{"two problems", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"a"},{"name":"a","image":"hello:v1"}]}}`,
			[]string{"spec.containers[0].image", "spec.containers[1].name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := rejected(t, c, hc, http.MethodPost, pods, "application/json", strings.NewReader(tc.body), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			fs := causeFields(st)
			for _, want := range tc.causes {
				if !slices.Contains(fs, want) {
					t.Errorf("causes %v lack %s", fs, want)
				}
			}
			if st.Details == nil || st.Details.Kind != "Pod" || st.Details.Name != "x" {
				t.Errorf("details %+v, want kind Pod name x", st.Details)
			}
		})
	}
	t.Run("deployment without selector", func(t *testing.T) {
		st := rejected(t, c, hc, http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", "application/yaml", strings.NewReader(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    metadata: {labels: {app: d}}
    spec:
      containers: [{name: main, image: "hello:v1"}]
`), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if fs := causeFields(st); !slices.Contains(fs, "spec.selector") {
			t.Errorf("causes %v lack spec.selector", fs)
		}
	})
}

func TestBadInputStrictFieldValidation(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	cms := "/api/v1/namespaces/default/configmaps"
	for _, tc := range []struct{ name, ct, body, field string }{
		{"top-level JSON", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"bogusField":1}`, "bogusField"},
		{"nested JSON", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s","colour":"red"}}`, "metadata.colour"},
		{"YAML", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\nspecc:\n  x: 1\n", "specc"},
		{"duplicate field", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"},"data":{},"data":{}}`, "data"},
		{"duplicate YAML key", "application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\ndata:\n  k: a\n  k: b\n", `key "k" already set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := rejected(t, c, hc, http.MethodPost, cms+"?fieldValidation=Strict", tc.ct, strings.NewReader(tc.body), nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
			if !strings.Contains(st.Message, tc.field) {
				t.Errorf("message %q does not mention %s", st.Message, tc.field)
			}
		})
	}
	t.Run("patch", func(t *testing.T) {
		code, b := rawDo(t, c, hc, http.MethodPost, cms, "application/json", strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"}}`), nil)
		if code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		// A patch's are 422, as kube-apiserver's patch handler answers.
		st := rejected(t, c, hc, http.MethodPatch, cms+"/target?fieldValidation=Strict", "application/merge-patch+json",
			strings.NewReader(`{"dataa":{"k":"v"}}`), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if !strings.Contains(st.Message, "dataa") {
			t.Errorf("message %q does not mention dataa", st.Message)
		}
		st = rejected(t, c, hc, http.MethodPut, cms+"/target?fieldValidation=Strict", "application/json",
			strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"},"extra":true}`), nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
		if !strings.Contains(st.Message, "extra") {
			t.Errorf("message %q does not mention extra", st.Message)
		}
	})
	t.Run("without Strict unknown fields are dropped", func(t *testing.T) {
		code, b := rawDo(t, c, hc, http.MethodPost, cms+"?fieldValidation=Ignore", "application/json", strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"lax"},"bogusField":1}`), nil)
		if code != http.StatusCreated || bytes.Contains(b, []byte("bogusField")) {
			t.Errorf("non-strict create: %d %s", code, b)
		}
	})
}

// bomb sends body and checks for a 4xx answer that did not write, logging
// the time taken and the memory the server used for it.
func bomb(t *testing.T, c *cluster, hc *http.Client, method, path, ct string, body []byte) {
	t.Helper()
	if len(body) > apiserver.MaxBodyBytes {
		t.Fatalf("bomb of %d bytes is over the body limit", len(body))
	}
	before := etcdRevision(t, c)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	code, b := rawDo(t, c, hc, method, path, ct, bytes.NewReader(body), nil)
	took := time.Since(start)
	runtime.ReadMemStats(&m1)
	alloc := int64(m1.TotalAlloc - m0.TotalAlloc)
	heap := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	t.Logf("%d-byte body: HTTP %d in %v; %d MB allocated, heap in use %+d MB, peak-ish sys %d MB: %.200s",
		len(body), code, took, alloc>>20, heap>>20, m1.Sys>>20, b)
	if code < 400 || code >= 500 {
		t.Errorf("HTTP %d, want 4xx", code)
	}
	statusOf(t, code, b)
	if etcdRevision(t, c) != before {
		t.Errorf("the bomb wrote to etcd")
	}
	// Allocation is a stand-in for peak memory: whatever the server did
	// with the body, it cannot have held more than it allocated.
	if alloc > 200<<20 {
		t.Errorf("handling a %d-byte body allocated %d MB", len(body), alloc>>20)
	}
}

func TestBadInputBombs(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	cms := "/api/v1/namespaces/default/configmaps"
	const depth = 100_000
	deepJSON := func(open, close string) []byte {
		return []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep","annotations":` +
			strings.Repeat(open, depth) + strings.Repeat(close, depth) + `}}`)
	}
	billionLaughs := []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: lol
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
data: {k: *i}
`)
	t.Run("JSON arrays nested 100000 deep", func(t *testing.T) {
		bomb(t, c, hc, http.MethodPost, cms, "application/json", deepJSON("[", "]"))
	})
	t.Run("JSON objects nested 100000 deep", func(t *testing.T) {
		bomb(t, c, hc, http.MethodPost, cms, "application/json", deepJSON(`{"a":`, "}"))
	})
	t.Run("YAML flow nested 100000 deep", func(t *testing.T) {
		bomb(t, c, hc, http.MethodPost, cms, "application/yaml", deepJSON("[", "]"))
	})
	t.Run("YAML billion laughs", func(t *testing.T) {
		bomb(t, c, hc, http.MethodPost, cms, "application/yaml", billionLaughs)
	})
	t.Run("YAML aliases of a large string", func(t *testing.T) {
		// go-yaml's alias-ratio check counts nodes, not bytes: 3000
		// aliases of a 1 MiB string pass it and expand to 3 GB of JSON.
		body := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n  annotations: {x: &a \"" + strings.Repeat("x", 1<<20) +
			"\"}\nbomb: [" + strings.Repeat("*a,", 3000) + "*a]\n"
		bomb(t, c, hc, http.MethodPost, cms, "application/yaml", []byte(body))
	})
	t.Run("patches", func(t *testing.T) {
		code, b := rawDo(t, c, hc, http.MethodPost, cms, "application/json", strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"}}`), nil)
		if code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		nested := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		for _, ct := range []string{"application/merge-patch+json", "application/strategic-merge-patch+json"} {
			bomb(t, c, hc, http.MethodPatch, cms+"/target", ct, []byte(`{"metadata":{"annotations":`+nested+`}}`))
		}
		bomb(t, c, hc, http.MethodPatch, cms+"/target", "application/json-patch+json", []byte(`[{"op":"add","path":"/data","value":`+nested+`}]`))
		bomb(t, c, hc, http.MethodPut, cms+"/target", "application/yaml", billionLaughs)
		// Server-side apply, on the object and on a missing one.
		for _, name := range []string{"target", "lol"} {
			apply := cms + "/" + name + "?fieldManager=bomber"
			bomb(t, c, hc, http.MethodPatch, apply, "application/apply-patch+yaml", billionLaughs)
			bomb(t, c, hc, http.MethodPatch, apply, "application/apply-patch+yaml",
				[]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"`+name+`","annotations":`+nested+`}}`))
		}
		// Each copy of /data into itself doubles it: 2^40 without a limit.
		ops := []string{`{"op":"add","path":"/data","value":{"a":"` + strings.Repeat("y", 100) + `"}}`}
		for i := range 40 {
			ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"/data","path":"/data/c%d"}`, i))
		}
		bomb(t, c, hc, http.MethodPatch, cms+"/target", "application/json-patch+json", []byte("["+strings.Join(ops, ",")+"]"))
		// More operations than kube-apiserver allows (10000).
		ops = ops[:0]
		for range 10001 {
			ops = append(ops, `{"op":"test","path":"/kind","value":"ConfigMap"}`)
		}
		bomb(t, c, hc, http.MethodPatch, cms+"/target", "application/json-patch+json", []byte("["+strings.Join(ops, ",")+"]"))
	})
}

func TestBadInputUnauthenticated(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	paths := []string{
		"/api", "/apis", "/api/v1", "/apis/apps/v1", "/apis/apps",
		"/openapi/v3", "/openapi/v3/api/v1", "/openapi/v2", "/metrics",
		"/api/v1/namespaces", "/api/v1/namespaces/default", "/api/v1/nodes",
		"/api/v1/pods", "/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/x",
		"/api/v1/namespaces/default/pods/x/status", "/api/v1/namespaces/default/pods/x/log",
		"/api/v1/namespaces/default/secrets", "/apis/apps/v1/namespaces/default/deployments/x/scale",
		"/api/v1/namespaces/default/pods?watch=true", "/apis/nope.example.com/v1/widgets", "/nonsense",
	}
	auths := map[string]string{
		"no token":           "",
		"wrong token":        "Bearer not-the-token",
		"token with a tail":  "Bearer " + c.token + "x",
		"token prefix":       "Bearer " + c.token[:len(c.token)/2],
		"empty bearer":       "Bearer ",
		"bare scheme":        "Bearer",
		"basic auth":         "Basic YWRtaW46YWRtaW4=",
		"token without type": c.token,
		"other scheme":       "Token " + c.token,
	}
	for name, auth := range auths {
		t.Run(name, func(t *testing.T) {
			h := http.Header{"Authorization": {auth}}
			for _, p := range paths {
				rejected(t, c, hc, http.MethodGet, p, "", nil, h, http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
			}
			body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`
			for _, m := range []struct{ method, path, ct string }{
				{http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json"},
				{http.MethodPut, "/api/v1/namespaces/default/configmaps/x", "application/json"},
				{http.MethodPatch, "/api/v1/namespaces/default/configmaps/x", "application/merge-patch+json"},
				{http.MethodDelete, "/api/v1/namespaces/default/namespaces/default", ""},
				{http.MethodDelete, "/api/v1/namespaces/default", ""},
				{http.MethodDelete, "/api/v1/namespaces/default/configmaps", ""},
			} {
				rejected(t, c, hc, m.method, m.path, m.ct, strings.NewReader(body), h, http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
			}
		})
	}
	t.Run("public endpoints", func(t *testing.T) {
		for _, p := range []string{"/livez", "/readyz", "/healthz", "/version"} {
			code, b := rawDo(t, c, hc, http.MethodGet, p, "", nil, http.Header{"Authorization": {""}})
			if code != http.StatusOK {
				t.Errorf("GET %s without a token: %d %s", p, code, b)
			}
		}
		// The same endpoints with the admin token still answer.
		for _, p := range []string{"/api", "/openapi/v3", "/metrics"} {
			if code, b := rawDo(t, c, hc, http.MethodGet, p, "", nil, nil); code != http.StatusOK {
				t.Errorf("GET %s with the token: %d %.200s", p, code, b)
			}
		}
	})
	t.Run("Public handlers such as /cacerts", func(t *testing.T) {
		api, err := apiserver.New(apiserver.Config{
			Store:        storage.New(c.etcd),
			Authenticate: func(string) (apiserver.User, bool) { return apiserver.User{}, false },
			Metrics:      prometheus.NewRegistry(),
			Public: map[string]http.Handler{"/cacerts": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "PEM")
			})},
		})
		must(t, err)
		for p, want := range map[string]int{"/cacerts": 200, "/cacerts/x": 401, "/api": 401, "/metrics": 401} {
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
			if rec.Code != want {
				t.Errorf("GET %s without a token: %d, want %d", p, rec.Code, want)
			}
		}
	})
}

// TestPanicRecovery: a handler that panics gets the client a 500 Status,
// as kube-apiserver's panic recovery does, and the server goes on; one
// that panics after it started its answer has its stream cut.
func TestPanicRecovery(t *testing.T) {
	var logs bytes.Buffer
	_, etcd := testenv.Etcd(t)
	api, err := apiserver.New(apiserver.Config{
		Store:        storage.New(etcd),
		Authenticate: func(string) (apiserver.User, bool) { return apiserver.User{}, false },
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
		Public: map[string]http.Handler{
			"/early": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("early") }),
			"/late": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "partial")
				panic("late")
			}),
			"/abort": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }),
		},
	})
	must(t, err)
	serve := func(path string) (rec *httptest.ResponseRecorder, p any) {
		defer func() { p = recover() }()
		rec = httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec, nil
	}
	rec, p := serve("/early")
	var st metav1.Status
	if p != nil || rec.Code != http.StatusInternalServerError || json.Unmarshal(rec.Body.Bytes(), &st) != nil || st.Kind != "Status" || st.Reason != metav1.StatusReasonInternalError {
		t.Errorf("panic before the answer: panic %v, %d %s; want a 500 Status", p, rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "request panicked") || !strings.Contains(logs.String(), "panic=early") {
		t.Errorf("the panic is not logged:\n%s", logs.String())
	}
	for path, want := range map[string]any{"/late": http.ErrAbortHandler, "/abort": http.ErrAbortHandler} {
		if _, p := serve(path); p != want {
			t.Errorf("%s: panic %v, want http.ErrAbortHandler for net/http to cut the stream", path, p)
		}
	}
	if rec, _ := serve("/version"); rec.Code != http.StatusOK {
		t.Errorf("after the panics, /version: %d", rec.Code)
	}
}

func TestBadInputPatches(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	cm := "/api/v1/namespaces/default/configmaps/target"
	pod := "/api/v1/namespaces/default/pods/target"
	for p, body := range map[string]string{
		"/api/v1/namespaces/default/configmaps": `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target","labels":{"a":"b"}},"data":{"k":"v"}}`,
		"/api/v1/namespaces/default/pods":       `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"target"},"spec":{"runtimeClassName":"wasm","containers":[{"name":"main","image":"hello:v1"}]}}`,
	} {
		if code, b := rawDo(t, c, hc, http.MethodPost, p, "application/json", strings.NewReader(body), nil); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
	}
	const (
		jp  = "application/json-patch+json"
		mp  = "application/merge-patch+json"
		smp = "application/strategic-merge-patch+json"
	)
	for _, tc := range []struct {
		name, path, ct, body string
		code                 int
		reason               metav1.StatusReason
	}{
		// A patch that does not apply is 422, as kube-apiserver answers.
		{"JSON patch unknown op", cm, jp, `[{"op":"frobnicate","path":"/data/k","value":"x"}]`, 422, metav1.StatusReasonInvalid},
		{"JSON patch not a list", cm, jp, `{"op":"add","path":"/data/x","value":"1"}`, 400, metav1.StatusReasonBadRequest},
		{"JSON patch malformed", cm, jp, `[{"op":"add",`, 400, metav1.StatusReasonBadRequest},
		{"JSON patch missing path", cm, jp, `[{"op":"add","value":"1"}]`, 422, metav1.StatusReasonInvalid},
		{"JSON patch remove missing", cm, jp, `[{"op":"remove","path":"/data/nothing"}]`, 422, metav1.StatusReasonInvalid},
		{"JSON patch failing test", cm, jp, `[{"op":"test","path":"/data/k","value":"other"},{"op":"replace","path":"/data/k","value":"x"}]`, 422, metav1.StatusReasonInvalid},
		// A patch that makes a value of the wrong type is 422 too (the
		// patch is the invalid field).
		{"JSON patch wrong value type", cm, jp, `[{"op":"replace","path":"/data","value":[1,2]}]`, 422, metav1.StatusReasonInvalid},
		{"JSON patch renames", cm, jp, `[{"op":"replace","path":"/metadata/name","value":"other"}]`, 400, metav1.StatusReasonBadRequest},
		{"JSON patch makes the kind wrong", cm, jp, `[{"op":"replace","path":"/kind","value":"Secret"}]`, 400, metav1.StatusReasonBadRequest},
		{"merge patch malformed", cm, mp, `{"data":`, 400, metav1.StatusReasonBadRequest},
		{"merge patch wrong type", cm, mp, `{"data":{"k":7}}`, 422, metav1.StatusReasonInvalid},
		{"merge patch not an object", cm, mp, `[1,2,3]`, 0, ""},
		{"merge patch invalid label", cm, mp, `{"metadata":{"labels":{"bad key!":"x"}}}`, 422, metav1.StatusReasonInvalid},
		{"merge patch invalid finalizer", cm, mp, `{"metadata":{"finalizers":["unqualified"]}}`, 422, metav1.StatusReasonInvalid},
		{"merge patch stale resourceVersion", cm, mp, `{"metadata":{"resourceVersion":"1"},"data":{"k":"x"}}`, 409, metav1.StatusReasonConflict},
		{"strategic patch malformed", cm, smp, `{"data"`, 400, metav1.StatusReasonBadRequest},
		{"strategic patch bad directive", pod, smp, `{"spec":{"containers":[{"$patch":"explode","name":"main"}]}}`, 0, ""},
		{"pod patch empties image", pod, mp, `{"spec":{"containers":[{"name":"main","image":""}]}}`, 422, metav1.StatusReasonInvalid},
		{"pod patch adds container", pod, smp, `{"spec":{"containers":[{"name":"side","image":"x:1"}]}}`, 422, metav1.StatusReasonInvalid},
		{"pod patch changes nodeName", pod, mp, `{"spec":{"nodeName":"elsewhere"}}`, 422, metav1.StatusReasonInvalid},
		{"pod patch negative deadline", pod, mp, `{"spec":{"activeDeadlineSeconds":-5}}`, 422, metav1.StatusReasonInvalid},
		{"unknown patch type", cm, "application/xml", `<x/>`, 415, metav1.StatusReasonUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code != 0 {
				rejected(t, c, hc, http.MethodPatch, tc.path, tc.ct, strings.NewReader(tc.body), nil, tc.code, tc.reason)
				return
			}
			// Any 4xx will do, as long as nothing is written.
			before := etcdRevision(t, c)
			code, b := rawDo(t, c, hc, http.MethodPatch, tc.path, tc.ct, strings.NewReader(tc.body), nil)
			if code < 400 || code >= 500 {
				t.Errorf("HTTP %d, want 4xx: %.300s", code, b)
				return
			}
			st := statusOf(t, code, b)
			t.Logf("HTTP %d %s: %s", code, st.Reason, st.Message)
			if etcdRevision(t, c) != before {
				t.Errorf("a refused patch wrote to etcd")
			}
		})
	}
	// The objects are as created.
	code, b := rawDo(t, c, hc, http.MethodGet, cm, "", nil, nil)
	if code != 200 || !bytes.Contains(b, []byte(`"data":{"k":"v"}`)) || !bytes.Contains(b, []byte(`"labels":{"a":"b"}`)) {
		t.Errorf("configmap after refused patches: %d %s", code, b)
	}
}

// TestBadInputStrategicPatchPanics: apimachinery's strategic merge panics
// on some malformed patches (a merge key or $retainKeys entry that is an
// object, a $setElementOrder list of objects for a list of strings). Such a
// patch is refused with 400, as any patch that does not apply, instead of
// the panic resetting the connection; nothing is written.
func TestBadInputStrategicPatchPanics(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const (
		pods = "/api/v1/namespaces/default/pods"
		pod  = pods + "/target"
		smp  = "application/strategic-merge-patch+json"
	)
	body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"target","finalizers":["example.com/keep"]},"spec":{"runtimeClassName":"wasm",` +
		`"containers":[{"name":"main","image":"hello:v1","args":["a"],"ports":[{"containerPort":80}]}],"tolerations":[{"key":"k","operator":"Exists"}],` +
		`"volumes":[{"name":"v","emptyDir":{}}]}}`
	if code, b := rawDo(t, c, hc, http.MethodPost, pods, "application/json", strings.NewReader(body), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	_, before, _ := etcdKV(t, c, "/registry/pods/default/target")
	for _, tc := range []struct{ path, patch string }{
		{pod, `{"spec":{"containers":[{"name":{"x":1}}]}}`},
		{pod, `{"spec":{"containers":[{"name":["x"]}]}}`},
		{pod, `{"spec":{"containers":[{"name":"main","ports":[{"containerPort":{"a":1}}]}]}}`},
		{pod, `{"spec":{"containers":[{"name":"main","$setElementOrder/args":[{"a":1}]}]}}`},
		{pod, `{"spec":{"$setElementOrder/tolerations":[{"key":"k"}]}}`},
		{pod, `{"spec":{"volumes":[{"name":"v","$retainKeys":[{"a":1}]}]}}`},
		{pod, `{"metadata":{"$setElementOrder/finalizers":[["example.com/keep"]]}}`},
		{pod + "/status", `{"metadata":{"$setElementOrder/finalizers":[{"a":1}]}}`},
	} {
		t.Run(tc.path+" "+tc.patch, func(t *testing.T) {
			st := rejected(t, c, hc, http.MethodPatch, tc.path, smp, strings.NewReader(tc.patch), nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
			if !strings.Contains(st.Message, "the patch could not be applied") {
				t.Errorf("message %q", st.Message)
			}
		})
	}
	if _, after, _ := etcdKV(t, c, "/registry/pods/default/target"); !bytes.Equal(before, after) {
		t.Errorf("the pod changed:\n%s\n%s", before, after)
	}
	// The server still answers patches that do apply.
	if code, b := rawDo(t, c, hc, http.MethodPatch, pod, smp, strings.NewReader(`{"metadata":{"labels":{"a":"b"}}}`), nil); code != http.StatusOK {
		t.Errorf("valid patch: %d %s", code, b)
	}
}

// TestBadInputScaleOfAnotherObject: a PUT or patch of /scale whose Scale is
// not the addressed one (another name, namespace or uid, or not a Scale at
// all) is refused as kube-apiserver refuses it, and the replicas stay.
func TestBadInputScaleOfAnotherObject(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const (
		deps  = "/apis/apps/v1/namespaces/default/deployments"
		scale = deps + "/target/scale"
		key   = "/registry/deployments/default/target"
	)
	dep := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"target"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"t"}},` +
		`"template":{"metadata":{"labels":{"app":"t"}},"spec":{"containers":[{"name":"main","image":"hello:v1"}]}}}}`
	if code, b := rawDo(t, c, hc, http.MethodPost, deps, "application/json", strings.NewReader(dep), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	_, before, _ := etcdKV(t, c, key)
	sc := func(meta string, replicas int) string {
		return fmt.Sprintf(`{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{%s},"spec":{"replicas":%d}}`, meta, replicas)
	}
	for _, tc := range []struct {
		name, method, ct, body string
		code                   int
		reason                 metav1.StatusReason
	}{
		{"PUT another name", http.MethodPut, "application/json", sc(`"name":"other"`, 3), 400, metav1.StatusReasonBadRequest},
		{"PUT no name", http.MethodPut, "application/json", sc(``, 3), 400, metav1.StatusReasonBadRequest},
		{"PUT another namespace", http.MethodPut, "application/json", sc(`"name":"target","namespace":"kube-system"`, 3), 400, metav1.StatusReasonBadRequest},
		{"PUT another uid", http.MethodPut, "application/json", sc(`"name":"target","uid":"6a1f3b9e-0000-0000-0000-000000000000"`, 3), 409, metav1.StatusReasonConflict},
		{"PUT a Deployment", http.MethodPut, "application/json", strings.Replace(dep, `"replicas":1`, `"replicas":3`, 1), 400, metav1.StatusReasonBadRequest},
		{"PUT another API version", http.MethodPut, "application/json", strings.Replace(sc(`"name":"target"`, 3), "autoscaling/v1", "autoscaling/v2", 1), 400, metav1.StatusReasonBadRequest},
		{"merge patch renames", http.MethodPatch, "application/merge-patch+json", `{"metadata":{"name":"other"},"spec":{"replicas":3}}`, 400, metav1.StatusReasonBadRequest},
		{"merge patch drops the name", http.MethodPatch, "application/merge-patch+json", `{"metadata":{"name":null},"spec":{"replicas":3}}`, 400, metav1.StatusReasonBadRequest},
		{"merge patch changes the kind", http.MethodPatch, "application/merge-patch+json", `{"kind":"Deployment","spec":{"replicas":3}}`, 400, metav1.StatusReasonBadRequest},
		{"merge patch changes the uid", http.MethodPatch, "application/merge-patch+json", `{"metadata":{"uid":"6a1f3b9e-0000-0000-0000-000000000000"},"spec":{"replicas":3}}`, 409, metav1.StatusReasonConflict},
		{"JSON patch renames", http.MethodPatch, "application/json-patch+json", `[{"op":"replace","path":"/metadata/name","value":"zz"},{"op":"replace","path":"/spec/replicas","value":3}]`, 400, metav1.StatusReasonBadRequest},
		{"JSON patch moves namespace", http.MethodPatch, "application/json-patch+json", `[{"op":"replace","path":"/metadata/namespace","value":"kube-system"},{"op":"replace","path":"/spec/replicas","value":3}]`, 400, metav1.StatusReasonBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejected(t, c, hc, tc.method, scale, tc.ct, strings.NewReader(tc.body), nil, tc.code, tc.reason)
		})
	}
	if _, after, _ := etcdKV(t, c, key); !bytes.Equal(before, after) {
		t.Errorf("the deployment changed:\n%s\n%s", before, after)
	}
	// The scale of the object itself is still taken.
	if code, b := rawDo(t, c, hc, http.MethodPut, scale, "application/json", strings.NewReader(sc(`"name":"target","namespace":"default"`, 2)), nil); code != http.StatusOK {
		t.Errorf("PUT scale: %d %s", code, b)
	}
	if code, b := rawDo(t, c, hc, http.MethodPatch, scale, "application/merge-patch+json", strings.NewReader(`{"spec":{"replicas":4}}`), nil); code != http.StatusOK || !strings.Contains(string(b), `"replicas":4`) {
		t.Errorf("patch scale: %d %s", code, b)
	}
}

// TestBadInputBodyOfAnotherKind: a binding, an eviction or a delete whose
// body is not a Binding, an Eviction or DeleteOptions (or is for another
// namespace) is refused with 400, as kube-apiserver refuses it, instead of
// binding, evicting or deleting on what it could read of the body.
func TestBadInputBodyOfAnotherKind(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const (
		pods = "/api/v1/namespaces/default/pods"
		pod  = pods + "/target"
		cm   = "/api/v1/namespaces/default/configmaps/target"
	)
	for p, body := range map[string]string{
		pods:                                    `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"target"},"spec":{"runtimeClassName":"wasm","containers":[{"name":"main","image":"hello:v1"}]}}`,
		"/api/v1/namespaces/default/configmaps": `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"}}`,
	} {
		if code, b := rawDo(t, c, hc, http.MethodPost, p, "application/json", strings.NewReader(body), nil); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
	}
	for _, tc := range []struct{ name, method, path, body string }{
		{"binding as a ConfigMap", http.MethodPost, pod + "/binding", `{"apiVersion":"v1","kind":"ConfigMap","target":{"name":"edge-1"}}`},
		{"binding of another group", http.MethodPost, pod + "/binding", `{"apiVersion":"apps/v1","kind":"Binding","target":{"name":"edge-1"}}`},
		{"binding in another namespace", http.MethodPost, pod + "/binding", `{"metadata":{"namespace":"kube-system"},"target":{"name":"edge-1"}}`},
		{"eviction as a ConfigMap", http.MethodPost, pod + "/eviction", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"}}`},
		{"eviction as a Pod", http.MethodPost, pod + "/eviction", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"target"}}`},
		{"eviction in another namespace", http.MethodPost, pod + "/eviction", `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"target","namespace":"kube-system"}}`},
		{"delete with a Pod for options", http.MethodDelete, cm, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"target"}}`},
		{"access review as a Pod", http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", `{"apiVersion":"v1","kind":"Pod"}`},
		{"self review as a Pod", http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews", `{"apiVersion":"v1","kind":"Pod"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejected(t, c, hc, tc.method, tc.path, "application/json", strings.NewReader(tc.body), nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
		})
	}
	// The right kinds still work: v1 and v1beta1 evictions, a binding, a
	// delete with options.
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, pod + "/binding", `{"apiVersion":"v1","kind":"Binding","metadata":{"name":"target","namespace":"default"},"target":{"name":"edge-1"}}`},
		{http.MethodPost, pod + "/eviction", `{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"target"},"deleteOptions":{"dryRun":["All"]}}`},
		{http.MethodPost, pod + "/eviction", `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"target","namespace":"default"}}`},
		{http.MethodDelete, cm, `{"apiVersion":"v1","kind":"DeleteOptions","gracePeriodSeconds":0}`},
	} {
		if code, b := rawDo(t, c, hc, tc.method, tc.path, "application/json", strings.NewReader(tc.body), nil); code >= 300 {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, b)
		}
	}
}

// TestBadInputWatchTimeoutOverflow: a watch's timeoutSeconds past what a
// time.Duration holds (over 292 years) is a very long watch, not a
// timeout overflowed to a negative one that failed the initial list with
// 500.
func TestBadInputWatchTimeoutOverflow(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const cms = "/api/v1/namespaces/default/configmaps"
	if code, b := rawDo(t, c, hc, http.MethodPost, cms, "application/json", strings.NewReader(`{"metadata":{"name":"there"}}`), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	for _, secs := range []string{"9300000000", "9223372036854775807"} {
		t.Run(secs, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), guard)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+cms+"?watch=true&timeoutSeconds="+secs, nil)
			must(t, err)
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := hc.Do(req)
			must(t, err)
			defer resp.Body.Close()
			line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
			if resp.StatusCode != http.StatusOK || err != nil || !bytes.Contains(line, []byte(`"type":"ADDED"`)) {
				t.Errorf("HTTP %d, first line %q (%v)", resp.StatusCode, line, err)
			}
		})
	}
}
