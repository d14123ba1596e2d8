package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/tables"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// selectors are a request's label and field selectors.
type selectors struct {
	label labels.Selector
	field fields.Selector
}

func (s selectors) empty() bool { return s.label.Empty() && s.field.Empty() }

func (s selectors) matches(res *resource, obj runtime.Object) bool {
	if s.empty() {
		return true
	}
	m := mustMeta(obj)
	if !s.label.Matches(labels.Set(m.GetLabels())) {
		return false
	}
	if s.field.Empty() {
		return true
	}
	return s.field.Matches(objectFields(res, obj))
}

func objectFields(res *resource, obj runtime.Object) fields.Set {
	m := mustMeta(obj)
	f := fields.Set{"metadata.name": m.GetName()}
	if res.namespaced {
		f["metadata.namespace"] = m.GetNamespace()
	}
	if res.fields != nil {
		for k, v := range res.fields(obj) {
			f[k] = v
		}
	}
	return f
}

// parseSelectors reads labelSelector and fieldSelector, refusing fields the
// resource cannot select on.
func parseSelectors(r *http.Request, res *resource) (selectors, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return selectors{}, badRequest("invalid labelSelector: %v", err)
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return selectors{}, badRequest("invalid fieldSelector: %v", err)
	}
	if !fs.Empty() {
		known := objectFields(res, res.new())
		for _, req := range fs.Requirements() {
			if _, ok := known[req.Field]; !ok {
				return selectors{}, badRequest("field label not supported: %s", req.Field)
			}
		}
	}
	return selectors{label: ls, field: fs}, nil
}

// continueToken is the opaque list continuation, as Kubernetes encodes it.
type continueToken struct {
	APIVersion string `json:"v"`
	RV         int64  `json:"rv"`
	Start      string `json:"start"`
}

