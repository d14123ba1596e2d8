package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// mirrorRetry is how soon MirrorPods tries again after a failed write,
// doubling with each failure in a row up to mirrorRetryMax.
const (
	mirrorRetry    = 500 * time.Millisecond
	mirrorRetryMax = 30 * time.Second
)

// MirrorPlan is what MirrorPods does to bring the API's mirror pods in line
// with the node's static pods.
type MirrorPlan struct {
	// Create: static pods without a mirror pod.
	Create []*corev1.Pod
	// Delete: mirror pods of no current static pod (manifest removed or
	// changed: the hash differs) and mirror pods a user deleted (they
	// carry a deletionTimestamp; the node confirms, as for any pod, and
	// creates them again).
	Delete []*corev1.Pod
	// Status: mirror pods whose status is to be written (the pod's
	// Status holds the status to write).
	Status []*corev1.Pod
}

// PlanMirrors decides, as the kubelet does for each static pod, from the
// static pods, the statuses their workers computed (by static pod UID,
// already as the API would store them) and the mirror pods bound to this
// node (pods without the mirror annotation are ignored; a regular pod
// holding a static pod's name blocks its mirror). It is pure.
func PlanMirrors(static []*corev1.Pod, statuses map[types.UID]corev1.PodStatus, pods []*corev1.Pod) MirrorPlan {
	var plan MirrorPlan
	byKey := map[string]*corev1.Pod{}
	for _, p := range pods {
		byKey[podKey(p.Namespace, p.Name)] = p
	}
	wanted := map[string]bool{}
	for _, s := range static {
		key := podKey(s.Namespace, s.Name)
		wanted[key] = true
		m, ok := byKey[key]
		switch {
		case !ok:
			plan.Create = append(plan.Create, s)
		case !IsMirrorPod(m):
			// A pod of the API took the name: leave it alone.
		case m.DeletionTimestamp != nil || m.Annotations[MirrorAnnotation] != string(s.UID):
			plan.Delete = append(plan.Delete, m)
		default:
			st, ok := statuses[s.UID]
			if !ok {
				continue
			}
			if st.QOSClass == "" {
				st.QOSClass = m.Status.QOSClass
			}
			if !sameStatus(&m.Status, &st) {
				u := m.DeepCopy()
				u.Status = st
				plan.Status = append(plan.Status, u)
			}
		}
	}
	for _, p := range pods {
		if IsMirrorPod(p) && !wanted[podKey(p.Namespace, p.Name)] {
			plan.Delete = append(plan.Delete, p)
		}
	}
	return plan
}

// MirrorPod is the API object that mirrors static pod s on the node with
// uid nodeUID: the same pod with the mirror annotation and the Node as its
// owner (deleting the Node collects it). The API server gives it its own
// UID.
func MirrorPod(s *corev1.Pod, nodeUID types.UID) *corev1.Pod {
	m := s.DeepCopy()
	m.UID, m.ResourceVersion = "", ""
	m.Annotations[MirrorAnnotation] = string(s.UID)
	yes := true
	m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: s.Spec.NodeName, UID: nodeUID, Controller: &yes}}
	m.Status = corev1.PodStatus{}
	return m
}

// MirrorPods keeps a mirror pod in the API for every static pod, with the
// status its worker computed (Pods.StaticStatus is SetStatus): it creates
// missing ones, recreates deleted or outdated ones, confirms their
// deletion, and deletes those whose manifest is gone. Deleting a mirror
// pod never stops the static pod. It acts on Kick, Observe, SetStatus and
// after failures until ctx ends; it does nothing before the first Observe
// (the API's pods are not known yet). Run it once; the other methods are
// safe from any goroutine.
type MirrorPods struct {
	API *APIClient
	// Static returns the node's static pods (StaticPods.Snapshot).
	Static func() []*corev1.Pod
	Log    *slog.Logger

	once     sync.Once
	mu       sync.Mutex
	statuses map[types.UID]corev1.PodStatus // guarded by mu
	pods     []*corev1.Pod                  // guarded by mu; nil: not observed yet
	kick     chan struct{}
	// written (Run's goroutine only): the status last written per mirror
	// UID and the resourceVersion the write produced; not written again
	// while the mirror is at that version (the API may store it
	// differently).
	written map[types.UID]writtenStatus
}

type writtenStatus struct {
	status corev1.PodStatus
	rv     string
}

