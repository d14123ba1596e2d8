package apiserver

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// This file negotiates what a response carries from the Accept header, as
// kube-apiserver does: the resource's own kind, or a conversion asked for
// with media type parameters "as=<Kind>;g=meta.k8s.io;v=<version>":
//
//   - as=Table (kubectl get): see tables; always JSON;
//   - as=PartialObjectMetadata (the metadata client's GET and WATCH, and
//     its PATCH answer): kind PartialObjectMetadata, apiVersion
//     meta.k8s.io/v1 (or v1beta1), only the object's metadata;
//   - as=PartialObjectMetadataList (the metadata client's LIST): the same
//     per item, plus the list metadata (resourceVersion, continue).
//
// Metadata is served as JSON or protobuf (application/vnd.kubernetes.protobuf),
// whichever clause of Accept comes first; protobuf watches are
// length-delimited metav1.WatchEvent messages, Content-Type
// "application/vnd.kubernetes.protobuf;stream=watch", as Kubernetes frames
// them. A request whose Accept asks only for conversions the server does
// not serve (another as=, group or version), or for the list kind on a
// single object or the reverse, gets 406 NotAcceptable.

// outputKind is the kind of object a response carries.
type outputKind int

const (
	outputObject   outputKind = iota // the resource's own kind
	outputTable                      // meta.k8s.io Table
	outputMeta                       // meta.k8s.io PartialObjectMetadata
	outputMetaList                   // meta.k8s.io PartialObjectMetadataList
)

// output is what a request negotiated for its response.
type output struct {
	kind outputKind
	// gv is the meta.k8s.io version of a conversion.
	gv schema.GroupVersion
	// protobuf: encode metadata conversions as Kubernetes protobuf.
	protobuf bool
	// yaml: the client asked for YAML (see yamlWriter).
	yaml bool
}

func (o output) table() bool { return o.kind == outputTable }
func (o output) meta() bool  { return o.kind == outputMeta || o.kind == outputMetaList }

// acceptClause is one media range of an Accept header.
type acceptClause struct {
	mediaType string
	params    map[string]string
	q         float64
}

// parseAccept splits an Accept header into its media ranges, most
// preferred first (by q, then in the order given). Unparsable ranges and
// q=0 are dropped.
func parseAccept(h string) []acceptClause {
	var out []acceptClause
	for c := range strings.SplitSeq(h, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		mt, params, err := mime.ParseMediaType(c)
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil || q <= 0 {
				continue
			}
		}
		out = append(out, acceptClause{mediaType: mt, params: params, q: q})
	}
	slices.SortStableFunc(out, func(a, b acceptClause) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	return out
}

// negotiate picks the response's output from an Accept header: the first
// media range the server can serve. A range without "as=" is the
// resource's own kind: JSON, YAML, or protobuf where a handler supports it
// (JSON elsewhere). A header naming nothing the server serves is answered
// 406 NotAcceptable, as kube-apiserver does.
func negotiate(accept string) (output, error) {
	clauses := parseAccept(accept)
	for _, c := range clauses {
		as, ok := c.params["as"]
		if !ok {
			switch c.mediaType {
			case "application/json", "application/*", "*/*", protobufType, "application/yaml":
				return output{kind: outputObject, protobuf: c.mediaType == protobufType, yaml: c.mediaType == "application/yaml"}, nil
			}
			continue
		}
		gv := schema.GroupVersion{Group: c.params["g"], Version: c.params["v"]}
		if gv.Group != metav1.GroupName || (gv.Version != "v1" && gv.Version != "v1beta1") {
			continue
		}
		json := c.mediaType == "application/json" || c.mediaType == "application/*" || c.mediaType == "*/*"
		proto := c.mediaType == protobufType
		switch {
		case as == "Table" && json:
			return output{kind: outputTable, gv: gv}, nil
		case as == "PartialObjectMetadata" && (json || proto):
			return output{kind: outputMeta, gv: gv, protobuf: proto}, nil
		case as == "PartialObjectMetadataList" && (json || proto):
			return output{kind: outputMetaList, gv: gv, protobuf: proto}, nil
		}
	}
	if len(clauses) > 0 {
		return output{}, notAcceptable("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/json;as=Table;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
	}
	return output{kind: outputObject}, nil
}

// negotiateFor negotiates the output of a request and checks that it fits
// the verb: PartialObjectMetadataList for lists only, PartialObjectMetadata
// for single objects and watch events. Subresources other than status and
// finalize, and deletes, always answer with their own kinds.
func negotiateFor(r *http.Request, info *reqInfo) (output, error) {
	switch info.subresource {
	case "", "status", "finalize":
	default:
		return output{}, nil
	}
	switch info.verb {
	case "delete", "deletecollection":
		return output{}, nil
	}
	out, err := negotiate(r.Header.Get("Accept"))
	if err != nil {
		return output{}, err
	}
	switch {
	case out.kind == outputMeta && info.verb == "list":
		return output{}, notAcceptable("you requested PartialObjectMetadata, but the requested object is a list")
	case out.kind == outputMetaList && info.verb != "list":
		return output{}, notAcceptable("you requested PartialObjectMetadataList, but the requested object is not a list")
	}
	return out, nil
}

func notAcceptable(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotAcceptable,
		Reason:  metav1.StatusReasonNotAcceptable,
		Message: msg,
	}}
}

