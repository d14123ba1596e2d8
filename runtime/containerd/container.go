package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	cgroup1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroup2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/containerd/shimlog"
)

// killWait is how long Stop waits for the SIGKILL it sends after the grace
// period to end the task.
const killWait = 10 * time.Second

// Start pulls the image if containerd does not have it, creates the
// container and its task and starts it. ctx bounds only that. Errors:
// runtime.ErrImagePull for an image that cannot be had, a missing mount
// directory, a spec containerd or runc refuse, a closed Runtime.
func (r *Runtime) Start(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if spec.Image == "" {
		return nil, fmt.Errorf("start %s: no image", spec.ID)
	}
	for _, m := range spec.Mounts {
		if !strings.HasPrefix(m.GuestPath, "/") {
			return nil, fmt.Errorf("start %s: mount path %q is not absolute", spec.ID, m.GuestPath)
		}
		if _, err := os.Stat(m.HostPath); err != nil {
			return nil, fmt.Errorf("start %s: mount %s: %w", spec.ID, m.GuestPath, err)
		}
	}
	if spec.MemoryLimit < 0 {
		return nil, fmt.Errorf("start %s: negative memory limit %d", spec.ID, spec.MemoryLimit)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("start %s: containerd runtime is closed", spec.ID)
	}

	logged := spec.Log.Path != ""
	var logArg []byte
	if logged {
		if r.cfg.Logger == "" {
			return nil, fmt.Errorf("start %s: a container with a log file needs the runtime's logger executable", spec.ID)
		}
		var err error
		if logArg, err = json.Marshal(spec.Log); err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.ID, err)
		}
	}

	img, err := r.image(ctx, spec.Image)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	ctx = r.ctx(ctx)
	id := containerID(spec.ID)
	labels := map[string]string{LabelID: spec.ID}
	if r.cfg.Owner != "" {
		labels[LabelOwner] = r.cfg.Owner
	}
	if logged {
		labels[LabelLog] = spec.Log.Path
	}
	hostNetwork := r.cfg.HostNetwork || spec.HostNetwork
	netns := ""
	if spec.NetworkGroup != "" && !hostNetwork {
		labels[LabelNetwork] = spec.NetworkGroup
		netns = r.netNSPath(spec.NetworkGroup)
	}
	opts := []containerd.NewContainerOpts{
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.cfg.Snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithRuntime(r.cfg.Runtime, nil),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(specOpts(img, spec, hostNetwork, netns)...),
	}
	c := &container{
		r:      r,
		id:     spec.ID,
		cid:    id,
		limit:  spec.MemoryLimit,
		logged: logged,
		done:   make(chan struct{}),
	}
	// Held from here, so that a second start of the spec ID is refused.
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: containerd runtime is closed", spec.ID)
	case r.held[spec.ID] != nil:
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: a container with this ID is held already", spec.ID)
	}
	r.held[spec.ID] = c
	c.starting = true
	r.starts.Add(1) // Detach and Close wait: this Start may have to clean up
	r.mu.Unlock()
	defer r.starts.Done()
	defer func() {
		c.mu.Lock()
		c.starting = false
		c.mu.Unlock()
	}()
	unhold := func() {
		r.mu.Lock()
		delete(r.held, spec.ID)
		r.mu.Unlock()
	}
	// A container of this spec ID that an earlier Runtime left (its agent
	// stopped as it started it) would run twice.
	if err := r.removeByID(ctx, spec.ID); err != nil {
		unhold()
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}

	// The group's namespace is made, or found, and the container that
	// joins it created, before a removal of the group's last container
	// may remove it.
	r.nsMu.Lock()
	if netns != "" {
		if err := ensureNetNS(netns); err != nil {
			r.nsMu.Unlock()
			unhold()
			return nil, fmt.Errorf("start %s: %w", spec.ID, err)
		}
	}
	cntr, err := r.client.NewContainer(ctx, id, opts...)
	r.nsMu.Unlock()
	if err != nil {
		unhold()
		return nil, errors.Join(fmt.Errorf("start %s: create container: %w", spec.ID, err), r.releaseNetwork(ctx, spec.NetworkGroup))
	}
	var ioCreator cio.Creator
	if logged {
		ioCreator = cio.BinaryIO(r.cfg.Logger, map[string]string{shimlog.LoggerArg: string(logArg)})
	} else {
		out := &serialWriters{}
		ioOpts := []cio.Opt{cio.WithStreams(nil, out.writer(spec.Stdout), out.writer(spec.Stderr))}
		if r.cfg.FIFODir != "" {
			ioOpts = append(ioOpts, cio.WithFIFODir(r.cfg.FIFODir))
		}
		ioCreator = cio.NewCreator(ioOpts...)
	}
	r.events.watch(id)
	fail := func(err error, task containerd.Task) (runtime.Container, error) {
		r.events.forget(id)
		unhold()
		return nil, errors.Join(err, r.cleanup(cntr, task))
	}
	task, err := cntr.NewTask(ctx, ioCreator)
	if err != nil {
		return fail(fmt.Errorf("start %s: create task: %w", spec.ID, err), nil)
	}
	c.mu.Lock() // Close may look at a held container meanwhile
	c.cntr, c.task = cntr, task
	c.mu.Unlock()
	// The waiter's context is not ctx: the task outlives Start. Closing
	// the client ends it if containerd never answers.
	exitCh, err := task.Wait(r.ctx(context.Background()))
	if err != nil {
		return fail(fmt.Errorf("start %s: wait task: %w", spec.ID, err), task)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fail(fmt.Errorf("start %s: containerd runtime is closed", spec.ID), task)
	}
	r.wg.Add(1)
	r.mu.Unlock()

	c.startedAt = time.Now()
	if err := task.Start(ctx); err != nil {
		r.wg.Done()
		return fail(fmt.Errorf("start %s: start task: %w", spec.ID, err), task)
	}
	if logged {
		// An agent that attaches to it later learns its start from here.
		// Without the label it takes the container's creation time.
		_, _ = cntr.SetLabels(ctx, map[string]string{LabelStartedAt: c.startedAt.UTC().Format(time.RFC3339Nano)})
	}
	go c.wait(exitCh, true)
	return c, nil
}