func (m *MirrorPods) init() {
	m.once.Do(func() {
		m.statuses, m.kick, m.written = map[types.UID]corev1.PodStatus{}, make(chan struct{}, 1), map[types.UID]writtenStatus{}
	})
}

// Kick makes Run look again (coalesced).
func (m *MirrorPods) Kick() {
	m.init()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Observe hands over the pods bound to the node as the API has them (a
// listed PodSource's snapshot, mirror pods included); they are only read.
func (m *MirrorPods) Observe(pods []*corev1.Pod) {
	m.init()
	if pods == nil {
		pods = []*corev1.Pod{}
	}
	m.mu.Lock()
	m.pods = pods
	m.mu.Unlock()
	m.Kick()
}

// SetStatus records static pod's latest status (its worker calls it).
func (m *MirrorPods) SetStatus(pod *corev1.Pod, st corev1.PodStatus) {
	m.init()
	// As the API stores it: times in seconds.
	var stored corev1.PodStatus
	if b, err := json.Marshal(&st); err == nil && json.Unmarshal(b, &stored) == nil {
		st = stored
	}
	m.mu.Lock()
	m.statuses[pod.UID] = st
	m.mu.Unlock()
	m.Kick()
}

// forget drops the statuses of static pods that are gone and returns
// the others.
func (m *MirrorPods) forget(static []*corev1.Pod) map[types.UID]corev1.PodStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := map[types.UID]bool{}
	for _, s := range static {
		live[s.UID] = true
	}
	out := map[types.UID]corev1.PodStatus{}
	for uid, st := range m.statuses {
		if live[uid] {
			out[uid] = st
		} else {
			delete(m.statuses, uid)
		}
	}
	return out
}

// Run reconciles until ctx ends.
func (m *MirrorPods) Run(ctx context.Context) error {
	m.init()
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	wait := mirrorRetry
	for {
		if m.reconcile(ctx, log) {
			wait = mirrorRetry
		} else {
			retry.Reset(wait)
			wait = min(2*wait, mirrorRetryMax)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-retry.C:
		}
	}
}

// reconcile acts once and reports whether everything succeeded. A write
// that lost a race with the snapshot (exists already, gone already,
// conflict) counts as success: the snapshot's next change kicks again.
func (m *MirrorPods) reconcile(ctx context.Context, log *slog.Logger) bool {
	m.mu.Lock()
	pods := m.pods
	m.mu.Unlock()
	if pods == nil {
		return true // Observe kicks
	}
	static := m.Static()
	plan := PlanMirrors(static, m.forget(static), pods)
	ok := true
	fail := func(what string, p *corev1.Pod, err error) {
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrNotConnected): // the link is down: retried
			log.Debug("mirror pod: "+what, "pod", p.Namespace+"/"+p.Name, "err", err)
		default:
			log.Warn("mirror pod: "+what, "pod", p.Namespace+"/"+p.Name, "err", err)
		}
		ok = false
	}
	log.Debug("mirror pods", "static", len(static), "pods", len(pods), "create", len(plan.Create), "delete", len(plan.Delete), "status", len(plan.Status))
	zero := int64(0)
	for _, p := range plan.Delete {
		err := m.API.DeletePod(ctx, p.Namespace, p.Name, &zero, string(p.UID))
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			fail("delete", p, err)
		}
	}
	if len(plan.Create) > 0 {
		node, err := m.API.GetNode(ctx, m.API.Node())
		if err != nil {
			// Not registered yet (the heartbeat does it): no owner.
			fail("create: read the node", plan.Create[0], err)
		} else {
			for _, s := range plan.Create {
				_, err := m.API.CreatePod(ctx, MirrorPod(s, node.UID))
				if err != nil && !apierrors.IsAlreadyExists(err) {
					fail("create", s, err)
				}
			}
		}
	}
	for _, p := range plan.Status {
		if w, done := m.written[p.UID]; done && w.rv == p.ResourceVersion && sameStatus(&w.status, &p.Status) {
			continue
		}
		rv, err := m.API.UpdatePodStatus(ctx, p)
		switch {
		case err == nil:
			m.written[p.UID] = writtenStatus{status: p.Status, rv: rv}
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		default:
			fail("report status", p, err)
		}
	}
	live := map[types.UID]bool{}
	for _, p := range pods {
		live[p.UID] = true
	}
	for uid := range m.written {
		if !live[uid] {
			delete(m.written, uid)
		}
	}
	return ok
}
