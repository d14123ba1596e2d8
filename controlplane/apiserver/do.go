package apiserver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Do runs one API request in process as if user had sent it over HTTPS
// and been authenticated: the same routing, authorization, admission,
// validation and storage. path may carry a query ("/api/v1/pods?fieldSelector=…").
// It answers the status code, the response's Content-Type and body
// (a Kubernetes Status on errors). Watches are refused with 400: they need
// a stream. Bodies over MaxBodyBytes get 413. Responses are JSON (or what
// the path serves, e.g. text for /healthz); Accept is application/json.
//
// nodelink serves the node agents' API requests over NATS with it; their
// User-Agent is "wasmfleet-agent/node-link".
func (s *Server) Do(ctx context.Context, user User, method, path, contentType string, body []byte) (code int, respContentType string, resp []byte) {
	rec := httptest.NewRecorder()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil || !strings.HasPrefix(path, "/") {
		s.writeError(rec, fallbackRequest(ctx), apierrors.NewBadRequest("invalid request path"))
		return rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
	}
	req.RequestURI = path
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	// The node agents are its callers: their writes to objects whose
	// fields are tracked are recorded under manager "wasmfleet-agent", as
	// the kubelet's under "kubelet".
	req.Header.Set("User-Agent", "wasmfleet-agent/node-link")
	req.ContentLength = int64(len(body))
	if queryBool(req.URL.Query(), "watch") {
		s.writeError(rec, req, apierrors.NewBadRequest("watch is not served over this transport"))
		return rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
	}
	info := s.serveAs(rec, req, user)
	if s.metrics != nil {
		s.metrics.observe(info, req, rec.Code, time.Since(start))
	}
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
}

func fallbackRequest(ctx context.Context) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	return r
}
