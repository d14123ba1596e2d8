package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// Event reasons the agent reports on pods, as the kubelet names them.
const (
	EventPulled  = "Pulled"
	EventCreated = "Created"
	EventStarted = "Started"
	EventFailed  = "Failed"
	EventBackOff = "BackOff"
	EventKilling = "Killing"
)

// recordEvent creates a core/v1 Event about container c of pod (c "" for
// the pod itself) and waits for the API's answer; failures are logged,
// never fatal.
func recordEvent(ctx context.Context, api *APIClient, log *slog.Logger, pod *corev1.Pod, c, typ, reason, msg string) {
	postEvent(ctx, api, log, newEvent(api.Node(), pod, c, typ, reason, msg))
}

// newEvent builds the Event recordEvent creates.
func newEvent(node string, pod *corev1.Pod, c, typ, reason, msg string) *corev1.Event {
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if c != "" {
		ref.FieldPath = "spec.containers{" + c + "}"
		for _, ic := range pod.Spec.InitContainers {
			if ic.Name == c {
				ref.FieldPath = "spec.initContainers{" + c + "}"
			}
		}
	}
	return eventAbout(node, ref, typ, reason, msg)
}

// nodeEvent builds an Event about node, in the default namespace as the
// kubelet's events about its Node (whose reference's UID is the node's
// name).
func nodeEvent(node, typ, reason, msg string) *corev1.Event {
	return eventAbout(node, corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node)}, typ, reason, msg)
}

// eventAbout builds an Event the agent of node reports about ref, in ref's
// namespace (default for a cluster-scoped object).
func eventAbout(node string, ref corev1.ObjectReference, typ, reason, msg string) *corev1.Event {
	now := metav1.NewTime(time.Now())
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: ref.Name + "." + strconv.FormatInt(now.UnixNano(), 16), Namespace: ns},
		InvolvedObject: ref,
		Reason:         reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: "wasmfleet-agent", Host: node},
		ReportingController: "wasmfleet.io/agent", ReportingInstance: node,
	}
}

// postEvent creates ev and reports whether that worked.
func postEvent(ctx context.Context, api *APIClient, log *slog.Logger, ev *corev1.Event) bool {
	err := api.CreateEvent(ctx, ev)
	if err != nil && ctx.Err() == nil {
		if errors.Is(err, ErrNotConnected) { // best effort: not kept for later
			log.Debug("record event", "reason", ev.Reason, "err", fmt.Sprint(err))
		} else {
			log.Warn("record event", "reason", ev.Reason, "err", fmt.Sprint(err))
		}
	}
	return err == nil
}

// Sizes of an eventRecorder.
const (
	eventQueueSize   = 4096
	eventSenders     = 4
	eventPostTimeout = 10 * time.Second
)

// eventRecorder records Events in the background, as the kubelet's event
// recorder does: a container's start is reported (its status posted)
// without waiting for the writes of its Pulled, Created and Started
// events. Up to eventSenders events are in flight at once, so their
// order is only roughly kept (each Event carries its own time); when
// eventQueueSize events wait, more are dropped and logged. Start it once
// with run; record is safe from any goroutine and never blocks.
//
// As the kubelet's, events pass client-go's EventCorrelator: an event
// recorded again (a crash-looping container's BackOff) patches the count
// and last time of the Event already there instead of creating another,
// similar events are combined, and one object's events are rate limited
// (kube's spam filter: bursts of 25, then one per five minutes).
type eventRecorder struct {
	api        *APIClient
	log        *slog.Logger
	queue      chan *corev1.Event
	correlator *record.EventCorrelator
}

func newEventRecorder(api *APIClient, log *slog.Logger) *eventRecorder {
	return &eventRecorder{api: api, log: log, queue: make(chan *corev1.Event, eventQueueSize),
		correlator: record.NewEventCorrelator(clock.RealClock{})}
}

// record queues an Event about container c of pod (see recordEvent).
func (r *eventRecorder) record(pod *corev1.Pod, c, typ, reason, msg string) {
	select {
	case r.queue <- newEvent(r.api.Node(), pod, c, typ, reason, msg):
	default:
		r.log.Warn("event queue full: event dropped", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "message", msg)
	}
}

// run posts the queued events until ctx ends (what is still queued then
// is dropped: the node is shutting down). It returns once its senders
// are done.
func (r *eventRecorder) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range eventSenders {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ev := <-r.queue:
					pctx, cancel := context.WithTimeout(ctx, eventPostTimeout)
					r.post(pctx, ev)
					cancel()
				}
			}
		})
	}
	wg.Wait()
}

// post creates ev, or patches the Event it repeats, as client-go's
// recordToSink does.
func (r *eventRecorder) post(ctx context.Context, ev *corev1.Event) {
	res, err := r.correlator.EventCorrelate(ev)
	if err != nil || res.Skip {
		return
	}
	ev = res.Event
	if ev.Count > 1 && len(res.Patch) > 0 {
		err := r.api.PatchEvent(ctx, ev.Namespace, ev.Name, res.Patch)
		if err == nil {
			r.correlator.UpdateState(ev)
			return
		}
		if !apierrors.IsNotFound(err) {
			r.log.Debug("update event", "reason", ev.Reason, "err", fmt.Sprint(err))
			return
		}
		// Gone (expired): recorded anew.
		ev.ResourceVersion = ""
	}
	if postEvent(ctx, r.api, r.log, ev) {
		r.correlator.UpdateState(ev)
	}
}
