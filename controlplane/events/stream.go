package events

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
)

// Stream defaults.
const (
	// DefaultMaxAge is how long the stream keeps a message by default.
	DefaultMaxAge = 24 * time.Hour
	// DuplicateWindow is the stream's de-duplication window for Nats-Msg-Id.
	DuplicateWindow = 2 * time.Minute
)

// StreamSubjects are the subjects the stream captures.
var streamSubjects = []string{subjects.EventsPrefix + ".>", subjects.NodesPrefix + ".>"}

// StreamConfig returns the configuration of the events stream: file storage,
// limits retention discarding the oldest messages past maxAge or maxBytes
// (<= 0: no byte limit), a DuplicateWindow de-duplication window, and direct
// gets enabled so subscribers can read single messages cheaply.
//
// A stream of one replica persists asynchronously: it writes its messages
// to its files in batches, not one write call each, as replicated streams
// (which have their Raft log behind them) always do. etcd holds every
// event, so a crash that loses the stream's last messages loses nothing:
// the publisher resumes after the last message the stream kept and
// publishes the rest again, with the same Nats-Msg-Id. Neither mode
// fsyncs each message.
func StreamConfig(name string, maxAge time.Duration, maxBytes int64, replicas int) jetstream.StreamConfig {
	if maxBytes <= 0 {
		maxBytes = -1
	}
	if replicas <= 0 {
		replicas = 1
	}
	persist := jetstream.DefaultPersistMode
	if replicas == 1 {
		persist = jetstream.AsyncPersistMode
	}
	return jetstream.StreamConfig{
		Name:              name,
		Description:       "wasmfleet: every etcd change under /registry/ (see controlplane/events)",
		Subjects:          append([]string(nil), streamSubjects...),
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		MaxAge:            maxAge,
		MaxBytes:          maxBytes,
		MaxMsgs:           -1,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        -1,
		Duplicates:        DuplicateWindow,
		Replicas:          replicas,
		AllowDirect:       true,
		PersistMode:       persist,
	}
}

// checkpointBucket names the key-value bucket where the publisher keeps its
// position for when the stream has aged out entirely.
func checkpointBucket(stream string) string { return stream + "_CHECKPOINT" }

const checkpointKey = "position"

// checkpoint is the publisher's last acknowledged message, valid only for
// the stream instance created at StreamCreated.
type checkpoint struct {
	StreamCreated time.Time `json:"streamCreated"`
	Seq           uint64    `json:"seq"`
	MsgID         string    `json:"msgID"`
}
