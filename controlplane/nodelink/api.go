package nodelink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
)

// The node API: an agent calls the Kubernetes API over its NATS
// connection. It sends a NATS request on [APISubject] (its own
// wasmfleet.agent.<node>.api, the only one its permissions let it publish
// on) with a reply subject under its [InboxPrefix]. The control plane runs
// the request as user "system:node:<node>" in group "system:nodes"
// (apiserver.NodeUser), taking the node's name from the subject, never
// from the payload, so the API server's node authorization confines it to
// its own objects.
//
// Two versions of the wire format are served:
//
//   - Version 2 ([Call], [RequestOf], [AnswerMsgs]): a request carries its
//     method, path and content type in headers ([HeaderAPIVersion] "2",
//     [HeaderMethod], [HeaderPath], Content-Type) and its body, raw, as the
//     message's data. The answer has [HeaderCode], Content-Type and the
//     body, raw, split into messages of the connection's max_payload when
//     it is larger ([HeaderChunk] "i/n" on each): any object the API server
//     stores reaches the node, whatever the NATS server's max_payload, up
//     to [MaxAnswerBytes] an answer.
//   - Version 1 (agents before version 2): the payload is an [APIRequest]
//     in JSON, the answer one [APIResponse] in JSON, bodies in base64, so
//     an answer must fit in one message.
//
// A control plane answers a request in the version it came in; an agent
// whose version-2 request gets an answer without [HeaderCode] is talking
// to a control plane older than version 2 and goes on in version 1.

// APISubject is where node sends API requests: wasmfleet.agent.<node>.api.
func APISubject(node string) string {
	return AgentPrefix + "." + subjects.EncodeToken(node) + ".api"
}

