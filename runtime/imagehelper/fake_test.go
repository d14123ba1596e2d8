package imagehelper

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// fakeRuntime is the image runtime the protocol tests serve: containerd
// cannot run inside a unit test of the protocol, and the protocol's job is
// only to carry a runtime's calls and results. It is a runtime.Detached:
// it holds each container by its spec ID, running or ended, until Remove
// or Close. A container runs the steps of its Args in order:
//
//	out:TEXT    write TEXT to stdout
//	err:TEXT    write TEXT to stderr
//	exit:N      exit with code N
//	wait        wait until stopped (Stop, Remove or Close)
//	until:PATH  wait until the file PATH exists (or until stopped)
//
// There is no shim to write the output, so the container writes it to
// ContainerSpec.Log itself: each write appends the line "STREAM TEXT\n"
// (STREAM is stdout or stderr) to Log.Path. A start without Log.Path is
// refused, as the container's output would have nowhere to go. Image
// "missing" fails with runtime.ErrImagePull, in Pull and Start.
//
// Containers outlive their helper process through the state directory
// (dir; "" keeps them in memory only): a container's record there (its
// spec, the step it waits in, its exit status once it ended) is written
// when it starts, each time it waits (wait, until:) and when it ends.
// That stands for containerd, which keeps the containers when a helper
// dies: a fakeRuntime in a new process that is asked about an id (Attach
// and the server's calls that attach: wait, stop) finds the record and, for
// a container that had not ended, runs its steps on from the one it waited
// in. A test must therefore end a helper process only while its containers
// wait (or have ended); a container killed with its process in the middle
// of its output steps would repeat them.
type fakeRuntime struct {
	dir string

	mu       sync.Mutex
	closed   bool // by Close or Detach: every method but Info fails
	detached bool // by Detach: the handles' Stop fails too
	held     map[string]*fakeContainer
	attached int // calls of Attach, for tests that wait for a server's lookup
}

func newFakeRuntime(dir string) *fakeRuntime {
	return &fakeRuntime{dir: dir, held: map[string]*fakeContainer{}}
}

var _ ImageRuntime = (*fakeRuntime)(nil)

// fakeRecord is a container's state, in the state directory.
type fakeRecord struct {
	ID     string             `json:"id"`
	Args   []string           `json:"args"`
	Log    string             `json:"log"`
	Step   int                `json:"step"` // the step it runs (waits in) now
	Ended  bool               `json:"ended"`
	Status runtime.ExitStatus `json:"status"` // StartedAt from the start; the rest once Ended
}

// recordPath is the file of container id's record (IDs have slashes).
func (r *fakeRuntime) recordPath(id string) string {
	return filepath.Join(r.dir, hex.EncodeToString([]byte(id))+".json")
}

// save writes rec to the state directory, replacing its file at once so
// that a process killed meanwhile leaves the old record or the new.
func (r *fakeRuntime) save(rec fakeRecord) error {
	if r.dir == "" {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := r.recordPath(rec.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.recordPath(rec.ID))
}

// saveHeld saves rec if c is still held (not removed, closed or forgotten).
func (r *fakeRuntime) saveHeld(c *fakeContainer, rec fakeRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held[c.id] == c {
		if err := r.save(rec); err != nil {
			panic(fmt.Sprintf("fake runtime: save %s: %v", c.id, err))
		}
	}
}

// load reads container id's record: false when there is none.
func (r *fakeRuntime) load(id string) (fakeRecord, bool, error) {
	var rec fakeRecord
	if r.dir == "" {
		return rec, false, nil
	}
	b, err := os.ReadFile(r.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	return rec, true, json.Unmarshal(b, &rec)
}

func (r *fakeRuntime) Info() runtime.Info {
	return runtime.Info{Name: "runc", Version: "containerd://fake", Mode: "fake"}
}

func (r *fakeRuntime) Prepare(context.Context, runtime.Module) error { return nil }

func (r *fakeRuntime) Pull(_ context.Context, ref string) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("pull image %s: runtime is closed", ref)
	case ref == "missing":
		return fmt.Errorf("pull image %s: %w: not found", ref, runtime.ErrImagePull)
	}
	return nil
}

