// Package imagehelper runs an image runtime (runtime/containerd) in a
// helper process of the node agent, so that the lean agent binary does not
// link the containerd client: its gRPC and protobuf packages cost about
// 10 MB of RSS from their init alone, even on a node that runs no OCI
// container.
//
// The agent side is Helper, a runtime.Detached image runtime that starts
// the helper process when it is first needed and again after it died. The
// helper side is ServeHelper, the body of cmd/wasmfleet-containerd; Serve is
// its protocol alone. Both speak HTTP/1.1 with JSON bodies over a unix socket
// that the agent creates (mode 0600) and hands to the helper as file
// descriptor 3:
//
//	GET  /info                 → runtime.Info
//	POST /pull   {"ref"}       → 204, or an error
//	POST /start  startRequest  → 204 once the container started, or an error
//	POST /attach {"id"}        → {"found": bool}: the runtime holds the container
//	POST /wait   {"id"}        → runtime.ExitStatus once the container ended
//	                             (kind "notFound": the runtime holds none)
//	POST /stop   {"id","grace"} → 204, or an error if it still runs
//	POST /remove {"id"}        → 204: forgotten, killed first if it ran
//	GET  /ids                  → ["id", …]: the containers held
//	POST /close                → 204 once every container is killed and
//	                             removed; the helper then exits
//
// Containers are detached: each writes its log file itself (through
// containerd's shim, see runtime/containerd), so they outlive the helper
// and the agent, and a new helper finds them again. Errors are
// runtime/internal/sockjson's, of kind "imagePull" for those that wrap
// runtime.ErrImagePull.
//
// The package uses only the standard library and runtime: importing it adds
// no containerd, gRPC or protobuf code to a binary.
package imagehelper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/internal/sockjson"
)

// ImageRuntime is what the helper serves and Helper is: a runtime.Detached
// that pulls OCI images itself (nodeagent.ImageRuntime).
type ImageRuntime interface {
	runtime.Detached
	// Pull makes sure the image is on the node; errors wrap
	// runtime.ErrImagePull.
	Pull(ctx context.Context, ref string) error
}

// startRequest is a runtime.ContainerSpec without its writers (the
// container writes Log) and without Module (image runtimes ignore it).
type startRequest struct {
	ID          string           `json:"id"`
	Image       string           `json:"image"`
	Command     []string         `json:"command,omitempty"`
	Args        []string         `json:"args,omitempty"`
	Env         []runtime.EnvVar `json:"env,omitempty"`
	Hostname    string           `json:"hostname,omitempty"`
	Mounts      []runtime.Mount  `json:"mounts,omitempty"`
	MemoryLimit int64            `json:"memoryLimit,omitempty"`
	HostNetwork bool             `json:"hostNetwork,omitempty"`
	Network     string           `json:"network,omitempty"`
	Log         runtime.LogFile  `json:"log"`
}

type pullRequest struct {
	Ref string `json:"ref"`
}

type idRequest struct {
	ID string `json:"id"`
}

type attachResponse struct {
	Found bool `json:"found"`
}

type execRequest struct {
	ID   string   `json:"id"`
	Argv []string `json:"argv"`
}

type netNSResponse struct {
	Path string `json:"path"`
}

type stopRequest struct {
	ID    string        `json:"id"`
	Grace time.Duration `json:"grace"`
}

// Error kinds: kindImagePull for errors that wrap runtime.ErrImagePull,
// kindNotFound for a container the runtime does not hold.
const (
	kindImagePull = "imagePull"
	kindNotFound  = "notFound"
)

// closeTimeout bounds how long /close waits for the runtime to kill and
// remove its containers.
const closeTimeout = time.Minute

// Serve answers the protocol for rt on ln until ctx ends or a client asks
// for /close, then detaches rt (its containers run on; after /close there
// are none) and closes the listener, and returns. It returns early with an
// error when ln fails.
func Serve(ctx context.Context, ln net.Listener, rt ImageRuntime) error {
	closed := make(chan struct{})
	s := &server{rt: rt, closed: closed}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", s.info)
	mux.HandleFunc("POST /pull", s.pull)
	mux.HandleFunc("POST /start", s.start)
	mux.HandleFunc("POST /attach", s.attach)
	mux.HandleFunc("POST /wait", s.wait)
	mux.HandleFunc("POST /stop", s.stop)
	mux.HandleFunc("POST /exec", s.exec)
	mux.HandleFunc("POST /netns", s.netns)
	mux.HandleFunc("POST /remove", s.remove)
	mux.HandleFunc("GET /ids", s.ids)
	mux.HandleFunc("POST /close", s.close)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case <-closed:
		// Every container has ended: the waits answer their exits first.
		sctx, cancel := context.WithTimeout(ctx, closeTimeout)
		_ = srv.Shutdown(sctx)
		cancel()
	case err = <-served:
		err = fmt.Errorf("serve image runtime: %w", err)
	}
	// Closing the connections ends the waits: the containers run on.
	if cerr := srv.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close image runtime server: %w", cerr)
	}
	if derr := rt.Detach(); derr != nil {
		err = errors.Join(err, derr)
	}
	if err == nil {
		<-served // http.ErrServerClosed
	}
	return err
}