// APIRequest is one API call. In version 1 it is the request's payload in
// JSON, Body in base64 (encoding/json's []byte encoding), so any content
// type (JSON, YAML, protobuf) travels unchanged. Path may carry a query
// ("/api/v1/pods?fieldSelector=…").
type APIRequest struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// APIResponse is the API server's answer: the HTTP status code, content
// type and body (a Kubernetes Status on errors). In version 1 it is the
// answer's payload in JSON, Body in base64.
type APIResponse struct {
	Code        int    `json:"code"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// Headers of the node API, version 2.
const (
	HeaderAPIVersion = "Wasmfleet-Api"
	HeaderMethod     = "Wasmfleet-Method"
	HeaderPath       = "Wasmfleet-Path"
	HeaderCode       = "Wasmfleet-Code"
	// HeaderChunk is "i/n" on each message of an answer in n > 1 parts, i
	// counting from 1; the parts' data, in order, is the body.
	HeaderChunk = "Wasmfleet-Chunk"
	headerCT    = "Content-Type"
)

// APIVersion is the version of the node API this package speaks.
const APIVersion = "2"

// MaxAnswerBytes bounds an answer's body in version 2: a larger one is
// refused with an error that asks for pages (limit and continue).
const MaxAnswerBytes = 16 << 20

// chunkHeadroom is what an answer's message keeps free for its headers.
const chunkHeadroom = 1 << 10

// ErrVersion1 is what [Call] returns when the control plane answered in
// version 1: it is older than version 2, and the request must be sent as
// an [APIRequest] in JSON.
var ErrVersion1 = errors.New("node API: the control plane speaks version 1 only")

// RequestMsg is req as a version-2 message on subject with reply subject
// reply.
func RequestMsg(subject, reply string, req APIRequest) *nats.Msg {
	h := nats.Header{}
	h.Set(HeaderAPIVersion, APIVersion)
	h.Set(HeaderMethod, req.Method)
	h.Set(HeaderPath, req.Path)
	if req.ContentType != "" {
		h.Set(headerCT, req.ContentType)
	}
	return &nats.Msg{Subject: subject, Reply: reply, Header: h, Data: req.Body}
}

// RequestOf returns the request in m and its version, "" when m is in
// version 1 (it has no [HeaderAPIVersion]; decode its payload as an
// [APIRequest]).
func RequestOf(m *nats.Msg) (req APIRequest, version string) {
	version = m.Header.Get(HeaderAPIVersion)
	if version == "" {
		return APIRequest{}, ""
	}
	return APIRequest{Method: m.Header.Get(HeaderMethod), Path: m.Header.Get(HeaderPath), ContentType: m.Header.Get(headerCT), Body: m.Data}, version
}

// AnswerMsgs returns answer r to reply as version-2 messages of at most
// maxPayload bytes each (headers included; maxPayload <= 0: one message).
// The caller bounds r.Body by MaxAnswerBytes.
func AnswerMsgs(reply string, r APIResponse, maxPayload int64) []*nats.Msg {
	size := len(r.Body)
	if maxPayload > 2*chunkHeadroom {
		size = int(maxPayload) - chunkHeadroom
	}
	n := 1
	if size > 0 && len(r.Body) > size {
		n = (len(r.Body) + size - 1) / size
	}
	msgs := make([]*nats.Msg, n)
	for i := range n {
		h := nats.Header{}
		h.Set(HeaderCode, strconv.Itoa(r.Code))
		if r.ContentType != "" {
			h.Set(headerCT, r.ContentType)
		}
		data := r.Body
		if n > 1 {
			h.Set(HeaderChunk, fmt.Sprintf("%d/%d", i+1, n))
			data = r.Body[i*size : min((i+1)*size, len(r.Body))]
		}
		msgs[i] = &nats.Msg{Subject: reply, Header: h, Data: data}
	}
	return msgs
}

// ChunkGap bounds the wait for each part of an answer after its first: the
// control plane sends them together, so one that does not follow was lost
// (core NATS delivers at most once) and will not come.
const ChunkGap = 5 * time.Second

// Call sends req to subject in version 2 and reads its answer, on an inbox
// of nc's own (whose prefix must be the node's). It returns
// [ErrVersion1] when the control plane answered in version 1,
// nats.ErrNoResponders when no control plane listens, ctx's error when
// the answer does not come in time, and an error when a part of it does
// not follow within [ChunkGap].
func Call(ctx context.Context, nc *nats.Conn, subject string, req APIRequest) (APIResponse, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return APIResponse{}, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishMsg(RequestMsg(subject, inbox, req)); err != nil {
		return APIResponse{}, err
	}
	var (
		r    APIResponse
		n    = 1
		body []byte
	)
	for i := 1; i <= n; i++ {
		m, err := nextPart(ctx, sub, i, n)
		if err != nil {
			return APIResponse{}, err
		}
		if i == 1 {
			if m.Header.Get("Status") == strconv.Itoa(http.StatusServiceUnavailable) && len(m.Data) == 0 {
				return APIResponse{}, nats.ErrNoResponders
			}
			code := m.Header.Get(HeaderCode)
			if code == "" {
				return APIResponse{}, ErrVersion1
			}
			if r.Code, err = strconv.Atoi(code); err != nil || r.Code < 100 || r.Code > 599 {
				return APIResponse{}, fmt.Errorf("node API: malformed answer code %q", code)
			}
			r.ContentType = m.Header.Get(headerCT)
		}
		if c := m.Header.Get(HeaderChunk); c != "" || n > 1 {
			ci, cn, ok := parseChunk(c)
			if !ok || ci != i || (i == 1 && (cn < 2 || cn > MaxAnswerBytes/chunkHeadroom)) || (i > 1 && cn != n) {
				return APIResponse{}, fmt.Errorf("node API: malformed answer: part %q where part %d was due", c, i)
			}
			n = cn
		}
		if len(body)+len(m.Data) > MaxAnswerBytes {
			return APIResponse{}, fmt.Errorf("node API: the answer exceeds %d bytes", MaxAnswerBytes)
		}
		body = append(body, m.Data...)
	}
	r.Body = body
	return r, nil
}

// nextPart reads part i of n of an answer from sub: after the first, for
// at most ChunkGap.
func nextPart(ctx context.Context, sub *nats.Subscription, i, n int) (*nats.Msg, error) {
	if i == 1 {
		return sub.NextMsgWithContext(ctx)
	}
	pctx, cancel := context.WithTimeout(ctx, ChunkGap)
	defer cancel()
	m, err := sub.NextMsgWithContext(pctx)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("node API: part %d of %d of the answer did not follow within %v", i, n, ChunkGap)
	}
	return m, err
}

// parseChunk parses a HeaderChunk value "i/n".
func parseChunk(v string) (i, n int, ok bool) {
	a, b, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, err1 == nil && err2 == nil
}
