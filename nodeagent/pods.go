package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/imagehelper"
	"github.com/wasmfleet/wasmfleet/runtime/wasmhost"
)

// ModuleFetcher turns a wasm container's image into a verified module on
// local disk (the module cache).
type ModuleFetcher interface {
	Fetch(ctx context.Context, image string) (runtime.Module, error)
}

// ImageRuntime runs OCI images (RuntimeClass handler "runc", through
// containerd): a runtime.Detached, whose containers outlive the agent, that
// pulls images itself.
type ImageRuntime interface {
	runtime.Detached
	// Pull makes sure the image is on the node; errors wrap
	// runtime.ErrImagePull.
	Pull(ctx context.Context, ref string) error
}

// The runtime handlers an agent offers, and the built-in runtime classes
// named after them: a pod runs with the handler of its RuntimeClass
// (RuntimeClassWasm when it names none).
const (
	// RuntimeClassWasm runs wasm modules with wazero.
	RuntimeClassWasm = "wasm"
	// RuntimeClassRunc runs OCI containers through containerd.
	RuntimeClassRunc = "runc"
)

// ReasonRuntimeClassUnsupported is the waiting reason of a container whose
// pod asks for a runtime class this agent does not offer now (runc without
// a reachable containerd, or without its helper process, see HelperImages;
// wasm without its guest host).
const ReasonRuntimeClassUnsupported = "RuntimeClassUnsupported"

// runtimeHandler is the handler of pod's runtime class, read through the
// API; when the API cannot be reached (a static pod before the node
// joined), a built-in class's own name.
func (p *Pods) runtimeHandler(ctx context.Context, pod *corev1.Pod) (string, error) {
	class := ""
	if rc := pod.Spec.RuntimeClassName; rc != nil {
		class = *rc
	}
	if class == "" {
		return RuntimeClassWasm, nil
	}
	var rc *nodev1.RuntimeClass
	err := ErrNotConnected
	if p.API != nil {
		rc, err = p.API.GetRuntimeClass(ctx, class)
	}
	switch {
	case err == nil:
		return rc.Handler, nil
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("RuntimeClass %q not found", class)
	case class == RuntimeClassWasm || class == RuntimeClassRunc:
		return class, nil
	}
	return "", fmt.Errorf("RuntimeClass %q: %w", class, err)
}

// unsupported says why this agent cannot run handler's pods, nil if it can.
func unsupported(handler string) error {
	if handler == RuntimeClassWasm || handler == RuntimeClassRunc {
		return nil
	}
	return fmt.Errorf("runtime handler %q is not available on this node", handler)
}

// pullRetry is how long a pod waits before trying a failed module fetch or
// container start again.
const pullRetry = 10 * time.Second

// imageBackOff is the wait before pulling again after n failed pulls in a
// row: base, doubled after each failure, at most backOffMax (5m, as the
// kubelet's image back-off).
func imageBackOff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < backOffMax; i++ {
		d *= 2
	}
	return min(d, backOffMax)
}

// pullRetry is the wait before the first retry of a failed pull:
// PullRetry, or pullRetry.
func (p *Pods) pullRetry() time.Duration {
	if p.PullRetry > 0 {
		return p.PullRetry
	}
	return pullRetry
}

// Pods runs the pods bound to this node: one worker per pod starts its
// containers through the runtime, restarts them by its restart policy,
// reports the pod's status, and on deletion stops them within the grace
// period and confirms the deletion. Sync is level-triggered: call it with
// every snapshot of the node's pods, static pods included.
//
// Each worker keeps its container records on disk (Dir/<pod uid>/
// state.json, see loadPodState), so a worker started again after the agent
// restarted goes on from them. Static pods (IsStaticPod) have no API object:
// their status goes to StaticStatus, their deletion is their manifest's.
type Pods struct {
	API     *APIClient
	Runtime runtime.Runtime
	Modules ModuleFetcher
	// Images runs the pods of handler runc (RuntimeClassRunc); nil: this
	// node has no containerd, and such pods wait with
	// ReasonRuntimeClassUnsupported (and ImagesErr, when set, as the
	// reason why).
	Images    ImageRuntime
	ImagesErr error
	// ImagesReady, if set, is closed once Images is set for good (the
	// agent connects to containerd in the background): runc pods wait
	// for it, and Images is read only after it. nil: Images is final.
	ImagesReady <-chan struct{}
	// Dir holds each pod's volumes, logs and state (Dir/<pod uid>/…).
	Dir    string
	Config Config
	Log    *slog.Logger
	// StaticStatus receives each new status of a static pod (nil: none).
	// It must not block.
	StaticStatus func(pod *corev1.Pod, st corev1.PodStatus)
	// HostIPs are reported as every pod's status.hostIP(s) (see HostIPs).
	HostIPs []corev1.HostIP
	// PullRetry is the wait before the first retry of a failed image pull,
	// doubled after each failure in a row (0: 10s, the kubelet's).
	PullRetry time.Duration

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	events  *eventRecorder // started by the first Sync
	wg      sync.WaitGroup
	running atomic.Int64
}

