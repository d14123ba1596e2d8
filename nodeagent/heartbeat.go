package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeStatusEvery is how often the Node's conditions are refreshed when
// nothing changed (the kubelet's nodeStatusReportFrequency is 5m; the Lease
// carries liveness in between).
const nodeStatusEvery = time.Minute

// LeaseNamespace holds the node Leases.
const LeaseNamespace = corev1.NamespaceNodeLease

// Heartbeat registers the node and keeps its Lease (liveness) and Node
// status fresh through the node's API client. Run it once.
type Heartbeat struct {
	API *APIClient
	// Node builds the Node as of now (BuildNode with the agent's config).
	Node          func(now time.Time) (*corev1.Node, error)
	LeaseDuration time.Duration
	RenewInterval time.Duration
	Log           *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex // guards the two below
	// announced: the first registration was reported (Starting);
	// unschedulable is the node's spec.unschedulable as last seen (false
	// before, as the kubelet's).
	announced, unschedulable bool
}

func (h *Heartbeat) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Register creates the Node, or brings an existing one up to date: labels
// (the agent's own win; others' stay) and status.
func (h *Heartbeat) Register(ctx context.Context) error {
	want, err := h.Node(h.now())
	if err != nil {
		return err
	}
	cur, err := h.API.GetNode(ctx, want.Name)
	if apierrors.IsNotFound(err) {
		if _, err = h.API.CreateNode(ctx, want); err == nil {
			h.recordNodeEvents(ctx, nil, want.Status.Conditions, false)
		}
		if err == nil || !apierrors.IsAlreadyExists(err) {
			return err
		}
		cur, err = h.API.GetNode(ctx, want.Name)
	}
	if err != nil {
		return err
	}
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	changed := false
	for k, v := range want.Labels {
		if cur.Labels[k] != v {
			cur.Labels[k], changed = v, true
		}
	}
	if changed {
		if cur, err = h.API.UpdateNode(ctx, cur); err != nil {
			return err
		}
	}
	prev := cur.Status.Conditions
	keepTransitions(want.Status.Conditions, prev)
	cur.Status = want.Status
	if _, err = h.API.UpdateNodeStatus(ctx, cur); err != nil {
		return err
	}
	h.recordNodeEvents(ctx, prev, want.Status.Conditions, cur.Spec.Unschedulable)
	return nil
}

// recordNodeEvents reports on the Node as the kubelet does: Starting at
// the first registration, an event for each condition that is new or
// changed (NodeReady, NodeHasSufficientMemory, …) and one when
// spec.unschedulable changed (NodeSchedulable, NodeNotSchedulable).
func (h *Heartbeat) recordNodeEvents(ctx context.Context, prev, conds []corev1.NodeCondition, unschedulable bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	node := h.API.Node()
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	status := func(reason string) {
		postEvent(ctx, h.API, log, nodeEvent(node, corev1.EventTypeNormal, reason, fmt.Sprintf("Node %s status is now: %s", node, reason)))
	}
	if !h.announced {
		postEvent(ctx, h.API, log, nodeEvent(node, corev1.EventTypeNormal, "Starting", "Starting wasmfleet agent."))
		h.announced = true
	}
	for _, c := range conds {
		i := slices.IndexFunc(prev, func(p corev1.NodeCondition) bool { return p.Type == c.Type })
		if reason := conditionEvent(c); reason != "" && (i < 0 || prev[i].Status != c.Status) {
			status(reason)
		}
	}
	if unschedulable != h.unschedulable {
		h.unschedulable = unschedulable
		status(map[bool]string{true: "NodeNotSchedulable", false: "NodeSchedulable"}[unschedulable])
	}
}

// conditionEvent is the kubelet's event reason for a node condition's
// status (its nodestatus setters'), "" for a type it has none for.
func conditionEvent(c corev1.NodeCondition) string {
	t := c.Status == corev1.ConditionTrue
	switch c.Type {
	case corev1.NodeReady:
		return map[bool]string{true: "NodeReady", false: "NodeNotReady"}[t]
	case corev1.NodeMemoryPressure:
		return map[bool]string{true: "NodeHasInsufficientMemory", false: "NodeHasSufficientMemory"}[t]
	case corev1.NodeDiskPressure:
		return map[bool]string{true: "NodeHasDiskPressure", false: "NodeHasNoDiskPressure"}[t]
	case corev1.NodePIDPressure:
		return map[bool]string{true: "NodeHasInsufficientPID", false: "NodeHasSufficientPID"}[t]
	}
	return ""
}

// keepTransitions keeps the lastTransitionTime of each condition in prev
// whose status is unchanged in conds, as the kubelet does: it says since
// when the node has been Ready.
func keepTransitions(conds, prev []corev1.NodeCondition) {
	for i, c := range conds {
		for _, p := range prev {
			if p.Type == c.Type && p.Status == c.Status && !p.LastTransitionTime.IsZero() {
				conds[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
}

// RenewLease creates or renews the node's Lease.
func (h *Heartbeat) RenewLease(ctx context.Context) error {
	node := h.API.Node()
	now := metav1.NewMicroTime(h.now())
	secs := int32(h.LeaseDuration / time.Second)
	l, err := h.API.GetLease(ctx, node)
	if apierrors.IsNotFound(err) {
		_, err = h.API.CreateLease(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: LeaseNamespace},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &node, LeaseDurationSeconds: &secs, RenewTime: &now, AcquireTime: &now},
		})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &node, &secs, &now
	_, err = h.API.UpdateLease(ctx, l)
	return err
}

// Run registers the node (retrying until it succeeds), then renews the
// Lease every RenewInterval and refreshes the Node's status every minute
// and after a failed renewal,
// until ctx ends. Failures are logged and retried on the next tick: the
// agent keeps its pods running while the control plane is away.
func (h *Heartbeat) Run(ctx context.Context) error {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if h.RenewInterval <= 0 || h.LeaseDuration <= h.RenewInterval {
		return fmt.Errorf("heartbeat: renew interval %v must be positive and shorter than the lease duration %v", h.RenewInterval, h.LeaseDuration)
	}
	t := time.NewTicker(h.RenewInterval)
	defer t.Stop()
	registered, renewFailed := false, false
	var lastStatus time.Time
	for {
		// After a failed renewal the node controller may have marked the
		// node Unknown: post Ready at once when the link is back (as the
		// kubelet does), not at the next minutely status.
		if !registered || renewFailed || h.now().Sub(lastStatus) >= nodeStatusEvery {
			if err := h.Register(ctx); err != nil {
				log.Warn("heartbeat: register node", "err", err)
			} else {
				registered, lastStatus = true, h.now()
			}
		}
		if registered {
			err := h.RenewLease(ctx)
			if err != nil {
				log.Warn("heartbeat: renew lease", "err", err)
			}
			renewFailed = err != nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
