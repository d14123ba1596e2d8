package nodelink

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
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
	n := "node-" + subjects.EncodeToken(node)
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
	return "_INBOX.node-" + subjects.EncodeToken(node)
}

// AgentSubjects matches what node may publish to the control plane:
// wasmfleet.agent.<node>.>.
func AgentSubjects(node string) string {
	return AgentPrefix + "." + subjects.EncodeToken(node) + ".>"
}

// UserPrefix starts a node's NATS user name: "node:<node>".
const UserPrefix = "node:"

// NATSUser is node's NATS user name.
func NATSUser(node string) string { return UserPrefix + node }