type podWorker struct {
	updates chan *corev1.Pod // capacity 1: the newest pod wins
	// version is the resourceVersion of the pod last handed to the worker:
	// Sync passes a pod on only when it changed, or when retrying is set.
	version string
	// retrying: an API call of the worker failed (the link is down, say)
	// and waits for its retry; any Sync hands the pod over again, so a
	// relist once the link is back has the worker try at once.
	retrying atomic.Bool
	cancel   context.CancelFunc
	// removed: the pod left the node (not the agent stopping), so its
	// state is forgotten.
	removed atomic.Bool
}

// Running is the number of containers running now, all pods together.
func (p *Pods) Running() int { return int(p.running.Load()) }

// Sync starts workers for new pods, hands updates to running ones and stops
// the workers of pods that are gone (their containers stop with them). A
// pod whose resourceVersion is the one its worker has is not handed over
// again, unless the worker waits to retry a failed API call. The pods are
// only read. The first call's ctx is the workers' parent and must be the
// same for every call.
func (p *Pods) Sync(ctx context.Context, pods []*corev1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.workers == nil {
		p.workers = map[types.UID]*podWorker{}
		log := p.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		p.events = newEventRecorder(p.API, log)
		p.wg.Go(func() { p.events.run(ctx) })
	}
	seen := make(map[types.UID]bool, len(pods))
	for _, pod := range pods {
		seen[pod.UID] = true
		w, ok := p.workers[pod.UID]
		if ok && pod.ResourceVersion != "" && pod.ResourceVersion == w.version && !w.retrying.Load() {
			continue
		}
		if !ok {
			wctx, cancel := context.WithCancel(ctx)
			w = &podWorker{updates: make(chan *corev1.Pod, 1), cancel: cancel, version: pod.ResourceVersion}
			p.workers[pod.UID] = w
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.run(wctx, w, pod.DeepCopy())
			}()
			continue
		}
		select { // replace an unread update with the newer one
		case <-w.updates:
		default:
		}
		w.version = pod.ResourceVersion
		w.updates <- pod.DeepCopy()
	}
	for uid, w := range p.workers {
		if !seen[uid] {
			w.removed.Store(true)
			w.cancel()
			delete(p.workers, uid)
		}
	}
}

// Wait waits for every worker to stop (after ctx of Sync ended).
func (p *Pods) Wait() { p.wg.Wait() }

