package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// the pod itself); failures are logged, never fatal.
func recordEvent(ctx context.Context, api *APIClient, log *slog.Logger, pod *corev1.Pod, c, typ, reason, msg string) {
	now := metav1.NewTime(time.Now())
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if c != "" {
		ref.FieldPath = "spec.containers{" + c + "}"
	}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: pod.Name + "." + strconv.FormatInt(now.UnixNano(), 16), Namespace: pod.Namespace},
		InvolvedObject: ref,
		Reason:         reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: "wasmfleet-agent", Host: api.Node()},
		ReportingController: "wasmfleet.io/agent", ReportingInstance: api.Node(),
	}
	if _, err := api.CreateEvent(ctx, ev); err != nil && ctx.Err() == nil {
		if errors.Is(err, ErrNotConnected) { // best effort: not kept for later
			log.Debug("record event", "reason", reason, "err", fmt.Sprint(err))
			return
		}
		log.Warn("record event", "reason", reason, "err", fmt.Sprint(err))
	}
}
