// Package events publishes every change of the etcd registry to NATS
// JetStream and owns the subject scheme, the one place it is defined. It
// only reads etcd: a Publisher follows the watch of /registry/ in revision
// order and publishes each change, exactly once, to the stream
// WASMFLEET_EVENTS.
//
// # Subjects
//
//	wasmfleet.events.<resource>.<namespace>.<name>   every change of every object
//	wasmfleet.events.<resource>._.<name>             cluster-scoped objects ("_" as namespace)
//	wasmfleet.nodes.<node>.pods.<namespace>.<name>   also, pods bound to <node>
//	wasmfleet.events._gap                            gap marker (see below)
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
// ParseSubject reverse it.
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
// resourceVersion, as Kubernetes does. Secrets are published with data and
// stringData removed, on every subject: only their metadata leaves the
// control plane, so no subscriber of the stream (nodes included) reads a
// secret's contents this way. An object too large for the NATS server's
// max_payload is published without payload and with the header
// Wasmfleet-Payload-Omitted: too-large.
//
// Messages are in revision order: in the stream, Wasmfleet-Revision never
// decreases and each message ID appears once. A subscriber can resume from a
// revision by starting at the first message whose revision is at least it.
//
// # Stream
//
// WASMFLEET_EVENTS captures wasmfleet.events.> and wasmfleet.nodes.>, file
// storage, limits retention: messages older than MaxAge (default 24h) or
// beyond MaxBytes are discarded oldest first; the duplicate window is 2m. The
// publisher creates or updates it on start. Only the publisher may write to
// these subjects.
//
// # Exactly once
//
// Each publish carries Nats-Expected-Last-Sequence, the stream sequence of
// the message before it, so the stream refuses a message unless everything
// before it was stored: publishes are pipelined (Config.MaxInFlight) yet the
// stream never has a hole or a reordering. After any failure (NATS down, a
// broken etcd watch, a crash) the publisher resynchronizes: it reads the
// stream's last message, its revision and whether it was the events or the
// node copy, publishes what is missing of that revision and goes on from the
// next. Nats-Msg-Id de-duplicates besides, within the 2m window. When the
// stream is empty because everything aged out, the publisher resumes from
// its checkpoint in the key-value bucket <stream>_CHECKPOINT (written about
// once a second); with no checkpoint either it starts at
// Config.StartRevision, by default etcd's current revision + 1.
//
// The compactor must not compact etcd past Publisher.PublishedRevision. If
// etcd has compacted revisions the publisher still needed anyway (an outside
// compaction, or a publisher down while something else compacted), the
// publisher logs an error, publishes a gap marker on wasmfleet.events._gap
// with Wasmfleet-Revision the oldest revision etcd still has and
// Wasmfleet-Gap-From the first missing one, and continues from there.
// Subscribers that see a gap marker must relist. If etcd is found behind the
// stream (its history replaced from a backup), the marker's Gap-From is
// greater than its Revision and revisions start again lower.
package events