type server struct {
	rt        ImageRuntime
	closed    chan struct{} // closed by /close
	closeOnce sync.Once
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
	if req.Log.Path == "" {
		sockjson.WriteError(w, fmt.Sprintf("start %s: no log file: the helper's containers write their own", req.ID), "")
		return
	}
	// The request's context ends the start when the client gives up on it.
	_, err := s.rt.Start(r.Context(), runtime.ContainerSpec{
		ID: req.ID, Image: req.Image, Command: req.Command, Args: req.Args, Env: req.Env, Hostname: req.Hostname,
		Mounts: req.Mounts, MemoryLimit: req.MemoryLimit, HostNetwork: req.HostNetwork, NetworkGroup: req.Network, Log: req.Log,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// container reads an idRequest and returns the container it names, or
// answers the error and returns nil.
func (s *server) container(w http.ResponseWriter, r *http.Request) runtime.Container {
	var req idRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return nil
	}
	return s.held(w, r, req.ID)
}

// held returns the container id, or answers the error and returns nil.
func (s *server) held(w http.ResponseWriter, r *http.Request, id string) runtime.Container {
	c, ok, err := s.rt.Attach(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, err)
	case !ok:
		sockjson.WriteError(w, fmt.Sprintf("container %s: not held by the runtime", id), kindNotFound)
	}
	return c
}

func (s *server) attach(w http.ResponseWriter, r *http.Request) {
	var req idRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	_, ok, err := s.rt.Attach(r.Context(), req.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	sockjson.WriteJSON(w, http.StatusOK, attachResponse{Found: ok})
}

func (s *server) wait(w http.ResponseWriter, r *http.Request) {
	c := s.container(w, r)
	if c == nil {
		return
	}
	select {
	case <-c.Done():
	case <-r.Context().Done():
		return // the client went away, or the helper detaches
	}
	st, _ := c.Exit()
	sockjson.WriteJSON(w, http.StatusOK, st)
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	var req stopRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	c, ok, err := s.rt.Attach(r.Context(), req.ID)
	if err == nil && ok {
		err = c.Stop(req.Grace)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent) // stopped, or gone already
}

// exec runs a process in a container until it ends, or until the client
// goes away (its deadline), which kills it.
func (s *server) exec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	c := s.held(w, r, req.ID)
	if c == nil {
		return
	}
	ex, ok := c.(runtime.Execer)
	if !ok {
		writeError(w, fmt.Errorf("container %s: the runtime cannot run processes in it", req.ID))
		return
	}
	res, err := ex.Exec(r.Context(), req.Argv)
	if err != nil {
		writeError(w, err)
		return
	}
	sockjson.WriteJSON(w, http.StatusOK, res)
}

func (s *server) netns(w http.ResponseWriter, r *http.Request) {
	c := s.container(w, r)
	if c == nil {
		return
	}
	n, ok := c.(runtime.Networked)
	if !ok {
		writeError(w, fmt.Errorf("container %s: no network namespace of its own", c.ID()))
		return
	}
	path, err := n.NetNS(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	sockjson.WriteJSON(w, http.StatusOK, netNSResponse{Path: path})
}

func (s *server) remove(w http.ResponseWriter, r *http.Request) {
	var req idRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	if err := s.rt.Remove(r.Context(), req.ID); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) ids(w http.ResponseWriter, r *http.Request) {
	ids, err := s.rt.IDs(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	sockjson.WriteJSON(w, http.StatusOK, ids)
}

func (s *server) close(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), closeTimeout)
	defer cancel()
	// The runtime closes what it holds: every container of the node, once
	// those of earlier helpers are attached too.
	ids, err := s.rt.IDs(ctx)
	for _, id := range ids {
		if err == nil {
			_, _, err = s.rt.Attach(ctx, id)
		}
	}
	if err == nil {
		err = s.rt.Close(ctx)
	}
	if err != nil {
		writeError(w, err)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	// The answer goes out before Serve closes the connections.
	_ = http.NewResponseController(w).Flush()
	s.closeOnce.Do(func() { close(s.closed) })
}

func writeError(w http.ResponseWriter, err error) {
	kind := ""
	if errors.Is(err, runtime.ErrImagePull) {
		kind = kindImagePull
	}
	sockjson.WriteError(w, err.Error(), kind)
}
