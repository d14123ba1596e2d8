package wasmhost

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/internal/sockjson"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// TestIdleHostRefusesStarts: a host idle for its idle time is closing,
// and a start that comes then is refused with an error the agent knows to
// retry against a new host; a busy host does not close.
func TestIdleHostRefusesStarts(t *testing.T) {
	ctx := context.Background()
	rt, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	s := newServer(rt, func() {})
	s.mu.Lock()
	s.starting["busy"] = true
	s.busyChanged()
	s.mu.Unlock()
	if s.closeIfIdle(0) {
		t.Fatal("a host with a start under way closed")
	}
	s.mu.Lock()
	delete(s.starting, "busy")
	s.busyChanged()
	s.idleSince = time.Now().Add(-2 * time.Second)
	s.mu.Unlock()
	if !s.closeIfIdle(time.Second) {
		t.Fatal("a host idle for 2s did not close after 1s")
	}

	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.handler()}
	go srv.Serve(ln)
	defer srv.Close()
	err = sockjson.Call(ctx, sockjson.NewClient(sock), "/start",
		startRequest{ID: "uid/main/0", Log: runtime.LogFile{Path: filepath.Join(t.TempDir(), "0.log")}}, nil, errorKinds, ErrUnavailable)
	if !errors.Is(err, errHostClosing) {
		t.Fatalf("start on a closing host = %v; want errHostClosing", err)
	}
}

// TestChildEnvOutsideSettings: the marker is no agent setting's
// environment form (WASMFLEET_<KEY>), so no setting can make an agent
// think it is a guest host.
func TestChildEnvOutsideSettings(t *testing.T) {
	if strings.HasPrefix(ChildEnv, "WASMFLEET_") {
		t.Errorf("ChildEnv %q has the settings' prefix", ChildEnv)
	}
}
