// Package containerd runs OCI containers through a containerd daemon and
// runc: the runtime behind RuntimeClass handler "runc". It is the only
// package of wasmfleet that imports containerd (its v2 Go client).
//
// A Runtime owns one client connection and one containerd namespace
// (Config.Namespace, "wasmfleet" by default). For each ContainerSpec it makes
// sure the image is there (pulled by the client from its registry and
// unpacked into the snapshotter on first use), creates a container with a
// new snapshot and an OCI spec built from the spec (the image's config, then
// Command/Args, Env, bind mounts, the cgroup memory limit), starts its task
// and turns the task's exit into a runtime.ExitStatus. Images stay as the
// node's cache.
//
// A container's output goes one of two ways:
//
//   - A spec with a Log (the agent's way) is detached: containerd's shim
//     runs Config.Logger, which writes the output to the log file (see
//     shimlog), so nothing of the Runtime's process holds the
//     container. It goes on running when the Runtime detaches or its
//     process dies, as containers outlive a kubelet restart; a later
//     Runtime finds it with Attach. When it exits its task stays in
//     containerd, stopped, with its exit status, until Remove.
//   - A spec with writers only has its stdout and stderr copied to them
//     through FIFOs, by this process. Its task, container and snapshot are
//     deleted when it exits.
//
// Nothing in this package keeps state on disk: containerd's container
// labels say which Runtime owns a container (Config.Owner) and which spec
// it runs. A Runtime that was not closed leaves its containers in
// containerd; the next one with the same Owner removes those with writers
// (their output had nowhere to go) when it starts, and attaches to the
// detached ones.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"golang.org/x/sync/singleflight"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Defaults of Config.
const (
	DefaultAddress   = "/run/containerd/containerd.sock"
	DefaultNamespace = "wasmfleet"
	DefaultRuntime   = "io.containerd.runc.v2"
	defaultTimeout   = 10 * time.Second
)

// Labels set on every container this package creates.
const (
	// LabelID holds the ContainerSpec.ID (containerd IDs cannot hold it).
	LabelID = "io.wasmfleet.container-id"
	// LabelOwner holds Config.Owner.
	LabelOwner = "io.wasmfleet.owner"
	// LabelLog holds the log file of a detached container (one started
	// with a ContainerSpec.Log).
	LabelLog = "io.wasmfleet.log"
	// LabelStartedAt holds when a detached container's task started
	// (RFC 3339), for its ExitStatus after an Attach.
	LabelStartedAt = "io.wasmfleet.started-at"
)

// Config configures a Runtime. The zero value is valid: the default socket,
// namespace, snapshotter and runc shim.
type Config struct {
	// Address is containerd's socket (default DefaultAddress).
	Address string
	// Namespace is the containerd namespace of the images and containers
	// (default DefaultNamespace). Several Runtimes may share one.
	Namespace string
	// Snapshotter unpacks images and holds container root filesystems; ""
	// is containerd's default (overlayfs), "native" works where overlayfs
	// cannot be mounted.
	Snapshotter string
	// Runtime is the containerd shim (default DefaultRuntime).
	Runtime string
	// Logger is the absolute path of the executable containerd's shim
	// runs to write a detached container's log: one whose main calls
	// shimlog.RunLoggerIfAsked (cmd/wasmfleet-logger). Without it, specs
	// with a Log cannot start.
	Logger string
	// FIFODir is where the stdio FIFOs are made; "" is containerd's
	// default (/run/containerd/fifo). containerd's shim opens them, so it
	// must be on the daemon's host.
	FIFODir string
	// NetNSDir keeps the network namespaces of network groups
	// (ContainerSpec.NetworkGroup; default DefaultNetNSDir).
	NetNSDir string
	// Owner, when set, is written on every container (LabelOwner); New
	// removes the containers with writers that a Runtime of the same owner
	// left in Namespace, and Attach, IDs and Remove see only this owner's
	// containers. The agent uses its node name; Runtimes sharing a
	// namespace must use different owners.
	Owner string
	// HostNetwork runs containers in the host's network namespace (with its
	// /etc/hosts and /etc/resolv.conf). Without it each container has a
	// network namespace of its own, or its group's (ContainerSpec.
	// NetworkGroup), with only a loopback interface: there is no CNI.
	HostNetwork bool
	// Timeout bounds connecting to containerd in New and each cleanup step
	// (default 10s).
	Timeout time.Duration
}

