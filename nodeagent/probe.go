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
// (failed, with its output), or a change of the probe's result (changed,
// to ok).
type probeNote struct {
	container string
	run       int32 // the run's restart count
	kind      probeKind
	failed    bool
	msg       string
	changed   bool
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
				if !send(probeNote{kind: kind, changed: true, ok: true}) {
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
			if !send(probeNote{kind: kind, changed: true, ok: false}) {
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
