package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/randfill"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// randomObjects fills objects with random values, and the fields that
// hold JSON with random JSON.
func randomObjects(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.2).NumElements(0, 3).Funcs(
		// Embedded objects (a Binding's or an Event's) hold JSON.
		func(e *runtime.RawExtension, c randfill.Continue) {
			e.Raw = []byte(fmt.Sprintf(`{"kind":"Pod", "n":%d,"s":%q}`, c.Int63(), c.String(8)))
		},
		// managedFields hold JSON too.
		func(f *metav1.FieldsV1, c randfill.Continue) {
			f.SetRawString(fmt.Sprintf(`{"f:metadata":{"f:labels":{"f:%s":{}}}}`, c.String(8)))
		})
}

// TestStoredJSONMatchesEncodingJSON: for random objects of every served
// resource, encodeStored (goccy/go-json) writes encoding/json's bytes, and
// decodeStored (goccy/go-json) reads them into the object encoding/json
// gives.
func TestStoredJSONMatchesEncodingJSON(t *testing.T) {
	reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{reg: reg}
	f := randomObjects(1)
	for _, res := range reg.list {
		checked := 0
		for range 200 {
			obj := res.new()
			f.Fill(obj)
			b, err := json.Marshal(obj)
			if err != nil {
				continue // random values some types cannot encode (raw JSON fields)
			}
			if enc, err := encodeStored(obj); err != nil || !bytes.Equal(enc, b) {
				t.Fatalf("%s: goccy/go-json and encoding/json encode differently (err %v):\ngot  %s\nwant %s", res.gvr, err, enc, b)
			}
			want := res.new()
			if err := json.Unmarshal(b, want); err != nil {
				continue // values encoding/json writes but cannot read back
			}
			got, err := s.decodeStored(res, storage.Object{Key: "k", Value: b, Rev: 7})
			if err != nil {
				t.Fatalf("%s: decodeStored: %v\n%s", res.gvr, err, b)
			}
			want.(interface{ SetResourceVersion(string) }).SetResourceVersion("7")
			want.GetObjectKind().SetGroupVersionKind(res.gvk())
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: goccy/go-json and encoding/json decode differently:\n%s\ngot  %#v\nwant %#v", res.gvr, b, got, want)
			}
			checked++
		}
		if checked < 100 {
			t.Errorf("%s: only %d of 200 random objects could be encoded", res.gvr, checked)
		}
	}
}

// TestDecodeJSONMatchesKubernetes: for random objects of every served
// resource, and for their JSON spoiled in the ways the fast path refuses,
// decodeJSON gives the object, strict errors and error of
// sigs.k8s.io/json's strict decoding (Kubernetes' own).
func TestDecodeJSONMatchesKubernetes(t *testing.T) {
	reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	f := randomObjects(2)
	spoil := []func([]byte) []byte{
		func(b []byte) []byte { return b },
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"metadata":{`), []byte(`"metadata":{"Name":"x",`), 1)
		},
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"metadata":{`), []byte(`"metadata":{"bogus":1,`), 1)
		},
		func(b []byte) []byte { return bytes.Replace(b, []byte(`{`), []byte(`{"kind":"A","kind":"B",`), 1) },
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"metadata":{`), []byte(`"metadata":{"name":"\ud800",`), 1)
		},
		func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"metadata":{`), []byte(`"metadata":{"generation":1e3,`), 1)
		},
	}
	// Every served resource, and the other bodies the API decodes.
	type kind struct {
		name string
		new  func() any
	}
	var kinds []kind
	for _, res := range reg.list {
		kinds = append(kinds, kind{res.gvr.String(), func() any { return res.new() }})
	}
	for _, v := range []any{metav1.DeleteOptions{}, corev1.Binding{}, policyv1.Eviction{}, autoscalingv1.Scale{}} {
		t := reflect.TypeOf(v)
		kinds = append(kinds, kind{t.String(), func() any { return reflect.New(t).Interface() }})
	}
	for _, k := range kinds {
		if !v2Decodable(reflect.TypeOf(k.new()).Elem()) {
			t.Errorf("%s: not decoded by the fast path", k.name)
		}
		fast := 0
		for range 60 {
			obj := k.new()
			f.Fill(obj)
			b, err := json.Marshal(obj)
			if err != nil {
				continue
			}
			for i, sp := range spoil {
				in := sp(b)
				want := k.new()
				wantStrict, wantErr := sigsjson.UnmarshalStrict(in, want, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
				got := k.new()
				gotStrict, gotErr := decodeJSON(in, got)
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || fmt.Sprint(gotStrict) != fmt.Sprint(wantStrict) || !reflect.DeepEqual(got, want) {
					t.Fatalf("%s, spoiled %d: decodeJSON differs from sigs.k8s.io/json:\n%s\ngot  %v %v %#v\nwant %v %v %#v", k.name, i, in, gotErr, gotStrict, got, wantErr, wantStrict, want)
				}
				if i == 0 && jsonv2.Unmarshal(in, k.new(), jsonv2.RejectUnknownMembers(true)) == nil {
					fast++
				}
			}
		}
		if fast < 30 {
			t.Errorf("%s: the fast path decoded only %d of 60 random objects", k.name, fast)
		}
	}
}
