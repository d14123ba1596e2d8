// Package wasmhost runs the node's wasm guests in a guest-host process of
// their own, which outlives the agent's process: restarting or upgrading
// the agent leaves the pods running, as containers outlive a kubelet
// restart, and the restarted agent attaches to them again
// (runtime.Detached). The guests run in process in the host, through
// runtime/wasm, one host for all of the node's wasm pods.
//
// The agent side is Host, a runtime.Detached that starts the host when it
// first needs it (the agent's executable with the hidden guest-host
// subcommand, see Main) and reconnects to the one running when the agent
// comes back. The two speak HTTP/1.1 with JSON bodies over a unix socket in
// the host's directory (mode 0600):
//
//	GET  /info               → runtime.Info
//	GET  /events             → a stream of exits (NDJSON), one {"id","exit"}
//	                           per container that ended, from the moment
//	                           the response's header arrived; the header
//	                           Wasmfleet-Guest-Host-Protocol names this
//	                           protocol's version, 1
//	GET  /containers[?id=ID] → [{"id","exit"}]: every container held, or
//	                           the one with that id
//	POST /prepare  Module    → 204, or an error
//	POST /start    startRequest → 204, or an error
//	POST /stop     {"id","grace"} → 204, or an error if it still runs
//	POST /remove   {"id"}    → 204: forgotten, stopped first if it ran
//	POST /shutdown           → 204, then the host stops its guests and exits
//
// Errors are runtime/internal/sockjson's, of kind "invalidModule" (the text
// is the reason alone, runtime.InvalidModuleError's Err) or
// "digestMismatch".
//
// The host writes each guest's output to the log file its start names
// (nodeagent/podlogs format), keeps a guest's exit until the agent removes
// it, and exits by itself once it has had no guest for a while
// (Config.IdleExit; see busyChanged), or when its socket is gone (its data
// directory was removed, say): nothing could reach it any more. A start
// that comes as it exits is refused with the kind "closing": the agent then
// starts a new host.
package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/internal/sockjson"
)

// startRequest is a runtime.ContainerSpec without its writers.
type startRequest struct {
	ID          string           `json:"id"`
	Module      runtime.Module   `json:"module"`
	Args        []string         `json:"args,omitempty"`
	Env         []runtime.EnvVar `json:"env,omitempty"`
	Mounts      []runtime.Mount  `json:"mounts,omitempty"`
	MemoryLimit int64            `json:"memoryLimit,omitempty"`
	Log         runtime.LogFile  `json:"log"`
}

type idRequest struct {
	ID    string        `json:"id"`
	Grace time.Duration `json:"grace,omitempty"`
}

// exitEvent is one line of /events and one entry of /containers (Exit nil:
// it runs).
type exitEvent struct {
	ID   string              `json:"id"`
	Exit *runtime.ExitStatus `json:"exit,omitempty"`
}

// The host names the version of this protocol in the header of /events: a
// host left running by an agent of another version may speak another.
const (
	protocolHeader  = "Wasmfleet-Guest-Host-Protocol"
	protocolVersion = "1"
)

const (
	kindInvalidModule  = "invalidModule"
	kindDigestMismatch = "digestMismatch"
	// kindClosing: the host refused a start because it is exiting.
	kindClosing = "closing"
)

// server serves the protocol for one runtime.
type server struct {
	rt       runtime.Runtime
	shutdown func() // asks Serve's caller to finish

	mu     sync.Mutex
	guests map[string]runtime.Container // the containers held, by id
	// starting holds the ids of starts under way, so that an id is
	// started once.
	starting map[string]bool
	subs     map[*subscriber]struct{}
	// idleSince is when the host last became idle (zero: it is busy; see
	// busyChanged).
	idleSince time.Time
	running   int
	// closing: the host is idle for good and exits; it starts nothing.
	closing bool
}

// subscriber is one /events stream: an unbounded queue, so that a slow
// reader never holds up a guest's exit.
type subscriber struct {
	mu     sync.Mutex
	queue  []exitEvent
	signal chan struct{} // capacity 1: something was queued
}

func (s *subscriber) push(ev exitEvent) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *subscriber) take() []exitEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func newServer(rt runtime.Runtime, shutdown func()) *server {
	return &server{rt: rt, shutdown: shutdown, guests: map[string]runtime.Container{}, starting: map[string]bool{},
		subs: map[*subscriber]struct{}{}, idleSince: time.Now()}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, _ *http.Request) { sockjson.WriteJSON(w, http.StatusOK, s.rt.Info()) })
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /containers", s.containers)
	mux.HandleFunc("POST /prepare", s.prepare)
	mux.HandleFunc("POST /start", s.start)
	mux.HandleFunc("POST /stop", s.stop)
	mux.HandleFunc("POST /remove", s.remove)
	mux.HandleFunc("POST /shutdown", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		w.(http.Flusher).Flush() // before the server closes the connection
		s.shutdown()
	})
	return mux
}

// closeIfIdle reports whether the host has been idle for longer than
// after, and if so refuses every start from now on: it is to exit.
func (s *server) closeIfIdle(after time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.idleSince.IsZero() && time.Since(s.idleSince) > after {
		s.closing = true
	}
	return s.closing
}

