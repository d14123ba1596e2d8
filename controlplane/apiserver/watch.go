package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

const (
	// defaultWatchTimeout ends watches that did not ask for a timeout;
	// clients re-watch from their last resourceVersion.
	defaultWatchTimeout = 30 * time.Minute
	// bookmarkInterval is how often a watch that allows bookmarks gets one
	// (Server.bookmarkEvery; tests shorten it), as kube-apiserver's about
	// once a minute.
	bookmarkInterval = time.Minute
)

// watcher streams one watch response.
type watcher struct {
	s   *Server
	w   http.ResponseWriter
	rc  *http.ResponseController
	r   *http.Request
	res *resource
	sel selectors
	// out is the negotiated output: the resource's kind (JSON), a Table
	// (JSON) or PartialObjectMetadata (JSON or protobuf).
	out     output
	columns bool // column definitions already sent (Table watches)
}

// watch serves ?watch=true: optionally the current objects first (as
// ADDED events, ending with a k8s.io/initial-events-end bookmark for
// sendInitialEvents=true with allowWatchBookmarks), then every change from
// etcd in revision order. Where it starts is kube-apiserver's watch
// cache's choice: the current objects for sendInitialEvents=true, and for
// a resourceVersion unset or "0" without sendInitialEvents (the legacy
// watch); the changes after the current revision for sendInitialEvents=false
// with resourceVersion unset or "0"; the changes after resourceVersion
// otherwise.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	q := r.URL.Query()
	if err := checkListOptions(q, true); err != nil {
		return err
	}
	sel, err := parseSelectors(r, info.res)
	if err != nil {
		return err
	}
	// Valid: checkListOptions.
	sendInitial, _ := strconv.ParseBool(q.Get("sendInitialEvents"))
	legacy := q.Get("sendInitialEvents") == ""
	timeout := defaultWatchTimeout
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("invalid timeoutSeconds %q", v)
		}
		if n > 0 {
			// Not past what a Duration holds (292 years): overflowed, the
			// timeout would be negative and the watch fail at once.
			timeout = time.Duration(min(n, int64(math.MaxInt64/time.Second))) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	// A number: checkListOptions.
	from, _ := strconv.ParseInt(q.Get("resourceVersion"), 10, 64)
	out := info.out
	if out.table() {
		out.protobuf = false // Tables stream as JSON
	}
	wt := &watcher{s: s, w: w, rc: http.NewResponseController(w), r: r, res: info.res, sel: sel, out: out}
	w.Header().Set("Content-Type", watchContentType(out))
	w.Header().Set("Cache-Control", "no-cache, private")

	var initial []storage.Object
	switch {
	case sendInitial || from == 0 && legacy:
		// A watch ignores continue (and limit), as kube-apiserver's.
		items, _, listRev, _, _, err := s.listPage(r.WithContext(ctx), info, sel, 0, "")
		if err != nil {
			return err
		}
		initial, from = items, listRev
	case from == 0:
		// sendInitialEvents=false: from now on, no initial events.
		if from, err = s.store.CurrentRev(ctx); err != nil {
			return storageError(err, info.res.gvr.GroupResource(), "")
		}
	default:
		if err := s.reached(ctx, from); err != nil {
			return err
		}
	}
	bookmarks := queryBool(q, "allowWatchBookmarks")
	w.WriteHeader(http.StatusOK)
	for _, so := range initial {
		if err := wt.send(storage.Added, so, nil); err != nil {
			return nil
		}
	}
	// kube-apiserver ends the initial events with a bookmark only for
	// clients that allow bookmarks (its validation does not require
	// allowWatchBookmarks with sendInitialEvents).
	if sendInitial && bookmarks {
		if err := wt.bookmark(from, true); err != nil {
			return nil
		}
	}
	if wt.rc.Flush() != nil {
		return nil
	}
	events, errc := s.watches.Watch(ctx, storage.Prefix(info.res.gvr.Resource, ""), storage.Prefix(info.res.gvr.Resource, info.namespace), from+1)
	tick := time.NewTicker(time.Duration(s.bookmarkEvery.Load()))
	defer tick.Stop()
	// As kube-apiserver's, a last bookmark 2 s before the timeout, so that
	// the client watches again from as recent a revision as it can.
	var preTimeout <-chan time.Time
	if d, ok := ctx.Deadline(); ok && bookmarks && time.Until(d) > 2*time.Second {
		t := time.NewTimer(time.Until(d) - 2*time.Second)
		defer t.Stop()
		preTimeout = t.C
	}
	// last is the revision up to which this watcher has been sent every
	// change it selects, what a bookmark says: the cache's Progress marks
	// advance it with the changes of other namespaces and resources too,
	// as kube-apiserver's bookmarks carry its watch cache's revision. A
	// client that watches again from it is served from the cache, even
	// when etcd has compacted that revision since.
	last := from
	unflushed := false
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if err := <-errc; errors.Is(err, storage.ErrCompacted) {
					wt.sendError(apierrors.NewResourceExpired("too old resource version: " + strconv.FormatInt(from, 10)))
				}
				return nil
			}
			if ev.Type == storage.Progress {
				last = max(last, ev.Object.Rev)
			} else if ev.Type == storage.Deleted && ev.Object.Value == nil {
				// A deletion at the revision etcd compacted at: etcd no
				// longer has the object's last value to tell it with, so
				// the client must list again, as from a compacted revision.
				wt.sendError(apierrors.NewResourceExpired("too old resource version: " + strconv.FormatInt(from, 10)))
				return nil
			} else {
				// Events come in revision order, but another of this
				// revision may follow: the mark after them says when
				// all of it was sent.
				last = max(last, ev.Object.Rev-1)
				if err := wt.send(ev.Type, ev.Object, ev.Prev); err != nil {
					return nil
				}
				unflushed = true
			}
			// One flush for the events that are already waiting: fewer
			// HTTP/2 frames and TLS records under a burst of changes.
			if unflushed && len(events) == 0 {
				if wt.rc.Flush() != nil {
					return nil
				}
				unflushed = false
			}
		case <-tick.C:
			if bookmarks {
				if wt.bookmark(last, false) != nil || wt.rc.Flush() != nil {
					return nil
				}
				unflushed = false
			}
		case <-preTimeout:
			if wt.bookmark(last, false) != nil || wt.rc.Flush() != nil {
				return nil
			}
			unflushed = false
		case <-ctx.Done():
			return nil
		}
	}
}

