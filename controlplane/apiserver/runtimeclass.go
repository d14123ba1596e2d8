package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// The RuntimeClass admission of a new pod, as Kubernetes' RuntimeClass
// admission plugin does it: a pod naming a runtime class that does not
// exist is refused (a typo would otherwise leave it pending), and the
// class's overhead, node selector and tolerations are copied into it.

// podRuntimeClass returns the runtime class pod names, nil if it names
// none. Like kube-apiserver's admission, it reads the cache Run keeps
// (a copy: the pod may take parts of it), and etcd when the cache misses.
func (s *Server) podRuntimeClass(ctx context.Context, admName string, pod *corev1.Pod) (*nodev1.RuntimeClass, error) {
	if pod.Spec.RuntimeClassName == nil {
		return nil, nil
	}
	name := *pod.Spec.RuntimeClassName
	if rc, known := s.runtimeClasses.lookup(name); rc != nil && known {
		return rc.DeepCopy(), nil
	}
	o, err := s.store.Get(ctx, storage.Key("runtimeclasses", "", name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, podRejected(admName, "pod rejected: RuntimeClass %q not found", name)
	}
	if err != nil {
		return nil, storageError(err, nodev1.Resource("runtimeclasses"), name)
	}
	rc := runtimeClass(o.Value)
	if rc == nil {
		return nil, fmt.Errorf("decode runtime class %s", name)
	}
	return rc, nil
}

// podRejected is the plugin's 403 for the pod admName (see createNamed).
func podRejected(admName string, format string, args ...any) error {
	return apierrors.NewForbidden(corev1.Resource("pods"), admName, fmt.Errorf(format, args...))
}

// admitRuntimeClass is the plugin's mutating half: it sets the pod's
// overhead and merges the class's scheduling into the pod.
func admitRuntimeClass(admName string, pod *corev1.Pod, rc *nodev1.RuntimeClass) error {
	if rc == nil {
		return nil
	}
	if rc.Overhead != nil {
		if len(pod.Spec.Overhead) > 0 && !apiequality.Semantic.DeepEqual(rc.Overhead.PodFixed, pod.Spec.Overhead) {
			return podRejected(admName, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
		}
		pod.Spec.Overhead = rc.Overhead.PodFixed.DeepCopy()
	}
	if rc.Scheduling == nil {
		return nil
	}
	if pod.Spec.NodeSelector == nil && len(rc.Scheduling.NodeSelector) > 0 {
		pod.Spec.NodeSelector = map[string]string{}
	}
	for k, v := range rc.Scheduling.NodeSelector {
		if pv, ok := pod.Spec.NodeSelector[k]; ok && pv != v {
			return podRejected(admName, "conflict: runtimeClass.scheduling.nodeSelector[%s] = %s; pod.spec.nodeSelector[%s] = %s", k, v, k, pv)
		}
		pod.Spec.NodeSelector[k] = v
	}
	pod.Spec.Tolerations = mergeTolerations(pod.Spec.Tolerations, rc.Scheduling.Tolerations)
	return nil
}

// validateRuntimeClass is the plugin's validating half: a pod's overhead
// must be its class's.
func validateRuntimeClass(admName string, pod *corev1.Pod, rc *nodev1.RuntimeClass) error {
	if rc != nil && rc.Overhead != nil {
		if !apiequality.Semantic.DeepEqual(rc.Overhead.PodFixed, pod.Spec.Overhead) {
			return podRejected(admName, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
		}
	} else if pod.Spec.Overhead != nil {
		return podRejected(admName, "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
	}
	return nil
}

// mergeTolerations joins two lists of tolerations, keeping only the wider
// of two where one tolerates all the other does, and the first of equal
// ones, as Kubernetes' tolerations.MergeTolerations.
func mergeTolerations(first, second []corev1.Toleration) []corev1.Toleration {
	all := append(append([]corev1.Toleration(nil), first...), second...)
	var merged []corev1.Toleration
next:
	for i, t := range all {
		for _, m := range merged {
			if toleratesAll(m, t) {
				continue next
			}
		}
		for _, later := range all[i+1:] {
			if !sameToleration(t, later) && toleratesAll(later, t) {
				continue next
			}
		}
		merged = append(merged, t)
	}
	return merged
}

// sameToleration is Semantic.DeepEqual for tolerations without its
// reflection, which took 6 µs of a pod create.
func sameToleration(a, b corev1.Toleration) bool {
	return a.Key == b.Key && a.Operator == b.Operator && a.Value == b.Value && a.Effect == b.Effect &&
		(a.TolerationSeconds == nil) == (b.TolerationSeconds == nil) &&
		(a.TolerationSeconds == nil || *a.TolerationSeconds == *b.TolerationSeconds)
}

// toleratesAll says whether wide tolerates every taint t tolerates.
func toleratesAll(wide, t corev1.Toleration) bool {
	if sameToleration(wide, t) {
		return true
	}
	// An empty key with Exists tolerates every key.
	if t.Key != wide.Key && (wide.Key != "" || wide.Operator != corev1.TolerationOpExists) {
		return false
	}
	// An empty effect tolerates every effect.
	if t.Effect != wide.Effect && wide.Effect != "" {
		return false
	}
	if wide.Effect == corev1.TaintEffectNoExecute && wide.TolerationSeconds != nil &&
		(t.TolerationSeconds == nil || *t.TolerationSeconds > *wide.TolerationSeconds) {
		return false
	}
	switch wide.Operator {
	case corev1.TolerationOpEqual, "":
		return t.Operator == corev1.TolerationOpEqual && t.Value == wide.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}
