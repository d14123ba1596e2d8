// Package nodelink owns the control plane's side of the node link's first
// steps: exchanging the cluster join token for a node's own credentials
// (the public POST /join endpoint, see [JoinHandler]) and authenticating
// and confining those credentials on the embedded NATS server (see
// [NATSAuth] and [NodePermissions]).
//
// A node's credential is a random secret that only the node keeps. The
// control plane stores its sha256 in etcd as the core/v1 Secret
// kube-system/wasmfleet-node-<node> of type wasmfleet.io/node-credential
// (data: "sha256", "nodeName"); joining again rotates it, and the old
// secret stops working for new connections at once. The event publisher
// redacts Secret data, so not even the hash goes over NATS.
//
// On NATS a node authenticates as user "node:<node>" with that secret and
// may only touch its own subjects (see [NodePermissions] for the exact
// list): its pods on wasmfleet.nodes.<node>.>, one durable JetStream
// consumer named [ConsumerName] on WASMFLEET_EVENTS whose filter is pinned
// to those subjects, its own inbox prefix [InboxPrefix], the read-only
// module store, publishing on wasmfleet.agent.<node>.>, and subscribing to
// its log requests on [LogSubject].
//
// Over that connection the agent also calls the Kubernetes API ([Service],
// nodeagent.APIClient): a request on [APISubject] runs in the API server as
// user "system:node:<node>" (the node taken from the subject, which its
// permissions pin), under the API server's node authorization, and the
// answer goes to the node's inbox only.
//
// The other way round, the API server gets container logs from the agent
// for `kubectl logs` ([LogClient] on the control plane, [LogServer] in the
// agent; the protocol with its flow control and keep-alives is described
// in logs.go).
//
// This works with the embedded NATS server only (custom client
// authentication runs in process). An external NATS would need the same
// decisions made by an auth callout service.
package nodelink