// send writes one event, translating it through the selectors: an object
// that starts matching is ADDED, one that stops matching is DELETED. As
// kube-apiserver's, such a DELETED carries the object as it was while it
// still matched, at the event's resourceVersion.
func (wt *watcher) send(typ storage.EventType, so storage.Object, prev []byte) error {
	var obj runtime.Object // decoded once, when needed
	decoded := func() (runtime.Object, error) {
		var err error
		if obj == nil {
			obj, err = wt.s.decode(wt.res, so)
		}
		return obj, err
	}
	if !wt.sel.empty() {
		if _, err := decoded(); err != nil {
			return err
		}
		now := wt.sel.matches(wt.res, obj)
		var old runtime.Object
		if typ == storage.Modified && prev != nil {
			if o, err := wt.s.decode(wt.res, storage.Object{Key: so.Key, Value: prev, Rev: so.Rev}); err == nil && wt.sel.matches(wt.res, o) {
				old = o
			}
		}
		switch {
		case typ == storage.Modified && now && old == nil:
			typ = storage.Added
		case typ == storage.Modified && !now && old != nil:
			typ, so, obj = storage.Deleted, storage.Object{Key: so.Key, Value: prev, Rev: so.Rev}, old
		case !now:
			return nil
		}
	}
	switch {
	case wt.out.meta():
		if obj != nil {
			return wt.writeObject(typ, partialOf(obj, wt.out.gv))
		}
		p, err := partialOfStored(so, wt.out.gv)
		if err != nil {
			return err
		}
		return wt.writeObject(typ, p)
	case wt.out.table():
		if _, err := decoded(); err != nil {
			return err
		}
		t, err := wt.s.table(wt.r, wt.res, []runtime.Object{obj})
		if err != nil {
			return err
		}
		if wt.columns {
			t.ColumnDefinitions = nil
		}
		wt.columns = true
		t.ResourceVersion = strconv.FormatInt(so.Rev, 10)
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return wt.write(typ, b)
	case wt.out.protobuf:
		b, err := wt.s.protoEvents.encode(wt.res, so, typ == storage.Deleted, func() ([]byte, error) {
			obj, err := decoded()
			if err != nil {
				return nil, err
			}
			b, _, err := wt.s.encodeOutput(wt.out, obj)
			return b, err
		})
		if err != nil {
			return err
		}
		return wt.write(typ, b)
	case wt.res.view != nil:
		// The stored object converted (views.go).
		if _, err := decoded(); err != nil {
			return err
		}
		b, err := encodeStored(obj)
		if err != nil {
			return err
		}
		return wt.write(typ, b)
	default:
		// The stored JSON is the object's: only its resourceVersion is added.
		return wt.write(typ, storage.InjectResourceVersion(so.Value, so.Rev))
	}
}

