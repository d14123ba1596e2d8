package apiserver

import (
	"encoding/binary"
	"net/http"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

func TestNegotiate(t *testing.T) {
	v1 := metav1.SchemeGroupVersion
	v1beta1 := v1
	v1beta1.Version = "v1beta1"
	const (
		metaClientGet  = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
		metaClientList = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
		kubectlGet     = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
	)
	for _, tc := range []struct {
		name, accept string
		want         output
		notAccept    bool
	}{
		{name: "empty", accept: "", want: output{}},
		{name: "json", accept: "application/json", want: output{}},
		{name: "client-go typed", accept: "application/vnd.kubernetes.protobuf, */*", want: output{protobuf: true}},
		{name: "unknown media type is refused, as kube-apiserver does", accept: "text/html", notAccept: true},
		{name: "unknown media type, then anything", accept: "text/html,*/*;q=0.8", want: output{}},
		{name: "yaml", accept: "application/yaml", want: output{yaml: true}},
		{name: "metadata client get", accept: metaClientGet, want: output{kind: outputMeta, gv: v1, protobuf: true}},
		{name: "metadata client list", accept: metaClientList, want: output{kind: outputMetaList, gv: v1, protobuf: true}},
		{name: "json metadata", accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", want: output{kind: outputMeta, gv: v1}},
		{name: "v1beta1 metadata", accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1", want: output{kind: outputMeta, gv: v1beta1}},
		{name: "wildcard metadata", accept: "*/*;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", want: output{kind: outputMeta, gv: v1}},
		{name: "kubectl table", accept: kubectlGet, want: output{kind: outputTable, gv: v1}},
		{name: "protobuf table is not served: next clause", accept: "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io", want: output{kind: outputTable, gv: v1}},
		{name: "q orders", accept: "application/json;q=0.5,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", want: output{kind: outputMeta, gv: v1}},
		{name: "q=0 is refused", accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1;q=0,application/json", want: output{}},
		{name: "unserved conversion falls back", accept: "application/json;as=Foo;g=meta.k8s.io;v=v1,application/json", want: output{}},
		{name: "unserved conversion only", accept: "application/json;as=Foo;g=meta.k8s.io;v=v1", notAccept: true},
		{name: "other group", accept: "application/json;as=PartialObjectMetadata;g=example.com;v=v1", notAccept: true},
		{name: "missing group", accept: "application/json;as=PartialObjectMetadata;v=v1", notAccept: true},
		{name: "other version", accept: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2", notAccept: true},
		{name: "yaml conversion", accept: "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1", notAccept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := negotiate(tc.accept)
			if tc.notAccept {
				if code := apiCode(err); code != http.StatusNotAcceptable {
					t.Fatalf("negotiate(%q) = %+v, %v; want 406", tc.accept, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("negotiate(%q) = %+v, %v; want %+v", tc.accept, got, err, tc.want)
			}
		})
	}
}

func TestNegotiateFor(t *testing.T) {
	const (
		meta     = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
		metaList = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
		unserved = "application/json;as=Foo;g=meta.k8s.io;v=v1"
	)
	for _, tc := range []struct {
		verb, subresource, accept string
		want                      outputKind
		notAccept                 bool
	}{
		{verb: "get", accept: meta, want: outputMeta},
		{verb: "get", subresource: "status", accept: meta, want: outputMeta},
		{verb: "watch", accept: meta, want: outputMeta},
		{verb: "patch", accept: meta, want: outputMeta},
		{verb: "list", accept: metaList, want: outputMetaList},
		{verb: "list", accept: meta, notAccept: true},
		{verb: "get", accept: metaList, notAccept: true},
		{verb: "watch", accept: metaList, notAccept: true},
		{verb: "create", accept: unserved, notAccept: true},
		// Deletes and other subresources answer their own kinds.
		{verb: "delete", accept: unserved, want: outputObject},
		{verb: "create", subresource: "eviction", accept: unserved, want: outputObject},
		{verb: "get", subresource: "scale", accept: meta, want: outputObject},
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", tc.accept)
		got, err := negotiateFor(r, &reqInfo{verb: tc.verb, subresource: tc.subresource})
		if tc.notAccept {
			if apiCode(err) != http.StatusNotAcceptable {
				t.Errorf("%s %s %q = %+v, %v; want 406", tc.verb, tc.subresource, tc.accept, got, err)
			}
			continue
		}
		if err != nil || got.kind != tc.want {
			t.Errorf("%s %s %q = %+v, %v; want kind %d", tc.verb, tc.subresource, tc.accept, got, err, tc.want)
		}
	}
}

func apiCode(err error) int32 {
	if se, ok := err.(apierrors.APIStatus); ok {
		return se.Status().Code
	}
	return 0
}

// TestProtobufWatchErrorFrame checks that an ERROR event of a protobuf
// metadata watch (compacted resourceVersion) decodes as client-go does it.
func TestProtobufWatchErrorFrame(t *testing.T) {
	s := &Server{protobuf: protobuf.NewSerializer(runtime.NewScheme(), runtime.NewScheme())}
	st := apierrors.NewResourceExpired("too old resource version: 1").Status()
	st.Kind, st.APIVersion = "Status", "v1"
	b, ct, err := s.encodeOutput(output{kind: outputMeta, protobuf: true}, &st)
	if err != nil || ct != protobufType {
		t.Fatalf("encode: %q %v", ct, err)
	}
	frame, err := protobufWatchFrame("ERROR", b)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
		t.Fatalf("frame length %d, body %d", n, len(frame)-4)
	}
	var ev metav1.WatchEvent
	if err := ev.Unmarshal(frame[4:]); err != nil || ev.Type != "ERROR" {
		t.Fatalf("event %q: %v", ev.Type, err)
	}
	dec := protobuf.NewSerializer(metainternalversionscheme.Scheme, metainternalversionscheme.Scheme)
	obj, _, err := dec.Decode(ev.Object.Raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := obj.(*metav1.Status); !ok || got.Code != http.StatusGone || got.Reason != metav1.StatusReasonExpired {
		t.Errorf("decoded %T %+v", obj, obj)
	}
}
