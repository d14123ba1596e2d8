// Package sockjson is what the agent and the runtimes' helper processes
// (runtime/imagehelper, runtime/wasmhost) speak: HTTP/1.1 with JSON bodies
// over a unix socket. Errors travel as {"error": text, "kind": word}, the
// kind naming the sentinel error the answer stands for, so that the
// agent's errors.Is works across the process boundary.
package sockjson

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxBody bounds a request or error body.
const maxBody = 1 << 20

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// Error is an error the server answered with. Kinds maps its Kind to the
// sentinel it wraps.
type Error struct {
	Msg, Kind string
	Kinds     map[string]error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Kinds[e.Kind] }

// NewClient returns a client whose every request goes to socket.
func NewClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
	}}
}

// Call sends in (nil: a GET) to path and decodes the answer into out (nil:
// none expected). The server's error answers come back as *Error with
// kinds; errors of the transport, and answers that are not the protocol's,
// wrap unavailable.
func Call(ctx context.Context, hc *http.Client, path string, in, out any, kinds map[string]error, unavailable error) error {
	method, body := http.MethodGet, io.Reader(nil)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		method, body = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://helper"+path, body)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", unavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ResponseError(resp, kinds, unavailable)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%w: read %s answer: %w", unavailable, path, err)
	}
	return nil
}

// ResponseError reads the error answer resp.
func ResponseError(resp *http.Response, kinds map[string]error, unavailable error) error {
	var eb errorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&eb); err != nil || eb.Error == "" {
		return fmt.Errorf("%w: %s %s: %s", unavailable, resp.Request.Method, resp.Request.URL.Path, resp.Status)
	}
	return &Error{Msg: eb.Error, Kind: eb.Kind, Kinds: kinds}
}

// ReadJSON decodes r's body into v, or answers 400 and returns false.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(v); err != nil {
		WriteJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("bad %s request: %v", r.URL.Path, err)})
		return false
	}
	return true
}

// WriteError answers msg as an error of kind ("" for none).
func WriteError(w http.ResponseWriter, msg, kind string) {
	WriteJSON(w, http.StatusUnprocessableEntity, errorBody{Error: msg, Kind: kind})
}

// WriteJSON answers v with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
