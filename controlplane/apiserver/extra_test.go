package apiserver_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestExtraHandlers: Config.Extra handlers are reached only by
// authenticated admins, see bodies beyond MaxBodyBytes, and have their
// errors answered as Status.
func TestExtraHandlers(t *testing.T) {
	_, etcd := testenv.Etcd(t)
	api, err := apiserver.New(apiserver.Config{
		Store: storage.New(etcd),
		Authenticate: func(tok string) (apiserver.User, bool) {
			switch tok {
			case "admin":
				return apiserver.User{Name: "admin", Groups: []string{apiserver.Admin}}, true
			case "user":
				return apiserver.User{Name: "someone", Groups: []string{"system:authenticated"}}, true
			}
			return apiserver.User{}, false
		},
		Extra: map[string]func(http.ResponseWriter, *http.Request) error{
			"/apis/x.wasmfleet.io/": func(w http.ResponseWriter, r *http.Request) error {
				switch r.URL.Path {
				case "/apis/x.wasmfleet.io/bad":
					return apierrors.NewBadRequest("bad thing")
				case "/apis/x.wasmfleet.io/broken":
					return errors.New("broken")
				}
				n, err := io.Copy(io.Discard, r.Body)
				if err != nil {
					return err
				}
				w.Write([]byte(strconv.FormatInt(n, 10)))
				return nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	do := func(token, path string, body []byte) (int, string, metav1.Status) {
		r := httptest.NewRequest(http.MethodPut, path, bytes.NewReader(body))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		var st metav1.Status
		json.Unmarshal(w.Body.Bytes(), &st)
		return w.Code, w.Body.String(), st
	}
	big := make([]byte, apiserver.MaxBodyBytes+1)
	if code, body, _ := do("admin", "/apis/x.wasmfleet.io/ok", big); code != 200 || body != strconv.Itoa(len(big)) {
		t.Errorf("admin: %d %s", code, body)
	}
	if code, _, st := do("", "/apis/x.wasmfleet.io/ok", nil); code != 401 || st.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("anonymous: %d %+v", code, st)
	}
	if code, _, st := do("nope", "/apis/x.wasmfleet.io/ok", nil); code != 401 || st.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("bad token: %d %+v", code, st)
	}
	if code, _, st := do("user", "/apis/x.wasmfleet.io/ok", nil); code != 403 || st.Reason != metav1.StatusReasonForbidden {
		t.Errorf("non-admin: %d %+v", code, st)
	}
	if code, _, st := do("admin", "/apis/x.wasmfleet.io/bad", nil); code != 400 || st.Kind != "Status" || st.Message != "bad thing" {
		t.Errorf("API error: %d %+v", code, st)
	}
	if code, _, st := do("admin", "/apis/x.wasmfleet.io/broken", nil); code != 500 || st.Reason != metav1.StatusReasonInternalError {
		t.Errorf("other error: %d %+v", code, st)
	}
	if code, _, _ := do("admin", "/apis/y.wasmfleet.io/v1/things", nil); code != 404 {
		t.Errorf("outside the prefix: %d", code)
	}
}
