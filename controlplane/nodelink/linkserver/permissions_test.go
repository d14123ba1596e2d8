package linkserver

import (
	"slices"
	"testing"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
)

// TestNodePermissions pins the exact grant: changing it is a security
// decision, not a refactoring.
func TestNodePermissions(t *testing.T) {
	p := NodePermissions("edge-1.site-a")
	wantPub := append([]string{
		"wasmfleet.agent.edge-1~site-a.>",
		"$JS.API.STREAM.INFO.WASMFLEET_EVENTS",
		"$JS.API.CONSUMER.CREATE.WASMFLEET_EVENTS.node-edge-1~site-a.wasmfleet.nodes.edge-1~site-a.>",
		"$JS.API.CONSUMER.INFO.WASMFLEET_EVENTS.node-edge-1~site-a",
		"$JS.API.CONSUMER.DELETE.WASMFLEET_EVENTS.node-edge-1~site-a",
		"$JS.API.CONSUMER.MSG.NEXT.WASMFLEET_EVENTS.node-edge-1~site-a",
		"$JS.ACK.WASMFLEET_EVENTS.node-edge-1~site-a.>",
	}, modules.ReadSubjects()...)
	wantSub := []string{"wasmfleet.nodes.edge-1~site-a.>", "_INBOX.node-edge-1~site-a.>", "wasmfleet.agent.edge-1~site-a.logs"}
	if !slices.Equal(p.Publish.Allow, wantPub) || len(p.Publish.Deny) != 0 {
		t.Errorf("publish %q", p.Publish.Allow)
	}
	if !slices.Equal(p.Subscribe.Allow, wantSub) || len(p.Subscribe.Deny) != 0 {
		t.Errorf("subscribe %q", p.Subscribe.Allow)
	}
	if p.Response != nil {
		t.Error("allow_responses granted")
	}
}
