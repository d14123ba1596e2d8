// Package events publishes every change of the etcd registry to NATS
// JetStream, by the subject scheme of package subjects. It only reads
// etcd: a Publisher follows the watch of /registry/ in revision order and
// publishes each change, exactly once, to the stream WASMFLEET_EVENTS.
//
// # Subjects and messages
//
// The subject scheme, the message headers and the stream name are defined
// in package [github.com/wasmfleet/wasmfleet/controlplane/events/subjects]
// (its package comment describes them); it has no dependencies, so node
// agents and subscribers import it without the publisher.
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
// the message before it, and Nats-Expected-Last-Msg-Id, that message's id
// (but the first after a resynchronization), so the stream refuses a
// message unless everything before it was stored: publishes are pipelined
// (Config.MaxInFlight) yet the stream never has a hole or a reordering.
// The messages of the watch responses at hand go out as one batch whose
// last message alone asks for an acknowledgement, which then stands for
// the whole batch. After any failure (NATS down, a
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
