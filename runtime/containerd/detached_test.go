package containerd

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// newDetachedRuntime is newRuntime with cmd/wasmfleet-logger as the
// containers' logger.
func newDetachedRuntime(t *testing.T) *Runtime {
	t.Helper()
	logger := testenv.StaticGoBinary(t, "github.com/wasmfleet/wasmfleet/cmd/wasmfleet-logger")
	r := newRuntime(t)
	r.cfg.Logger = logger
	return r
}

// logOf reads the podlogs log at path.
func logOf(t *testing.T, path string) string {
	t.Helper()
	var b bytes.Buffer
	if err := podlogs.Read(context.Background(), path, podlogs.ReadOptions{Tail: -1}, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// waitLog polls until the log at path holds s.
func waitLog(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logOf(t, path), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never held %q; it is %q", s, logOf(t, path))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDetachedContainerOutlivesItsRuntime(t *testing.T) {
	r1 := newDetachedRuntime(t)
	ctx := context.Background()
	dir := t.TempDir()
	tickerLog, shortLog := filepath.Join(dir, "ticker.log"), filepath.Join(dir, "short.log")
	ticker := start(t, r1, runtime.ContainerSpec{ID: "default/ticker/app/0", Args: []string{"tick", "0"}, Log: runtime.LogFile{Path: tickerLog}})
	short := start(t, r1, runtime.ContainerSpec{ID: "default/short/app/0", Args: []string{"tick", "10"}, Log: runtime.LogFile{Path: shortLog}})
	waitLog(t, tickerLog, "tick 2\n")

	// The agent goes away: the containers run on, and their logs grow.
	if err := r1.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, ok := ticker.Exit(); ok {
		t.Fatal("the ticker's handle ended with Detach")
	}
	if _, _, err := r1.Attach(ctx, "default/ticker/app/0"); err == nil {
		t.Error("Attach after Detach succeeded")
	}
	waitLog(t, tickerLog, "tick 20\n")
	waitLog(t, shortLog, "tick 10\n")

	// A new Runtime of the same owner finds both: the ticker running, the
	// short one ended while nobody watched, with its exit code and start.
	r2, err := New(ctx, r1.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	ids, err := r2.IDs(ctx)
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"default/short/app/0", "default/ticker/app/0"}) {
		t.Fatalf("IDs = %v, %v", ids, err)
	}
	s2, ok, err := r2.Attach(ctx, "default/short/app/0")
	if err != nil || !ok {
		t.Fatalf("attach short: %v %v", ok, err)
	}
	st := exit(t, s2)
	if st.ExitCode != 7 || st.Reason != runtime.ReasonError || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("short ended %+v: want exit code 7, Error, its start and finish", st)
	}
	if _, ok := short.Exit(); ok {
		t.Error("the first Runtime's handle learned of the exit after Detach")
	}
	t2, ok, err := r2.Attach(ctx, "default/ticker/app/0")
	if err != nil || !ok {
		t.Fatalf("attach ticker: %v %v", ok, err)
	}
	if again, _, _ := r2.Attach(ctx, "default/ticker/app/0"); again != t2 {
		t.Error("a second Attach gave another handle")
	}
	if _, ok := t2.Exit(); ok {
		t.Fatal("the attached ticker has ended")
	}
	if err := t2.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// A Go program that is PID 1 exits 2 on a SIGTERM it does not handle.
	if st = exit(t, t2); st.ExitCode != 2 || st.Reason != runtime.ReasonError {
		t.Errorf("stopped ticker ended %+v: want exit code 2, Error", st)
	}
	// Ended containers stay until removed.
	if ids, err := r2.IDs(ctx); err != nil || len(ids) != 2 {
		t.Errorf("IDs after the exits = %v, %v: want both still held", ids, err)
	}
	for _, id := range ids {
		if err := r2.Remove(ctx, id); err != nil {
			t.Error(err)
		}
	}
	if ids, err := r2.IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs after Remove = %v, %v", ids, err)
	}
	if _, ok, err := r2.Attach(ctx, "default/ticker/app/0"); ok || err != nil {
		t.Errorf("Attach of a removed container: %v, %v", ok, err)
	}
	if err := r2.Remove(ctx, "default/ticker/app/0"); err != nil {
		t.Errorf("Remove of an unknown id: %v", err)
	}
}

