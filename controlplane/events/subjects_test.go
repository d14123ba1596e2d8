package events

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

func TestMsgID(t *testing.T) {
	for _, c := range []struct {
		pos position
		id  string
	}{
		{position{7, 0}, "7"},
		{position{7, 1}, "7.node"},
		{position{7, 2}, "7.1"},
		{position{7, 7}, "7.3.node"},
		{position{7, slotGap}, "7.gap"},
	} {
		if got := c.pos.msgID(); got != c.id {
			t.Errorf("%+v.msgID() = %q, want %q", c.pos, got, c.id)
		}
		back, err := parseMsgID(c.id)
		if err != nil || back != c.pos {
			t.Errorf("parseMsgID(%q) = %+v, %v", c.id, back, err)
		}
	}
	for _, bad := range []string{"", "x", "0", "7.0", "7.node.1", "7.1.2", "7.gap.node", "7.nod"} {
		if _, err := parseMsgID(bad); err == nil {
			t.Errorf("parseMsgID(%q): no error", bad)
		}
	}
	order := []position{{6, slotAll}, {7, slotGap}, {7, 0}, {7, 1}, {7, 2}, {7, 3}, {7, slotAll}, {8, slotGap}}
	for i := 1; i < len(order); i++ {
		if !order[i-1].less(order[i]) || order[i].less(order[i-1]) {
			t.Errorf("%+v should come before %+v", order[i-1], order[i])
		}
	}
}

func TestSplitKey(t *testing.T) {
	for key, want := range map[string][3]string{
		"/registry/pods/default/web.1": {"pods", "default", "web.1"},
		"/registry/nodes/n1":           {"nodes", "", "n1"},
	} {
		r, ns, n, ok := splitKey(key)
		if !ok || [3]string{r, ns, n} != want {
			t.Errorf("splitKey(%q) = %q %q %q %v", key, r, ns, n, ok)
		}
	}
	for _, bad := range []string{"/registry/pods", "/registry/a/b/c/d", "/other/pods/a", "/registry/pods//a"} {
		if _, _, _, ok := splitKey(bad); ok {
			t.Errorf("splitKey(%q) accepted", bad)
		}
	}
}

func TestPayload(t *testing.T) {
	secret := []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","labels":{"a":"<&>"}},"data":{"k":"dg=="},"stringData":{"x":"y"},"type":"Opaque"}`)
	got := string(payloadOf("secrets", secret, 42))
	want := `{"apiVersion":"v1","kind":"Secret","metadata":{"resourceVersion":"42","name":"s","labels":{"a":"<&>"}},"type":"Opaque"}`
	if got != want {
		t.Errorf("secret payload\n got  %s\n want %s", got, want)
	}
	if p := payloadOf("secrets", []byte("not json"), 1); p != nil {
		t.Errorf("unparsable secret published as %q", p)
	}
	if got := string(payloadOf("configmaps", []byte(`{"metadata":{"name":"c"},"data":{"k":"v"}}`), 9)); got != `{"metadata":{"resourceVersion":"9","name":"c"},"data":{"k":"v"}}` {
		t.Errorf("configmap payload %s", got)
	}
	if nodeName(podJSON("a", "b", "n.1")) != "n.1" || nodeName(podJSON("a", "b", "")) != "" || nodeName([]byte("{")) != "" {
		t.Error("nodeName")
	}
}
