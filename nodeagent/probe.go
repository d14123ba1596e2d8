package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Probes, as the kubelet's prober: a container's startup probe runs first;
// once it succeeded (or when there is none) its liveness and readiness
// probes run, each every periodSeconds after initialDelaySeconds from the
// container's start. A readiness probe makes the container ready after
// successThreshold successes in a row and unready after failureThreshold
// failures; a liveness or startup probe that fails failureThreshold times
// in a row has the container killed (and restarted as its restart policy
// says). Every failed attempt is a Warning "Unhealthy" event.
//
// Probes run in runc containers: exec commands through the runtime,
// tcpSocket, httpGet and grpc connections from inside the container's
// network namespace (to its loopback unless the probe names a host), as
// nothing outside reaches a pod's network. Wasm guests have no processes
// to add and no network: a probe that cannot run is reported once
// (EventProbeNotRun) and left out, the container then as without it.

// Event reasons of probes, as the kubelet's (EventProbeNotRun is ours).
const (
	EventUnhealthy   = "Unhealthy"
	EventProbeNotRun = "ProbeNotRun"
)

type probeKind int

const (
	startupProbe probeKind = iota
	livenessProbe
	readinessProbe
)

func (k probeKind) String() string {
	return [...]string{"Startup", "Liveness", "Readiness"}[k]
}

func (k probeKind) of(c *corev1.Container) *corev1.Probe {
	return [...]*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe}[k]
}

// probeState is what the probes of one run of a container found so far
// (the zero value: nothing holds the container back).
type probeState struct {
	notStarted bool // a startup probe runs and has not succeeded yet
	notReady   bool // a readiness probe runs and does not pass
}

// probeNote is what a prober tells the pod's worker: a failed attempt
// (failed, with its output msg), or else a change of the probe's result,
// to ok.
type probeNote struct {
	container string
	run       int32 // the run's restart count
	kind      probeKind
	failed    bool
	msg       string
	ok        bool
}

// probeRuns says whether p can run in ctr, and why not.
func probeRuns(p *corev1.Probe, ctr runtime.Container) (bool, string) {
	switch {
	case p.Exec != nil:
		if _, ok := ctr.(runtime.Execer); !ok {
			return false, "this container cannot run processes (a wasm guest)"
		}
	default: // tcpSocket, httpGet, grpc
		if _, ok := ctr.(runtime.Networked); !ok {
			return false, "this container has no network to reach (a wasm guest)"
		}
	}
	return true, ""
}

// initialProbeState is a new run's state: not started while a startup
// probe is to run, not ready while a readiness probe is.
func initialProbeState(c *corev1.Container, ctr runtime.Container) probeState {
	var st probeState
	if p := c.StartupProbe; p != nil {
		st.notStarted, _ = probeRuns(p, ctr)
	}
	if p := c.ReadinessProbe; p != nil {
		st.notReady, _ = probeRuns(p, ctr)
	}
	return st
}

// runProbes runs c's probes against ctr, started at startedAt, until ctx
// ends, sending what they find to notes.
func runProbes(ctx context.Context, c *corev1.Container, ctr runtime.Container, run int32, startedAt time.Time, notes chan<- probeNote) {
	send := func(n probeNote) bool {
		n.container, n.run = c.Name, run
		select {
		case notes <- n:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if p := c.StartupProbe; p != nil {
		if ok, _ := probeRuns(p, ctr); ok && !probeLoop(ctx, startupProbe, c, p, ctr, startedAt, send) {
			return
		}
	}
	done := make(chan struct{}, 2)
	n := 0
	for _, k := range []probeKind{livenessProbe, readinessProbe} {
		p := k.of(c)
		if p == nil {
			continue
		}
		if ok, _ := probeRuns(p, ctr); !ok {
			continue
		}
		n++
		go func() {
			probeLoop(ctx, k, c, p, ctr, startedAt, send)
			done <- struct{}{}
		}()
	}
	for range n {
		<-done
	}
}

// probeLoop runs probe p of kind every period until ctx ends or, for a
// startup probe, until it succeeded (true) or failed for good (false).
func probeLoop(ctx context.Context, kind probeKind, c *corev1.Container, p *corev1.Probe, ctr runtime.Container, startedAt time.Time, send func(probeNote) bool) bool {
	wait := time.Until(startedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second))
	// The result before any attempt: a liveness probe passes, the others
	// have not yet.
	ok := kind == livenessProbe
	successes, failures := 0, 0
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(max(wait, 0)):
		}
		wait = time.Duration(p.PeriodSeconds) * time.Second
		msg, passed := probeOnce(ctx, c, p, ctr)
		if ctx.Err() != nil {
			return false
		}
		if passed {
			successes, failures = successes+1, 0
			if !ok && successes >= int(max(p.SuccessThreshold, 1)) {
				ok = true
				if !send(probeNote{kind: kind, ok: true}) {
					return false
				}
				if kind == startupProbe {
					return true
				}
			}
			continue
		}
		successes, failures = 0, failures+1
		if !send(probeNote{kind: kind, failed: true, msg: msg}) {
			return false
		}
		if (ok || kind != readinessProbe) && failures >= int(max(p.FailureThreshold, 1)) {
			ok = false
			if !send(probeNote{kind: kind}) {
				return false
			}
			if kind != readinessProbe {
				// The container is killed: this run's probing ends.
				return false
			}
		}
	}
}

