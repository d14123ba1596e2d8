// Command fleet-rollout is the IoT fleet rollout demo: a control plane and
// five devices (node agents) as separate processes, a wasm sensor DaemonSet
// rolled from v1 to v2 one device at a time while a NATS subscriber prints
// the events, then a device losing power: its DaemonSet pod stays bound to
// it, the Deployment pod it ran is replaced on another device once its
// toleration runs out.
//
// Run it from the repository's root:
//
//	go tool task demo:fleet                  # or: go run ./examples/fleet-rollout
//	go run ./examples/fleet-rollout --fast   # shorter grace periods
//	go run ./examples/fleet-rollout --keep   # leave the fleet running at the end, until Ctrl-C
//
// It builds the wasmfleet binary (or takes --wasmfleet), the NATS subscriber
// and the sensor module, and prints every command a user would type
// (kubectl with KUBECONFIG set to the demo's admin kubeconfig). The server's
// and agents' logs go to DIR/logs. Every check is made against the API;
// the exit code is 0 only when all of them held (the summary lists them).
// Ctrl-C, an error or a child dying stops every process it started.
//
// README.md next to this file explains what to look at.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args and runs the demo; it returns 0 when every check held, 1
// otherwise, 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleet-rollout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.dir, "dir", "", "directory for all state, empty or new (default: a temporary directory, removed after a successful run)")
	fs.StringVar(&o.wasmfleet, "wasmfleet", "", "wasmfleet binary (default: build ./cmd/wasmfleet into DIR/bin)")
	fs.StringVar(&o.kubectl, "kubectl", "kubectl", "kubectl binary")
	fs.StringVar(&o.repo, "repo", "", "the wasmfleet repository (default: found from the working directory)")
	fs.BoolVar(&o.fast, "fast", false, "short grace periods: a node is Unknown after 6s, pods tolerate that for 3s")
	fs.BoolVar(&o.keep, "keep", false, "keep the fleet running after the demo until Ctrl-C (and keep DIR)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: fleet-rollout [--fast] [--keep] [--dir DIR] [--wasmfleet BIN] [--kubectl BIN]")
		return 2
	}
	res, err := demo(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "fleet-rollout:", err)
		return 1
	}
	if err := res.Check(); err != nil {
		fmt.Fprintln(stderr, "fleet-rollout: failed checks:\n"+err.Error())
		return 1
	}
	return 0
}

type options struct {
	dir, wasmfleet, kubectl, repo string
	fast, keep                    bool
	// beforeStep, when set, is called before each step (numbered from 1)
	// with the pids of the processes started so far (tests use it to
	// interrupt the demo or kill one of them).
	beforeStep func(step int, pids []int)
}

// timing is how quickly the control plane gives up on a silent device.
type timing struct {
	renew, lease, grace time.Duration // agent lease renewal and duration; server node-monitor-grace-period
	toleration          int           // server default-toleration-seconds
}

func (o options) timing() timing {
	if o.fast {
		return timing{renew: time.Second, lease: 5 * time.Second, grace: 6 * time.Second, toleration: 3}
	}
	return timing{renew: 2 * time.Second, lease: 10 * time.Second, grace: 10 * time.Second, toleration: 10}
}

// device is one node agent of the demo fleet.
type device struct{ name, site, hw string }

// fleetDevices are the five devices: four Raspberry Pi 4 boards with the
// sensor hardware at two sites and an x86 gateway without it.
func fleetDevices() []device {
	return []device{
		{"pi-north-1", "north", "pi4"},
		{"pi-north-2", "north", "pi4"},
		{"pi-south-1", "south", "pi4"},
		{"pi-south-2", "south", "pi4"},
		{"gw-south", "south", "nuc"},
	}
}

const (
	sensorHW     = "pi4" // the DaemonSet's nodeSelector hw=pi4
	tinyReplicas = 2     // tiny.yaml's replicas
	waitLong     = 3 * time.Minute
	buildTimeout = 10 * time.Minute
)

