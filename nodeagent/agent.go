package nodeagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/internal/dirlock"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// podsFile keeps the node's pods on disk, so an agent restarted while the
// control plane is unreachable starts them again (edge autonomy).
const podsFile = "pods.json"

// lockFile keeps a second agent off the data dir.
const lockFile = "agent.lock"

// Agent is a node agent. Run it once.
type Agent struct {
	cfg Config
	log *slog.Logger
	// logs serves kubectl logs; set by Run (see LogStreams).
	logs atomic.Pointer[nodelink.LogServer]
	// pods runs the pods; set by Run (see RunningContainers).
	pods atomic.Pointer[Pods]
	// images opens the runc runtime (HelperImages unless an Option says
	// otherwise).
	images ImageRuntimeFactory
}

// Option changes how NewAgent builds the agent.
type Option func(*Agent)

// WithImageRuntime has the agent open its runc runtime with f instead of
// HelperImages: binaries that link containerd anyway run its client in
// process.
func WithImageRuntime(f ImageRuntimeFactory) Option {
	return func(a *Agent) { a.images = f }
}

// NewAgent checks cfg and returns an agent ready to Run.
func NewAgent(cfg Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, images: HelperImages}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Run runs the agent until ctx ends. The parts that need no control plane
// start at once: the runtime, the module cache, the static pods of
// Config.ManifestsDir and the pods known from the last run (pods.json and
// each pod's state.json; the first pods start while pods.json is still
// being read); the runc runtime, when containerd is configured, is opened
// meanwhile, in the background (runc pods wait for it, wasm pods do not;
// with HelperImages its process starts only for the first runc pod). Then
// it joins
// (or reuses the stored credentials; without them it retries the join,
// backing off to 30s, while the static pods run), connects to NATS (retrying for ever: an agent restarted while
// its control plane is away keeps going) and runs the heartbeat, the pod
// source, the mirror pods and the log server (kubectl logs).
func (a *Agent) Run(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// A second agent on the directory would run the same pods, and one
	// of another node would take them over.
	lock, err := dirlock.Dir(cfg.DataDir, lockFile, "agent", 2*time.Second)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	defer lock.Close()
	// A node that must join needs a token of the right form; one that has
	// joined needs none.
	if c, err := LoadCredentials(cfg.DataDir); err != nil || c.NodeName != cfg.NodeName || c.Server != cfg.Server {
		if _, err := readToken(cfg.TokenFile); err != nil {
			return err
		}
	}
	rt, err := a.wasmRuntime(ctx)
	if err != nil {
		return err
	}
	if d, ok := rt.(runtime.Detached); ok {
		defer d.Detach() // the guests go on in their host
	} else {
		defer rt.Close(context.Background())
	}
	mc, err := NewModuleCache(filepath.Join(cfg.DataDir, "modules"), nil, nil, cfg.AllowFileModules)
	if err != nil {
		return err
	}
	api := newDetachedAPIClient(cfg.NodeName)
	static := &StaticPods{Dir: cfg.ManifestsDir(), Node: cfg.NodeName, Interval: cfg.FileCheckFrequency, Log: log}
	// The pod source's NATS settings are filled in once joined, before it runs.
	src := &PodSource{API: api, Log: log}
	mirrors := &MirrorPods{API: api, Static: static.Snapshot, Log: log}
	imagesReady := make(chan struct{})
	pods := &Pods{API: api, Runtime: rt, Modules: mc, Dir: filepath.Join(cfg.DataDir, "pods"), Config: cfg, Log: log, StaticStatus: mirrors.SetStatus,
		ImagesReady: imagesReady, HostIPs: HostIPs(internalIPs())}
	a.pods.Store(pods)
	// The runc runtime is opened in the background (in process, it takes
	// a gRPC connection and a clean-up of what a crashed agent left, 100 ms
	// and more, up to its timeout when it hangs): wasm pods start
	// meanwhile; runc pods wait for it (Pods.ImagesReady), and so does the
	// Node's status, which lists the runtimes.
	if cfg.ContainerdAddress == "" {
		pods.ImagesErr = errors.New("containerd-address is empty")
		close(imagesReady)
	} else {
		go func(ctx context.Context) {
			defer close(imagesReady)
			images, err := a.images(ctx, cfg, log)
			if err != nil {
				pods.ImagesErr = err
				if ctx.Err() == nil {
					log.Warn("runc unavailable: pods of runtime class runc will not run here", "address", cfg.ContainerdAddress, "err", err)
				}
				return
			}
			pods.Images = images
		}(ctx)
	}
	defer func() {
		<-imagesReady
		if pods.Images == nil {
			return
		}
		// The containers go on in containerd, as they do when a kubelet
		// or k3s stops.
		if err := pods.Images.Detach(); err != nil {
			log.Warn("detach the runc runtime", "err", err)
		}
	}()

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return static.Run(ctx) })
	g.Go(func() error {
		defer pods.Wait()
		saved := filepath.Join(cfg.DataDir, podsFile)
		var apiPods []*corev1.Pod
		syncPods := func() { pods.Sync(ctx, append(slices.Clone(apiPods), static.Snapshot()...)) }
		// The static pods are known before the first Sync (static.Run
		// scans again).
		static.Scan()
		_, staticErr := os.ReadDir(static.Dir)
		// The first pods start while the others are still being decoded:
		// each Sync adds pods, none goes away.
		apiPods, err := loadPods(saved, func(known []*corev1.Pod) {
			apiPods = known
			syncPods()
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("pods known from the last run unreadable", "err", err, "read", len(apiPods))
		}
		if len(apiPods) > 0 {
			log.Info("starting the pods known from the last run", "count", len(apiPods))
		}
		// pods.json is written behind the pod workers' backs, so that a
		// pod starts without waiting for a file of every pod on the node.
		save := newPodsWriter(saved, log)
		defer save.stop()
		syncPods()
		// Static pods whose manifests went while the agent was away stop
		// now, not once the API is reached; unless the manifests could not
		// be read.
		if staticErr == nil || errors.Is(staticErr, os.ErrNotExist) {
			go pods.RemoveStaticOrphans(ctx)
		}
		orphansRemoved := false
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-static.Changed():
				syncPods()
				mirrors.Kick()
			case <-src.Changed():
				snap, synced := src.Snapshot() // only read, here and by the pods' consumers
				if !synced {
					continue
				}
				mirrors.Observe(slices.Clone(snap))
				// Mirror pods are the static pods' reflection, not pods to run.
				apiPods = slices.DeleteFunc(snap, IsMirrorPod)
				syncPods()
				save.save(apiPods)
				if !orphansRemoved {
					// The node's whole set is known now: containers the
					// guest host and containerd kept for pods deleted
					// meanwhile go. (The runc runtime may still be opening.)
					orphansRemoved = true
					go pods.RemoveOrphans(ctx)
				}
			}
		}
	})
	var nc *nats.Conn
	g.Go(func() error {
		creds, err := joinRetry(ctx, cfg, log)
		if err != nil {
			return nil // ctx ended
		}
		nc, err = nats.Connect(creds.NATSURL, nats.UserInfo(creds.NATSUser, creds.NATSPassword),
			nats.CustomInboxPrefix(creds.NATSInboxPrefix), nats.Name("wasmfleet-agent-"+cfg.NodeName),
			nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		if err := api.attach(nc); err != nil {
			return err
		}
		select {
		case <-imagesReady:
		case <-ctx.Done():
			return nil
		}
		infos := []runtime.Info{rt.Info()}
		if pods.Images != nil {
			infos = append(infos, pods.Images.Info())
		}
		log.Info("agent runtimes", "node", cfg.NodeName, "runtimes", infos)
		hb := &Heartbeat{
			API: api, LeaseDuration: cfg.LeaseDuration, RenewInterval: cfg.LeaseRenewInterval, Log: log,
			Node: func(now time.Time) (*corev1.Node, error) {
				return BuildNode(cfg, ReadSystemInfo(), infos, now)
			},
		}
		src.JS, src.Stream, src.Consumer, src.Filter = js, creds.Stream, creds.ConsumerName, creds.FilterSubject
		podLogs := &PodLogs{Dir: pods.Dir, Pod: snapshotPod(src)}
		logSrv, err := nodelink.NewLogServer(nodelink.LogServerConfig{Conn: nc, Node: cfg.NodeName, Open: podLogs.Open, Logger: log})
		if err != nil {
			return err
		}
		a.logs.Store(logSrv)
		g.Go(func() error { return hb.Run(ctx) })
		g.Go(func() error { return src.Run(ctx) })
		g.Go(func() error { return bindModules(ctx, js, mc, log) })
		g.Go(func() error { return logSrv.Run(ctx) })
		g.Go(func() error { return mirrors.Run(ctx) })
		log.Info("agent connecting", "node", cfg.NodeName, "nats", creds.NATSURL)
		return nil
	})
	log.Info("agent running", "node", cfg.NodeName, "manifests", static.Dir, "containerd", cfg.ContainerdAddress)
	err = g.Wait()
	if nc != nil {
		nc.Close()
	}
	return err
}