// yamlWriter answers in YAML what a handler writes in JSON, for clients
// that asked for application/yaml (curl users; kubectl asks for JSON).
type yamlWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (y *yamlWriter) WriteHeader(code int)        { y.code = code }
func (y *yamlWriter) Write(b []byte) (int, error) { return y.body.Write(b) }

// finish writes the response, if the handler wrote one.
func (y *yamlWriter) finish() {
	if y.code == 0 && y.body.Len() == 0 {
		return // the handler failed: its error is answered as JSON
	}
	out := y.body.Bytes()
	h := y.ResponseWriter.Header()
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == "application/json" {
		if b, err := yaml.JSONToYAML(out); err == nil {
			out = b
			h.Set("Content-Type", "application/yaml")
			h.Del("Content-Length")
		}
	}
	y.ResponseWriter.WriteHeader(cmp.Or(y.code, http.StatusOK))
	y.ResponseWriter.Write(out)
}

// partialOf is the metadata of a decoded object as a PartialObjectMetadata
// of version gv.
func partialOf(obj runtime.Object, gv schema.GroupVersion) *metav1.PartialObjectMetadata {
	p := meta.AsPartialObjectMetadata(mustMeta(obj))
	p.SetGroupVersionKind(gv.WithKind("PartialObjectMetadata"))
	return p
}

// partialOfStored decodes only the metadata of a stored object (the rest
// of the JSON is scanned, not built) with its resourceVersion.
func partialOfStored(so storage.Object, gv schema.GroupVersion) (*metav1.PartialObjectMetadata, error) {
	var v struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(so.Value, &v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", so.Key, err)
	}
	p := &metav1.PartialObjectMetadata{ObjectMeta: v.Metadata}
	p.ResourceVersion = strconv.FormatInt(so.Rev, 10)
	p.SetGroupVersionKind(gv.WithKind("PartialObjectMetadata"))
	return p, nil
}

// partialList builds the PartialObjectMetadataList of a list page: from
// the decoded objects when the list decoded them (selectors), else from
// the stored values.
func partialList(items []storage.Object, objs []runtime.Object, gv schema.GroupVersion, rv, cont string) (*metav1.PartialObjectMetadataList, error) {
	l := &metav1.PartialObjectMetadataList{
		ListMeta: metav1.ListMeta{ResourceVersion: rv, Continue: cont},
		Items:    make([]metav1.PartialObjectMetadata, 0, len(items)),
	}
	l.SetGroupVersionKind(gv.WithKind("PartialObjectMetadataList"))
	if objs != nil {
		for _, o := range objs {
			l.Items = append(l.Items, *partialOf(o, gv))
		}
		return l, nil
	}
	for _, so := range items {
		p, err := partialOfStored(so, gv)
		if err != nil {
			return nil, err
		}
		l.Items = append(l.Items, *p)
	}
	return l, nil
}

// encodeOutput encodes a metadata conversion (or a Status) as protobuf or
// JSON and returns the body and its Content-Type.
func (s *Server) encodeOutput(out output, obj runtime.Object) ([]byte, string, error) {
	if out.protobuf {
		var b bytes.Buffer
		if err := s.protobuf.Encode(obj, &b); err != nil {
			return nil, "", fmt.Errorf("encode %s as protobuf: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
		}
		return b.Bytes(), protobufType, nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, "", err
	}
	return b, "application/json", nil
}

// writeOutput answers obj encoded as out asks.
func (s *Server) writeOutput(w http.ResponseWriter, code int, out output, obj runtime.Object) error {
	b, ct, err := s.encodeOutput(out, obj)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
	return nil
}

// watchContentType is the Content-Type of a watch stream in out.
func watchContentType(out output) string {
	if out.protobuf {
		return protobufType + ";stream=watch"
	}
	return "application/json"
}

// protobufWatchFrame frames one protobuf watch event as Kubernetes does: a
// metav1.WatchEvent message (the object protobuf-encoded with its envelope
// inside), preceded by its length as a 4-byte big-endian integer.
func protobufWatchFrame(typ string, obj []byte) ([]byte, error) {
	ev := metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: obj}}
	n := ev.Size()
	buf := make([]byte, 4+n)
	binary.BigEndian.PutUint32(buf, uint32(n))
	if _, err := ev.MarshalToSizedBuffer(buf[4:]); err != nil {
		return nil, fmt.Errorf("encode watch event: %w", err)
	}
	return buf, nil
}