// protoMemo remembers the protobuf encoding of recent watch events by key
// and revision, so that each change is decoded and encoded once for all
// the watchers that ask for protobuf (client-go's informers: decoding
// protobuf costs them a fifth of decoding JSON).
type protoMemo struct {
	mu   sync.Mutex
	m    map[memoKey]*memoEntry
	ring []memoKey // insertion order, to forget the oldest
	next int
}

// memoKey names an encoding: the object at key as of rev, or (deleted)
// as it was just before rev, what a DELETED event carries, as an object of
// res (a view's objects are stored under the keys of another resource).
type memoKey struct {
	key     string
	rev     int64
	deleted bool
	res     *resource
}

type memoEntry struct {
	once sync.Once
	b    []byte
	err  error
}

// protoMemoSize bounds the events remembered (a pod's encoding is about
// 1.5 KB).
const protoMemoSize = 4096

func newProtoMemo() *protoMemo {
	return &protoMemo{m: make(map[memoKey]*memoEntry, protoMemoSize), ring: make([]memoKey, 0, protoMemoSize)}
}

// encode returns so's encoding as an object of res, computed by enc for
// the first watcher that asks; deleted says so is the value before so.Rev
// (a DELETED event's).
func (m *protoMemo) encode(res *resource, so storage.Object, deleted bool, enc func() ([]byte, error)) ([]byte, error) {
	k := memoKey{so.Key, so.Rev, deleted, res}
	m.mu.Lock()
	e := m.m[k]
	if e == nil {
		e = &memoEntry{}
		if len(m.ring) < cap(m.ring) {
			m.ring = append(m.ring, k)
		} else {
			delete(m.m, m.ring[m.next])
			m.ring[m.next] = k
			m.next = (m.next + 1) % len(m.ring)
		}
		m.m[k] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.b, e.err = enc() })
	return e.b, e.err
}

// bookmark sends a BOOKMARK event at rev: an empty object of the
// resource's kind (or a PartialObjectMetadata) with only its
// resourceVersion and, ending the initial events of a watch-list, the
// k8s.io/initial-events-end annotation.
func (wt *watcher) bookmark(rev int64, initialEnd bool) error {
	obj := wt.res.new()
	if wt.out.meta() {
		obj = &metav1.PartialObjectMetadata{}
		obj.GetObjectKind().SetGroupVersionKind(wt.out.gv.WithKind("PartialObjectMetadata"))
	}
	m := mustMeta(obj)
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return wt.writeObject("BOOKMARK", obj)
}

func (wt *watcher) sendError(err apierrors.APIStatus) {
	st := err.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	if wt.writeObject("ERROR", &st) == nil {
		wt.rc.Flush()
	}
}

// writeObject encodes obj as the watch's output (JSON or protobuf) and
// writes it as one event.
func (wt *watcher) writeObject(typ storage.EventType, obj runtime.Object) error {
	b, _, err := wt.s.encodeOutput(wt.out, obj)
	if err != nil {
		return err
	}
	return wt.write(typ, b)
}

// write sends one event whose object is already encoded: a JSON line, or
// a length-delimited protobuf WatchEvent. The caller flushes.
func (wt *watcher) write(typ storage.EventType, obj []byte) error {
	if wt.out.protobuf {
		frame, err := protobufWatchFrame(string(typ), obj)
		if err != nil {
			return err
		}
		_, err = wt.w.Write(frame)
		return err
	}
	buf := make([]byte, 0, len(obj)+32)
	buf = append(buf, `{"type":"`...)
	buf = append(buf, typ...)
	buf = append(buf, `","object":`...)
	buf = append(buf, obj...)
	buf = append(buf, "}\n"...)
	_, err := wt.w.Write(buf)
	return err
}