var identifier = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.Namespace != "" && (len(c.Namespace) > 76 || !identifier.MatchString(c.Namespace)) {
		return fmt.Errorf("containerd namespace %q: want letters, digits and inner '.', '_', '-', at most 76 characters", c.Namespace)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("containerd timeout %s is negative", c.Timeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Runtime == "" {
		c.Runtime = DefaultRuntime
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	return c
}

// Runtime runs OCI containers through containerd. It implements
// runtime.Detached; its methods are safe for concurrent use.
type Runtime struct {
	cfg    Config
	client *containerd.Client
	info   runtime.Info
	events *eventWatcher
	pulls  singleflight.Group

	mu       sync.Mutex
	closed   bool
	detached bool // Detach was called: waiters leave their handles open
	// held are the containers started or attached, by spec ID: until they
	// end (with writers) or are removed (detached).
	held   map[string]*container
	wg     sync.WaitGroup // one per running container's waiter
	starts sync.WaitGroup // one per Start under way
	// nsMu orders the making of network namespaces and their removal
	// (releaseNetwork) with the creation of the containers that join them.
	nsMu sync.Mutex
}

var _ runtime.Detached = (*Runtime)(nil)

// New connects to containerd and returns a Runtime, or an error when the
// daemon does not answer within cfg.Timeout (the agent then does not offer
// the runc handler). With cfg.Owner set it first removes that owner's
// leftover containers with writers.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if _, err := os.Stat(cfg.Address); err != nil {
		return nil, fmt.Errorf("containerd socket: %w", err)
	}
	client, err := containerd.New(cfg.Address,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithDefaultRuntime(cfg.Runtime),
		containerd.WithTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("containerd client %s: %w", cfg.Address, err)
	}
	r := &Runtime{cfg: cfg, client: client, held: map[string]*container{}}
	vctx, cancel := context.WithTimeout(r.ctx(ctx), cfg.Timeout)
	defer cancel()
	v, err := client.Version(vctx)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("containerd at %s: %w", cfg.Address, err)
	}
	r.info = runtime.Info{Name: "runc", Version: "containerd://" + v.Version, Mode: cfg.Runtime}
	if cfg.Owner != "" {
		if err := r.removeLeftovers(vctx); err != nil {
			client.Close()
			return nil, err
		}
		if err := r.pruneNetworks(vctx); err != nil {
			client.Close()
			return nil, fmt.Errorf("remove unused network namespaces of %s: %w", cfg.Owner, err)
		}
	}
	r.events = startEventWatcher(r.ctx(context.Background()), client)
	return r, nil
}

// ctx returns ctx in the runtime's containerd namespace.
func (r *Runtime) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

// Info describes the runtime: Name "runc", Version
// "containerd://<daemon version>" (Kubernetes' containerRuntimeVersion
// format), Mode the shim.
func (r *Runtime) Info() runtime.Info { return r.info }

// Prepare does nothing: an image runtime has no module to check. Images are
// pulled by Pull, or by Start when missing.
func (r *Runtime) Prepare(context.Context, runtime.Module) error { return nil }

// NormalizeImage returns ref as containerd names it, the way Kubernetes reads
// a container's image: "busybox" is "docker.io/library/busybox:latest".
func NormalizeImage(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w: %w", ref, runtime.ErrImagePull, err)
	}
	return named.String(), nil
}

// Pull makes sure the image ref is in containerd and unpacked into the
// snapshotter, pulling it from its registry when it is not there. Errors
// wrap runtime.ErrImagePull. Concurrent pulls of one image share one.
func (r *Runtime) Pull(ctx context.Context, ref string) error {
	_, err := r.image(ctx, ref)
	return err
}