func encodeContinue(rv int64, nextKey string) string {
	b, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", RV: rv, Start: nextKey})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeContinue reads a continue token as kube-apiserver does: its start
// key must be a clean path below prefix, and its RV is the revision to
// read at, or, when negative (the token of an expired continue's answer),
// the latest.
func decodeContinue(s, prefix string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.APIVersion != "meta.k8s.io/v1" || t.RV == 0 || t.Start == "" || path.Clean("/"+t.Start) != "/"+t.Start {
		return t, badRequest("invalid continue token")
	}
	t.Start = prefix + t.Start
	return t, nil
}

// continueExpired answers a continue whose revision etcd compacted as
// kube-apiserver does: 410 Expired, with a token that continues from the
// same key at the latest revision, for clients that accept an
// inconsistent list.
func continueExpired(start, prefix string) error {
	err := apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. " +
		"You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. " +
		"Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
	err.ErrStatus.ListMeta.Continue = encodeContinue(-1, strings.TrimPrefix(start, prefix))
	return err
}

// listPage reads objects matching sel from prefix, up to limit (0: all),
// starting at the continue token cont (""; the start). It returns the
// page, the revision read, the next continue token and, as kube-apiserver
// tells it for lists without selectors, how many objects remain after the
// page (nil: not told).
func (s *Server) listPage(r *http.Request, info *reqInfo, sel selectors, limit int64, cont string) ([]storage.Object, []runtime.Object, int64, string, *int64, error) {
	prefix := storage.Prefix(info.res.gvr.Resource, info.namespace)
	opts := storage.ListOptions{}
	q := r.URL.Query()
	var start string // where a continue starts
	if cont != "" {
		if rv := q.Get("resourceVersion"); rv != "" && rv != "0" {
			return nil, nil, 0, "", nil, badRequest("specifying resource version is not allowed when using continue")
		}
		t, err := decodeContinue(cont, prefix)
		if err != nil {
			return nil, nil, 0, "", nil, err
		}
		opts.Rev, opts.From, start = max(t.RV, 0), t.Start, t.Start
	}
	// At least minRev, or exactly opts.Rev.
	minRev, err := parseRV(q.Get("resourceVersion"))
	if err != nil {
		return nil, nil, 0, "", nil, err
	}
	// Exact when asked and, as in Kubernetes, for a first page (a limit)
	// at a resourceVersion other than 0 without resourceVersionMatch; not
	// older than it otherwise.
	if match := q.Get("resourceVersionMatch"); opts.Rev == 0 && (match == "Exact" || match == "" && limit > 0 && minRev > 0) {
		opts.Rev, minRev = minRev, 0
	}
	var (
		items []storage.Object
		objs  []runtime.Object
	)
	for {
		opts.Limit = 0
		if limit > 0 {
			opts.Limit = limit - int64(len(items))
			if !sel.empty() && opts.Limit < 100 {
				opts.Limit = 100 // filtered pages read ahead
			}
		}
		page, err := s.store.List(r.Context(), prefix, opts)
		if errors.Is(err, storage.ErrFutureRev) {
			if err = s.reached(r.Context(), opts.Rev); err == nil {
				continue // etcd got there meanwhile
			}
		}
		if errors.Is(err, storage.ErrCompacted) && start != "" {
			return nil, nil, 0, "", nil, continueExpired(start, prefix)
		}
		if err != nil {
			return nil, nil, 0, "", nil, storageError(err, info.res.gvr.GroupResource(), "")
		}
		if minRev > page.Rev {
			return nil, nil, 0, "", nil, tooLargeRV(minRev, page.Rev)
		}
		opts.Rev = page.Rev
		for i, so := range page.Items {
			if !sel.empty() {
				obj, err := s.decode(info.res, so)
				if err != nil {
					return nil, nil, 0, "", nil, err
				}
				if !sel.matches(info.res, obj) {
					continue
				}
				objs = append(objs, obj)
			}
			items = append(items, so)
			if limit > 0 && int64(len(items)) == limit {
				more := page.More || i < len(page.Items)-1
				if !more {
					return items, objs, page.Rev, "", nil, nil
				}
				var remaining *int64
				if sel.empty() {
					n := page.Count - int64(i+1)
					remaining = &n
				}
				return items, objs, page.Rev, encodeContinue(page.Rev, strings.TrimPrefix(so.Key, prefix)+"\x00"), remaining, nil
			}
		}
		if !page.More || len(page.Items) == 0 {
			return items, objs, page.Rev, "", nil, nil
		}
		opts.From = page.Items[len(page.Items)-1].Key + "\x00"
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	if err := checkListOptions(r.URL.Query(), false); err != nil {
		return err
	}
	sel, err := parseSelectors(r, info.res)
	if err != nil {
		return err
	}
	var limit int64
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil {
			return badRequest("invalid limit %q", v)
		}
		// As kube-apiserver: a negative limit is none.
		limit = max(limit, 0)
	}
	items, objs, rev, cont, remaining, err := s.listPage(r, info, sel, limit, r.URL.Query().Get("continue"))
	if err != nil {
		return err
	}
	rv := strconv.FormatInt(rev, 10)
	if info.out.meta() {
		l, err := partialList(items, objs, info.out.gv, rv, cont)
		if err != nil {
			return err
		}
		l.RemainingItemCount = remaining
		return s.writeOutput(w, http.StatusOK, info.out, l)
	}
	if info.out.table() {
		if objs == nil {
			for _, so := range items {
				obj, err := s.decode(info.res, so)
				if err != nil {
					return err
				}
				objs = append(objs, obj)
			}
		}
		return s.writeTable(w, r, info.res, objs, metav1.ListMeta{ResourceVersion: rv, Continue: cont, RemainingItemCount: remaining})
	}
	b, err := s.listJSON(info.res, items, rv, cont, remaining)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// listJSON is the JSON list of res of the stored items, stitched without
// decoding them (stored values are already JSON; those of a view are
// converted); remaining may be nil.
func (s *Server) listJSON(res *resource, items []storage.Object, rv, cont string, remaining *int64) ([]byte, error) {
	var b bytes.Buffer
	size := 200
	for _, so := range items {
		size += len(so.Value) + 32
	}
	b.Grow(size)
	gv := res.gvr.GroupVersion().String()
	b.WriteString(`{"kind":"` + res.kind + `List","apiVersion":"` + gv + `","metadata":{"resourceVersion":"` + rv + `"`)
	if cont != "" {
		b.WriteString(`,"continue":"` + cont + `"`)
	}
	if remaining != nil {
		b.WriteString(`,"remainingItemCount":` + strconv.FormatInt(*remaining, 10))
	}
	b.WriteString(`},"items":[`)
	// As kube-apiserver's, the items carry no kind and apiVersion: the
	// list's say what they are.
	typeMeta := []byte(`{"kind":"` + res.kind + `","apiVersion":"` + gv + `",`)
	for i, so := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		v, err := s.wire(res, so.Value, so.Rev)
		if err != nil {
			return nil, err
		}
		if rest, ok := bytes.CutPrefix(v, typeMeta); ok {
			b.WriteByte('{')
			v = rest
		}
		b.Write(v)
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}

func (s *Server) table(r *http.Request, res *resource, objs []runtime.Object) (*metav1.Table, error) {
	include := r.URL.Query().Get("includeObject")
	if include == "" {
		include = "Metadata"
	}
	t, err := tables.Convert(res.gvk(), objs, include, s.now())
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return t, nil
}

func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, res *resource, objs []runtime.Object, lm metav1.ListMeta) error {
	t, err := s.table(r, res, objs)
	if err != nil {
		return err
	}
	t.ListMeta = lm
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// parseRV parses a read's resourceVersion: 0 when it is "" or "0" (any).
func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("invalid resourceVersion %q", rv)
	}
	return n, nil
}

// reached returns nil when etcd's revision is rev or later, else
// tooLargeRV.
func (s *Server) reached(ctx context.Context, rev int64) error {
	cur, err := s.store.CurrentRev(ctx)
	if err == nil && rev > cur {
		err = tooLargeRV(rev, cur)
	}
	return err
}

// checkListOptions refuses the resourceVersion, resourceVersionMatch,
// sendInitialEvents and continue of a list or watch as kube-apiserver does
// (apimachinery's ValidateListOptions, the WatchList feature on; a
// resourceVersion must be a number).
func checkListOptions(q url.Values, watch bool) error {
	opts := metainternalversion.ListOptions{
		ResourceVersion:      q.Get("resourceVersion"),
		ResourceVersionMatch: metav1.ResourceVersionMatch(q.Get("resourceVersionMatch")),
		Continue:             q.Get("continue"),
		Watch:                watch,
	}
	if v := q.Get("sendInitialEvents"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("invalid sendInitialEvents %q", v)
		}
		opts.SendInitialEvents = &b
	}
	if errs := metainternalversionvalidation.ValidateListOptions(&opts, true); len(errs) > 0 {
		return apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("ListOptions").GroupKind(), "", errs)
	}
	_, err := parseRV(opts.ResourceVersion)
	return err
}