func TestRemoveStopsARunningDetachedContainer(t *testing.T) {
	r := newDetachedRuntime(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log")
	c := start(t, r, runtime.ContainerSpec{Args: []string{"tick", "0"}, Log: runtime.LogFile{Path: path}})
	waitLog(t, path, "tick 1\n")
	if _, err := r.Start(ctx, runtime.ContainerSpec{ID: c.ID(), Image: testImage, Log: runtime.LogFile{Path: path}}); err == nil {
		t.Error("a second Start of a held ID succeeded")
	}
	if err := r.Remove(ctx, c.ID()); err != nil {
		t.Fatal(err)
	}
	if st := exit(t, c); st.ExitCode != runtime.ExitCodeKilled {
		t.Errorf("removed container ended %+v", st)
	}
	if ids, err := r.IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs after Remove = %v, %v", ids, err)
	}
}

func TestCloseRemovesDetachedContainers(t *testing.T) {
	r := newDetachedRuntime(t)
	ctx := context.Background()
	dir := t.TempDir()
	running := start(t, r, runtime.ContainerSpec{ID: "default/a/app/0", Args: []string{"tick", "0"}, Log: runtime.LogFile{Path: filepath.Join(dir, "a")}})
	ended := start(t, r, runtime.ContainerSpec{ID: "default/b/app/0", Args: []string{"exit", "3"}, Log: runtime.LogFile{Path: filepath.Join(dir, "b")}})
	exit(t, ended)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	exit(t, running)
	other, err := New(ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if ids, err := other.IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs after Close = %v, %v", ids, err)
	}
}

// A Runtime that starts a spec ID an earlier Runtime of its owner left
// running (its agent stopped as it started it) replaces that container:
// one run of a container at a time.
func TestStartReplacesALeftoverOfTheSameID(t *testing.T) {
	r1 := newDetachedRuntime(t)
	ctx := context.Background()
	dir := t.TempDir()
	spec := runtime.ContainerSpec{ID: "default/dup/app/0", Args: []string{"tick", "0"}, Log: runtime.LogFile{Path: filepath.Join(dir, "1.log")}}
	start(t, r1, spec)
	if err := r1.Detach(); err != nil {
		t.Fatal(err)
	}
	r2, err := New(ctx, r1.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	spec.Log.Path = filepath.Join(dir, "2.log")
	c := start(t, r2, spec)
	waitLog(t, spec.Log.Path, "tick 1\n")
	cs, err := r2.find(r2.ctx(ctx), spec.ID)
	if err != nil || len(cs) != 1 {
		t.Fatalf("containers of %s: %d, %v: want the new one alone", spec.ID, len(cs), err)
	}
	if cs[0].ID() != c.(*container).cid {
		t.Errorf("the container left is %s, not the new run's %s", cs[0].ID(), c.(*container).cid)
	}
}

// A container whose task was created but never started (its agent
// stopped in between) attaches as ended: waiting for it would never end.
func TestAttachToATaskNeverStarted(t *testing.T) {
	r := newDetachedRuntime(t)
	ctx := r.ctx(context.Background())
	img, err := r.image(ctx, testImage)
	if err != nil {
		t.Fatal(err)
	}
	const id = "default/created/app/0"
	cid := containerID(id)
	cntr, err := r.client.NewContainer(ctx, cid,
		containerd.WithImage(img), containerd.WithSnapshotter(r.cfg.Snapshotter), containerd.WithNewSnapshot(cid, img),
		containerd.WithNewSpec(oci.WithImageConfigArgs(img, []string{"tick", "0"})),
		containerd.WithContainerLabels(map[string]string{LabelID: id, LabelOwner: r.cfg.Owner, LabelLog: filepath.Join(t.TempDir(), "log")}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cntr.NewTask(ctx, cio.NullIO); err != nil {
		t.Fatal(err)
	}
	c, ok, err := r.Attach(ctx, id)
	if err != nil || !ok {
		t.Fatalf("attach: %v, %v", ok, err)
	}
	if st := exit(t, c); st.Reason != runtime.ReasonError || !strings.Contains(st.Message, "never started") {
		t.Errorf("attached never-started container: %+v", st)
	}
	if err := r.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ids, err := r.IDs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("IDs after Remove = %v, %v", ids, err)
	}
}