// run is one pod's worker.
func (p *Pods) run(ctx context.Context, w *podWorker, pod *corev1.Pod) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("pod", pod.Namespace+"/"+pod.Name)
	dir := filepath.Join(p.Dir, string(pod.UID))
	state, err := loadPodState(dir)
	stateLost := err != nil
	if stateLost {
		log.Warn("pod state unreadable: starting afresh", "err", err)
	}
	recs := state.Containers
	stateOut := stateWriter{dir: dir, gen: state.gen}
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = state.StartTime
	}
	static := IsStaticPod(pod)
	exceeded := state.DeadlineExceeded // the pod ran past its activeDeadlineSeconds
	running := map[string]runtime.Container{}
	logs := map[string]*podlogs.Log{}
	stopping := map[string]bool{} // sidecars asked to stop as their pod ended
	exited := make(chan string, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	probes := newPodProbes(p.events) // of the running containers
	defer probes.stop()
	// handler runs the pod's containers; kept with the records, so that an
	// agent restarted without its link still knows it. handlerErr says why
	// the pod cannot run (yet). detached: this pod's containers outlive the
	// agent (the wasm guest host, containerd), so a restarted agent
	// attaches to them, and one that stops leaves them running.
	handler := state.Handler
	var (
		handlerErr error
		detached   runtime.Detached
	)
	resolve := func() {
		if handler == "" {
			handler, handlerErr = p.runtimeHandler(ctx, pod)
		}
		if handlerErr == nil {
			if handlerErr = unsupported(handler); handlerErr == nil {
				detached = p.detached(ctx, handler)
			}
		}
	}
	resolve()
	if ctx.Err() != nil {
		return // stopped while waiting for the runc runtime: records untouched
	}
	if stateLost && detached != nil {
		// Runs of the pod's containers may still be held, but which and
		// how they went is lost: remove them, so that the fresh start does
		// not run a container twice (or collide with a run's ID).
		removeContainers(ctx, detached, log, "a run of a container whose records are lost", isPod(pod))
	}
	now := time.Now()
	for name, rec := range recs {
		if !rec.Running {
			continue
		}
		if detached != nil {
			ctr, ok, err := detached.Attach(ctx, containerID(pod, name, rec.Restarts))
			if err != nil {
				log.Warn("attach to a container of the last run", "container", name, "err", err)
			}
			if ok {
				running[name] = ctr
				p.running.Add(1)
				watchExit(ctx, ctr, name, exited)
				log.Info("container attached", "container", name)
				continue
			}
		}
		rec.lost(now)
		recs[name] = rec
	}
	var reported, saved *corev1.PodStatus
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	gone := false // deleted from the API, or removed from the node
	defer func() {
		if gone || w.removed.Load() {
			if detached != nil {
				// Runs the worker did not follow (an Attach that failed, a
				// Remove that did) go with the pod.
				rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				removeContainers(rctx, detached, log, "a run of a container of a pod that is gone", isPod(pod))
				cancel()
			}
			if err := removePodDir(dir); err != nil {
				log.Warn("remove pod directory", "err", err)
			}
		}
	}()
	// exitOf records how the run of container name, c, ended; its log,
	// if the agent writes it, is closed first (terminationMessage reads
	// it).
	exitOf := func(name string, c runtime.Container) {
		if l := logs[name]; l != nil {
			l.Close()
			delete(logs, name)
		}
		es, _ := c.Exit()
		rec := recs[name]
		rec.Running = false
		msg := terminationMessage(pod, name, es, dir, rec.Restarts)
		rec.Last = &Termination{ExitCode: es.ExitCode, Reason: es.Reason, Message: msg, StartedAt: es.StartedAt, FinishedAt: es.FinishedAt,
			ProbeFailed: probes.killedByProbe(name)}
		recs[name] = rec
		log.Info("container exited", "container", name, "code", es.ExitCode, "reason", es.Reason)
	}
	// stopAll stops the pod's containers as the kubelet kills a pod: the
	// others together, then its sidecars one at a time, the last first,
	// each with what is left of grace (at least minSidecarGrace when there
	// is a grace period). killing, if set, is told of each before it stops.
	stopAll := func(grace time.Duration, killing func(name string)) {
		deadline := time.Now().Add(grace)
		stop := func(names []string, grace time.Duration) {
			var wg sync.WaitGroup
			for _, name := range names {
				if killing != nil {
					killing(name)
				}
				c := running[name]
				wg.Go(func() {
					c.Stop(grace)
					<-c.Done()
				})
			}
			wg.Wait()
			for _, name := range names {
				c := running[name]
				exitOf(name, c)
				p.forget(detached, c, log)
				p.running.Add(-1)
				delete(running, name)
			}
		}
		sidecars := runningSidecars(pod, running)
		var others []string
		for name := range running {
			if !slices.Contains(sidecars, name) {
				others = append(others, name)
			}
		}
		slices.Sort(others)
		stop(others, grace)
		for _, name := range slices.Backward(sidecars) {
			left := time.Until(deadline)
			if grace > 0 {
				left = max(left, minSidecarGrace)
			}
			stop([]string{name}, left)
		}
		for _, l := range logs {
			l.Close()
		}
	}
	defer func() {
		if detached != nil && !gone && !w.removed.Load() {
			return // the agent stops: the guests go on in their host
		}
		stopAll(0, nil)
	}()

	// others are the pod's conditions the agent does not own, as last
	// read from the API (DisruptionTarget, readiness gates' …): its
	// status reports keep them, as the kubelet's.
	others := otherConditions(pod.Status.Conditions)
	// withIPsAndOthers completes st as the agent reports it: with the
	// node's IPs (see HostIPs) and the others.
	withIPsAndOthers := func(st corev1.PodStatus) corev1.PodStatus {
		if len(p.HostIPs) > 0 {
			st.HostIP, st.HostIPs = p.HostIPs[0].IP, slices.Clone(p.HostIPs)
		}
		st.Conditions = append(slices.Clone(others), st.Conditions...)
		return st
	}
	for {
		now := time.Now()
		w.retrying.Store(false)
		if pod.DeletionTimestamp != nil {
			grace := time.Duration(0)
			if g := pod.DeletionGracePeriodSeconds; g != nil {
				grace = time.Duration(*g) * time.Second
			}
			stopAll(grace, func(name string) {
				recordEvent(ctx, p.API, log, pod, name, corev1.EventTypeNormal, EventKilling, "Stopping container "+name)
			})
			if !static {
				// As the kubelet since 1.27: the pod's terminal phase is
				// reported before its deletion is confirmed (best effort,
				// read again after a conflict).
				for range 3 {
					pod.Status = withIPsAndOthers(stoppedStatus(pod, recs, now))
					_, err := p.API.UpdatePodStatus(ctx, pod)
					if !apierrors.IsConflict(err) {
						if err != nil && ctx.Err() == nil {
							log.Warn("report the terminal status", "err", err)
						}
						break
					}
					fresh, err := p.API.GetPod(ctx, pod.Namespace, pod.Name)
					if err != nil || fresh.UID != pod.UID {
						break
					}
					pod, others = fresh, otherConditions(fresh.Status.Conditions)
				}
			}
			zero := int64(0)
			if err := p.API.DeletePod(ctx, pod.Namespace, pod.Name, &zero, string(pod.UID)); err != nil && !apierrors.IsNotFound(err) {
				if ctx.Err() != nil {
					return
				}
				log.Warn("confirm deletion", "err", err)
				w.retrying.Store(true)
				retry.Reset(pullRetry)
			} else {
				gone = true
				return
			}
		} else if deadline, ok := activeDeadline(pod); exceeded || (ok && !now.Before(deadline)) {
			// As the kubelet's active deadline handler: the pod fails and
			// its containers are stopped, never to run again.
			if !exceeded {
				exceeded = true
				p.events.record(pod, "", corev1.EventTypeNormal, ReasonDeadlineExceeded, deadlineMessage)
			}
			for name, c := range running {
				if !stopping[name] {
					stopping[name] = true
					recordEvent(ctx, p.API, log, pod, name, corev1.EventTypeNormal, EventKilling, "Stopping container "+name)
					c.Stop(terminationGrace(pod))
				}
			}
		} else {
			if handler == "" {
				resolve() // the class could not be read: try again
			}
			next := p.startContainers(ctx, pod, handler, handlerErr, dir, detached, recs, running, logs, exited, now, log)
			probes.sync(ctx, pod, running, recs)
			if ok && (next.IsZero() || deadline.Before(next)) {
				next = deadline
			}
			if !next.IsZero() {
				retry.Reset(time.Until(next))
			}
			if appsDone(pod, recs) || initFailed(pod, recs) {
				// Only sidecars can still run, and they end with the pod:
				// as the kubelet's, one at a time, the last first (each
				// exit comes through exited, and the next one stops then).
				sidecars := runningSidecars(pod, running)
				for name, c := range running {
					if i := slices.Index(sidecars, name); i >= 0 && i < len(sidecars)-1 {
						continue
					}
					if !stopping[name] {
						stopping[name] = true
						recordEvent(ctx, p.API, log, pod, name, corev1.EventTypeNormal, EventKilling, "Stopping container "+name)
					}
					c.Stop(0)
				}
			}
		}
		st := PodStatus(pod, recs, now)
		if exceeded {
			st = deadlineStatus(pod, recs, now)
		}
		st = withIPsAndOthers(st)
		if saved == nil || !sameStatus(saved, &st) {
			if err := stateOut.save(podState{StartTime: st.StartTime, Containers: recs, Static: static, Handler: handler, DeadlineExceeded: exceeded}); err != nil {
				log.Warn("save pod state", "err", err)
			}
			saved = &st
		}
		if static && (reported == nil || !sameStatus(reported, &st)) {
			pod.Status, reported = st, &st
			if p.StaticStatus != nil {
				p.StaticStatus(pod, st)
			}
		} else if reported == nil || !sameStatus(reported, &st) {
			pod.Status = st
			if rv, err := p.API.UpdatePodStatus(ctx, pod); err == nil {
				pod.ResourceVersion, reported = rv, &st
			} else if apierrors.IsConflict(err) {
				if fresh, err := p.API.GetPod(ctx, pod.Namespace, pod.Name); err == nil && fresh.UID == pod.UID {
					others = otherConditions(fresh.Status.Conditions)
					fresh.Status = pod.Status
					pod = fresh
				}
				retry.Reset(100 * time.Millisecond)
			} else if ctx.Err() == nil {
				log.Warn("report status", "err", err)
				w.retrying.Store(true)
				retry.Reset(pullRetry)
			}
		}
		select {
		case <-ctx.Done():
			return
		case np := <-w.updates:
			others = otherConditions(np.Status.Conditions)
			np.Status = pod.Status
			pod = np
		case n := <-probes.notes:
			probes.take(n, pod, recs)
		case name := <-exited:
			c, ok := running[name]
			if !ok { // stopped by stopAll, which already waited for it
				continue
			}
			p.running.Add(-1)
			delete(running, name)
			p.forget(detached, c, log)
			exitOf(name, c)
		case <-retry.C:
		}
	}
}

