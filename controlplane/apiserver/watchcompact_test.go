package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestWatchDeleteAtCompactionRevision: a watch that starts at the
// revision etcd compacted at, where an object was deleted, cannot tell
// the deletion (etcd no longer has the object's last value); it gets an
// ERROR 410, on which clients list again, rather than an event whose
// object is missing, which no client can decode.
func TestWatchDeleteAtCompactionRevision(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	_, err := cms.Create(ctx, cm("gone"), metav1.CreateOptions{})
	must(t, err)
	must(t, cms.Delete(ctx, "gone", metav1.DeleteOptions{}))
	del := etcdRevision(t, c)
	if _, err := c.etcd.Compact(ctx, del); err != nil {
		t.Fatal(err)
	}
	hc := rawClient(t, c, true)
	wctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	req, err := http.NewRequestWithContext(wctx, http.MethodGet, c.url+"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="+strconv.FormatInt(del-1, 10), nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	must(t, err)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("HTTP %d, first line %q (%v)", resp.StatusCode, line, err)
	}
	var ev struct {
		Type   string
		Object metav1.Status
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatalf("first event %q is not JSON: %v", line, err)
	}
	if ev.Type != "ERROR" || ev.Object.Code != http.StatusGone {
		t.Fatalf("first event %s, want ERROR 410", line)
	}
}