// busyChanged recomputes idleSince; s.mu is held. The host is busy while a
// guest runs or starts, and while it holds ended guests for a connected
// agent to remove. An agent with no guests here does not keep it: the
// agent starts a new host when it needs one. Ended guests without an agent
// are kept for the idle time, for an agent that comes back to learn how
// they ended.
func (s *server) busyChanged() {
	switch {
	case s.running > 0 || len(s.starting) > 0 || (len(s.subs) > 0 && len(s.guests) > 0):
		s.idleSince = time.Time{}
	case s.idleSince.IsZero():
		s.idleSince = time.Now()
	}
}

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	sub := &subscriber{signal: make(chan struct{}, 1)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.busyChanged()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.busyChanged()
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set(protocolHeader, protocolVersion)
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush() // the client starts containers once it has the header
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.signal:
		}
		for _, ev := range sub.take() {
			if enc.Encode(ev) != nil {
				return
			}
		}
		fl.Flush()
	}
}

func (s *server) containers(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("id")
	s.mu.Lock()
	out := make([]exitEvent, 0, len(s.guests))
	for id, c := range s.guests {
		if only != "" && id != only {
			continue
		}
		ev := exitEvent{ID: id}
		if es, ok := c.Exit(); ok {
			ev.Exit = &es
		}
		out = append(out, ev)
	}
	s.mu.Unlock()
	sockjson.WriteJSON(w, http.StatusOK, out)
}

func (s *server) prepare(w http.ResponseWriter, r *http.Request) {
	var m runtime.Module
	if !sockjson.ReadJSON(w, r, &m) {
		return
	}
	if err := s.rt.Prepare(r.Context(), m); err != nil {
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
	s.mu.Lock()
	_, dup := s.guests[req.ID]
	dup = dup || s.starting[req.ID]
	closing := s.closing
	if !dup && !closing {
		s.starting[req.ID] = true
		s.busyChanged()
	}
	s.mu.Unlock()
	switch {
	case closing:
		sockjson.WriteError(w, "the wasm guest host is exiting: idle", kindClosing)
		return
	case dup:
		writeError(w, fmt.Errorf("start %s: a container with this id exists", req.ID))
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.starting, req.ID)
		s.busyChanged()
		s.mu.Unlock()
	}()
	l, err := podlogs.Open(req.Log.Path, podlogs.Options{MaxFileBytes: req.Log.MaxFileBytes, MaxFiles: req.Log.MaxFiles})
	if err != nil {
		writeError(w, fmt.Errorf("start %s: log: %w", req.ID, err))
		return
	}
	c, err := s.rt.Start(r.Context(), runtime.ContainerSpec{
		ID: req.ID, Module: req.Module, Args: req.Args, Env: req.Env, Mounts: req.Mounts, MemoryLimit: req.MemoryLimit,
		Stdout: l.Stream("stdout"), Stderr: l.Stream("stderr"),
	})
	if err != nil {
		l.Close()
		writeError(w, err)
		return
	}
	s.mu.Lock()
	s.guests[req.ID] = c
	s.running++
	s.busyChanged()
	s.mu.Unlock()
	go func() {
		<-c.Done()
		l.Close()
		es, _ := c.Exit()
		s.mu.Lock()
		s.running--
		if s.running == 0 {
			// The last guest is gone: give its memory back to the
			// system now rather than in the scavenger's minutes.
			go debug.FreeOSMemory()
		}
		s.busyChanged()
		for sub := range s.subs {
			sub.push(exitEvent{ID: req.ID, Exit: &es})
		}
		s.mu.Unlock()
	}()
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) guest(id string) runtime.Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.guests[id]
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	var req idRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	g := s.guest(req.ID)
	if g == nil {
		writeError(w, fmt.Errorf("stop %s: no such container", req.ID))
		return
	}
	if err := g.Stop(req.Grace); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) remove(w http.ResponseWriter, r *http.Request) {
	var req idRequest
	if !sockjson.ReadJSON(w, r, &req) {
		return
	}
	if g := s.guest(req.ID); g != nil {
		g.Stop(0)
		select {
		case <-g.Done():
		case <-r.Context().Done():
			return
		}
		s.mu.Lock()
		delete(s.guests, req.ID)
		s.busyChanged()
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeError(w http.ResponseWriter, err error) {
	var inv *runtime.InvalidModuleError
	switch {
	case errors.As(err, &inv):
		sockjson.WriteError(w, inv.Err.Error(), kindInvalidModule)
	case errors.Is(err, runtime.ErrDigestMismatch):
		sockjson.WriteError(w, err.Error(), kindDigestMismatch)
	default:
		sockjson.WriteError(w, err.Error(), "")
	}
}

// serve answers on ln until ctx ends or a client asks for a shutdown (s's
// shutdown func cancels ctx), then closes the runtime, which stops every
// guest, and lets the exits reach the subscribers before it returns.
func serve(ctx context.Context, ln net.Listener, s *server) error {
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serve wasm guests: %w", err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cerr := s.rt.Close(cctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	// The exits of the guests Close stopped are queued; give the
	// subscribers a moment to read them before their streams end.
	for deadline := time.Now().Add(time.Second); s.pending() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	_ = srv.Close()
	if ctx.Err() != nil {
		<-served
	}
	return err
}

// pending says whether a subscriber has events it has not read yet, or a
// guest's exit is still on its way to them.
func (s *server) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running > 0 {
		return true
	}
	for sub := range s.subs {
		sub.mu.Lock()
		n := len(sub.queue)
		sub.mu.Unlock()
		if n > 0 {
			return true
		}
	}
	return false
}