// podContainer is pod's container (app or init) name, or nil.
func podContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

// containerPolicy is the restart policy of pod's container name: the
// pod's, or an init container's own (initPolicy).
func containerPolicy(pod *corev1.Pod, name string) corev1.RestartPolicy {
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.Name == name {
			return initPolicy(pod, c)
		}
	}
	return pod.Spec.RestartPolicy
}

// ReasonDeadlineExceeded and deadlineMessage say why a pod failed that
// ran past its activeDeadlineSeconds, as the kubelet's.
const (
	ReasonDeadlineExceeded = "DeadlineExceeded"
	deadlineMessage        = "Pod was active on the node longer than the specified deadline"
)

// activeDeadline is when pod's activeDeadlineSeconds, counted from its
// start time, run out; false when it has none or has not started.
func activeDeadline(pod *corev1.Pod) (time.Time, bool) {
	if pod.Spec.ActiveDeadlineSeconds == nil || pod.Status.StartTime == nil {
		return time.Time{}, false
	}
	return pod.Status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second), true
}

// otherConditions returns the conditions of conds whose types the agent
// does not set (the kubelet's PodConditionsByKubelet are its).
func otherConditions(conds []corev1.PodCondition) []corev1.PodCondition {
	var out []corev1.PodCondition
	for _, c := range conds {
		switch c.Type {
		case corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodReadyToStartContainers:
		default:
			out = append(out, c)
		}
	}
	return out
}

