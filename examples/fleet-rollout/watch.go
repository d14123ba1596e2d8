package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// availabilityWatch follows the sensor pods and counts, after every event,
// the sensor devices without a Ready pod that is not being deleted.
type availabilityWatch struct {
	devices []string
	pods    map[types.UID]*corev1.Pod
	cancel  context.CancelFunc
	done    chan struct{}
	// Written by the watch goroutine, read after done.
	max, events int
	seen        []int // each distinct value in turn
	err         error
}

func startAvailabilityWatch(ctx context.Context, client kubernetes.Interface, devices []string) (*availabilityWatch, error) {
	pods := client.CoreV1().Pods("default")
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=sensor"})
	if err != nil {
		return nil, fmt.Errorf("list sensor pods: %w", err)
	}
	w := &availabilityWatch{devices: devices, pods: map[types.UID]*corev1.Pod{}, done: make(chan struct{})}
	for i := range list.Items {
		w.pods[list.Items[i].UID] = &list.Items[i]
	}
	w.record()
	ctx, w.cancel = context.WithCancel(ctx)
	rv := list.ResourceVersion
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			wi, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: "app=sensor", ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					w.err = err
				}
				return
			}
			for ev := range wi.ResultChan() {
				switch ev.Type {
				case watch.Error:
					if ctx.Err() == nil { // else: the watch ends because stop was called
						w.err = apierrors.FromObject(ev.Object)
					}
					wi.Stop()
					return
				case watch.Bookmark:
					rv = ev.Object.(*corev1.Pod).ResourceVersion
					continue
				}
				p := ev.Object.(*corev1.Pod)
				rv = p.ResourceVersion
				if ev.Type == watch.Deleted {
					delete(w.pods, p.UID)
				} else {
					w.pods[p.UID] = p
				}
				w.events++
				w.record()
			}
			wi.Stop()
		}
	}()
	return w, nil
}

func (w *availabilityWatch) record() {
	available := map[string]bool{}
	for _, p := range w.pods {
		if p.DeletionTimestamp == nil && podReady(p) {
			available[p.Spec.NodeName] = true
		}
	}
	n := 0
	for _, d := range w.devices {
		if !available[d] {
			n++
		}
	}
	w.max = max(w.max, n)
	if len(w.seen) == 0 || w.seen[len(w.seen)-1] != n {
		w.seen = append(w.seen, n)
	}
}

func (w *availabilityWatch) stop() {
	w.cancel()
	<-w.done
}

// poll checks cond every 250ms until it holds, ctx ends or timeout passes;
// cond's error describes the state for the timeout's error.
func poll(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podOn returns the live pod on node, or nil.
func podOn(pods []corev1.Pod, node string) *corev1.Pod {
	for i := range pods {
		if pods[i].Spec.NodeName == node && pods[i].DeletionTimestamp == nil {
			return &pods[i]
		}
	}
	return nil
}