// Result is what the demo observed; Check says whether it is what the demo
// promises.
type Result struct {
	Dir           string
	Steps         []time.Duration // how long each completed step took
	Logs          []string        // the server's and the agents' log files
	PIDs          []int           // every long-running process started (all stopped when demo returns)
	SensorDevices []string        // the devices labelled hw=pi4
	// V1Images and V2Images map each device running a sensor pod to its
	// image after the v1 and the v2 rollout.
	V1Images, V2Images map[string]string
	// MaxUnavailable is the most sensor devices at once without a Ready,
	// live sensor pod, as a pod watch saw it during the v2 rollout;
	// Unavailable is each value it went through; WatchEvents counts the
	// events it saw.
	MaxUnavailable int
	Unavailable    []int
	WatchEvents    int
	// Offline is the device whose agent was SIGKILLed; it ran the sensor
	// pod OfflineSensorPod and the Deployment pod EvictedPod.
	Offline, OfflineSensorPod, EvictedPod string
	// OfflineSensorPodStayed: after the Deployment pod was replaced, the
	// sensor pod was still the same pod, bound to Offline, not deleted, and
	// no replacement sensor pod was made elsewhere.
	OfflineSensorPodStayed bool
	// OfflineNodeUnknown: the node went Ready=Unknown with the NoExecute
	// taint node.kubernetes.io/unreachable.
	OfflineNodeUnknown bool
	// TinyPods maps the Deployment's live, Ready pods to their devices
	// afterwards; TinyAvailable is its status.availableReplicas;
	// Replacement is the pod that replaced EvictedPod.
	TinyPods      map[string]string
	TinyAvailable int32
	Replacement   string
	// DaemonSetEvents and PodEvents count the lines the NATS subscribers
	// printed.
	DaemonSetEvents, PodEvents int
}

// Check returns every broken promise, or nil.
func (r *Result) Check() error {
	var errs []error
	if len(r.SensorDevices) == 0 {
		errs = append(errs, errors.New("no sensor devices"))
	}
	for _, d := range r.SensorDevices {
		if r.V2Images[d] != "sensor:v2" {
			errs = append(errs, fmt.Errorf("device %s runs %q after the rollout, want sensor:v2", d, r.V2Images[d]))
		}
	}
	if len(r.V2Images) != len(r.SensorDevices) {
		errs = append(errs, fmt.Errorf("sensor pods on %d devices, want %d (%v)", len(r.V2Images), len(r.SensorDevices), r.V2Images))
	}
	if r.WatchEvents == 0 {
		errs = append(errs, errors.New("the pod watch saw no events during the rollout"))
	}
	if r.MaxUnavailable > 1 {
		errs = append(errs, fmt.Errorf("%d sensor devices unavailable at once during the rollout (maxUnavailable 1): %v", r.MaxUnavailable, r.Unavailable))
	}
	if !r.OfflineNodeUnknown {
		errs = append(errs, fmt.Errorf("device %q did not turn Unknown and tainted unreachable", r.Offline))
	}
	if !r.OfflineSensorPodStayed {
		errs = append(errs, fmt.Errorf("sensor pod %q on the offline device %q was moved or deleted", r.OfflineSensorPod, r.Offline))
	}
	if r.TinyAvailable != tinyReplicas || len(r.TinyPods) != tinyReplicas {
		errs = append(errs, fmt.Errorf("deployment tiny: %d available, live pods %v; want %d", r.TinyAvailable, r.TinyPods, tinyReplicas))
	}
	for pod, node := range r.TinyPods {
		if node == r.Offline {
			errs = append(errs, fmt.Errorf("deployment pod %s is on the offline device %s", pod, node))
		}
	}
	if _, ok := r.TinyPods[r.EvictedPod]; ok || r.EvictedPod == "" || r.Replacement == "" {
		errs = append(errs, fmt.Errorf("deployment pod %q of the offline device was not replaced", r.EvictedPod))
	}
	if r.DaemonSetEvents == 0 || r.PodEvents == 0 {
		errs = append(errs, fmt.Errorf("the NATS subscribers printed %d DaemonSet and %d pod events, want some of each", r.DaemonSetEvents, r.PodEvents))
	}
	return errors.Join(errs...)
}

// fleet is one run of the demo.
type fleet struct {
	o      options
	t      timing
	out    *console
	dir    string
	bin    string // wasmfleet
	server string // its data dir
	kc     string // admin kubeconfig
	apiURL string
	client kubernetes.Interface
	res    *Result
	fail   context.CancelCauseFunc
	procs  []*proc
	agents map[string]*proc
	// subscribed counts subscribers that are listening; dsEvents and
	// podEvents the lines they printed.
	subscribed, dsEvents, podEvents atomic.Int32
}

