package nodelink

import "github.com/wasmfleet/wasmfleet/controlplane/events/subjects"

// The node API: an agent calls the Kubernetes API over its NATS
// connection. It sends a NATS request on [APISubject] (its own
// wasmfleet.agent.<node>.api, the only one its permissions let it publish
// on) with a reply subject under its [InboxPrefix]; the payload is an
// [APIRequest] in JSON, the answer an [APIResponse] in JSON. The control
// plane runs the request as user "system:node:<node>" in group
// "system:nodes" (apiserver.NodeUser), taking the node's name from the
// subject, never from the payload, so the API server's node authorization
// confines it to its own objects.

// APISubject is where node sends API requests: wasmfleet.agent.<node>.api.
func APISubject(node string) string {
	return AgentPrefix + "." + subjects.EncodeToken(node) + ".api"
}

// APIRequest is one API call. Body is base64 in JSON (encoding/json's
// []byte encoding), so any content type (JSON, YAML, protobuf) travels
// unchanged. Path may carry a query ("/api/v1/pods?fieldSelector=…").
type APIRequest struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// APIResponse is the API server's answer: the HTTP status code, content
// type and body (base64 in JSON; a Kubernetes Status on errors).
type APIResponse struct {
	Code        int    `json:"code"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}
