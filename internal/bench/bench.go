// Package bench is `wasmfleet bench controlplane`: one run that starts a
// control plane as a child process (`wasmfleet server`, fsync on, free
// loopback ports, a temporary data dir) and measures, against it,
//
//   - create throughput of raw etcd transactions (the API server's create
//     transaction, pod-sized values) and of pods created through the API
//     with client-go, at 1 and 32 concurrent clients;
//   - the latency from an etcd commit to its event on NATS, and a raw
//     JetStream publish → receive baseline;
//   - the server's resident memory idle and with the pods created;
//   - the wall time of an unpaginated LIST of those pods.
//
// Run returns a Result; Result.Markdown renders the report. Run owns the
// child: it is stopped (SIGTERM, then SIGKILL) when Run returns, on error
// and on cancellation too, and every goroutine Run starts has ended by
// then.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/events"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
)

// Options configure a run. Zero values mean the defaults of Defaults.
type Options struct {
	// Binary is the wasmfleet executable started as `Binary server`
	// ("": this process's executable).
	Binary string
	// Pods is how many pods exist after the API phases: the memory and
	// LIST measurements are taken with this many pods.
	Pods int
	// Creates is the number of creates of each single-client phase (raw
	// etcd, API with client-go, API with plain HTTPS; default
	// min(2000, Pods/5)). The five 32-client API phases (shared
	// clientset, 32 clientsets, plain HTTPS over one HTTP/2 connection,
	// over a connection each speaking HTTP/2 and speaking HTTP/1.1)
	// create the rest of Pods, a fifth each; the 32-client raw etcd phase
	// does as many transactions as one of them.
	Creates int
	// Clients is the concurrency of the concurrent phases (32).
	Clients int
	// Rounds is how many rounds the create phases run in (default 4):
	// each round runs a share of every phase, raw etcd and API alike, so
	// that a slow or fast spell of a shared machine weighs on all of them
	// and not on whichever phase it fell in.
	Rounds int
	// EventSamples is the number of latency samples per latency
	// measurement (after 20 unrecorded warm-up samples).
	EventSamples int
	// EventPace is the pause between latency samples.
	EventPace time.Duration
	// ListRuns is how many times the pods are listed over plain HTTPS;
	// ClientListRuns how many times with client-go (decoding included).
	ListRuns, ClientListRuns int
	// IdleSettle is how long the server idles after /readyz before its
	// idle memory is read; LoadedSettle how long after the last create
	// before its loaded memory is read.
	IdleSettle, LoadedSettle time.Duration
	// TempDir is where the run's directory (server data and log) is made
	// ("": os.TempDir()). The directory is removed afterwards unless
	// KeepData.
	TempDir  string
	KeepData bool
	// Progress receives one line per step (nil: discarded).
	Progress io.Writer
}

// Defaults returns the options of `wasmfleet bench controlplane`.
func Defaults() Options {
	return Options{
		Pods:           10000,
		Creates:        2000,
		Clients:        32,
		Rounds:         4,
		EventSamples:   1000,
		EventPace:      2 * time.Millisecond,
		ListRuns:       10,
		ClientListRuns: 3,
		IdleSettle:     5 * time.Second,
		LoadedSettle:   5 * time.Second,
	}
}

