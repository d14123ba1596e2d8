package nodeagent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// relistEvery bounds how long a missed event can go unnoticed: the pod
// source lists its pods again this often (level-triggered, as Kubernetes
// informers relist).
const relistEvery = 5 * time.Minute

// PodSource keeps the set of pods bound to this node: a list through the
// node's API client, then the node's JetStream consumer (its own subject of
// the events stream) for changes, and a periodic relist. Each pod is kept
// at the newest resourceVersion seen, so a late list never undoes a newer
// event. Run it once; Snapshot and Changed are safe from any goroutine.
type PodSource struct {
	API *APIClient
	JS  jetstream.JetStream
	// Stream, Consumer and Filter come from the node's join credentials.
	Stream, Consumer, Filter string
	Log                      *slog.Logger

	mu      sync.Mutex
	pods    map[string]*corev1.Pod
	rev     map[string]int64 // newest revision seen per pod, deletions included
	synced  bool
	changed chan struct{}
}

func podKey(ns, name string) string { return ns + "/" + name }

func (s *PodSource) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pods == nil {
		s.pods, s.rev, s.changed = map[string]*corev1.Pod{}, map[string]int64{}, make(chan struct{}, 1)
	}
}

// Changed signals (coalesced) that the set of pods changed.
func (s *PodSource) Changed() <-chan struct{} { s.init(); return s.changed }

// Snapshot returns the pods, sorted by namespace and name, and whether the
// source has listed them at least once. The pods are the source's own,
// which it never modifies (a change replaces a pod): they may be read from
// any goroutine but must not be written.
func (s *PodSource) Snapshot() ([]*corev1.Pod, bool) {
	s.init()
	s.mu.Lock()
	out := make([]*corev1.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, p)
	}
	synced := s.synced
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, synced
}

func (s *PodSource) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// apply records one pod change at revision rev unless something newer is
// known; deleted pods are forgotten.
func (s *PodSource) apply(key string, pod *corev1.Pod, rev int64, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.rev[key] {
		return
	}
	s.rev[key] = rev
	if deleted {
		delete(s.pods, key)
	} else {
		s.pods[key] = pod
	}
	s.notify()
}

// relist replaces the pods with a list at listRev, keeping newer knowledge.
func (s *PodSource) relist(ctx context.Context) error {
	list, err := s.API.ListPods(ctx)
	if err != nil {
		return err
	}
	listRev, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for i := range list.Items {
		p := &list.Items[i]
		key := podKey(p.Namespace, p.Name)
		seen[key] = true
		rev, _ := strconv.ParseInt(p.ResourceVersion, 10, 64)
		if rev > s.rev[key] {
			s.rev[key], s.pods[key] = rev, p
		}
	}
	for key := range s.pods {
		if !seen[key] && s.rev[key] <= listRev {
			delete(s.pods, key)
		}
	}
	for key, rev := range s.rev {
		if _, ok := s.pods[key]; !ok && rev <= listRev {
			delete(s.rev, key) // a deletion the list has caught up with
		}
	}
	s.synced = true
	s.notify()
	return nil
}

func (s *PodSource) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Run follows the node's pods until ctx ends. Errors (control plane or
// NATS away) are logged and retried; the pods known so far stay.
func (s *PodSource) Run(ctx context.Context) error {
	s.init()
	log := s.logger()
	// Relist on a timer too, in case events are lost while NATS is quiet.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(relistEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.relist(ctx); err != nil && ctx.Err() == nil {
					log.Warn("pod source: relist", "err", err)
				}
			}
		}
	}()
	for ctx.Err() == nil {
		if err := s.follow(ctx); err != nil && ctx.Err() == nil {
			log.Warn("pod source: resyncing", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (s *PodSource) follow(ctx context.Context) error {
	// The consumer first, then the list: no change falls between them.
	cons, err := s.JS.CreateOrUpdateConsumer(ctx, s.Stream, jetstream.ConsumerConfig{
		Durable:       s.Consumer,
		FilterSubject: s.Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return err
	}
	if err := s.relist(ctx); err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return err
		}
		if err := s.handle(ctx, msg); err != nil {
			msg.Nak()
			return err
		}
		msg.Ack()
	}
}

// handle applies one message of the node's subject. A message published
// without its payload (too large for the NATS max_payload) names the pod
// in its subject: the pod is read through the API instead, and a failure
// to reach the API is returned, so that the source resyncs.
func (s *PodSource) handle(ctx context.Context, msg jetstream.Msg) error {
	h := msg.Headers()
	rev, err := strconv.ParseInt(h.Get(subjects.HeaderRevision), 10, 64)
	if err != nil {
		return nil
	}
	deleted := h.Get(subjects.HeaderType) == "DELETED"
	if h.Get(subjects.HeaderPayloadOmitted) == "" {
		var pod corev1.Pod
		if err := json.Unmarshal(msg.Data(), &pod); err != nil || pod.Name == "" {
			return nil
		}
		s.apply(podKey(pod.Namespace, pod.Name), &pod, rev, deleted)
		return nil
	}
	sub, err := subjects.ParseSubject(msg.Subject())
	if err != nil || sub.Resource != "pods" {
		return nil
	}
	key := podKey(sub.Namespace, sub.Name)
	if deleted {
		s.apply(key, nil, rev, true)
		return nil
	}
	pod, err := s.API.GetPod(ctx, sub.Namespace, sub.Name)
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		// Gone, or no longer bound here: the deletion's own event follows.
		s.apply(key, nil, rev, true)
	case errors.As(err, new(apierrors.APIStatus)):
		// Asking again would get the same answer (a pod too large for the
		// node link's max_payload): the relists will try.
		s.logger().Warn("pod source: cannot read a pod published without its payload", "pod", key, "err", err)
	case err != nil:
		return fmt.Errorf("read pod %s, published without its payload: %w", key, err)
	default:
		if r, _ := strconv.ParseInt(pod.ResourceVersion, 10, 64); r > rev {
			rev = r
		}
		s.apply(key, pod, rev, pod.Spec.NodeName != s.API.Node())
	}
	return nil
}
