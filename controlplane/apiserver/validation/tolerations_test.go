package validation

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestDefaultTolerations(t *testing.T) {
	notReady := func(s int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s}
	}
	unreachable := func(s int64) corev1.Toleration {
		return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s}
	}
	other := corev1.Toleration{Key: "example.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	forever := corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	anyEffect := corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists}
	noSchedule := corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	everything := corev1.Toleration{Operator: corev1.TolerationOpExists}
	for _, tc := range []struct {
		name    string
		seconds int64
		in      []corev1.Toleration
		want    []corev1.Toleration
	}{
		{"none: both added, 0 means 300", 0, nil, []corev1.Toleration{notReady(300), unreachable(300)}},
		{"configured seconds", 60, nil, []corev1.Toleration{notReady(60), unreachable(60)}},
		{"unrelated toleration kept", 0, []corev1.Toleration{other}, []corev1.Toleration{other, notReady(300), unreachable(300)}},
		{"own unreachable toleration wins", 0, []corev1.Toleration{forever}, []corev1.Toleration{forever, notReady(300)}},
		{"empty effect tolerates NoExecute", 0, []corev1.Toleration{anyEffect}, []corev1.Toleration{anyEffect, unreachable(300)}},
		{"NoSchedule toleration does not count", 0, []corev1.Toleration{noSchedule}, []corev1.Toleration{noSchedule, notReady(300), unreachable(300)}},
		{"empty key tolerates everything", 0, []corev1.Toleration{everything}, []corev1.Toleration{everything}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPod()
			p.Spec.Tolerations = tc.in
			Default(p)
			DefaultTolerations(p, tc.seconds)
			if !reflect.DeepEqual(p.Spec.Tolerations, tc.want) {
				t.Errorf("tolerations = %+v, want %+v", p.Spec.Tolerations, tc.want)
			}
			again := p.DeepCopy()
			DefaultTolerations(again, tc.seconds)
			if !reflect.DeepEqual(again.Spec.Tolerations, tc.want) {
				t.Errorf("not idempotent: %+v", again.Spec.Tolerations)
			}
			if errs := ValidateCreate(p); len(errs) > 0 {
				t.Errorf("defaulted pod invalid: %v", errs)
			}
		})
	}
}
