package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// TestHealthEndpoints: /livez, /healthz and /readyz as kube-apiserver
// answers them, without credentials: "ok", a line per check with
// ?verbose or when one fails (its reason withheld), ?exclude, and a check
// on its own under /readyz/NAME.
func TestHealthEndpoints(t *testing.T) {
	c := startAPI(t)
	natsDown := errors.New("nats: not connected")
	api, err := apiserver.New(apiserver.Config{
		Store:        storage.New(c.etcd),
		Authenticate: func(string) (apiserver.User, bool) { return apiserver.User{}, false },
		Metrics:      prometheus.NewRegistry(),
		ReadyChecks: []apiserver.Check{
			{Name: "etcd", Check: func(context.Context) error { return nil }},
			{Name: "nats", Check: func(context.Context) error { return natsDown }},
		},
	})
	must(t, err)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/livez", 200, "ok"},
		{"/healthz", 200, "ok"},
		{"/livez?verbose", 200, "[+]ping ok\nlivez check passed\n"},
		{"/livez/ping", 200, "ok"},
		{"/readyz", 503, "[+]ping ok\n[+]etcd ok\n[-]nats failed: reason withheld\nreadyz check failed\n"},
		{"/readyz?exclude=nats", 200, "ok"},
		{"/readyz?exclude=nats&verbose", 200, "[+]ping ok\n[+]etcd ok\n[+]nats excluded: ok\nreadyz check passed\n"},
		{"/readyz/etcd", 200, "ok"},
		{"/readyz/nats", 503, "internal server error: nats check failed\n"},
		{"/readyz/nosuch", 404, "404 page not found\n"},
		{"/livez/etcd", 404, "404 page not found\n"},
		{"/readyz/etcd/x", 401, ""},
	} {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}

// TestVersion: /version names the API level and, as kube-apiserver's, the
// Go version and platform the server was built with.
func TestVersion(t *testing.T) {
	c := startAPI(t)
	v, err := c.client.Discovery().ServerVersion()
	must(t, err)
	if v.GitVersion != "v1.37.2-wasmfleet" || v.Platform != runtime.GOOS+"/"+runtime.GOARCH || v.GoVersion != runtime.Version() || v.Compiler != runtime.Compiler {
		t.Errorf("version %+v", v)
	}
}
