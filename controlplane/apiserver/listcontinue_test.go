package apiserver_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
)

// TestListContinueExpired: a continue token whose revision etcd compacted
// gets kube-apiserver's answer, 410 Expired carrying a token that goes on
// from the same key at the latest revision, and that token is served; a
// token whose start key leaves the listed prefix, or that has no revision
// or start, is refused with 400.
func TestListContinueExpired(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	for i := range 3 {
		_, err := cms.Create(ctx, cm(fmt.Sprintf("page-%d", i)), metav1.CreateOptions{})
		must(t, err)
	}
	first, err := cms.List(ctx, metav1.ListOptions{Limit: 1})
	must(t, err)
	if len(first.Items) != 1 || first.Continue == "" {
		t.Fatalf("first page: %d items, continue %q", len(first.Items), first.Continue)
	}
	_, err = cms.Create(ctx, cm("page-3"), metav1.CreateOptions{})
	must(t, err)
	_, err = c.etcd.Compact(ctx, etcdRevision(t, c))
	must(t, err)

	_, err = cms.List(ctx, metav1.ListOptions{Limit: 1, Continue: first.Continue})
	var se *apierrors.StatusError
	if !errors.As(err, &se) || !apierrors.IsResourceExpired(err) || se.ErrStatus.Code != http.StatusGone {
		t.Fatalf("continue at a compacted revision: %v, want 410 Expired", err)
	}
	next := se.ErrStatus.ListMeta.Continue
	if next == "" {
		t.Fatalf("410 without a continue token to go on with: %+v", se.ErrStatus)
	}
	var names []string
	for tok := next; tok != ""; {
		page, err := cms.List(ctx, metav1.ListOptions{Limit: 1, Continue: tok})
		must(t, err)
		for _, o := range page.Items {
			names = append(names, o.Name)
		}
		tok = page.Continue
	}
	if want := []string{"page-1", "page-2", "page-3"}; !slices.Equal(names, want) {
		t.Errorf("listed with the inconsistent token: %v, want %v", names, want)
	}

	hc := rawClient(t, c, true)
	token := func(js string) string { return base64.RawURLEncoding.EncodeToString([]byte(js)) }
	for _, tok := range []string{
		token(`{"v":"meta.k8s.io/v1","rv":5,"start":"../secrets/default/x"}`),
		token(`{"v":"meta.k8s.io/v1","rv":5,"start":"a/../../secrets"}`),
		token(`{"v":"meta.k8s.io/v1","rv":0,"start":"page-1"}`),
		token(`{"v":"meta.k8s.io/v1","rv":5,"start":""}`),
		token(`{"v":"meta.k8s.io/v2","rv":5,"start":"page-1"}`),
		"not-base64!",
	} {
		rejected(t, c, hc, http.MethodGet, "/api/v1/namespaces/default/configmaps?limit=1&continue="+tok, "", nil, nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	}
}

// TestWatchIgnoresContinue: a watch ignores continue, as kube-apiserver's
// does: a legacy watch from resourceVersion 0 with a continue token
// starts with every object, not those after the token, and one with a
// malformed token is served.
func TestWatchIgnoresContinue(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	for i := range 2 {
		_, err := cms.Create(ctx, cm(fmt.Sprintf("w-%d", i)), metav1.CreateOptions{})
		must(t, err)
	}
	first, err := cms.List(ctx, metav1.ListOptions{Limit: 1})
	must(t, err)
	for _, tok := range []string{first.Continue, "not-a-token"} {
		w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: "0", Continue: tok})
		if err != nil {
			t.Fatalf("watch with continue %q: %v", tok, err)
		}
		var names []string
		for range 2 {
			ev := nextEvent(t, w)
			if ev.Type != watch.Added {
				t.Fatalf("watch with continue %q: %s %+v, want ADDED", tok, ev.Type, ev.Object)
			}
			names = append(names, ev.Object.(*corev1.ConfigMap).Name)
		}
		w.Stop()
		if want := []string{"w-0", "w-1"}; !slices.Equal(names, want) {
			t.Errorf("watch with continue %q starts with %v, want %v", tok, names, want)
		}
	}
}

// TestListRemainingItemCount: a page of a list without selectors tells
// how many objects follow it, as kube-apiserver's does, in JSON, as
// metadata and as a Table; with a selector it does not (the count would
// be a guess).
func TestListRemainingItemCount(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	for i := range 4 {
		_, err := cms.Create(ctx, cm(fmt.Sprintf("n-%d", i)), metav1.CreateOptions{})
		must(t, err)
	}
	l, err := cms.List(ctx, metav1.ListOptions{Limit: 1})
	must(t, err)
	if l.RemainingItemCount == nil || *l.RemainingItemCount != 3 {
		t.Errorf("first page of 1 of 4: remainingItemCount %v, want 3", l.RemainingItemCount)
	}
	l, err = cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: l.Continue})
	must(t, err)
	if l.RemainingItemCount == nil || *l.RemainingItemCount != 1 {
		t.Errorf("second page of 2: remainingItemCount %v, want 1", l.RemainingItemCount)
	}
	l, err = cms.List(ctx, metav1.ListOptions{Limit: 5, Continue: l.Continue})
	must(t, err)
	if l.RemainingItemCount != nil || l.Continue != "" {
		t.Errorf("last page: remainingItemCount %v continue %q, want neither", l.RemainingItemCount, l.Continue)
	}
	l, err = cms.List(ctx, metav1.ListOptions{Limit: 1, LabelSelector: "x!=y"})
	must(t, err)
	if l.RemainingItemCount != nil || l.Continue == "" {
		t.Errorf("page with a selector: remainingItemCount %v continue %q, want none and a token", l.RemainingItemCount, l.Continue)
	}

	mc, err := metadata.NewForConfig(c.rest)
	must(t, err)
	ml, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace(testNS).List(ctx, metav1.ListOptions{Limit: 3})
	must(t, err)
	if ml.RemainingItemCount == nil || *ml.RemainingItemCount != 1 {
		t.Errorf("metadata page of 3 of 4: remainingItemCount %v, want 1", ml.RemainingItemCount)
	}

	hc := rawClient(t, c, true)
	code, b := rawDo(t, c, hc, http.MethodGet, "/api/v1/namespaces/default/configmaps?limit=2", "", nil,
		http.Header{"Accept": {"application/json;as=Table;v=v1;g=meta.k8s.io"}})
	var tbl metav1.Table
	if code != http.StatusOK || json.Unmarshal(b, &tbl) != nil {
		t.Fatalf("Table list: %d %.300s", code, b)
	}
	if tbl.RemainingItemCount == nil || *tbl.RemainingItemCount != 2 {
		t.Errorf("Table page of 2 of 4: remainingItemCount %v, want 2", tbl.RemainingItemCount)
	}
}