// specOpts turns a ContainerSpec into OCI spec options on top of
// containerd's defaults and the image's config.
func specOpts(img containerd.Image, spec runtime.ContainerSpec, hostNetwork bool, netns string) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithImageConfigArgs(img, spec.Args)}
	if len(spec.Command) > 0 {
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, spec.Command...), spec.Args...)...))
	}
	if len(spec.Env) > 0 {
		env := make([]string, len(spec.Env))
		for i, e := range spec.Env {
			env[i] = e.Name + "=" + e.Value
		}
		opts = append(opts, oci.WithEnv(env))
	}
	if len(spec.Mounts) > 0 {
		opts = append(opts, oci.WithMounts(bindMounts(spec.Mounts)))
	}
	if spec.Hostname != "" {
		opts = append(opts, oci.WithHostname(spec.Hostname))
	}
	if spec.MemoryLimit > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.MemoryLimit)))
	}
	switch {
	case hostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	case netns != "":
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns}))
	}
	return opts
}

// bindMounts returns the OCI mounts of the runtime's host-directory mounts.
func bindMounts(ms []runtime.Mount) []specs.Mount {
	out := make([]specs.Mount, len(ms))
	for i, m := range ms {
		options := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			options = append(options, "ro")
		} else {
			options = append(options, "rw")
		}
		out[i] = specs.Mount{Destination: m.GuestPath, Type: "bind", Source: m.HostPath, Options: options}
	}
	return out
}

