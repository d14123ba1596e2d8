package linkserver

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
)

// NodePermissions returns the NATS permissions of node; nothing outside
// the allow lists is permitted.
//
// Subscribe: wasmfleet.nodes.<node>.> (its pods), <InboxPrefix>.>
// (replies, JetStream deliveries, log stream control) and exactly
// LogSubject(node), wasmfleet.agent.<node>.logs, where the control plane
// asks it for container logs (not the rest of wasmfleet.agent.<node>.>:
// its own API requests and log data stay unreadable to it).
//
// Publish: wasmfleet.agent.<node>.>; on the events stream
// $JS.API.STREAM.INFO.WASMFLEET_EVENTS and, for the consumer
// C = ConsumerName(node) only, $JS.API.CONSUMER.CREATE.WASMFLEET_EVENTS.C.wasmfleet.nodes.<node>.>
// (the server refuses a create whose body's filter differs from the one in
// the subject, and multi-filter creates on this subject form), .INFO.,
// .DELETE. and .MSG.NEXT.WASMFLEET_EVENTS.C and $JS.ACK.WASMFLEET_EVENTS.C.>;
// plus modules.ReadSubjects() to read the module store.
//
// Replies to arbitrary reply subjects are NOT allowed (no allow_responses):
// the node also sees the control plane's JetStream publishes on its
// subjects, and could otherwise forge their acks. Requests to an agent
// must name a reply subject under wasmfleet.agent.<node>.>.
//
// Residual risk: JetStream does not check a consumer's deliver subject
// against its creator's permissions, so a node can have its own pod events
// pushed to any subject. Their content stays control-plane-made; consumers
// of wasmfleet.agent.<node>.> must check what they receive (the log client
// ignores messages without its protocol headers).
func NodePermissions(node string) *server.Permissions {
	tok := subjects.EncodeToken(node)
	c := nodelink.ConsumerName(node)
	stream := subjects.DefaultStream
	pub := []string{
		nodelink.AgentSubjects(node),
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + "." + c + "." + subjects.NodeFilter(node),
		"$JS.API.CONSUMER.INFO." + stream + "." + c,
		"$JS.API.CONSUMER.DELETE." + stream + "." + c,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + c,
		"$JS.ACK." + stream + "." + c + ".>",
	}
	pub = append(pub, modules.ReadSubjects()...)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{
			subjects.NodesPrefix + "." + tok + ".>",
			nodelink.InboxPrefix(node) + ".>",
			nodelink.LogSubject(node),
		}},
	}
}
