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

// TestLongNamesAreDigested: RBAC names need only be path segments, of any
// length; their tokens stay short enough for the NATS protocol (a control
// line is at most 4096 bytes by default) and distinct.
func TestLongNamesAreDigested(t *testing.T) {
	dns := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	if got, want := ObjectSubject("pods", "default", dns), EventsPrefix+".pods.default."+EncodeToken(dns); got != want {
		t.Errorf("a 253-byte DNS name: %q, want %q", got, want)
	}
	seen := map[string]string{}
	for _, name := range []string{
		strings.Repeat("x", 5000),
		strings.Repeat("x", 4999) + "y",
		strings.Repeat("x", 256),
		strings.Repeat("é", 100),  // 200 bytes, 600 encoded
		strings.Repeat("é ", 999), // escapes across the cut
		strings.Repeat("x", 188) + strings.Repeat(" ", 30),
		strings.Repeat("x", 187) + strings.Repeat(" ", 30),
	} {
		for _, subject := range []string{ObjectSubject("clusterroles", "", name), ObjectSubject("roles", "kube-system", name), NodePodSubject(name, "default", name)} {
			if len(subject) > 3*MaxTokenLen+40 {
				t.Errorf("subject of a %d-byte name is %d bytes long", len(name), len(subject))
			}
			if strings.ContainsAny(subject, " \t\r\n*>") {
				t.Errorf("subject %q is not literal", subject)
			}
			if prev, ok := seen[subject]; ok {
				t.Errorf("names %q and %q share subject %q", prev, name, subject)
			}
			seen[subject] = name
			_, err := ParseSubject(subject)
			if !errors.Is(err, ErrDigestedToken) {
				t.Errorf("ParseSubject(%q): %v, want ErrDigestedToken", subject, err)
			}
		}
		tok := subjectToken(name)
		if len(tok) > MaxTokenLen || strings.Count(tok, ".") != 0 {
			t.Errorf("token %q of a %d-byte name", tok, len(name))
		}
		prefix, _, _ := strings.Cut(tok, digestMark)
		if !strings.HasPrefix(EncodeToken(name), prefix) {
			t.Errorf("token %q does not start with the name's encoding", tok)
		}
		if _, err := DecodeToken(prefix); err != nil {
			t.Errorf("prefix %q of %q splits an escape: %v", prefix, tok, err)
		}
	}
}
