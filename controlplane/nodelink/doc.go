// Package nodelink is the node link's protocol: what a node agent and the
// control plane say to each other, and the agent's end of it. It imports no
// control-plane package (no API server, storage or NATS server), so the
// agent links only what it uses; the control plane's end lives in
// package [github.com/wasmfleet/wasmfleet/controlplane/nodelink/linkserver].
//
// Joining: the agent POSTs a [JoinRequest] to [JoinPath] with the cluster
// join token and gets a [JoinResponse], the node's own NATS credentials. A
// node's credential is a random secret that only the node keeps; the
// control plane stores only its hash, and joining again rotates it.
//
// On NATS a node authenticates as user [NATSUser] ("node:<node>") with that
// secret and may only touch its own subjects: its pods on
// wasmfleet.nodes.<node>.>, one durable JetStream consumer named
// [ConsumerName] on WASMFLEET_EVENTS whose filter is pinned to those
// subjects, its own inbox prefix [InboxPrefix], the read-only module store,
// publishing on [AgentSubjects] (wasmfleet.agent.<node>.>), and subscribing
// to its log requests on [LogSubject] (linkserver.NodePermissions is the
// exact grant).
//
// Over that connection the agent also calls the Kubernetes API ([Call]):
// a request on [APISubject] runs in the API server as user
// "system:node:<node>" (the node taken from the subject, which its
// permissions pin), under the API server's node authorization, and the
// answer goes to the node's inbox only, in as many messages as its size
// needs (api.go describes both versions of the wire format).
//
// The other way round, the API server gets container logs from the agent
// for `kubectl logs` ([LogClient] on the control plane, [LogServer] in the
// agent; the protocol with its flow control and keep-alives is described
// in logs.go).
package nodelink
