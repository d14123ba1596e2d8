// Package subjects is the subject scheme of the control plane's events, the
// one place it is defined: the NATS subjects an object change is published
// on, the message headers, and the stream's name. Package
// [github.com/wasmfleet/wasmfleet/controlplane/events] publishes by it; node
// agents and other subscribers read by it. It depends on nothing but the
// standard library, so importing it costs a node agent nothing.
//
// # Subjects
//
//	wasmfleet.events.<resource>.<namespace>.<name>   every change of every object
//	wasmfleet.events.<resource>._.<name>             cluster-scoped objects ("_" as namespace)
//	wasmfleet.nodes.<node>.pods.<namespace>.<name>   also, pods bound to <node>
//	wasmfleet.events._gap                            gap marker (see package events)
//
// <resource> is the plural resource name of the etcd key (pods, deployments,
// leases, nodes, ...). A pod is bound when spec.nodeName is set: in the new
// value, or for DELETED in the last value. The node copy is identical to the
// events copy, except that a pod's binding arrives on the node subject as
// ADDED (a Kubernetes watch with fieldSelector spec.nodeName does the same).
// A NATS permission on wasmfleet.nodes.<node>.> confines a node to its own
// pods. Filters: wasmfleet.events.> (everything), ResourceFilter
// (wasmfleet.events.<resource>.>), NodeFilter (wasmfleet.nodes.<node>.>).
//
// Kubernetes names may contain '.', the NATS token separator, so every token
// is encoded reversibly by EncodeToken: '.' becomes '~'; letters, digits,
// '-' and ':' stay; any other byte becomes %XX. DNS names only change their
// dots: pod "web.1" in "default" on node "n1.example.com" is
// wasmfleet.nodes.n1~example~com.pods.default.web~1. DecodeToken and
// ParseSubject reverse it. A token whose encoding would be longer than
// MaxTokenLen (255) bytes, possible only for names that need not be DNS
// names (RBAC objects' names are any path segment), is digested instead:
// the encoding's first 189 bytes or fewer, "%%", and the 64 hex digits of
// the name's SHA-256. It cannot be decoded (ErrDigestedToken); the
// Wasmfleet-Key header names the object. A long subject would otherwise
// exceed the NATS server's max_control_line, which closes the connection.
//
// # Messages
//
// Headers:
//
//	Wasmfleet-Type      ADDED, MODIFIED, DELETED (GAP for a gap marker)
//	Wasmfleet-Revision  etcd revision of the change, decimal
//	Wasmfleet-Key       etcd key, e.g. /registry/pods/default/web.1
//	Nats-Msg-Id         <rev> for the events copy, <rev>.node for the node copy
//	                    (<rev>.<i> and <rev>.<i>.node for the i-th key of an
//	                    etcd transaction that changed several; <rev>.gap)
//
// The payload is the object's JSON with metadata.resourceVersion set to the
// revision; for DELETED it is the last value with the deletion's revision as
// resourceVersion, as Kubernetes does. Secrets are published with data,
// stringData and the kubectl.kubernetes.io/last-applied-configuration
// annotation (kubectl apply's copy of them) removed, on every subject: only
// their metadata leaves the control plane, so no subscriber of the stream
// (nodes included) reads a secret's contents this way. An object too large for the NATS server's
// max_payload is published without payload and with the header
// Wasmfleet-Payload-Omitted: too-large. A key too long for the headers
// (JetStream stores at most 64 KiB of them; only RBAC objects, whose names
// may be any path segment, have such keys) is left out: the payload names
// the object. So is a key that a NATS header would alter (nats.go trims
// trailing white space and turns CR and LF into spaces: the key of RBAC
// object "reader " would arrive as that of "reader"); the subject and the
// payload name the object exactly.
package subjects