func (o Options) withDefaults() Options {
	d := Defaults()
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&o.Pods, d.Pods)
	set(&o.Creates, min(d.Creates, max(1, o.Pods/5)))
	set(&o.Clients, d.Clients)
	set(&o.Rounds, min(d.Rounds, o.Creates))
	set(&o.EventSamples, d.EventSamples)
	set(&o.ListRuns, d.ListRuns)
	set(&o.ClientListRuns, d.ClientListRuns)
	if o.EventPace == 0 {
		o.EventPace = d.EventPace
	}
	if o.IdleSettle == 0 {
		o.IdleSettle = d.IdleSettle
	}
	if o.LoadedSettle == 0 {
		o.LoadedSettle = d.LoadedSettle
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Validate reports options that cannot run.
func (o Options) Validate() error {
	var errs []error
	if o.Pods < 0 || o.Creates < 0 || o.Clients < 0 || o.Rounds < 0 || o.EventSamples < 0 || o.ListRuns < 0 || o.ClientListRuns < 0 {
		errs = append(errs, errors.New("counts must not be negative"))
	}
	if o.Pods != 0 && o.Creates != 0 && o.Pods < 2*o.Creates+5 {
		errs = append(errs, fmt.Errorf("--pods (%d) must exceed twice --creates (%d) by at least 5: the 32-client phases create the rest", o.Pods, o.Creates))
	}
	if o.Rounds != 0 && o.Creates != 0 && o.Rounds > o.Creates {
		errs = append(errs, fmt.Errorf("--rounds (%d) must not exceed --creates (%d)", o.Rounds, o.Creates))
	}
	if o.Pods > 1_000_000 || o.Creates > 1_000_000 || o.EventSamples > 100_000 || o.Clients > 1024 || o.Rounds > 100 || o.ListRuns > 1000 || o.ClientListRuns > 1000 {
		errs = append(errs, errors.New("counts are capped (pods and creates 1,000,000, event samples 100,000, clients 1024, rounds 100, list runs 1000) to keep a run bounded"))
	}
	return errors.Join(errs...)
}

// Result holds every measurement of a run.
type Result struct {
	Options Options
	Machine Machine
	Started time.Time
	Elapsed time.Duration

	// PodBytes is the size of a pod as stored in etcd (JSON).
	PodBytes int

	// API1 and API32Shared create with client-go (one clientset),
	// API32Separate with a clientset per client; API1Plain and API32Plain
	// POST a pre-encoded pod over the shared clientset's HTTP/2
	// connection, as thin a client as the raw etcd phases' (see
	// plainCreates), API32PlainH1 and API32PlainH2 over a connection per
	// client that speaks HTTP/1.1 or HTTP/2 (see connCreates).
	API1, API32Shared, API32Separate phaseResult
	API1Plain, API32Plain            phaseResult
	API32PlainH1, API32PlainH2       phaseResult
	Raw1, Raw32                      phaseResult

	IdleMem, LoadedMem memInfo
	// PodsStored is the number of pods in etcd when LoadedMem was read.
	PodsStored int64

	// ListHTTP are the wall times of GET .../pods (whole JSON body read);
	// ListBytes the body's size. ListClient are client-go List calls.
	ListHTTP   []time.Duration
	ListBytes  int
	ListClient []time.Duration

	EtcdToNATS, APIToNATS, NATSBaseline LatencyResult

	// LoadBefore is /proc/loadavg before the server started. OtherCPU is
	// the CPU time used by everything but the server and this process
	// during the run, Steal the time the hypervisor took: either skews
	// the numbers.
	LoadBefore      string
	OtherCPU, Steal time.Duration
}

// Run performs the benchmark; see the package comment.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ss, err := newSession(o.Binary, o.TempDir, "wasmfleet-bench-", o.KeepData, o.Progress)
	if err != nil {
		return nil, err
	}
	defer ss.done()
	o.Binary = ss.binary
	dir, step := ss.dir, ss.step
	res := &Result{Options: o, Started: ss.started, Machine: ss.machine, LoadBefore: loadAvg()}
	step("starting %s server (fsync on) in %s", o.Binary, dir)
	c, err := startChild(ctx, o.Binary, dir, 90*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	r := &runner{o: o, c: c, res: res, step: step, m: &meter{pid: c.pid()}}
	before := r.m.sample()
	if err := r.run(ctx); err != nil {
		if c.exited() {
			err = fmt.Errorf("%w (the server exited: %v)\n--- last lines of %s ---\n%s", err, c.waitErr, c.logPath, c.logTail(20))
		}
		return nil, err
	}
	if c.exited() {
		return nil, fmt.Errorf("the server exited during the run: %v\n--- last lines of %s ---\n%s", c.waitErr, c.logPath, c.logTail(20))
	}
	after := r.m.sample()
	res.Elapsed = time.Since(res.Started)
	res.OtherCPU, res.Steal = after.other(before)
	step("done")
	return res, nil
}

// runner holds the clients of one run.
type runner struct {
	o    Options
	c    *child
	res  *Result
	m    *meter
	step func(string, ...any)

	rest *rest.Config
	hc   *http.Client // the shared clientset's
	cs   *kubernetes.Clientset
	etcd *clientv3.Client
}

func (r *runner) run(ctx context.Context) error {
	o, res, step := r.o, r.res, r.step
	var err error
	if r.rest, err = clientcmd.BuildConfigFromFlags("", r.c.kubeconfig); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	r.rest.QPS, r.rest.Burst = -1, 0
	r.rest.Timeout = 30 * time.Second
	if r.hc, err = rest.HTTPClientFor(r.rest); err != nil {
		return err
	}
	defer r.hc.CloseIdleConnections()
	if r.cs, err = kubernetes.NewForConfigAndClient(r.rest, r.hc); err != nil {
		return err
	}
	r.etcd, err = clientv3.New(clientv3.Config{Endpoints: []string{r.c.etcdURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer r.etcd.Close()

	// 1. Idle memory.
	step("letting the idle server settle for %v", o.IdleSettle)
	if err := sleep(ctx, o.IdleSettle); err != nil {
		return err
	}
	if res.IdleMem, err = readMem(r.c.pid()); err != nil {
		return err
	}
	step("idle RSS %s", mb(res.IdleMem.RSS))

	if _, err := r.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}

	// 2. Creates: raw etcd and the API, in rounds.
	if err := r.creates(ctx); err != nil {
		return err
	}

	// 3. Memory with the pods.
	step("letting the loaded server settle for %v", o.LoadedSettle)
	if err := sleep(ctx, o.LoadedSettle); err != nil {
		return err
	}
	if res.LoadedMem, err = readMem(r.c.pid()); err != nil {
		return err
	}
	cnt, err := r.etcd.Get(ctx, "/registry/pods/"+Namespace+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("count pods: %w", err)
	}
	res.PodsStored = cnt.Count
	step("RSS with %d pods: %s", res.PodsStored, mb(res.LoadedMem.RSS))

	// 4. LIST.
	if err := r.list(ctx); err != nil {
		return err
	}

	// 5. Event latency.
	return r.latencies(ctx)
}

// apiCreates creates total pods named <prefix>-<i> with clients workers.
func (r *runner) apiCreates(ctx context.Context, prefix string, clients, total int, separate bool) (phaseResult, error) {
	clientsets := []*kubernetes.Clientset{r.cs}
	if separate {
		clientsets = nil
		for range min(clients, total) {
			cfg := rest.CopyConfig(r.rest)
			// A Proxy func makes client-go's transport uncacheable: each
			// clientset gets its own transport and connection.
			cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
			hc, err := rest.HTTPClientFor(cfg)
			if err != nil {
				return phaseResult{}, err
			}
			defer hc.CloseIdleConnections()
			cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
			if err != nil {
				return phaseResult{}, err
			}
			clientsets = append(clientsets, cs)
		}
	}
	// Connect (TCP, TLS, HTTP/2) before the clock starts.
	for _, cs := range clientsets {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, Namespace, metav1.GetOptions{}); err != nil {
			return phaseResult{}, fmt.Errorf("warm up: %w", err)
		}
	}
	return r.apiPhase(ctx, clients, total, func(ctx context.Context, w, i int) error {
		cs := clientsets[w%len(clientsets)]
		_, err := cs.CoreV1().Pods(Namespace).Create(ctx, benchPod(fmt.Sprintf("%s-%06d", prefix, i)), metav1.CreateOptions{})
		return err
	})
}

// plainCreates creates total pods named <prefix>-<i> with clients workers
// that POST the JSON of benchPod (see plainCreator) over the shared
// clientset's HTTP/2 connection. This is the API's counterpart of the raw
// etcd phases, whose client also sends a pre-encoded pod: it measures the
// server, where client-go adds its own encoding and decoding on this
// machine's CPUs.
func (r *runner) plainCreates(ctx context.Context, prefix string, clients, total int) (phaseResult, error) {
	pc, err := newPlainCreator(r.hc, r.rest.Host)
	if err != nil {
		return phaseResult{}, err
	}
	return r.apiPhase(ctx, clients, total, func(ctx context.Context, _, i int) error {
		return pc.create(ctx, fmt.Sprintf("%s-%06d", prefix, i))
	})
}

// connCreates is plainCreates with a client per worker, each with its
// own connection: 32 clients as 32 devices, controllers or kubectl runs
// would be, one request at a time on a kept-alive connection. With
// http2 false they speak HTTP/1.1, as curl or Python's requests do, with
// true HTTP/2, as Go's clients and kubectl do; either way multiplexing
// has nothing to do.
func (r *runner) connCreates(http2 bool) func(ctx context.Context, prefix string, clients, total int) (phaseResult, error) {
	return func(ctx context.Context, prefix string, clients, total int) (phaseResult, error) {
		pcs := make([]*plainCreator, max(1, min(clients, total)))
		for w := range pcs {
			pc, closeIdle, err := newConnCreator(r.rest, http2)
			if err != nil {
				return phaseResult{}, err
			}
			defer closeIdle()
			// Connect (TCP, TLS) before the clock starts.
			proto, err := pc.get(ctx, "/api/v1/namespaces/"+Namespace)
			if err != nil {
				return phaseResult{}, fmt.Errorf("warm up: %w", err)
			}
			want := "HTTP/1.1"
			if http2 {
				want = "HTTP/2.0"
			}
			if proto != want {
				return phaseResult{}, fmt.Errorf("warm up: answered in %s, not %s", proto, want)
			}
			pcs[w] = pc
		}
		return r.apiPhase(ctx, clients, total, func(ctx context.Context, w, i int) error {
			return pcs[w].create(ctx, fmt.Sprintf("%s-%06d", prefix, i))
		})
	}
}

// plainCreator creates benchPods with their JSON encoded once and the name
// spliced in, and reads the JSON answer without decoding it.
type plainCreator struct {
	hc   *http.Client
	host string
	tmpl []byte
}

const plainPlaceholder = "plain-template-000000"

func newPlainCreator(hc *http.Client, host string) (*plainCreator, error) {
	tmpl, err := json.Marshal(benchPod(plainPlaceholder))
	if err != nil {
		return nil, err
	}
	return &plainCreator{hc: hc, host: host, tmpl: tmpl}, nil
}

// newConnCreator returns a plainCreator with a transport of its own,
// hence a connection of its own, that speaks HTTP/2 or HTTP/1.1, and a
// func that closes its idle connection.
func newConnCreator(rc *rest.Config, http2 bool) (*plainCreator, func(), error) {
	tc, err := rest.TLSConfigFor(rc)
	if err != nil {
		return nil, nil, err
	}
	var protos http.Protocols
	protos.SetHTTP1(!http2)
	protos.SetHTTP2(http2)
	tr := &http.Transport{TLSClientConfig: tc, Protocols: &protos}
	rt, err := rest.HTTPWrappersForConfig(rc, tr)
	if err != nil {
		return nil, nil, err
	}
	pc, err := newPlainCreator(&http.Client{Transport: rt}, rc.Host)
	return pc, tr.CloseIdleConnections, err
}

// get GETs path and reads the answer, which must be 200, and returns its
// protocol.
func (pc *plainCreator) get(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pc.host+path, nil)
	if err != nil {
		return "", err
	}
	return pc.do(req, http.StatusOK)
}

func (pc *plainCreator) create(ctx context.Context, name string) error {
	body := bytes.Replace(pc.tmpl, []byte(plainPlaceholder), []byte(name), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pc.host+"/api/v1/namespaces/"+Namespace+"/pods", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = pc.do(req, http.StatusCreated)
	return err
}

// do sends req asking for JSON and reads the whole answer, which must
// have status want, and returns the answer's protocol.
func (pc *plainCreator) do(req *http.Request, want int) (string, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := pc.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != want {
		return "", fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return resp.Proto, nil
}

// apiPhase runs create as runPhase does and adds what the server's metrics
// say about it.
func (r *runner) apiPhase(ctx context.Context, clients, total int, create func(ctx context.Context, w, i int) error) (phaseResult, error) {
	before, err := scrape(ctx, r.hc, r.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return phaseResult{}, err
	}
	res, err := runPhase(ctx, r.m, clients, total, create)
	if err != nil {
		return res, err
	}
	after, err := scrape(ctx, r.hc, r.rest.Host, metricRequest, metricEtcd)
	if err != nil {
		return res, err
	}
	res.serverSums = after.sub(before)
	return res, nil
}

// creates runs the create phases: first the single-client ones (API with
// client-go, API with plain HTTPS, raw etcd), then the concurrent ones
// (API with one shared clientset, with a clientset per client, with plain
// HTTPS over one HTTP/2 connection, over a connection each speaking HTTP/2
// and speaking HTTP/1.1, raw etcd). Each group runs in o.Rounds rounds, every round a
// share of each of its phases, and each phase's result sums its rounds.
func (r *runner) creates(ctx context.Context) error {
	o, res, step := r.o, r.res, r.step
	rest32 := (o.Pods - 2*o.Creates) / 5
	type phase struct {
		what         string
		into         *phaseResult
		clients, ops int
		run          func(ctx context.Context, prefix string, clients, n int) (phaseResult, error)
		prefix       string
	}
	clientGo := func(separate bool) func(context.Context, string, int, int) (phaseResult, error) {
		return func(ctx context.Context, prefix string, clients, n int) (phaseResult, error) {
			return r.apiCreates(ctx, prefix, clients, n, separate)
		}
	}
	groups := [][]phase{{
		{what: "API, 1 client (client-go)", into: &res.API1, clients: 1, ops: o.Creates, run: clientGo(false), prefix: "p1"},
		{what: "API, 1 plain HTTPS client", into: &res.API1Plain, clients: 1, ops: o.Creates, run: r.plainCreates, prefix: "h1"},
		{what: "raw etcd, 1 client", into: &res.Raw1, clients: 1, ops: o.Creates, run: r.rawCreates, prefix: "r1"},
	}, {
		{what: fmt.Sprintf("API, %d clients sharing one clientset", o.Clients), into: &res.API32Shared, clients: o.Clients, ops: rest32, run: clientGo(false), prefix: "ps"},
		{what: fmt.Sprintf("API, %d separate clientsets", o.Clients), into: &res.API32Separate, clients: o.Clients, ops: rest32, run: clientGo(true), prefix: "pm"},
		{what: fmt.Sprintf("API, %d plain HTTPS clients", o.Clients), into: &res.API32Plain, clients: o.Clients, ops: rest32, run: r.plainCreates, prefix: "hs"},
		{what: fmt.Sprintf("API, %d plain HTTPS clients, a connection each (HTTP/2)", o.Clients), into: &res.API32PlainH2, clients: o.Clients, ops: rest32, run: r.connCreates(true), prefix: "hh"},
		{what: fmt.Sprintf("API, %d plain HTTPS clients, a connection each (HTTP/1.1)", o.Clients), into: &res.API32PlainH1, clients: o.Clients, ops: o.Pods - 2*o.Creates - 4*rest32, run: r.connCreates(false), prefix: "hc"},
		{what: fmt.Sprintf("raw etcd, %d clients", o.Clients), into: &res.Raw32, clients: o.Clients, ops: rest32, run: r.rawCreates, prefix: "r32"},
	}}
	for _, g := range groups {
		for round := range o.Rounds {
			for _, p := range g {
				// This round's share: the ops split as evenly as they go.
				n := p.ops*(round+1)/o.Rounds - p.ops*round/o.Rounds
				step("round %d of %d: %s: %d creates", round+1, o.Rounds, p.what, n)
				got, err := p.run(ctx, fmt.Sprintf("%s-%d", p.prefix, round), p.clients, n)
				if err != nil {
					return fmt.Errorf("%s: %w", p.what, err)
				}
				p.into.add(got)
			}
		}
		for _, p := range g {
			p.into.finish()
			step("%s: %.0f creates/s", p.what, p.into.Rate())
		}
	}
	return nil
}

// rawCreates runs the API server's create transaction straight against
// etcd total times from clients workers, with the JSON of a pod the API
// stored. Keys are outside /registry/ so the event publisher does not see
// them: this is etcd alone.
func (r *runner) rawCreates(ctx context.Context, prefix string, clients, total int) (phaseResult, error) {
	create, err := r.rawCreate(ctx, prefix)
	if err != nil {
		return phaseResult{}, err
	}
	return runPhase(ctx, r.m, clients, total, create)
}

// rawCreate returns rawCreates' create transaction of the i-th key under
// prefix.
func (r *runner) rawCreate(ctx context.Context, prefix string) (func(ctx context.Context, _, i int) error, error) {
	stored, err := r.etcd.Get(ctx, "/registry/pods/"+Namespace+"/", clientv3.WithPrefix(), clientv3.WithLimit(1))
	if err != nil || len(stored.Kvs) == 0 {
		return nil, fmt.Errorf("read a stored pod: %v", err)
	}
	tmpl := stored.Kvs[0].Value
	r.res.PodBytes = len(tmpl)
	storedName := []byte(`"name":"` + path.Base(string(stored.Kvs[0].Key)) + `"`)
	guard := "/registry/namespaces/" + Namespace
	return func(ctx context.Context, _, i int) error {
		name := fmt.Sprintf("%s-%06d", prefix, i)
		key := "/wasmfleet-bench/pods/" + Namespace + "/" + name
		value := bytes.Replace(tmpl, storedName, []byte(`"name":"`+name+`"`), 1)
		resp, err := r.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), clientv3.Compare(clientv3.CreateRevision(guard), ">", 0)).
			Then(clientv3.OpPut(key, string(value))).
			Else(clientv3.OpGet(guard, clientv3.WithCountOnly())).
			Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return fmt.Errorf("create %s: transaction failed", key)
		}
		return nil
	}, nil
}