// stoppedStatus is the status of a pod whose containers run no more: as a
// Never pod's, Succeeded once they all exited 0, else Failed (the
// kubelet's phase of a terminal pod).
func stoppedStatus(pod *corev1.Pod, recs map[string]ContainerRecord, now time.Time) corev1.PodStatus {
	never := *pod
	never.Spec.RestartPolicy = corev1.RestartPolicyNever
	st := PodStatus(&never, recs, now)
	if st.Phase != corev1.PodSucceeded {
		st.Phase = corev1.PodFailed
	}
	return st
}

// deadlineStatus is the status of a pod past its active deadline: Failed
// with DeadlineExceeded, its containers reported as stopped.
func deadlineStatus(pod *corev1.Pod, recs map[string]ContainerRecord, now time.Time) corev1.PodStatus {
	st := stoppedStatus(pod, recs, now)
	st.Phase, st.Reason, st.Message = corev1.PodFailed, ReasonDeadlineExceeded, deadlineMessage
	return st
}

// terminationGrace is pod's terminationGracePeriodSeconds (30s unset).
func terminationGrace(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// sameStatus compares what the agent reports, ignoring condition times.
func sameStatus(a, b *corev1.PodStatus) bool {
	strip := func(s *corev1.PodStatus) *corev1.PodStatus {
		c := s.DeepCopy()
		for i := range c.Conditions {
			c.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return c
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// startContainers starts every container that should run now with
// handler (unless handlerErr says it cannot) and returns when the worker
// should look again (zero: only on an event). As the kubelet's
// computeInitContainerActions: the init containers one at a time, in
// order, each once the one before completed (a sidecar once it runs,
// restarted beside the app containers until they are done for good), then
// the app containers; none again once an app container has run, and
// nothing once an init container failed for good.
func (p *Pods) startContainers(ctx context.Context, pod *corev1.Pod, handler string, handlerErr error, dir string, detached runtime.Detached, recs map[string]ContainerRecord,
	running map[string]runtime.Container, logs map[string]*podlogs.Log, exited chan<- string, now time.Time, log *slog.Logger) time.Time {
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	lookup := apiLookup{api: p.API, ctx: ctx, ns: pod.Namespace}
	// start starts c, restarted under policy, unless it runs or should
	// not run now; false: ctx ended.
	start := func(c *corev1.Container, policy corev1.RestartPolicy) bool {
		if _, ok := running[c.Name]; ok {
			return true
		}
		rec := recs[c.Name]
		if rec.Last != nil {
			restart, notBefore := Restart(policy, rec)
			if !restart {
				return true
			}
			if now.Before(notBefore) {
				if !rec.backOffReported.Equal(rec.Last.FinishedAt) {
					rec.backOffReported = rec.Last.FinishedAt
					recs[c.Name] = rec
					recordEvent(ctx, p.API, log, pod, c.Name, corev1.EventTypeWarning, EventBackOff, "Back-off restarting failed container "+c.Name)
				}
				later(notBefore)
				return true
			}
		}
		wait := func(reason string, err error) {
			if rec.WaitingReason != reason {
				recordEvent(ctx, p.API, log, pod, c.Name, corev1.EventTypeWarning, EventFailed, "Error: "+reason+": "+err.Error())
			}
			rec.WaitingReason, rec.WaitingMessage = reason, err.Error()
			recs[c.Name] = rec
			later(now.Add(pullRetry))
			log.Warn("container not started", "container", c.Name, "reason", reason, "err", err)
		}
		if handlerErr != nil {
			wait(ReasonRuntimeClassUnsupported, handlerErr)
			return true
		}
		if rec.pullFailures > 0 && now.Before(rec.pullRetryAt) {
			// As the kubelet's pod syncs show it: ErrImagePull for a retry
			// period after the failure, then ImagePullBackOff until the
			// next pull.
			if backOffFrom := rec.pullFailedAt.Add(p.pullRetry()); now.Before(backOffFrom) {
				later(backOffFrom)
				return true
			}
			if rec.WaitingReason != ReasonImagePullBackOff {
				p.events.record(pod, c.Name, corev1.EventTypeNormal, EventBackOff, fmt.Sprintf("Back-off pulling image %q", c.Image))
				p.events.record(pod, c.Name, corev1.EventTypeWarning, EventFailed, "Error: "+ReasonImagePullBackOff)
				rec.WaitingReason = ReasonImagePullBackOff
				rec.WaitingMessage = fmt.Sprintf("Back-off pulling image %q: %s: %s", c.Image, ReasonErrImagePull, rec.pullErr)
				recs[c.Name] = rec
			}
			later(rec.pullRetryAt)
			return true
		}
		// pullFailed waits after a failed pull as the kubelet's image
		// back-off: the next pull comes imageBackOff later.
		pullFailed := func(err error) {
			rec.pullFailures++
			rec.pullFailedAt, rec.pullErr = now, err.Error()
			rec.pullRetryAt = now.Add(imageBackOff(p.pullRetry(), rec.pullFailures))
			wait(ReasonErrImagePull, err)
			later(now.Add(p.pullRetry()))
		}
		runc := handler == RuntimeClassRunc
		var (
			rt      runtime.Runtime
			mod     runtime.Module
			imageID string
		)
		if runc {
			if !p.imagesReady(ctx) {
				return false
			}
			if p.Images == nil {
				why := "no containerd: see the agent's containerd-address"
				if p.ImagesErr != nil {
					why = p.ImagesErr.Error()
				}
				wait(ReasonRuntimeClassUnsupported, fmt.Errorf(`runtime class "runc" is not available on this node: %s`, why))
				return true
			}
			if err := p.Images.Pull(ctx, c.Image); err != nil {
				if errors.Is(err, imagehelper.ErrUnavailable) {
					wait(ReasonRuntimeClassUnsupported, err)
				} else {
					pullFailed(err)
				}
				return true
			}
			rt, imageID = p.Images, c.Image
			if rec.ImageID != imageID {
				p.events.record(pod, c.Name, corev1.EventTypeNormal, EventPulled, fmt.Sprintf("Container image %q is present on the node", c.Image))
			}
		} else {
			var err error
			mod, err = p.Modules.Fetch(ctx, c.Image)
			if err != nil {
				pullFailed(err)
				return true
			}
			if rec.ImageID != mod.Digest {
				p.events.record(pod, c.Name, corev1.EventTypeNormal, EventPulled, fmt.Sprintf("Module %q is ready (%s)", c.Image, mod.Digest))
			}
			if err := p.Runtime.Prepare(ctx, mod); err != nil {
				reason := ReasonErrImagePull
				var inv *runtime.InvalidModuleError
				switch {
				case errors.As(err, &inv):
					reason = ReasonInvalidModule
				case errors.Is(err, wasmhost.ErrUnavailable):
					reason = ReasonRuntimeClassUnsupported
				}
				wait(reason, err)
				return true
			}
			rt, imageID = p.Runtime, mod.Digest
		}
		rec.pullFailures = 0
		env, err := Env(pod, c, lookup)
		var vols map[string]Volume
		if err == nil {
			vols, err = Volumes(pod, filepath.Join(dir, "volumes"), lookup)
		}
		var mounts []runtime.Mount
		if err == nil {
			mounts, err = Mounts(c, vols)
		}
		if err != nil {
			wait(ReasonCreateContainerConfigError, err)
			return true
		}
		attempt := rec.Restarts
		if rec.Last != nil {
			attempt++
			if detached != nil {
				// The run before may still be in the guest host (an
				// attach that failed, a crash before its removal): one
				// run of a container at a time.
				if err := detached.Remove(ctx, containerID(pod, c.Name, rec.Restarts)); err != nil {
					wait(ReasonRuntimeClassUnsupported, err)
					return true
				}
			}
		}
		if err := pruneLogs(dir, c.Name, attempt); err != nil {
			log.Warn("remove old logs", "container", c.Name, "err", err)
		}
		if err := pruneTermination(dir, c.Name, attempt); err != nil {
			log.Warn("remove old termination messages", "container", c.Name, "err", err)
		}
		if tm, ok, err := terminationMount(dir, c, attempt, handler, mounts); err != nil {
			wait(ReasonCreateContainerConfigError, err)
			return true
		} else if ok {
			mounts = append(mounts, tm)
		}
		hostname := podHostname(pod)
		spec := runtime.ContainerSpec{ID: containerID(pod, c.Name, attempt), Env: withHostname(env, hostname), Hostname: hostname, Mounts: mounts,
			Log: runtime.LogFile{Path: logPath(dir, c.Name, attempt), MaxFileBytes: quantity(p.Config.LogMaxSize, podlogs.DefaultMaxFileBytes), MaxFiles: p.Config.LogMaxFiles}}
		// A detached runtime writes the log itself: it outlives the agent.
		var l *podlogs.Log
		if detached == nil {
			l, err = podlogs.Open(spec.Log.Path, podlogs.Options{MaxFileBytes: spec.Log.MaxFileBytes, MaxFiles: spec.Log.MaxFiles})
			if err != nil {
				wait(ReasonCreateContainerConfigError, err)
				return true
			}
			spec.Stdout, spec.Stderr = l.Stream("stdout"), l.Stream("stderr")
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			spec.MemoryLimit = q.Value()
		}
		command, args := expandArgs(c.Command, env), expandArgs(c.Args, env)
		if runc {
			// Kubernetes semantics: command replaces ENTRYPOINT, args CMD.
			// Without a memory limit a container is not capped. The pod's
			// containers share one network namespace, or the node's.
			spec.Image, spec.Command, spec.Args = c.Image, command, args
			spec.HostNetwork, spec.NetworkGroup = pod.Spec.HostNetwork, string(pod.UID)
		} else {
			if spec.MemoryLimit == 0 {
				spec.MemoryLimit = quantity(p.Config.DefaultMemoryLimit, 0)
			}
			spec.Module, spec.Args = mod, append(append([]string{c.Name}, command...), args...)
		}
		ctr, err := rt.Start(ctx, spec)
		if err != nil {
			if l != nil {
				l.Close()
			}
			reason := ReasonErrImagePull
			switch {
			case errors.Is(err, imagehelper.ErrUnavailable), errors.Is(err, wasmhost.ErrUnavailable):
				reason = ReasonRuntimeClassUnsupported
			case runc && !errors.Is(err, runtime.ErrImagePull):
				reason = ReasonCreateContainerConfigError
			}
			wait(reason, err)
			return true
		}
		if l != nil {
			logs[c.Name] = l
		}
		running[c.Name] = ctr
		p.running.Add(1)
		rec.Running, rec.StartedAt, rec.ImageID = true, now, imageID
		rec.probe = initialProbeState(c, ctr)
		rec.WaitingReason, rec.WaitingMessage = "", ""
		rec.Restarts = attempt
		recs[c.Name] = rec
		watchExit(ctx, ctr, c.Name, exited)
		p.events.record(pod, c.Name, corev1.EventTypeNormal, EventCreated, "Created container "+c.Name)
		p.events.record(pod, c.Name, corev1.EventTypeNormal, EventStarted, "Started container "+c.Name)
		log.Info("container started", "container", c.Name, "image", imageID)
		return true
	}
	if initFailed(pod, recs) {
		return next
	}
	initialized := appStarted(pod, recs)
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		switch {
		case isSidecar(c):
			if appsDone(pod, recs) {
				continue
			}
			// As the kubelet: the next init container waits for the
			// sidecar to have started (its startup probe passed).
			if !start(c, corev1.RestartPolicyAlways) || (!initialized && (!recs[c.Name].Running || recs[c.Name].probe.notStarted)) {
				return next
			}
		case initialized || completed(recs[c.Name]):
		default:
			start(c, initPolicy(pod, c))
			return next
		}
	}
	for i := range pod.Spec.Containers {
		if !start(&pod.Spec.Containers[i], pod.Spec.RestartPolicy) {
			return next
		}
	}
	return next
}

// minSidecarGrace is the least grace period a sidecar gets when a pod is
// killed, whatever its app containers left of the pod's, as the kubelet's.
const minSidecarGrace = 2 * time.Second

// runningSidecars names pod's sidecars that run, in the pod's order.
func runningSidecars(pod *corev1.Pod, running map[string]runtime.Container) []string {
	var names []string
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; isSidecar(c) && running[c.Name] != nil {
			names = append(names, c.Name)
		}
	}
	return names
}

// containerID names one run of a container of pod for the runtime.
func containerID(pod *corev1.Pod, container string, attempt int32) string {
	return fmt.Sprintf("%s/%s/%d", pod.UID, container, attempt)
}

// watchExit sends name to exited once ctr ended, unless ctx ends first.
func watchExit(ctx context.Context, ctr runtime.Container, name string, exited chan<- string) {
	go func() {
		select {
		case <-ctr.Done():
			exited <- name
		case <-ctx.Done():
		}
	}()
}

// detached is the runtime of handler's containers when they outlive the
// agent, and nil otherwise (or when ctx ended first). For runc it waits
// until the runc runtime is open.
func (p *Pods) detached(ctx context.Context, handler string) runtime.Detached {
	if handler != RuntimeClassRunc {
		d, _ := p.Runtime.(runtime.Detached)
		return d
	}
	if !p.imagesReady(ctx) || p.Images == nil {
		return nil
	}
	return p.Images
}

// imagesReady waits until Images is final, and reports false if ctx ended
// first.
func (p *Pods) imagesReady(ctx context.Context) bool {
	if p.ImagesReady == nil {
		return true
	}
	select {
	case <-p.ImagesReady:
		return true
	case <-ctx.Done():
		return false
	}
}

// removeContainers removes the containers the detached runtime d holds
// whose pod UID match accepts; why names them in the log.
func removeContainers(ctx context.Context, d runtime.Detached, log *slog.Logger, why string, match func(uid string) bool) {
	ids, err := d.IDs(ctx)
	if err != nil {
		log.Warn("list the containers of a runtime", "runtime", d.Info().Name, "err", err)
		return
	}
	for _, id := range ids {
		if uid, _, _ := strings.Cut(id, "/"); !match(uid) {
			continue
		}
		log.Info("removing "+why, "container", id)
		if err := d.Remove(ctx, id); err != nil {
			log.Warn("remove "+why, "container", id, "err", err)
		}
	}
}

// isPod returns a match for removeContainers of pod's containers.
func isPod(pod *corev1.Pod) func(uid string) bool {
	return func(uid string) bool { return uid == string(pod.UID) }
}

// forget has a detached runtime drop the ended container c, whose exit
// the worker has taken in.
func (p *Pods) forget(d runtime.Detached, c runtime.Container, log *slog.Logger) {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Remove(ctx, c.ID()); err != nil {
		log.Warn("remove an ended container from the runtime", "container", c.ID(), "err", err)
	}
}

// RemoveOrphans stops and removes the containers the detached runtimes
// (the wasm guest host, containerd) hold for pods that have no worker, and
// those pods' directories: pods deleted while the agent was away. Call it
// once Sync was given the node's whole set of pods.
func (p *Pods) RemoveOrphans(ctx context.Context) {
	p.removeOrphans(ctx, func(string) bool { return true })
}

// RemoveStaticOrphans is RemoveOrphans for the static pods alone, whose
// manifests are gone: the static pods on the node are known at start,
// before the API is reached (which may not be soon, at the edge).
// Their directories say which they are; without one, the runtimes are
// not asked (an agent start does not wait on the containerd helper).
func (p *Pods) RemoveStaticOrphans(ctx context.Context) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return
	}
	static := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() || p.hasWorker(e.Name()) {
			continue
		}
		if st, err := loadPodState(filepath.Join(p.Dir, e.Name())); err == nil && st.Static {
			static[e.Name()] = true
		}
	}
	if len(static) > 0 {
		p.removeOrphans(ctx, func(uid string) bool { return static[uid] })
	}
}

