// Package linkserver is the control plane's end of the node link (the
// protocol is package nodelink): exchanging the cluster join token for a
// node's own credentials (the public POST /join endpoint, see
// [JoinHandler]), authenticating and confining those credentials on the
// embedded NATS server (see [NATSAuth] and [NodePermissions]), answering
// the nodes' API requests ([Service]) and fetching container logs from
// them for the API server ([PodLogs]).
//
// A node's credential is a random secret that only the node keeps. The
// control plane stores its sha256 in etcd as the core/v1 Secret
// kube-system/wasmfleet-node-<node> of type wasmfleet.io/node-credential
// (data: "sha256", "nodeName"); joining again rotates it, and the old
// secret stops working for new connections at once. The event publisher
// redacts Secret data, so not even the hash goes over NATS.
//
// On NATS a node authenticates as user "node:<node>" (nodelink.NATSUser)
// with that secret and may only touch its own subjects; [NodePermissions]
// has the exact list.
//
// This works with the embedded NATS server only (custom client
// authentication runs in process). An external NATS would need the same
// decisions made by an auth callout service.
package linkserver