// containerID makes a containerd ID (letters, digits, inner '.', '_', '-';
// at most 76 characters) from a ContainerSpec.ID such as
// "default/web-1/app/0", with a random suffix: every Start creates a new
// container even for the same spec ID.
func containerID(specID string) string {
	var b strings.Builder
	dash := false
	for _, r := range specID {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.TrimRight(b.String(), "-")
	if len(base) > 58 {
		base = strings.TrimRight(base[:58], "-")
	}
	if base == "" {
		return randomHex()
	}
	return base + "-" + randomHex()
}

// randomHex is 8 random bytes in hex.
func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// container is the handle of one started task.
type container struct {
	r         *Runtime
	id, cid   string
	limit     int64
	cntr      containerd.Container
	task      containerd.Task
	startedAt time.Time
	// logged: detached, its output goes to its log through the shim's
	// logger, and its task stays in containerd after it ended until Remove.
	logged bool
	done   chan struct{}

	mu       sync.Mutex
	starting bool // in Start, which cleans up if it fails
	stopped  bool // Stop or Close asked it to end
	status   runtime.ExitStatus
}

var _ runtime.Container = (*container)(nil)

func (c *container) ID() string { return c.id }

func (c *container) Done() <-chan struct{} { return c.done }

func (c *container) Exit() (runtime.ExitStatus, bool) {
	select {
	case <-c.done:
	default:
		return runtime.ExitStatus{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, true
}

// Stop sends SIGTERM, waits up to gracePeriod, then sends SIGKILL and waits
// up to 10s more for the task to be gone. It returns nil once the container
// has exited and been deleted, an error if it still runs then. A
// gracePeriod <= 0 sends SIGKILL and returns without waiting. A container
// that exits after Stop reports its own exit code when it chose one (it
// trapped SIGTERM) and ExitCodeKilled when SIGKILL ended it.
func (c *container) Stop(gracePeriod time.Duration) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	if gracePeriod <= 0 {
		c.kill()
		return nil
	}
	c.mu.Lock()
	task := c.task
	c.mu.Unlock()
	if task == nil { // still starting (an Attach returned it): no grace
		c.kill()
		return nil
	}
	ctx := c.r.ctx(context.Background())
	t := time.NewTimer(gracePeriod)
	// containerd coming back from a restart answers Unavailable for a
	// moment: the SIGTERM is sent again, within the grace period. Other
	// errors go on to SIGKILL after the grace period all the same.
	for {
		err := task.Kill(ctx, syscall.SIGTERM)
		if err == nil || !errdefs.IsUnavailable(err) {
			break
		}
		select {
		case <-c.done:
			return nil
		case <-t.C:
			t.Reset(0)
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	}
	c.kill()
	k := time.NewTimer(killWait)
	defer k.Stop()
	select {
	case <-c.done:
		return nil
	case <-k.C:
		return fmt.Errorf("stop %s: still running %s after SIGKILL", c.id, killWait)
	}
}

// kill sends SIGKILL to every process of the task (a stop without grace),
// if it has one yet.
func (c *container) kill() {
	c.mu.Lock()
	c.stopped = true
	task := c.task
	c.mu.Unlock()
	if task == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.r.ctx(context.Background()), c.r.cfg.Timeout)
	defer cancel()
	_ = task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
}

// wait turns the task's exit into the ExitStatus and closes done. A
// container with writers is deleted then (its task, container and
// snapshot), a detached one stays until Remove. events says whether the
// event watcher follows the task (it was running when its waiter began).
func (c *container) wait(exitCh <-chan containerd.ExitStatus, events bool) {
	defer c.r.wg.Done()
	code, exitedAt, waitErr := c.awaitExit(exitCh)
	c.r.mu.Lock()
	detached, closed := c.r.detached, c.r.closed
	c.r.mu.Unlock()
	if waitErr != nil && detached {
		// Detach closed the connection: the container runs on, and its
		// handle stays open.
		return
	}
	if exitedAt.IsZero() || exitedAt.Before(c.startedAt) {
		exitedAt = time.Now()
	}

	oom := false
	if waitErr == nil {
		// The exit event comes after any OOM event of the task in the event
		// stream; wait for it, bounded in case the stream is down.
		oom = events && c.r.events.awaitExit(c.cid, 2*time.Second)
		if !oom && c.limit > 0 && code == uint32(runtime.ExitCodeKilled) {
			oom = c.oomKilledFromMetrics()
		}
	}
	c.r.events.forget(c.cid)
	var cleanupErr error
	if !c.logged || (closed && !detached) {
		cleanupErr = c.r.cleanup(c.cntr, c.task)
		c.r.mu.Lock()
		if c.r.held[c.id] == c {
			delete(c.r.held, c.id)
		}
		c.r.mu.Unlock()
	}

	c.mu.Lock()
	stopped := c.stopped
	st := runtime.ExitStatus{StartedAt: c.startedAt, FinishedAt: exitedAt, ExitCode: int32(code)}
	switch {
	case waitErr != nil:
		st.ExitCode = runtime.ExitCodeKilled
		st.Reason = runtime.ReasonError
		st.Message = fmt.Sprintf("lost the container's task: %v", waitErr)
	case oom:
		st.ExitCode = runtime.ExitCodeKilled
		st.Reason = runtime.ReasonOOMKilled
		st.Message = fmt.Sprintf("the container used more than its memory limit of %d bytes", c.limit)
	case code == 0:
		st.Reason = runtime.ReasonCompleted
	default:
		st.Reason = runtime.ReasonError
		if stopped && code > 128 {
			st.Message = fmt.Sprintf("stopped (signal %d)", code-128)
		}
	}
	if cleanupErr != nil {
		msg := fmt.Sprintf("cleanup: %v", cleanupErr)
		if st.Message != "" {
			msg = st.Message + "; " + msg
		}
		st.Message = msg
	}
	if len(st.Message) > runtime.MaxMessageBytes {
		st.Message = st.Message[:runtime.MaxMessageBytes]
	}
	c.status = st
	c.mu.Unlock()
	close(c.done)
}

// awaitExit waits for the task's exit through exitCh. A broken connection
// to containerd (containerd restarting) is not the container's end: the
// task runs on in its shim, so it waits again, with back-off, until
// containerd answers, says the task is gone, or the runtime is closed.
func (c *container) awaitExit(exitCh <-chan containerd.ExitStatus) (uint32, time.Time, error) {
	backoff := 100 * time.Millisecond
	for {
		var err error
		if exitCh != nil {
			code, at, werr := (<-exitCh).Result()
			if werr == nil {
				return code, at, nil
			}
			err = werr
		}
		if errdefs.IsNotFound(err) || c.r.isClosed() {
			return 0, time.Time{}, err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
		exitCh, err = c.task.Wait(c.r.ctx(context.Background()))
		if err != nil {
			exitCh = nil
			if errdefs.IsNotFound(err) {
				return 0, time.Time{}, err
			}
		}
	}
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// cleanup deletes a task (after its IO is drained) and its container with
// its snapshot, each step bounded by cfg.Timeout.
func (r *Runtime) cleanup(cntr containerd.Container, task containerd.Task) error {
	var errs []error
	if task != nil {
		ctx, cancel := context.WithTimeout(r.ctx(context.Background()), r.cfg.Timeout)
		if err := deleteTask(ctx, cntr, task); err != nil {
			errs = append(errs, fmt.Errorf("delete task: %w", err))
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(r.ctx(context.Background()), r.cfg.Timeout)
	defer cancel()
	group := networkOf(ctx, cntr)
	if err := cntr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete container: %w", err))
	}
	errs = append(errs, r.releaseNetwork(ctx, group))
	return errors.Join(errs...)
}

// deleteContainer removes a leftover container: kills and deletes its task
// if it has one, then the container and its snapshot (and the network
// namespace it was the last in).
func (r *Runtime) deleteContainer(ctx context.Context, c containerd.Container) error {
	group := networkOf(ctx, c)
	if err := deleteContainer(ctx, c); err != nil {
		return err
	}
	return r.releaseNetwork(ctx, group)
}

func deleteContainer(ctx context.Context, c containerd.Container) error {
	if task, err := c.Task(ctx, nil); err == nil {
		if err := deleteTask(ctx, c, task); err != nil {
			return fmt.Errorf("delete task of %s: %w", c.ID(), err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("task of %s: %w", c.ID(), err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return nil
}

// deleteTask kills and deletes task, c's. A deletion that races another
// (a leftover removed while the old runtime's waiter still cleans it up)
// can fail with "ttrpc: closed" although the other one deleted the task
// (containerd#11505): a task that is gone afterwards counts as deleted.
func deleteTask(ctx context.Context, c containerd.Container, task containerd.Task) error {
	_, err := task.Delete(ctx, containerd.WithProcessKill)
	if err == nil || errdefs.IsNotFound(err) {
		return nil
	}
	if _, lookErr := c.Task(ctx, nil); errdefs.IsNotFound(lookErr) {
		return nil
	}
	return err
}

// serialWriters makes the stdout and stderr copies, which containerd runs
// in two goroutines, write one at a time, as runtime.ContainerSpec promises.
type serialWriters struct{ mu sync.Mutex }

func (s *serialWriters) writer(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return &serialWriter{mu: &s.mu, w: w}
}

type serialWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *serialWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// oomKilledFromMetrics asks the task's cgroup whether the kernel's OOM
// killer ran in it: the fallback when no OOM event was seen for a task that
// died of SIGKILL under a memory limit. It must run before the task is
// deleted (which removes the cgroup).
func (c *container) oomKilledFromMetrics() bool {
	ctx, cancel := context.WithTimeout(c.r.ctx(context.Background()), c.r.cfg.Timeout)
	defer cancel()
	m, err := c.task.Metrics(ctx)
	if err != nil || m.Data == nil {
		return false
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return false
	}
	switch s := v.(type) {
	case *cgroup1stats.Metrics:
		return s.GetMemoryOomControl().GetOomKill() > 0
	case *cgroup2stats.Metrics:
		return s.GetMemoryEvents().GetOomKill() > 0
	}
	return false
}