func (p *Pods) hasWorker(uid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.workers[types.UID(uid)]
	return ok
}

// removeOrphans removes the containers and directories of the pods without
// a worker whose UID orphan accepts.
func (p *Pods) removeOrphans(ctx context.Context, orphan func(uid string) bool) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rts []runtime.Detached
	if d, ok := p.Runtime.(runtime.Detached); ok {
		rts = append(rts, d)
	}
	if p.imagesReady(ctx) && p.Images != nil {
		rts = append(rts, p.Images)
	}
	isOrphan := func(uid string) bool { return !p.hasWorker(uid) && orphan(uid) }
	for _, d := range rts {
		removeContainers(ctx, d, log, "a container of a pod this node no longer has", isOrphan)
	}
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && isOrphan(e.Name()) {
			if err := removePodDir(filepath.Join(p.Dir, e.Name())); err != nil {
				log.Warn("remove the directory of a pod this node no longer has", "dir", e.Name(), "err", err)
			}
		}
	}
}

func quantity(s string, def int64) int64 {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return def
	}
	return q.Value()
}

// apiLookup reads ConfigMaps and Secrets through the node's API client.
type apiLookup struct {
	api *APIClient
	ctx context.Context
	ns  string
}

func (l apiLookup) ConfigMap(name string) (*corev1.ConfigMap, error) {
	cm, err := l.api.GetConfigMap(l.ctx, l.ns, name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return cm, err
}

func (l apiLookup) Secret(name string) (*corev1.Secret, error) {
	s, err := l.api.GetSecret(l.ctx, l.ns, name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}