func (r *Runtime) image(ctx context.Context, ref string) (containerd.Image, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return nil, err
	}
	ctx = r.ctx(ctx)
	if img, err := r.localImage(ctx, name); err == nil || !errdefs.IsNotFound(err) {
		return img, err
	}
	ch := r.pulls.DoChan(name, func() (any, error) {
		// The pull outlives one caller's ctx: others may wait for it.
		pctx, cancel := context.WithTimeout(r.ctx(context.Background()), 30*time.Minute)
		defer cancel()
		img, err := r.client.Pull(pctx, name,
			containerd.WithPullUnpack,
			containerd.WithPullSnapshotter(r.cfg.Snapshotter))
		if err != nil {
			return nil, fmt.Errorf("pull image %s: %w: %w", name, runtime.ErrImagePull, err)
		}
		return img, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(containerd.Image), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("pull image %s: %w: %w", name, runtime.ErrImagePull, ctx.Err())
	}
}

// localImage returns the image name when containerd has it, unpacked.
func (r *Runtime) localImage(ctx context.Context, name string) (containerd.Image, error) {
	img, err := r.client.GetImage(ctx, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	unpacked, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", name, err)
		}
	}
	return img, nil
}

// ImportImage imports an OCI image archive (a tar with oci-layout,
// index.json and blobs, as `ctr images export` or `docker save` write) and
// unpacks its images; it returns their names. The manifests name their
// images with the annotation io.containerd.image.name or
// org.opencontainers.image.ref.name. This is how an air-gapped node gets
// images, and how the tests do.
func (r *Runtime) ImportImage(ctx context.Context, archive io.Reader) ([]string, error) {
	ctx = r.ctx(ctx)
	imgs, err := r.client.Import(ctx, archive)
	if err != nil {
		return nil, fmt.Errorf("import image archive: %w", err)
	}
	var names []string
	for _, i := range imgs {
		img := containerd.NewImage(r.client, i)
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return names, fmt.Errorf("unpack image %s: %w", i.Name, err)
		}
		names = append(names, i.Name)
	}
	return names, nil
}

// Close kills every running container (SIGKILL), waits until they are
// deleted or ctx is done, removes the ended detached containers it holds,
// then closes the connection to containerd. Start fails after Close; Close
// is idempotent.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	held := make([]*container, 0, len(r.held))
	for _, c := range r.held {
		held = append(held, c)
	}
	r.mu.Unlock()

	for _, c := range held {
		c.kill()
	}
	var err error
	allDone := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(allDone)
	}()
	select {
	case <-allDone:
		// The waiters of detached containers that ended after closed was
		// set removed them; these ended before.
		for _, c := range held {
			c.mu.Lock()
			cntr, task, starting := c.cntr, c.task, c.starting
			c.mu.Unlock()
			// One still starting is cleaned up by its Start.
			if c.logged && !starting && cntr != nil {
				if cerr := r.cleanup(cntr, task); cerr != nil {
					err = errors.Join(err, fmt.Errorf("close containerd runtime: %s: %w", c.id, cerr))
				}
			}
		}
	case <-ctx.Done():
		err = fmt.Errorf("close containerd runtime: %d containers still exiting: %w", r.heldCount(), ctx.Err())
	}
	r.starts.Wait() // a Start that fails now cleans up on the open connection
	r.events.stop()
	// Closing the connection ends the waiters still blocked on containerd.
	if cerr := r.client.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close containerd client: %w", cerr)
	}
	<-allDone
	return err
}

func (r *Runtime) heldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

// removeLeftovers deletes the containers with writers of cfg.Owner, with
// their tasks and snapshots.
func (r *Runtime) removeLeftovers(ctx context.Context) error {
	cs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q==%q", LabelOwner, r.cfg.Owner))
	if err != nil {
		return fmt.Errorf("list leftover containers of %s: %w", r.cfg.Owner, err)
	}
	var errs []error
	for _, c := range cs {
		if info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata); err == nil && info.Labels[LabelLog] != "" {
			continue // detached: the next Attach takes it
		}
		if err := r.deleteContainer(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove leftover containers of %s: %w", r.cfg.Owner, err)
	}
	return nil
}
