package subjects

import (
	"errors"
	"strings"
	"testing"
	"testing/quick"
)

func TestEncodeToken(t *testing.T) {
	for in, want := range map[string]string{
		"web":                       "web",
		"node-1.example.com":        "node-1~example~com",
		"system:node:n1":            "system:node:n1",
		"a_b":                       "a%5Fb",
		"_":                         "%5F",
		"a~b":                       "a%7Eb",
		"a%b":                       "a%25b",
		"a b*>":                     "a%20b%2A%3E",
		"Ünï":                       "%C3%9Cn%C3%AF",
		"coordination.k8s.io-lease": "coordination~k8s~io-lease",
	} {
		got := EncodeToken(in)
		if got != want {
			t.Errorf("EncodeToken(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsAny(got, ". \t*>") {
			t.Errorf("EncodeToken(%q) = %q is not a single literal token", in, got)
		}
		back, err := DecodeToken(got)
		if err != nil || back != in {
			t.Errorf("DecodeToken(%q) = %q, %v; want %q", got, back, err, in)
		}
	}
	roundTrip := func(s string) bool {
		if s == "" {
			return true
		}
		enc := EncodeToken(s)
		back, err := DecodeToken(enc)
		return err == nil && back == s && !strings.ContainsAny(enc, ". \t\r\n*>")
	}
	if err := quick.Check(roundTrip, nil); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"a%", "a%4", "a%zz"} {
		if _, err := DecodeToken(bad); err == nil {
			t.Errorf("DecodeToken(%q): no error", bad)
		}
	}
}

func TestSubjects(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ObjectSubject("pods", "default", "web.1"), "wasmfleet.events.pods.default.web~1"},
		{ObjectSubject("nodes", "", "n1.example.com"), "wasmfleet.events.nodes._.n1~example~com"},
		{ObjectSubject("clusterroles", "", "system:controller:x"), "wasmfleet.events.clusterroles._.system:controller:x"},
		{NodePodSubject("n1.example.com", "kube-system", "p"), "wasmfleet.nodes.n1~example~com.pods.kube-system.p"},
		{ResourceFilter("deployments"), "wasmfleet.events.deployments.>"},
		{NodeFilter("n1.example.com"), "wasmfleet.nodes.n1~example~com.>"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for subject, want := range map[string]Subject{
		"wasmfleet.events.pods.default.web~1":               {Resource: "pods", Namespace: "default", Name: "web.1"},
		"wasmfleet.events.nodes._.n1~example~com":           {Resource: "nodes", Name: "n1.example.com"},
		"wasmfleet.nodes.n1~example~com.pods.kube-system.p": {Resource: "pods", Namespace: "kube-system", Name: "p", Node: "n1.example.com"},
	} {
		got, err := ParseSubject(subject)
		if err != nil || got != want {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", subject, got, err, want)
		}
	}
	for _, bad := range []string{GapSubject, "wasmfleet.events.pods.default", "wasmfleet.nodes.n1.secrets.a.b", "other.events.a.b.c"} {
		if _, err := ParseSubject(bad); !errors.Is(err, ErrNotObjectSubject) {
			t.Errorf("ParseSubject(%q): %v", bad, err)
		}
	}
}
