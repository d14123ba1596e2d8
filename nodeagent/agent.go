package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// podsFile keeps the node's pods on disk, so an agent restarted while the
// control plane is unreachable starts them again (edge autonomy).
const podsFile = "pods.json"

// Agent is a node agent. Run it once.
type Agent struct {
	cfg Config
	log *slog.Logger
	// logs serves kubectl logs; set by Run (see LogStreams).
	logs atomic.Pointer[nodelink.LogServer]
}

// NewAgent checks cfg and returns an agent ready to Run.
func NewAgent(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: log}, nil
}

// Run joins (or reuses the stored credentials), connects to NATS and runs
// the heartbeat, the pod source, the pod workers and the log server
// (kubectl logs) until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	token, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	creds, err := JoinOrLoad(ctx, cfg.Server, string(token), cfg.NodeName, cfg.DataDir)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(creds.NATSURL, nats.UserInfo(creds.NATSUser, creds.NATSPassword),
		nats.CustomInboxPrefix(creds.NATSInboxPrefix), nats.Name("wasmfleet-agent-"+cfg.NodeName),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	api, err := NewAPIClient(nc, cfg.NodeName)
	if err != nil {
		return err
	}
	rt, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"), DefaultMemoryLimit: quantity(cfg.DefaultMemoryLimit, 0)})
	if err != nil {
		return err
	}
	defer rt.Close(context.Background())
	mc, err := NewModuleCache(filepath.Join(cfg.DataDir, "modules"), nil, nil, cfg.AllowFileModules)
	if err != nil {
		return err
	}
	hb := &Heartbeat{
		API: api, LeaseDuration: cfg.LeaseDuration, RenewInterval: cfg.LeaseRenewInterval, Log: log,
		Node: func(now time.Time) (*corev1.Node, error) {
			return BuildNode(cfg, ReadSystemInfo(), []runtime.Info{rt.Info()}, now)
		},
	}
	src := &PodSource{API: api, JS: js, Stream: creds.Stream, Consumer: creds.ConsumerName, Filter: creds.FilterSubject, Log: log}
	pods := &Pods{API: api, Runtime: rt, Modules: mc, Dir: filepath.Join(cfg.DataDir, "pods"), Config: cfg, Log: log}
	podLogs := &PodLogs{Dir: pods.Dir, Pod: snapshotPod(src)}
	logSrv, err := nodelink.NewLogServer(nodelink.LogServerConfig{Conn: nc, Node: cfg.NodeName, Open: podLogs.Open, Logger: log})
	if err != nil {
		return err
	}
	a.logs.Store(logSrv)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return hb.Run(ctx) })
	g.Go(func() error { return src.Run(ctx) })
	g.Go(func() error { return bindModules(ctx, js, mc, log) })
	g.Go(func() error { return logSrv.Run(ctx) })
	g.Go(func() error {
		defer pods.Wait()
		saved := filepath.Join(cfg.DataDir, podsFile)
		if known, err := loadPods(saved); err == nil && len(known) > 0 {
			log.Info("starting the pods known from the last run", "count", len(known))
			pods.Sync(ctx, known)
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-src.Changed():
				snap, synced := src.Snapshot()
				if !synced {
					continue
				}
				pods.Sync(ctx, snap)
				if err := savePods(saved, snap); err != nil {
					log.Warn("save pods", "err", err)
				}
			}
		}
	})
	log.Info("agent running", "node", cfg.NodeName, "nats", creds.NATSURL, "runtime", rt.Info().Version)
	return g.Wait()
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

func loadPods(path string) ([]*corev1.Pod, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pods []*corev1.Pod
	return pods, json.Unmarshal(b, &pods)
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
