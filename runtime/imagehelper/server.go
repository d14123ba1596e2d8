// Package imagehelper runs an image runtime (runtime/containerd) in a
// helper process of the node agent, so that the lean agent binary does not
// link the containerd client: its gRPC and protobuf packages cost about
// 10 MB of RSS from their init alone, even on a node that runs no OCI
// container.
//
// The agent side is Helper, an image runtime that starts the helper process
// when it is first needed (a Pull or Start) and again after it died. The
// helper side is ServeHelper, the body of cmd/wasmfleet-containerd; Serve is
// its protocol alone. Both speak HTTP/1.1 with JSON bodies over a unix socket
// that the agent creates (mode 0600) and hands to the helper as file
// descriptor 3:
//
//	GET  /info   → runtime.Info
//	POST /pull   {"ref"}                       → 204, or an error
//	POST /start  startRequest                  → 200 and a stream of frames
//	                                             (NDJSON), or an error
//	POST /stop   {"handle","grace"}            → 204, or an error
//
// A start's response names the container's handle in the header
// Wasmfleet-Handle, then carries its output as frames {"stdout": bytes} and
// {"stderr": bytes} in the order it was written, and last {"exit":
// ExitStatus}. The stream is the container's life: a client that goes away
// gets its container killed, and a stream that ends without an exit frame
// means the helper is gone. Errors are runtime/internal/sockjson's, of kind
// "imagePull" for those that wrap runtime.ErrImagePull.
//
// The package uses only the standard library and runtime: importing it adds
// no containerd, gRPC or protobuf code to a binary.
package imagehelper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/internal/sockjson"
)

// ImageRuntime is what the helper serves and Helper is: a runtime.Runtime
// that pulls OCI images itself (nodeagent.ImageRuntime).
type ImageRuntime interface {
	runtime.Runtime
	// Pull makes sure the image is on the node; errors wrap
	// runtime.ErrImagePull.
	Pull(ctx context.Context, ref string) error
}

// startRequest is a runtime.ContainerSpec without its writers (the output
// comes back as frames) and without Module (image runtimes ignore it).
type startRequest struct {
	ID          string           `json:"id"`
	Image       string           `json:"image"`
	Command     []string         `json:"command,omitempty"`
	Args        []string         `json:"args,omitempty"`
	Env         []runtime.EnvVar `json:"env,omitempty"`
	Mounts      []runtime.Mount  `json:"mounts,omitempty"`
	MemoryLimit int64            `json:"memoryLimit,omitempty"`
}

type pullRequest struct {
	Ref string `json:"ref"`
}

type stopRequest struct {
	Handle string        `json:"handle"`
	Grace  time.Duration `json:"grace"`
}

// frame is one line of a start's response stream: exactly one field is set.
type frame struct {
	Stdout []byte              `json:"stdout,omitempty"`
	Stderr []byte              `json:"stderr,omitempty"`
	Exit   *runtime.ExitStatus `json:"exit,omitempty"`
}

// kindImagePull is the error kind of errors that wrap
// runtime.ErrImagePull.
const kindImagePull = "imagePull"

// handleHeader names the started container in a start's response.
const handleHeader = "Wasmfleet-Handle"

// shutdownTimeout bounds how long Serve waits, once ctx ended, for the
// runtime to stop its containers and for their exits to reach the client.
const shutdownTimeout = time.Minute

