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

// TestValidateServiceNodePort: a node port must be a port number; which
// ones the cluster hands out (its range) the API server's allocator checks.
func TestValidateServiceNodePort(t *testing.T) {
	runCreateCases(t, testNodePortService, []createCase[*corev1.Service]{
		{name: "allocated by the server", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 0 }},
		{name: "in the default range", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30000 }},
		{name: "outside the default range", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 80 }},
		{name: "above 65535", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 65536 }, want: []want{invalid("spec.ports[0].nodePort")}},
		{name: "negative", mutate: func(s *corev1.Service) { s.Spec.Ports[0].NodePort = -1 }, want: []want{invalid("spec.ports[0].nodePort")}},
	})
}
