package validation

import (
	corev1 "k8s.io/api/core/v1"
)

// DefaultNotReadyTolerationSeconds is what DefaultTolerations uses for
// seconds <= 0: kube-apiserver's --default-not-ready-toleration-seconds and
// --default-unreachable-toleration-seconds default.
const DefaultNotReadyTolerationSeconds int64 = 300

// DefaultTolerations is Kubernetes' DefaultTolerationSeconds admission
// plugin, applied to a pod being created: a pod that does not already
// tolerate the NoExecute taints node.kubernetes.io/not-ready and
// node.kubernetes.io/unreachable (by that key or by an empty key, with
// effect NoExecute or any effect) gets a toleration for each, with
// tolerationSeconds seconds (<= 0 means DefaultNotReadyTolerationSeconds).
// The node lifecycle controller then evicts its pods from a node that has
// been unreachable or not ready that long. It mutates pod and is idempotent.
func DefaultTolerations(pod *corev1.Pod, seconds int64) {
	if seconds <= 0 {
		seconds = DefaultNotReadyTolerationSeconds
	}
	notReady, unreachable := false, false
	for _, t := range pod.Spec.Tolerations {
		if t.Effect != corev1.TaintEffectNoExecute && t.Effect != "" {
			continue
		}
		if t.Key == corev1.TaintNodeNotReady || t.Key == "" {
			notReady = true
		}
		if t.Key == corev1.TaintNodeUnreachable || t.Key == "" {
			unreachable = true
		}
	}
	if !notReady {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
			Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrTo(seconds),
		})
	}
	if !unreachable {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
			Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrTo(seconds),
		})
	}
}
