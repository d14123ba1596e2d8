package validation

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ingressWith(rules []networkingv1.IngressRule, tls ...networkingv1.IngressTLS) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "5"},
		Spec:       networkingv1.IngressSpec{Rules: rules, TLS: tls},
	}
}

func httpRule(host, path string, pt networkingv1.PathType) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
		Paths: []networkingv1.HTTPIngressPath{{Path: path, PathType: &pt, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}},
	}}}
}

// TestIngressUpdateKeepsWhatWasStored: as in Kubernetes, an Ingress stored
// with a TLS secret name or a wildcard rule that today's rules refuse can
// still be updated; a new one cannot have them.
func TestIngressUpdateKeepsWhatWasStored(t *testing.T) {
	badSecret := ingressWith([]networkingv1.IngressRule{httpRule("a.example.com", "/", networkingv1.PathTypePrefix)},
		networkingv1.IngressTLS{SecretName: "Bad_Secret"})
	expectErrors(t, ValidateCreate(badSecret), invalid("spec.tls[0].secretName"))
	changed := badSecret.DeepCopy()
	changed.Labels = map[string]string{"team": "edge"}
	expectErrors(t, ValidateUpdate(changed, badSecret))

	badWildcard := ingressWith([]networkingv1.IngressRule{httpRule("*.example.com", "rel", networkingv1.PathTypeExact)})
	expectErrors(t, ValidateCreate(badWildcard), invalid("spec.rules[0].http.paths[0].path"))
	changed = badWildcard.DeepCopy()
	changed.Labels = map[string]string{"team": "edge"}
	expectErrors(t, ValidateUpdate(changed, badWildcard))
	// The same path under a plain host is still checked.
	changed.Spec.Rules = append(changed.Spec.Rules, httpRule("b.example.com", "rel", networkingv1.PathTypeExact))
	expectErrors(t, ValidateUpdate(changed, badWildcard), invalid("spec.rules[1].http.paths[0].path"))

	// A load balancer IP refused now but stored before stays.
	withIP := ingressWith([]networkingv1.IngressRule{httpRule("a.example.com", "/", networkingv1.PathTypePrefix)})
	withIP.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "010.0.0.1"}}
	cleared := withIP.DeepCopy()
	cleared.Status.LoadBalancer.Ingress = nil
	expectErrors(t, ValidateUpdate(withIP, cleared), invalid("status.loadBalancer.ingress[0].ip"))
	moved := withIP.DeepCopy()
	moved.Status.LoadBalancer.Ingress = append(moved.Status.LoadBalancer.Ingress, networkingv1.IngressLoadBalancerIngress{Hostname: "lb.example.com"})
	expectErrors(t, ValidateUpdate(moved, withIP))
}

func TestIngressClass(t *testing.T) {
	ic := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{
		Controller: "k8s.io/ingress-nginx",
		Parameters: &networkingv1.IngressClassParametersReference{Kind: "Params", Name: "p", Namespace: new("edge")},
	}}
	Default(ic)
	if s := ic.Spec.Parameters.Scope; s == nil || *s != networkingv1.IngressClassParametersReferenceScopeCluster {
		t.Fatalf("scope %v", s)
	}
	expectErrors(t, ValidateCreate(ic), forbidden("spec.parameters.namespace"))
	ic.Spec.Parameters.Scope = new(networkingv1.IngressClassParametersReferenceScopeNamespace)
	expectErrors(t, ValidateCreate(ic))
	ic.Spec.Parameters.Namespace = nil
	ic.Spec.Parameters.Kind = "a/b"
	ic.Spec.Controller = "nginx"
	expectErrors(t, ValidateCreate(ic), required("spec.parameters.namespace"), invalid("spec.parameters.kind"), invalid("spec.controller"))
}
