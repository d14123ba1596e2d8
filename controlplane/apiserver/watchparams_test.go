package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

// TestWatchQueryBooleans: watch and allowWatchBookmarks are read as
// kube-apiserver reads boolean parameters: any value but "0" or "false"
// (in any case), even none (?watch), is true. The in-process transport
// refuses those watches as it refuses watch=true, rather than serving a
// stream it cannot deliver.
func TestWatchQueryBooleans(t *testing.T) {
	c := startAPI(t)
	apiserver.SetBookmarkInterval(c.api, 100*time.Millisecond)
	ctx := t.Context()
	_, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, cm("there"), metav1.CreateOptions{})
	must(t, err)
	hc := rawClient(t, c, true)
	const cms = "/api/v1/namespaces/default/configmaps"
	// firstLines reads n lines of a response.
	firstLines := func(query string, n int) []string {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, guard)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, c.url+cms+"?"+query, nil)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET ?%s: HTTP %d", query, resp.StatusCode)
		}
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for len(lines) < n && sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return lines
	}
	for _, q := range []string{"watch", "watch=True", "watch=yes", "watch=1"} {
		if l := firstLines(q+"&timeoutSeconds=5", 1); len(l) != 1 || !strings.HasPrefix(l[0], `{"type":"ADDED"`) {
			t.Errorf("GET ?%s: %q, want a watch", q, l)
		}
	}
	for _, q := range []string{"watch=false", "watch=FALSE", "watch=0"} {
		if l := firstLines(q, 1); len(l) != 1 || !strings.HasPrefix(l[0], `{"kind":"ConfigMapList"`) {
			t.Errorf("GET ?%s: %.100q, want a list", q, l)
		}
	}
	if l := firstLines("watch=true&timeoutSeconds=20&allowWatchBookmarks=1", 2); len(l) != 2 || !strings.HasPrefix(l[1], `{"type":"BOOKMARK"`) {
		t.Errorf("allowWatchBookmarks=1: %q, want ADDED then BOOKMARK", l)
	}
	for _, q := range []string{"watch", "watch=True"} {
		if code, _, body := c.api.Do(ctx, apiserver.User{Name: "admin", Groups: []string{apiserver.Admin}}, http.MethodGet, cms+"?"+q, "", nil); code != http.StatusBadRequest {
			t.Errorf("Do GET ?%s: %d %.200s, want 400", q, code, body)
		}
	}
}

// TestBookmarkBeforeTimeout: a watch that allows bookmarks gets one just
// before its timeout, as kube-apiserver sends it, carrying the revision
// of changes elsewhere, so that the client watches again from there
// rather than from its last event, however long ago the last periodic
// bookmark was.
func TestBookmarkBeforeTimeout(t *testing.T) {
	c := startAPI(t)
	apiserver.SetBookmarkInterval(c.api, time.Hour)
	ctx := t.Context()
	start := strconv.FormatInt(etcdRevision(t, c), 10)
	w, err := c.client.CoreV1().ConfigMaps("kube-system").Watch(ctx, metav1.ListOptions{ResourceVersion: start, AllowWatchBookmarks: true, TimeoutSeconds: ptr.To[int64](4)})
	must(t, err)
	defer w.Stop()
	other, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, cm("elsewhere"), metav1.CreateOptions{})
	must(t, err)
	var bookmark int64
	for ev := range w.ResultChan() {
		if ev.Type != watch.Bookmark {
			t.Fatalf("%s event on a quiet namespace: %+v", ev.Type, ev.Object)
		}
		bookmark = rvOf(t, ev)
	}
	if bookmark < mustRV(t, other.ResourceVersion) {
		t.Errorf("last bookmark before the timeout at %d, want at least %s (the other namespace's write)", bookmark, other.ResourceVersion)
	}
}

// TestLegacyWatchPaths: the deprecated /watch/ paths that kube-apiserver
// still serves (and older clients use) watch the collection, a name in
// them selecting metadata.name; only GET is served there (405 for the
// rest, as kube-apiserver's router).
func TestLegacyWatchPaths(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	for _, name := range []string{"a", "b"} {
		_, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, cm(name), metav1.CreateOptions{})
		must(t, err)
	}
	hc := rawClient(t, c, true)
	names := func(body []byte) []string {
		var out []string
		for line := range strings.Lines(string(body)) {
			var ev struct {
				Type   string
				Object metav1.PartialObjectMetadata
			}
			must(t, json.Unmarshal([]byte(line), &ev))
			out = append(out, ev.Type+" "+ev.Object.Name)
		}
		slices.Sort(out)
		return out
	}
	for path, want := range map[string][]string{
		"/api/v1/watch/namespaces/" + testNS + "/configmaps?timeoutSeconds=1":                                   {"ADDED a", "ADDED b"},
		"/api/v1/watch/namespaces/" + testNS + "/configmaps/b?timeoutSeconds=1":                                 {"ADDED b"},
		"/api/v1/watch/namespaces/" + testNS + "/configmaps/b?timeoutSeconds=1&fieldSelector=metadata.name%3Db": {"ADDED b"},
		"/api/v1/watch/namespaces/" + testNS + "?timeoutSeconds=1":                                              {"ADDED " + testNS},
	} {
		code, body := rawDo(t, c, hc, http.MethodGet, path, "", nil, nil)
		if got := names(body); code != http.StatusOK || !slices.Equal(got, want) {
			t.Errorf("GET %s: %d %q, want %q", path, code, got, want)
		}
	}
	if code, body := rawDo(t, c, hc, http.MethodGet, "/apis/apps/v1/watch/deployments?timeoutSeconds=1", "", nil, nil); code != http.StatusOK || len(body) != 0 {
		t.Errorf("GET /apis/apps/v1/watch/deployments: %d %q, want 200 and no events", code, body)
	}
	rejected(t, c, hc, http.MethodGet, "/api/v1/watch/namespaces/"+testNS+"/configmaps/b?fieldSelector=metadata.name%3Da", "", nil, nil,
		http.StatusBadRequest, metav1.StatusReasonBadRequest)
	rejected(t, c, hc, http.MethodPost, "/api/v1/watch/namespaces/"+testNS+"/configmaps", "application/json", strings.NewReader(`{}`), nil,
		http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed)
	rejected(t, c, hc, http.MethodGet, "/api/v1/watch/namespaces/"+testNS+"/pods/p/status", "", nil, nil,
		http.StatusNotFound, metav1.StatusReasonNotFound)
}
