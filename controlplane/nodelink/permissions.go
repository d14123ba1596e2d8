package nodelink

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wasmfleet/wasmfleet/controlplane/events"
	"github.com/wasmfleet/wasmfleet/controlplane/modules"
)

// AgentPrefix starts the subjects an agent publishes to the control plane
// on: wasmfleet.agent.<node>.>.
const AgentPrefix = "wasmfleet.agent"

// maxConsumerName is JetStream's limit on consumer names.
const maxConsumerName = 255

// ConsumerName is the one durable consumer node may create on the events
// stream: "node-<encoded node>", or "node-<sha256 hex>" when that would be
// longer than JetStream allows. Its name is pinned by the node's
// permissions, so no other node can read, ack or delete it.
func ConsumerName(node string) string {
	n := "node-" + events.EncodeToken(node)
	if len(n) <= maxConsumerName {
		return n
	}
	sum := sha256.Sum256([]byte(node))
	return "node-" + hex.EncodeToString(sum[:])
}

// InboxPrefix is the inbox prefix node must use (nats.CustomInboxPrefix):
// "_INBOX.node-<encoded node>". Node inboxes never collide with the
// default "_INBOX.<nuid>" ones, whose token has no '-'.
func InboxPrefix(node string) string {
	return "_INBOX.node-" + events.EncodeToken(node)
}

// AgentSubjects matches what node may publish to the control plane:
// wasmfleet.agent.<node>.>.
func AgentSubjects(node string) string {
	return AgentPrefix + "." + events.EncodeToken(node) + ".>"
}

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
	tok := events.EncodeToken(node)
	c := ConsumerName(node)
	stream := events.DefaultStream
	pub := []string{
		AgentSubjects(node),
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + "." + c + "." + events.NodeFilter(node),
		"$JS.API.CONSUMER.INFO." + stream + "." + c,
		"$JS.API.CONSUMER.DELETE." + stream + "." + c,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + c,
		"$JS.ACK." + stream + "." + c + ".>",
	}
	pub = append(pub, modules.ReadSubjects()...)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{
			events.NodesPrefix + "." + tok + ".>",
			InboxPrefix(node) + ".>",
			LogSubject(node),
		}},
	}
}
