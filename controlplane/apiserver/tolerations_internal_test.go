package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// TestMergeTolerations: as Kubernetes' tolerations.MergeTolerations, the
// wider of two tolerations is kept, and the first of two equal ones.
func TestMergeTolerations(t *testing.T) {
	secs := func(n int64) *int64 { return &n }
	exists := func(key string, effect corev1.TaintEffect, s *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect, TolerationSeconds: s}
	}
	noExec := corev1.TaintEffectNoExecute
	for _, tc := range []struct {
		name                string
		first, second, want []corev1.Toleration
	}{
		{"equal ones", []corev1.Toleration{exists("a", noExec, secs(30))}, []corev1.Toleration{exists("a", noExec, secs(30))},
			[]corev1.Toleration{exists("a", noExec, secs(30))}},
		{"longer seconds are wider", []corev1.Toleration{exists("a", noExec, secs(30))}, []corev1.Toleration{exists("a", noExec, secs(300))},
			[]corev1.Toleration{exists("a", noExec, secs(300))}},
		{"no seconds is widest", []corev1.Toleration{exists("a", noExec, nil)}, []corev1.Toleration{exists("a", noExec, secs(300))},
			[]corev1.Toleration{exists("a", noExec, nil)}},
		{"an empty key with Exists tolerates all", []corev1.Toleration{exists("a", "", nil)}, []corev1.Toleration{exists("", "", nil)},
			[]corev1.Toleration{exists("", "", nil)}},
		{"different values stay", []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpEqual, Value: "x"}},
			[]corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpEqual, Value: "y"}},
			[]corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpEqual, Value: "x"}, {Key: "a", Operator: corev1.TolerationOpEqual, Value: "y"}}},
		{"Equal is narrower than Exists", []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpEqual, Value: "x", Effect: noExec}},
			[]corev1.Toleration{exists("a", "", nil)}, []corev1.Toleration{exists("a", "", nil)}},
	} {
		if got := mergeTolerations(tc.first, tc.second); !apiequality.Semantic.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
