package modules_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
)

// call runs the handler on one request and returns what it wrote, or the
// error it returned (then it must have written nothing).
func call(t *testing.T, h func(http.ResponseWriter, *http.Request) error, r *http.Request) (*httptest.ResponseRecorder, error) {
	t.Helper()
	w := httptest.NewRecorder()
	err := h(w, r)
	if err != nil && (w.Body.Len() > 0 || len(w.Header()) > 0) {
		t.Fatalf("%s %s: wrote %q and returned %v", r.Method, r.URL.Path, w.Body, err)
	}
	return w, err
}

func wantStatus(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want an API error %d", err, code)
	}
	st := se.Status()
	if int(st.Code) != code || !strings.Contains(st.Message, msg) {
		t.Fatalf("got %d %q, want %d mentioning %q", st.Code, st.Message, code, msg)
	}
}

func TestHandler(t *testing.T) {
	s, js := newStore(t, modules.Options{MaxModuleSize: 4096})
	h := modules.Handler(s)
	put := func(ref, ct string, body io.Reader) *http.Request {
		r := httptest.NewRequest(http.MethodPut, modules.CollectionPath+"/"+ref, body)
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		return r
	}

	// Failures first: nothing may be stored by them.
	_, err := call(t, h, put("Bad:v1", modules.MediaType, bytes.NewReader(wasmModule(8, 0))))
	wantStatus(t, err, 400, "invalid module reference")
	_, err = call(t, h, put("app:v1", modules.MediaType, strings.NewReader("#!/bin/sh\necho hi\n")))
	wantStatus(t, err, 400, "not a WebAssembly module")
	_, err = call(t, h, put("app:v1", "application/json", bytes.NewReader(wasmModule(8, 0))))
	wantStatus(t, err, 415, "application/wasm")
	r := put("app:v1", modules.MediaType, bytes.NewReader(wasmModule(8, 0)))
	r.ContentLength = 5000
	_, err = call(t, h, r)
	wantStatus(t, err, 413, "4KiB")
	r = put("app:v1", modules.MediaType, io.MultiReader(bytes.NewReader(wasmModule(8, 0)), zeros{}))
	r.ContentLength = -1
	_, err = call(t, h, r)
	wantStatus(t, err, 413, "4KiB")
	_, err = call(t, h, put("app@"+digestOf(wasmModule(8, 0)), "", bytes.NewReader(wasmModule(8, 0))))
	wantStatus(t, err, 400, "NAME:TAG")
	assertNothingStored(t, s, js)

	mod := wasmModule(4096, 4)
	w, err := call(t, h, put("acme/app:v1", "application/wasm; charset=binary", bytes.NewReader(mod)))
	if err != nil {
		t.Fatal(err)
	}
	var pr modules.PushResult
	if err := json.Unmarshal(w.Body.Bytes(), &pr); err != nil || w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("push: %d %s %v", w.Code, w.Body, err)
	}
	if pr != (modules.PushResult{Name: "acme/app", Tag: "v1", Digest: digestOf(mod), Size: 4096}) {
		t.Fatalf("push: %+v", pr)
	}
	// No Content-Type is fine too (curl -T).
	if _, err := call(t, h, put("acme/app:v2", "", bytes.NewReader(mod))); err != nil {
		t.Fatal(err)
	}

	w, err = call(t, h, httptest.NewRequest(http.MethodGet, modules.CollectionPath, nil))
	if err != nil {
		t.Fatal(err)
	}
	var list modules.ModuleList
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || list.Kind != "ModuleList" || len(list.Items) != 2 || list.Items[1].Tag != "v2" || list.Items[0].Digest != digestOf(mod) {
		t.Fatalf("list: %s %v", w.Body, err)
	}
	for _, ref := range []string{"acme/app:v1", "acme/app@" + digestOf(mod)} {
		w, err = call(t, h, httptest.NewRequest(http.MethodGet, modules.CollectionPath+"/"+ref, nil))
		var m modules.Module
		if err != nil || json.Unmarshal(w.Body.Bytes(), &m) != nil || m.Digest != digestOf(mod) || m.Size != 4096 {
			t.Fatalf("get %s: %s %v", ref, w.Body, err)
		}
	}
	_, err = call(t, h, httptest.NewRequest(http.MethodGet, modules.CollectionPath+"/acme/app:v3", nil))
	wantStatus(t, err, 404, "acme/app:v3")
	_, err = call(t, h, httptest.NewRequest(http.MethodDelete, modules.CollectionPath+"/acme/app:v1", nil))
	wantStatus(t, err, 405, "delete")
	_, err = call(t, h, httptest.NewRequest(http.MethodPost, modules.CollectionPath, nil))
	wantStatus(t, err, 405, "post")
	_, err = call(t, h, httptest.NewRequest(http.MethodGet, modules.CollectionPath+"x", nil))
	wantStatus(t, err, 404, "")
}