// list times unpaginated LISTs of the pods: plain HTTPS reading the whole
// JSON body, and client-go (decoding included).
func (r *runner) list(ctx context.Context) error {
	o, res, step := r.o, r.res, r.step
	hc, err := rest.HTTPClientFor(r.rest)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	u := r.rest.Host + "/api/v1/namespaces/" + Namespace + "/pods"
	step("LIST over HTTPS, %d runs", o.ListRuns)
	for range o.ListRuns {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		t := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("list pods: %w", err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if err != nil {
			return fmt.Errorf("list pods: read body: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("list pods: %s", resp.Status)
		}
		res.ListHTTP = append(res.ListHTTP, d)
		res.ListBytes = int(n)
	}
	step("LIST median %v", median(res.ListHTTP).Round(time.Millisecond))
	step("LIST with client-go, %d runs", o.ClientListRuns)
	for range o.ClientListRuns {
		t := time.Now()
		l, err := r.cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("client-go list pods: %w", err)
		}
		res.ListClient = append(res.ListClient, time.Since(t))
		if int64(len(l.Items)) != res.PodsStored {
			return fmt.Errorf("client-go list returned %d pods, etcd holds %d", len(l.Items), res.PodsStored)
		}
	}
	return nil
}

// latencies measures etcd Put → NATS, API create → NATS and the raw
// JetStream baseline, each over a core subscription and an ordered
// consumer at once.
func (r *runner) latencies(ctx context.Context) error {
	o, res, step := r.o, r.res, r.step
	nc, err := nats.Connect(r.c.natsURL, nats.Name("wasmfleet-bench"))
	if err != nil {
		return fmt.Errorf("connect nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	const warmup = 20

	// Raw JetStream baseline: a stream like the events stream (file
	// storage), publish → receive.
	const baseStream, baseSubjects = "WASMFLEET_BENCH", "wasmfleet-bench.>"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: baseStream, Subjects: []string{baseSubjects},
		Storage: jetstream.FileStorage, MaxAge: time.Hour, Duplicates: events.DuplicateWindow}); err != nil {
		return fmt.Errorf("create stream %s: %w", baseStream, err)
	}
	payload, err := storedConfigMap("nats-baseline-0000")
	if err != nil {
		return err
	}
	step("latency: JetStream publish → receive, %d samples", o.EventSamples)
	a, stop, err := receivers(ctx, nc, js, baseStream, baseSubjects)
	if err != nil {
		return err
	}
	res.NATSBaseline, err = measureLatency(ctx, a, o.EventSamples, warmup, o.EventPace,
		func(i int) string { return fmt.Sprintf("n%d", i) },
		func(ctx context.Context, i int) error {
			_, err := js.Publish(ctx, fmt.Sprintf("wasmfleet-bench.lat.n%d", i), payload)
			return err
		})
	stop()
	if err != nil {
		return fmt.Errorf("nats baseline: %w", err)
	}
	step("latency: p50 %v p99 %v", res.NATSBaseline.Core.P50, res.NATSBaseline.Core.P99)

	filter := subjects.EventsPrefix + ".configmaps." + subjects.EncodeToken(Namespace) + ".*"
	// Values are made before the clock starts.
	etcdNames, etcdValues := make([]string, warmup+o.EventSamples), make([][]byte, warmup+o.EventSamples)
	for i := range etcdNames {
		etcdNames[i] = fmt.Sprintf("etcd-%06d", i)
		if etcdValues[i], err = storedConfigMap(etcdNames[i]); err != nil {
			return err
		}
	}
	step("latency: etcd Put → NATS event, %d samples", o.EventSamples)
	a, stop, err = receivers(ctx, nc, js, subjects.DefaultStream, filter)
	if err != nil {
		return err
	}
	res.EtcdToNATS, err = measureLatency(ctx, a, o.EventSamples, warmup, o.EventPace,
		func(i int) string { return fmt.Sprintf("etcd-%06d", i) },
		func(ctx context.Context, i int) error {
			_, err := r.etcd.Put(ctx, "/registry/configmaps/"+Namespace+"/"+etcdNames[i], string(etcdValues[i]))
			return err
		})
	stop()
	if err != nil {
		return fmt.Errorf("etcd → nats: %w", err)
	}
	step("latency: p50 %v p99 %v", res.EtcdToNATS.Core.P50, res.EtcdToNATS.Core.P99)

	step("latency: API create → NATS event, %d samples", o.EventSamples)
	a, stop, err = receivers(ctx, nc, js, subjects.DefaultStream, filter)
	if err != nil {
		return err
	}
	res.APIToNATS, err = measureLatency(ctx, a, o.EventSamples, warmup, o.EventPace,
		func(i int) string { return fmt.Sprintf("api-%06d", i) },
		func(ctx context.Context, i int) error {
			_, err := r.cs.CoreV1().ConfigMaps(Namespace).Create(ctx, benchConfigMap(fmt.Sprintf("api-%06d", i)), metav1.CreateOptions{})
			return err
		})
	stop()
	if err != nil {
		return fmt.Errorf("api → nats: %w", err)
	}
	step("latency: p50 %v p99 %v", res.APIToNATS.Core.P50, res.APIToNATS.Core.P99)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