// Serve answers the protocol for rt on ln until ctx ends, then closes rt
// (killing its containers; their exit frames still reach the client) and
// the listener, and returns. It returns early with an error when ln fails.
func Serve(ctx context.Context, ln net.Listener, rt ImageRuntime) error {
	s := &server{rt: rt, live: map[string]runtime.Container{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", s.info)
	mux.HandleFunc("POST /pull", s.pull)
	mux.HandleFunc("POST /start", s.start)
	mux.HandleFunc("POST /stop", s.stop)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serve image runtime: %w", err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if cerr := rt.Close(cctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	// Every container has exited: the start handlers write their exit
	// frames and return, and Shutdown waits for them.
	if serr := srv.Shutdown(cctx); serr != nil {
		err = errors.Join(err, fmt.Errorf("shut down image runtime server: %w", serr))
	}
	if ctx.Err() != nil {
		<-served // http.ErrServerClosed
	}
	return err
}

type server struct {
	rt      ImageRuntime
	handles atomic.Uint64

	mu   sync.Mutex
	live map[string]runtime.Container // by handle
}

func (s *server) info(w http.ResponseWriter, _ *http.Request) {
	sockjson.WriteJSON(w, http.StatusOK, s.rt.Info())
}

func (s *server) pull(w http.ResponseWriter, r *http.Request) {
	var req pullRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	if err := s.rt.Pull(r.Context(), req.Ref); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) start(w http.ResponseWriter, r *http.Request) {
	var req startRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	out := &frameWriter{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
	spec := runtime.ContainerSpec{
		ID: req.ID, Image: req.Image, Command: req.Command, Args: req.Args, Env: req.Env,
		Mounts: req.Mounts, MemoryLimit: req.MemoryLimit,
		Stdout: streamWriter{out, false}, Stderr: streamWriter{out, true},
	}
	// The request's context ends the start when the client gives up on it.
	c, err := s.rt.Start(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	handle := strconv.FormatUint(s.handles.Add(1), 10)
	s.mu.Lock()
	s.live[handle] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.live, handle)
		s.mu.Unlock()
	}()
	out.start(handle)
	select {
	case <-c.Done():
	case <-r.Context().Done():
		// The client went away: nobody would see the output or the exit.
		_ = c.Stop(0)
		<-c.Done()
	}
	st, _ := c.Exit()
	out.exit(st)
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	var req stopRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	s.mu.Lock()
	c := s.live[req.Handle]
	s.mu.Unlock()
	if c == nil { // exited: its exit frame is on its way
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := c.Stop(req.Grace); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// frameWriter writes a start's response: the header once the container
// started, then one frame per write, each flushed at once (the agent's log
// shows output as it comes). Writes before start wait for it; writes after
// the exit frame fail, since the handler has returned.
type frameWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder

	mu      sync.Mutex
	started bool
	ended   bool
	early   []frame // output written while Start had not returned yet
}

func (f *frameWriter) start(handle string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w.Header().Set(handleHeader, handle)
	f.w.Header().Set("Content-Type", "application/x-ndjson")
	f.w.WriteHeader(http.StatusOK)
	f.started = true
	for _, fr := range f.early {
		if f.send(fr) != nil {
			break
		}
	}
	f.early = nil
	_ = f.rc.Flush()
}

func (f *frameWriter) write(fr frame) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.ended:
		return errors.New("container output after its exit")
	case !f.started:
		f.early = append(f.early, fr)
		return nil
	}
	if err := f.send(fr); err != nil {
		return err
	}
	return f.rc.Flush()
}

func (f *frameWriter) exit(st runtime.ExitStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.send(frame{Exit: &st})
	f.ended = true
}

func (f *frameWriter) send(fr frame) error { return f.enc.Encode(fr) }

// streamWriter is a container's stdout or stderr.
type streamWriter struct {
	f      *frameWriter
	stderr bool
}

func (s streamWriter) Write(p []byte) (int, error) {
	// The runtime may reuse p once Write returns; the frame is encoded
	// later only when the start is still pending.
	b := append([]byte(nil), p...)
	fr := frame{Stdout: b}
	if s.stderr {
		fr = frame{Stderr: b}
	}
	if err := s.f.write(fr); err != nil {
		return 0, err
	}
	return len(p), nil
}

func writeError(w http.ResponseWriter, err error) {
	kind := ""
	if errors.Is(err, runtime.ErrImagePull) {
		kind = kindImagePull
	}
	sockjson.WriteError(w, err.Error(), kind)
}
