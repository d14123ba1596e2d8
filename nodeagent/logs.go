package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
)

// Serving `kubectl logs`: the control plane asks over NATS
// (nodelink.LogServer runs the protocol); PodLogs picks the container
// instance from the pod's status, as the kubelet does from its own, and
// reads the files Pods writes (logPath).

// logPath is the current file of the log of one run of a container of the
// pod whose directory is podDir: podDir/logs/<container>/<attempt>.log,
// attempt = the container's restart count when that run started, its
// rotated files beside it. (Agents before this layout wrote
// <attempt>/container.log; oldLogPath names that file.)
func logPath(podDir, container string, attempt int32) string {
	return filepath.Join(podDir, "logs", container, strconv.Itoa(int(attempt))+".log")
}

func oldLogPath(podDir, container string, attempt int32) string {
	return filepath.Join(podDir, "logs", container, strconv.Itoa(int(attempt)), "container.log")
}

func fileExistsAt(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// pruneLogs removes the logs of a container's runs before the previous
// one when run attempt starts: the kubelet keeps the current and the
// previous run's (`kubectl logs --previous`), and a container that
// crash-loops for days would otherwise fill the device's disk.
func pruneLogs(podDir, container string, attempt int32) error {
	if attempt < 2 {
		return nil // no run before the previous one
	}
	dir := filepath.Join(podDir, "logs", container)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var errs []error
	for _, e := range entries {
		run, _, _ := strings.Cut(e.Name(), ".") // <run>.log, <run>.log.<N>, or an old <run>/
		if n, err := strconv.Atoi(run); err == nil && n < int(attempt)-1 {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// PodLogs answers log requests from the pods' log files. Its Open is a
// nodelink.LogOpener; safe for concurrent use.
type PodLogs struct {
	// Dir is Pods.Dir.
	Dir string
	// Pod returns the node's pod ns/name as the agent knows it (its pod
	// source's snapshot, statuses included).
	Pod func(namespace, name string) (*corev1.Pod, bool)
	// Poll is how often a followed container is checked for having
	// stopped (0: 500ms).
	Poll time.Duration
}

// drainDelay lets a follow print what a stopped container wrote last
// (podlogs polls every 100ms) before it ends.
const drainDelay = 300 * time.Millisecond

// Open implements nodelink.LogOpener.
func (l *PodLogs) Open(req nodelink.LogRequest) (func(ctx context.Context, w io.Writer) error, error) {
	pod, ok := l.Pod(req.Namespace, req.Pod)
	if !ok || (req.UID != "" && string(pod.UID) != req.UID) {
		// Bound, but not (yet) seen here.
		return nil, &nodelink.LogError{Code: http.StatusBadRequest,
			Message: fmt.Sprintf("container %q in pod %q is waiting to start: %s", req.Container, req.Pod, ReasonContainerCreating)}
	}
	inst, err := LogInstance(pod, req.Container, req.Previous)
	if err != nil {
		return nil, err
	}
	// A mirror pod's logs are its static pod's, whose UID it names.
	dirUID := string(pod.UID)
	if h := pod.Annotations[MirrorAnnotation]; isStaticUID(h) {
		dirUID = h
	}
	podDir := filepath.Join(l.Dir, dirUID)
	path := logPath(podDir, req.Container, inst.Attempt)
	if old := oldLogPath(podDir, req.Container, inst.Attempt); !fileExistsAt(path) && fileExistsAt(old) {
		path = old
	}
	o := podlogs.ReadOptions{Tail: -1, Timestamps: req.Timestamps, Follow: req.Follow && inst.Running}
	if req.TailLines != nil {
		o.Tail = *req.TailLines
	}
	switch {
	case req.SinceSeconds != nil:
		o.Since = time.Now().Add(-time.Duration(*req.SinceSeconds) * time.Second)
	case req.SinceTime != nil:
		o.Since = *req.SinceTime
	}
	uid := pod.UID
	return func(ctx context.Context, w io.Writer) error {
		if !o.Follow {
			return podlogs.Read(ctx, path, o, w)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			poll := l.Poll
			if poll <= 0 {
				poll = 500 * time.Millisecond
			}
			t := time.NewTicker(poll)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				p, ok := l.Pod(req.Namespace, req.Pod)
				if ok && p.UID == uid && instanceRunning(p, req.Container, inst.Attempt) {
					continue
				}
				select {
				case <-ctx.Done():
				case <-time.After(drainDelay):
				}
				cancel()
				return
			}
		}()
		return podlogs.Read(ctx, path, o, w)
	}, nil
}

// LogRun is the container instance a log request reads.
type LogRun struct {
	// Attempt is the instance's restart count when it started.
	Attempt int32
	// Running: the instance still runs (a follow waits for more).
	Running bool
}

// LogInstance picks the instance of container whose log a request wants,
// from the pod's status, with the kubelet's errors (400): the current run,
// or the last finished one while the container waits to restart; with
// previous, the run before the current one.
func LogInstance(pod *corev1.Pod, container string, previous bool) (LogRun, error) {
	bad := func(format string, args ...any) (LogRun, error) {
		return LogRun{}, &nodelink.LogError{Code: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
	}
	var cs *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				cs = &list[i]
			}
		}
	}
	if cs == nil {
		for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
			if c.Name == container { // not reported yet
				return bad("container %q in pod %q is waiting to start: %s", container, pod.Name, ReasonContainerCreating)
			}
		}
		return bad("container %q in pod %q is not available", container, pod.Name)
	}
	last := cs.LastTerminationState.Terminated
	switch {
	case previous:
		if last == nil {
			return bad("previous terminated container %q in pod %q not found", container, pod.Name)
		}
		attempt := cs.RestartCount
		if cs.State.Running != nil || cs.State.Terminated != nil {
			attempt-- // the current run has a run before it
		}
		if attempt < 0 {
			return bad("previous terminated container %q in pod %q not found", container, pod.Name)
		}
		return LogRun{Attempt: attempt}, nil
	case cs.State.Running != nil:
		return LogRun{Attempt: cs.RestartCount, Running: true}, nil
	case cs.State.Terminated != nil, last != nil:
		return LogRun{Attempt: cs.RestartCount}, nil
	case cs.State.Waiting != nil:
		switch reason := cs.State.Waiting.Reason; reason {
		case ReasonErrImagePull:
			return bad("container %q in pod %q is waiting to start: image can't be pulled", container, pod.Name)
		case ReasonImagePullBackOff:
			return bad("container %q in pod %q is waiting to start: trying and failing to pull image", container, pod.Name)
		default:
			return bad("container %q in pod %q is waiting to start: %s", container, pod.Name, reason)
		}
	}
	return bad("container %q in pod %q is waiting to start - no logs yet", container, pod.Name)
}

// instanceRunning reports whether pod's status still shows run attempt of
// container running.
func instanceRunning(pod *corev1.Pod, container string, attempt int32) bool {
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		if cs.Name == container {
			return cs.State.Running != nil && cs.RestartCount == attempt
		}
	}
	return false
}

// snapshotPod looks a pod up in the pod source's snapshot.
func snapshotPod(src *PodSource) func(ns, name string) (*corev1.Pod, bool) {
	return func(ns, name string) (*corev1.Pod, bool) {
		src.init()
		src.mu.Lock()
		defer src.mu.Unlock()
		p, ok := src.pods[podKey(ns, name)]
		if !ok {
			return nil, false
		}
		return p.DeepCopy(), true
	}
}

// LogStreams returns the log streams the agent serves now, and how many of
// them follow a log (zero before Run starts them).
func (a *Agent) LogStreams() (streams, follows int) {
	if s := a.logs.Load(); s != nil {
		return s.Active()
	}
	return 0, 0
}