// wasmRuntime opens the runtime of the wasm pods: the guest host when
// Config.GuestHost asks for it and a command runs it, else wazero in this
// process.
func (a *Agent) wasmRuntime(ctx context.Context) (runtime.Runtime, error) {
	cfg := a.cfg
	wcfg := wasm.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), DefaultMemoryLimit: quantity(cfg.DefaultMemoryLimit, 0)}
	if cfg.GuestHost && len(cfg.GuestHostCommand) > 0 {
		return wasmhost.NewHost(wasmhost.HostConfig{Command: cfg.GuestHostCommand, Config: wasmhost.Config{Dir: cfg.DataDir, Wasm: wcfg}, Log: a.log}), nil
	}
	return wasm.New(ctx, wcfg)
}

// RunningContainers is the number of containers the agent runs now (0
// before Run).
func (a *Agent) RunningContainers() int {
	if p := a.pods.Load(); p != nil {
		return p.Running()
	}
	return 0
}

// joinBackOffMax bounds the wait between two join attempts.
const joinBackOffMax = 30 * time.Second

// joinRetry returns the stored credentials, or joins, retrying every
// failure (control plane unreachable, token refused) with a back-off from
// 1s to joinBackOffMax until ctx ends: an edge device may boot long before
// its link first works. Each attempt reads the token file again, so a
// corrected token is taken in.
func joinRetry(ctx context.Context, cfg Config, log *slog.Logger) (*Credentials, error) {
	wait := time.Second
	token := func() (string, error) { return readToken(cfg.TokenFile) }
	for {
		creds, err := JoinOrLoad(ctx, cfg.Server, token, cfg.NodeName, cfg.DataDir)
		if err == nil {
			return creds, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Warn("join failed; static pods run meanwhile", "server", cfg.Server, "err", err, "retry in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, joinBackOffMax)
	}
}

// bindModules attaches the module cache to the cluster's module store,
// retrying while the link is down.
func bindModules(ctx context.Context, js jetstream.JetStream, mc *ModuleCache, log *slog.Logger) error {
	for {
		store, err := modules.Bind(ctx, js, modules.Options{})
		if err == nil {
			mc.SetStore(store)
			return nil
		}
		log.Debug("module store not reachable yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// loadPods reads the pods pods.json lists, one at a time, and hands the
// pods read so far to early (nil: not called) after the 1st, 2nd, 4th, 8th…
// pod: an agent restarting with hundreds of pods starts the first ones
// (and loads their module) while it decodes the others. early's slice is
// only read. On an error it returns the pods read before it (a file cut
// short still gives those), with the error.
func loadPods(path string, early func([]*corev1.Pod)) ([]*corev1.Pod, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	if tok, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	} else if tok == nil { // null: written from an empty list
		return nil, nil
	} else if tok != json.Delim('[') {
		return nil, fmt.Errorf("%s: want a JSON array of pods", path)
	}
	var pods []*corev1.Pod
	next := 1
	for dec.More() {
		var pod corev1.Pod
		if err := dec.Decode(&pod); err != nil {
			return pods, fmt.Errorf("%s: pod %d: %w", path, len(pods), err)
		}
		pods = append(pods, &pod)
		if early != nil && len(pods) == next {
			early(pods)
			next *= 2
		}
	}
	if _, err := dec.Token(); err != nil {
		return pods, fmt.Errorf("%s: %w", path, err)
	}
	return pods, nil
}

// podsWriteEvery bounds how often a podsWriter writes pods.json.
const podsWriteEvery = 100 * time.Millisecond

// podsWriter writes pods.json in the background: the newest list handed to
// save replaces one not written yet, and writes are at least
// podsWriteEvery apart, so a burst of pod changes costs a few writes of the
// whole list, not one per change. stop writes what is pending and waits.
// (Each pod's worker keeps the state of its containers itself, see
// podstate.go; pods.json only lists the pods.)
type podsWriter struct {
	path    string
	log     *slog.Logger
	pending chan []*corev1.Pod // capacity 1: the newest list wins
	done    chan struct{}      // closed by stop
	stopped chan struct{}      // closed when run returns
}

// newPodsWriter starts a writer of path (log nil: errors are not logged).
func newPodsWriter(path string, log *slog.Logger) *podsWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &podsWriter{path: path, log: log, pending: make(chan []*corev1.Pod, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// save hands over pods (only read, later) to be written. Not safe for
// concurrent use: one goroutine saves and stops.
func (w *podsWriter) save(pods []*corev1.Pod) {
	select { // replace an unwritten list with the newer one
	case <-w.pending:
	default:
	}
	w.pending <- pods
}

// stop writes the pending list, if any, and waits for the writer.
func (w *podsWriter) stop() {
	close(w.done)
	<-w.stopped
}

func (w *podsWriter) run() {
	defer close(w.stopped)
	write := func(pods []*corev1.Pod) {
		if err := savePods(w.path, pods); err != nil {
			w.log.Warn("save pods", "err", err)
		}
	}
	for {
		select {
		case pods := <-w.pending:
			write(pods)
		case <-w.done:
			select {
			case pods := <-w.pending:
				write(pods)
			default:
			}
			return
		}
		select {
		case <-time.After(podsWriteEvery):
		case <-w.done:
		}
	}
}

func savePods(path string, pods []*corev1.Pod) error {
	b, err := json.Marshal(pods)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
