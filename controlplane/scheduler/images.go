package scheduler

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// ImageLookups is implemented by an ImageArchitectures that looks images
// up in the background (controlplane/scheduler/imagearch.Resolver). Before
// the core runs, the scheduling loop asks it whether a container pod's
// images are still being looked up for the first time; such a pod is held
// back until those lookups end instead of being placed while its images'
// architectures are unknown. Nothing else waits: wasm pods, and container
// pods whose images have an answer (even a stale or negative one), go
// straight to the core.
type ImageLookups interface {
	// Lookup returns nil when Architectures has an answer for image, else a
	// channel that is closed when the lookup of image now in flight ends
	// (starting it if needed); nil too when no lookup can be made. It is
	// called from the scheduling loop and must never block.
	Lookup(image string) <-chan struct{}
}

// RuntimeHandlers maps a runtime class to its handler ("" when the class
// is unknown).
type RuntimeHandlers func(class string) string

// podRuntime is the runtime handler pod runs with: its runtime class's
// (DefaultRuntimeClass when it names none), or the class's own name when
// handlers is nil or does not know the class (the built-in classes are
// named after their handlers).
func podRuntime(pod *corev1.Pod, handlers RuntimeHandlers) string {
	class := DefaultRuntimeClass
	if rc := pod.Spec.RuntimeClassName; rc != nil && *rc != "" {
		class = *rc
	}
	if handlers != nil {
		if h := handlers(class); h != "" {
			return h
		}
	}
	return class
}

// podImages returns the distinct images of pod's init containers and
// containers, in order.
func podImages(pod *corev1.Pod) []string {
	var out []string
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			found := false
			for _, have := range out {
				found = found || have == c.Image
			}
			if !found {
				out = append(out, c.Image)
			}
		}
	}
	return out
}

// holdForImages holds a container pod whose images are being looked up for
// the first time: it puts the pod back in the queue to wait until the
// lookups end (at most the maximum back-off, then it is tried again) and
// reports true. Other pods it leaves alone and reports false.
func (r *run) holdForImages(ctx context.Context, pod *corev1.Pod) bool {
	if r.lookups == nil || podRuntime(pod, r.s.handlers) != ContainerRuntimeClass {
		return false
	}
	var pending []<-chan struct{}
	for _, img := range podImages(pod) {
		if ch := r.lookups.Lookup(img); ch != nil {
			pending = append(pending, ch)
		}
	}
	if len(pending) == 0 {
		return false
	}
	key := podKey(pod)
	r.s.log.Debug("waiting for image architectures", "pod", key, "lookups", len(pending))
	r.queue.Hold(key, r.s.opts.MaxBackoff)
	r.waiters.Go(func() {
		for _, ch := range pending {
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
		r.queue.Activate(key)
	})
	return true
}