// demo runs the demo, printing to stdout, and returns what it observed. All
// processes it started have exited when it returns.
func demo(ctx context.Context, o options, stdout io.Writer) (res *Result, err error) {
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	f := &fleet{o: o, t: o.timing(), out: &console{w: stdout}, res: &Result{}, fail: fail, agents: map[string]*proc{}}
	res = f.res
	if f.o.repo == "" {
		if f.o.repo, err = findRepo(); err != nil {
			return res, err
		}
	}
	if f.o.repo, err = filepath.Abs(f.o.repo); err != nil {
		return res, err
	}
	temp := o.dir == ""
	if f.dir, err = makeDir(o.dir); err != nil {
		return res, err
	}
	res.Dir = f.dir
	for _, sub := range []string{"bin", "logs", "modules", "devices"} {
		if err := os.MkdirAll(filepath.Join(f.dir, sub), 0o755); err != nil {
			return res, err
		}
	}
	defer func() {
		f.stopAll()
		switch {
		case errors.Is(err, context.Canceled):
			f.out.printf("\nInterrupted; every process is stopped. Logs and state are kept in %s\n", f.dir)
		case err != nil:
			f.out.printf("\nThe demo failed: %v\nEvery process is stopped. Logs and state are kept in %s\n", err, f.dir)
		case temp && !o.keep:
			os.RemoveAll(f.dir)
		}
	}()

	steps := []struct {
		title string
		do    func(context.Context) error
	}{
		{"Build wasmfleet, the NATS subscriber and the sensor module", f.build},
		{"Start the control plane", f.startServer},
		{"Five devices join", f.startDevices},
		{"Push the wasm modules to the cluster's module store", f.pushModules},
		{"Watch the events on NATS", f.subscribe},
		{"Deploy sensor v1 (a DaemonSet on hw=pi4) and tiny (a Deployment of 2)", f.deployV1},
		{"Roll out sensor v2, one device at a time", f.rolloutV2},
		{"A device goes offline", f.offline},
		{"Summary", f.summary},
	}
	for i, s := range steps {
		if o.beforeStep != nil {
			o.beforeStep(i+1, slices.Clone(res.PIDs))
		}
		f.out.printf("\n=== %d. %s\n\n", i+1, s.title)
		start := time.Now()
		if err := s.do(ctx); err != nil {
			if ctx.Err() != nil {
				return res, context.Cause(ctx)
			}
			return res, err
		}
		res.Steps = append(res.Steps, time.Since(start))
		if i < len(steps)-1 {
			f.out.printf("(%s)\n", time.Since(start).Round(100*time.Millisecond))
		}
	}
	if o.keep {
		f.out.printf("\nThe fleet keeps running; try:\n\n  export KUBECONFIG=%s\n  kubectl get nodes,pods -o wide\n\nCtrl-C stops it all (state stays in %s).\n", f.kc, f.dir)
		<-ctx.Done()
		if c := context.Cause(ctx); !errors.Is(c, context.Canceled) {
			f.out.printf("stopping: %v\n", c)
		}
	}
	return res, nil
}

// stopAll stops every process: the devices and subscribers first, then the
// control plane.
func (f *fleet) stopAll() {
	var rest, servers []*proc
	for _, p := range f.procs {
		if p.name == "server" {
			servers = append(servers, p)
		} else {
			rest = append(rest, p)
		}
	}
	stopProcs(rest, 10*time.Second)
	stopProcs(servers, 15*time.Second)
}

// start runs a long-lived process; its unexpected exit fails the demo.
func (f *fleet) start(name, logPath string, stdout, stderr io.Writer, argv ...string) (*proc, error) {
	p, err := startProc(name, f.o.repo, logPath, stdout, stderr, func(err error) { f.fail(err) }, argv...)
	if err != nil {
		return nil, err
	}
	f.procs = append(f.procs, p)
	f.res.PIDs = append(f.res.PIDs, p.pid())
	if logPath != "" {
		f.res.Logs = append(f.res.Logs, logPath)
	}
	return p, nil
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, sep)
}

// withVersionSection returns module with a custom section
// "wasmfleet.demo.version" holding version appended: a module with a digest
// of its own that runs exactly as module does (runtimes ignore custom
// sections). Section: id 0, size, then the name's length and bytes and the
// payload; sizes are unsigned LEB128, which is what AppendUvarint writes.
func withVersionSection(module []byte, version string) []byte {
	const name = "wasmfleet.demo.version"
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(append(body, name...), version...)
	out := append(slices.Clone(module), 0)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

// findRepo returns the wasmfleet repository containing the working
// directory.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isRepo(dir) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the wasmfleet repository (or pass --repo)")
		}
		dir = parent
	}
}

func isRepo(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	return s.Scan() && strings.TrimSpace(s.Text()) == "module github.com/wasmfleet/wasmfleet"
}

// makeDir returns dir made absolute, created if missing; it must be empty.
// With dir "" it creates a temporary directory.
func makeDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "wasmfleet-fleet-rollout-")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("--dir %s is not empty (the demo starts a new cluster)", dir)
	}
	return dir, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