func (r *fakeRuntime) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if err := r.Pull(ctx, spec.Image); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	if spec.Log.Path == "" {
		return nil, fmt.Errorf("start %s: no log file", spec.ID)
	}
	f, err := os.OpenFile(spec.Log.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	f.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("start %s: runtime is closed", spec.ID)
	}
	if _, onDisk, _ := r.load(spec.ID); onDisk || r.held[spec.ID] != nil {
		return nil, fmt.Errorf("start %s: already exists", spec.ID)
	}
	rec := fakeRecord{ID: spec.ID, Args: spec.Args, Log: spec.Log.Path, Status: runtime.ExitStatus{StartedAt: time.Now()}}
	if err := r.save(rec); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	c := r.hold(rec)
	c.spec = spec
	return c, nil
}

// hold makes the container of rec held, and runs it on if it has not
// ended. r.mu is held.
func (r *fakeRuntime) hold(rec fakeRecord) *fakeContainer {
	c := &fakeContainer{r: r, id: rec.ID, done: make(chan struct{}), stop: make(chan string, 1)}
	r.held[rec.ID] = c
	if rec.Ended {
		c.status = rec.Status
		close(c.done)
		return c
	}
	go func() {
		st := c.run(rec)
		rec.Ended, rec.Status = true, st
		// The end is on record before anyone learns it.
		r.saveHeld(c, rec)
		c.status = st
		close(c.done)
	}()
	return c
}

// Attach returns the held container id, finding it in the state directory
// when an earlier process started it.
func (r *fakeRuntime) Attach(_ context.Context, id string) (runtime.Container, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attached++
	if r.closed {
		return nil, false, fmt.Errorf("attach %s: runtime is closed", id)
	}
	if c := r.held[id]; c != nil {
		return c, true, nil
	}
	rec, ok, err := r.load(id)
	if err != nil || !ok {
		return nil, false, err
	}
	return r.hold(rec), true, nil
}

func (r *fakeRuntime) IDs(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("list containers: runtime is closed")
	}
	ids, err := r.recorded()
	if err != nil {
		return nil, err
	}
	for id := range r.held {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// recorded lists the IDs in the state directory.
func (r *fakeRuntime) recorded() ([]string, error) {
	if r.dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		id, err := hex.DecodeString(name)
		if err != nil {
			return nil, err
		}
		ids = append(ids, string(id))
	}
	return ids, nil
}

// forget lets go of container id, held or recorded, and returns the held
// container. r.mu is held.
func (r *fakeRuntime) forget(id string) (*fakeContainer, error) {
	c := r.held[id]
	delete(r.held, id)
	if r.dir != "" {
		if err := os.Remove(r.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return c, err
		}
	}
	return c, nil
}

// Remove kills container id if it runs, waits for its end and forgets it.
// A container recorded by an earlier process and not attached here runs
// nowhere: forgetting it is enough.
func (r *fakeRuntime) Remove(ctx context.Context, id string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("remove %s: runtime is closed", id)
	}
	c, err := r.forget(id)
	r.mu.Unlock()
	if c != nil {
		c.kill("removed")
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// Close kills the containers it holds (started or attached in this
// process, as runtime/containerd's Close does) and forgets them, and
// waits until they ended, so that their exits reach the waiters. A
// container recorded by an earlier process that no one attached here is
// left alone.
func (r *fakeRuntime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	var killed []*fakeContainer
	var err error
	for id := range r.held {
		c, ferr := r.forget(id)
		killed = append(killed, c)
		err = errors.Join(err, ferr)
	}
	r.mu.Unlock()
	for _, c := range killed {
		c.kill("runtime closed")
	}
	for _, c := range killed {
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// Detach lets go of the containers: they run on (and still write their
// log and their record), their handles stay open; every method fails
// from now on.
func (r *fakeRuntime) Detach() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed, r.detached = true, true
	return nil
}

// isDetached reports whether Detach was called.
func (r *fakeRuntime) isDetached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.detached
}

// container returns the held container id, even after Detach, for tests
// that look at what the runtime was left with.
func (r *fakeRuntime) container(id string) *fakeContainer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held[id]
}

// attaches returns how many times Attach was called.
func (r *fakeRuntime) attaches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attached
}

