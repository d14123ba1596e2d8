package tables

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// TestIngressHosts: as kube's formatHosts, at most three hosts, and the
// "more" counted in rules beyond three.
func TestIngressHosts(t *testing.T) {
	rules := func(hosts ...string) []networkingv1.IngressRule {
		var rs []networkingv1.IngressRule
		for _, h := range hosts {
			rs = append(rs, networkingv1.IngressRule{Host: h})
		}
		return rs
	}
	for _, tc := range []struct {
		rules []networkingv1.IngressRule
		want  string
	}{
		{nil, "*"},
		{rules("", ""), "*"},
		{rules("a", "", "b"), "a,b"},
		{rules("", "a", "b", "c"), "a,b,c"},
		{rules("", "a", "b", "c", "d"), "a,b,c + 2 more..."},
		{rules("a", "b", "c", "d"), "a,b,c + 1 more..."},
	} {
		if got := ingressHosts(tc.rules); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.rules, got, tc.want)
		}
	}
}
