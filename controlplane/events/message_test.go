package events

import "testing"

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
	// kubectl apply keeps the applied secret, data included, in an
	// annotation.
	applied := []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"password\":\"hunter2\"}}\n","team":"a"}},"data":{"password":"aHVudGVyMg=="},"type":"Opaque"}`)
	got = string(payloadOf("secrets", applied, 43))
	want = `{"apiVersion":"v1","kind":"Secret","metadata":{"annotations":{"team":"a"},"name":"s","resourceVersion":"43"},"type":"Opaque"}`
	if got != want {
		t.Errorf("applied secret payload\n got  %s\n want %s", got, want)
	}
	if p := payloadOf("secrets", []byte(`{"metadata":{"annotations":"x","name":"s"},"data":{"k":"dg=="}}`), 1); p != nil {
		t.Errorf("secret with unparsable annotations published as %s", p)
	}
	if p := payloadOf("secrets", []byte("not json"), 1); p != nil {
		t.Errorf("unparsable secret published as %q", p)
	}
	if got := string(payloadOf("configmaps", []byte(`{"metadata":{"name":"c"},"data":{"k":"v"}}`), 9)); got != `{"metadata":{"resourceVersion":"9","name":"c"},"data":{"k":"v"}}` {
		t.Errorf("configmap payload %s", got)
	}
	if nodeName(podJSON("a", "b", "n.1")) != "n.1" || nodeName(podJSON("a", "b", "")) != "" {
		t.Error("nodeName")
	}
	// The key spelled with an escape, as a writer other than the API
	// server may store it.
	if got := nodeName([]byte(`{"spec":{"node\u004eame":"n.1"}}`)); got != "n.1" {
		t.Errorf("nodeName of an escaped key = %q, want n.1", got)
	}
	for _, bad := range []string{`{`, `{"spec":{"nodeName":"n1"}`, `{"spec":{"nodeName":"n1"}}x`, `{"spec":{"nodeName":7}}`} {
		if got := nodeName([]byte(bad)); got != "" {
			t.Errorf("nodeName(%s) = %q, want none", bad, got)
		}
	}
}
