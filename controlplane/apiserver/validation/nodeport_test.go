package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func testNodePortService() *corev1.Service {
	s := testService()
	s.Spec.Type = corev1.ServiceTypeNodePort
	return s
}

func TestValidateServiceNodePortRange(t *testing.T) {
	runCreateCases(t, testNodePortService, []createCase[*corev1.Service]{
		{name: "allocated by the server", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 0 }},
		{name: "lowest", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30000 }},
		{name: "highest", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 32767 }},
		{name: "below the range", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 5 }, want: []want{invalid("spec.ports[0].nodePort")}},
		{name: "above the range", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 32768 }, want: []want{invalid("spec.ports[0].nodePort")}},
		{name: "negative", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = -1 }, want: []want{invalid("spec.ports[0].nodePort")}},
		{name: "load balancer", mutate: func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.Ports[0].NodePort = 80
		}, want: []want{invalid("spec.ports[0].nodePort")}},
	})

	s := testNodePortService()
	s.Spec.Ports[0].NodePort = 5
	Default(s)
	errs := ValidateCreate(s)
	want := "spec.ports[0].nodePort: Invalid value: 5: provided port is not in the valid range. The range of valid ports is 30000-32767"
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("got %v\nwant %s", errs, want)
	}
}

func TestValidateServiceUpdateNodePortRange(t *testing.T) {
	runUpdateCases(t, stored(testNodePortService), []updateCase[*corev1.Service]{
		{name: "request one in range", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 31000 }},
		{name: "request one out of range", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 8080 }, want: []want{invalid("spec.ports[0].nodePort")}},
	})
	// A port the service already has is kept, as the allocator keeps it
	// (the range may have changed since).
	old := testNodePortService()
	old.Spec.Ports[0].NodePort = 8080
	Default(old)
	stamp(old)
	svc := old.DeepCopy()
	svc.Labels = map[string]string{"tier": "web"}
	if errs := ValidateUpdate(svc, old); errs != nil {
		t.Errorf("update keeping node port 8080: %v", errs)
	}
}