type fakeContainer struct {
	r      *fakeRuntime
	spec   runtime.ContainerSpec // as Start got it (not known after Attach)
	id     string
	done   chan struct{}
	stop   chan string        // why it was stopped
	status runtime.ExitStatus // set before done is closed
}

// run runs rec's steps from rec.Step on and returns the exit status.
func (c *fakeContainer) run(rec fakeRecord) (st runtime.ExitStatus) {
	st = runtime.ExitStatus{StartedAt: rec.Status.StartedAt, Reason: runtime.ReasonCompleted}
	defer func() { st.FinishedAt = time.Now() }()
	stopped := func(why string) runtime.ExitStatus {
		st.ExitCode, st.Reason, st.Message = runtime.ExitCodeKilled, runtime.ReasonError, why
		return st
	}
	for i := rec.Step; i < len(rec.Args); i++ {
		what, arg, _ := strings.Cut(rec.Args[i], ":")
		switch what {
		case "out", "err":
			stream := map[string]string{"out": "stdout", "err": "stderr"}[what]
			if err := appendLog(rec.Log, stream+" "+arg+"\n"); err != nil {
				st.ExitCode, st.Reason, st.Message = 1, runtime.ReasonError, err.Error()
				return st
			}
		case "exit":
			n, _ := strconv.Atoi(arg)
			st.ExitCode = int32(n)
			if n != 0 {
				st.Reason = runtime.ReasonError
			}
			return st
		case "wait":
			rec.Step = i
			c.r.saveHeld(c, rec)
			return stopped(<-c.stop)
		case "until":
			rec.Step = i
			c.r.saveHeld(c, rec)
			tick := time.NewTicker(5 * time.Millisecond)
			for _, err := os.Stat(arg); err != nil; _, err = os.Stat(arg) {
				select {
				case why := <-c.stop:
					tick.Stop()
					return stopped(why)
				case <-tick.C:
				}
			}
			tick.Stop()
		}
	}
	return st
}

func appendLog(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

func (c *fakeContainer) kill(why string) {
	select {
	case c.stop <- why:
	default:
	}
}

func (c *fakeContainer) ID() string { return c.id }

func (c *fakeContainer) Done() <-chan struct{} { return c.done }

func (c *fakeContainer) Exit() (runtime.ExitStatus, bool) {
	select {
	case <-c.done:
		return c.status, true
	default:
		return runtime.ExitStatus{}, false
	}
}

// Exec runs argv in a running container: "echo WORDS…" prints the words,
// "exit N" exits with N, "sleep" sleeps until ctx ends.
func (c *fakeContainer) Exec(ctx context.Context, argv []string) (runtime.ExecResult, error) {
	select {
	case <-c.done:
		return runtime.ExecResult{}, fmt.Errorf("exec in %s: the container is not running", c.id)
	default:
	}
	switch {
	case len(argv) > 0 && argv[0] == "echo":
		return runtime.ExecResult{Output: []byte(strings.Join(argv[1:], " ") + "\n")}, nil
	case len(argv) == 2 && argv[0] == "exit":
		n, err := strconv.Atoi(argv[1])
		return runtime.ExecResult{ExitCode: int32(n)}, err
	case len(argv) == 1 && argv[0] == "sleep":
		<-ctx.Done()
		return runtime.ExecResult{}, ctx.Err()
	}
	return runtime.ExecResult{}, fmt.Errorf("exec in %s: %q: no such program", c.id, argv)
}

// NetNS names a made-up namespace of a running container.
func (c *fakeContainer) NetNS(context.Context) (string, error) {
	select {
	case <-c.done:
		return "", fmt.Errorf("network namespace of %s: the container is not running", c.id)
	default:
		return "/fake/" + c.id + "/ns/net", nil
	}
}

// Stop ends a waiting container with a message naming the grace period.
// It fails after Detach (the runtime let go of the container) unless the
// container ended.
func (c *fakeContainer) Stop(grace time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	c.r.mu.Lock()
	detached := c.r.detached
	c.r.mu.Unlock()
	if detached {
		return fmt.Errorf("stop %s: runtime is detached", c.id)
	}
	c.kill(fmt.Sprintf("stopped with grace %s", grace))
	if grace <= 0 {
		return nil
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
		return errors.New("still running")
	}
}
