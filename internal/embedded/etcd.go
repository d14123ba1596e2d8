// Package embedded starts the control plane's in-process dependencies: a
// single-member etcd (go.etcd.io/etcd/server/v3/embed) and a NATS server with
// JetStream (nats-server/v2). It owns their configuration and shutdown; it
// knows nothing of Kubernetes objects.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EtcdConfig configures an embedded single-member etcd.
type EtcdConfig struct {
	// Dir holds etcd's data (member/ wal and snap).
	Dir string
	// ClientListen and PeerListen are host:port addresses on which etcd
	// listens (for example 127.0.0.1:2379 and 127.0.0.1:2380).
	ClientListen string
	PeerListen   string
	// UnsafeNoFsync skips fsync: faster and unsafe on power loss. Only for
	// tests and throw-away clusters.
	UnsafeNoFsync bool
	// Logger receives the logs of etcd and of its Client; nil discards
	// them.
	Logger *zap.Logger
}

// Etcd is a running embedded etcd. Close stops it.
type Etcd struct {
	e       *embed.Etcd
	lg      *zap.Logger
	closing *atomic.Bool
	// Endpoint is the client URL other processes can dial.
	Endpoint string
}

// StartEtcd starts etcd and waits until it serves requests or ctx ends.
func StartEtcd(ctx context.Context, c EtcdConfig) (*Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "wasmfleet"
	cfg.Dir = c.Dir
	cu, err := url.Parse("http://" + c.ClientListen)
	if err != nil {
		return nil, fmt.Errorf("etcd client listen %q: %w", c.ClientListen, err)
	}
	pu, err := url.Parse("http://" + c.PeerListen)
	if err != nil {
		return nil, fmt.Errorf("etcd peer listen %q: %w", c.PeerListen, err)
	}
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = c.UnsafeNoFsync
	// The apiserver compacts on its own schedule, behind the event publisher.
	cfg.AutoCompactionRetention = "0"
	// etcd keeps the raft log in memory since its last snapshot (one each
	// SnapshotCount entries) and SnapshotCatchUpEntries more for slow
	// followers, which a single member has none of: by default up to
	// 15,000 entries, each a whole object, 20–30 MB of a heap whose GC
	// headroom is bounded (gctune). A snapshot each 2,500 entries keeping
	// 500 took 8–12 MB off the live heap while pods were created, and GC
	// work with it (BENCHMARKS.md).
	cfg.SnapshotCount = 2500
	cfg.SnapshotCatchUpEntries = 500
	lg := c.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	// etcd logs the end of each of its listeners as an error when it
	// closes; Close silences it first.
	closing := new(atomic.Bool)
	lg = lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietCore{c, closing} }))
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	etcd := &Etcd{e: e, lg: lg, closing: closing, Endpoint: cu.String()}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		etcd.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(time.Minute):
		etcd.Close()
		return nil, errors.New("embedded etcd: not ready after 1m")
	case <-ctx.Done():
		etcd.Close()
		return nil, ctx.Err()
	}
	return etcd, nil
}

// Client returns a client of the embedded etcd; the caller closes it.
// Watches, leases and maintenance go over the loopback client URL: etcd's
// in-process v3client multiplexes every watch over one channel-based
// stream, and a canceled watch could stall all the others (the API
// server's watches then stopped delivering). Reads and writes (KV) call
// the server in process, as v3client does, which spares each of them the
// gRPC encoding and the round trip through the loopback.
func (e *Etcd) Client() (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 10 * time.Second, Logger: e.lg})
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client: %w", err)
	}
	c.KV = clientv3.NewKVFromKVClient(e.KV(), c)
	return c, nil
}

// KV returns a client of etcd's KV service that calls the server in
// process.
func (e *Etcd) KV() pb.KVClient {
	return adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(e.e.Server))
}

// LocalWatcher returns a Watcher of c that calls the server in process:
// events reach it without gRPC encoding and the loopback round trip. Give
// it one long-lived watch of its own, as the event publisher's: the
// in-process stream is unbuffered, and many watches created and canceled
// on it can stall them all (see Client). The caller closes it.
func (e *Etcd) LocalWatcher(c *clientv3.Client) clientv3.Watcher {
	return clientv3.NewWatchFromWatchClient(adapter.WatchServerToWatchClient(v3rpc.NewWatchServer(e.e.Server)), c)
}

// Err reports a fatal etcd error; it is never closed on a clean stop.
func (e *Etcd) Err() <-chan error { return e.e.Err() }

// Close stops etcd and waits for it.
func (e *Etcd) Close() {
	e.closing.Store(true)
	e.e.Close()
}

// quietCore drops every entry once closing is set.
type quietCore struct {
	zapcore.Core
	closing *atomic.Bool
}

func (q quietCore) With(fields []zapcore.Field) zapcore.Core {
	return quietCore{q.Core.With(fields), q.closing}
}

func (q quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if q.closing.Load() {
		return ce
	}
	return q.Core.Check(e, ce)
}