// probeOnce runs one attempt of p within timeoutSeconds and returns the
// failure's message.
func probeOnce(ctx context.Context, c *corev1.Container, p *corev1.Probe, ctr runtime.Container) (string, bool) {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.Exec == nil {
		return netProbe(tctx, c, p, ctr.(runtime.Networked))
	}
	res, err := ctr.(runtime.Execer).Exec(tctx, p.Exec.Command)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Sprintf("command %q timed out", strings.Join(p.Exec.Command, " ")), false
	case err != nil:
		return err.Error(), false
	case res.ExitCode != 0:
		out := strings.TrimSpace(string(res.Output))
		if out == "" {
			out = fmt.Sprintf("command %q exited with %d", strings.Join(p.Exec.Command, " "), res.ExitCode)
		}
		return out, false
	}
	return "", true
}

// podProbes runs the probes of one pod's running containers for its
// worker, which passes what they find (notes) to take.
type podProbes struct {
	events  *eventRecorder
	notes   chan probeNote
	probers map[string]prober // by container
	notRun  map[string]bool   // probes reported as not run, by container/kind
	killed  map[string]bool   // containers stopped for a failed probe
}

// prober is the probing of one run of a container.
type prober struct {
	ctr    runtime.Container
	cancel context.CancelFunc
}

func newPodProbes(events *eventRecorder) *podProbes {
	return &podProbes{events: events, notes: make(chan probeNote), probers: map[string]prober{},
		notRun: map[string]bool{}, killed: map[string]bool{}}
}

// sync starts the probes of each new run in running, from its record's
// initial probe state, and stops those of runs that ended.
func (pp *podProbes) sync(ctx context.Context, pod *corev1.Pod, running map[string]runtime.Container, recs map[string]ContainerRecord) {
	for name, pr := range pp.probers {
		if ctr, ok := running[name]; !ok || ctr != pr.ctr {
			pr.cancel()
			delete(pp.probers, name)
		}
	}
	for name, ctr := range running {
		if _, ok := pp.probers[name]; ok {
			continue
		}
		c := podContainer(pod, name)
		if c == nil {
			continue
		}
		rec := recs[name]
		rec.probe = initialProbeState(c, ctr)
		recs[name] = rec
		for _, k := range []probeKind{startupProbe, livenessProbe, readinessProbe} {
			key := name + "/" + k.String()
			if pr := k.of(c); pr != nil && !pp.notRun[key] {
				if ok, why := probeRuns(pr, ctr); !ok {
					pp.notRun[key] = true
					pp.events.record(pod, name, corev1.EventTypeWarning, EventProbeNotRun, k.String()+" probe not run: "+why)
				}
			}
		}
		pctx, cancel := context.WithCancel(ctx)
		pp.probers[name] = prober{ctr: ctr, cancel: cancel}
		go runProbes(pctx, c, ctr, rec.Restarts, rec.StartedAt, pp.notes)
	}
}

// take records what a prober found in the records: a failed attempt is
// an Unhealthy event; a liveness or startup probe that failed for good
// stops its container, whose restart policy says what follows.
func (pp *podProbes) take(n probeNote, pod *corev1.Pod, recs map[string]ContainerRecord) {
	pr, ok := pp.probers[n.container]
	rec := recs[n.container]
	if !ok || !rec.Running || rec.Restarts != n.run {
		return // a run that ended
	}
	if n.failed {
		pp.events.record(pod, n.container, corev1.EventTypeWarning, EventUnhealthy, n.kind.String()+" probe failed: "+n.msg)
		return
	}
	switch n.kind {
	case startupProbe:
		rec.probe.notStarted = !n.ok
	case readinessProbe:
		rec.probe.notReady = !n.ok
	}
	recs[n.container] = rec
	if n.ok || n.kind == readinessProbe {
		return
	}
	msg := fmt.Sprintf("Container %s failed %s probe", n.container, strings.ToLower(n.kind.String()))
	if containerPolicy(pod, n.container) != corev1.RestartPolicyNever {
		msg += ", will be restarted"
	}
	pp.killed[n.container] = true
	pp.events.record(pod, n.container, corev1.EventTypeNormal, EventKilling, msg)
	grace := terminationGrace(pod)
	if c := podContainer(pod, n.container); c != nil {
		if p := n.kind.of(c); p != nil && p.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		}
	}
	go pr.ctr.Stop(grace)
}

// killedByProbe reports whether the run of container name that ended was
// stopped for a failed probe.
func (pp *podProbes) killedByProbe(name string) bool {
	k := pp.killed[name]
	delete(pp.killed, name)
	return k
}

// stop ends the probing.
func (pp *podProbes) stop() {
	for _, pr := range pp.probers {
		pr.cancel()
	}
}
