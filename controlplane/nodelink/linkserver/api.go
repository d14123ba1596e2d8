package linkserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
)

// APIQueue is the queue group control planes share node API requests in.
const APIQueue = "wasmfleet-node-api"

// apiSubjects matches every node's API subject.
const apiSubjects = nodelink.AgentPrefix + ".*.api"

// APIHandler runs one request as user: (*apiserver.Server).Do.
type APIHandler func(ctx context.Context, user apiserver.User, method, path, contentType string, body []byte) (int, string, []byte)

// ServiceConfig configures [NewService].
type ServiceConfig struct {
	// Conn is the control plane's admin NATS connection.
	Conn *nats.Conn
	// API runs the requests.
	API APIHandler
	// Queue is the queue group (default APIQueue).
	Queue string
	// MaxConcurrent bounds the requests run at once (default 64); more
	// wait in the subscription's pending buffer.
	MaxConcurrent int
	// MaxRequestBytes bounds a version-1 request message (default: a
	// MaxBodyBytes body in base64 plus 64 KiB; the NATS max_payload
	// usually bounds it first). A version-2 request's body is bounded by
	// MaxBodyBytes.
	MaxRequestBytes int
	// Timeout bounds one request (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Service answers the nodes' API requests (see [nodelink.APIRequest]).
type Service struct {
	cfg ServiceConfig
	log *slog.Logger
}

// maxAPIRequest is the default ServiceConfig.MaxRequestBytes.
const maxAPIRequest = apiserver.MaxBodyBytes/3*4 + 64<<10

// NewService checks cfg and returns the service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Conn == nil || cfg.API == nil {
		return nil, errors.New("node API service: Conn and API are required")
	}
	if cfg.Queue == "" {
		cfg.Queue = APIQueue
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = maxAPIRequest
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log}, nil
}

// Run serves requests until ctx ends, then stops taking new ones and waits
// for those running.
func (s *Service) Run(ctx context.Context) error {
	sem := make(chan struct{}, s.cfg.MaxConcurrent)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
	)
	defer func() {
		mu.Lock()
		closed = true
		mu.Unlock()
		wg.Wait()
	}()
	sub, err := s.cfg.Conn.QueueSubscribe(apiSubjects, s.cfg.Queue, func(m *nats.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		mu.Lock()
		if closed {
			mu.Unlock()
			<-sem
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.serve(ctx, m)
		}()
	})
	if err != nil {
		return fmt.Errorf("node API: subscribe: %w", err)
	}
	// Bound what waits: requests beyond this are dropped (the agent's
	// request times out) rather than buffered without limit.
	if err := sub.SetPendingLimits(4096, 256<<20); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("node API: %w", err)
	}
	<-ctx.Done()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		s.log.Warn("node API: unsubscribe", "err", err)
	}
	return nil
}

// serve answers one request message.
func (s *Service) serve(ctx context.Context, m *nats.Msg) {
	node, ok := subjectNode(m.Subject)
	if !ok {
		s.log.Warn("node API: request on a malformed subject", "subject", m.Subject)
		return
	}
	// Answer only into the node's own inbox: a reply subject is the
	// requester's choice, and the admin connection could publish anywhere.
	if !strings.HasPrefix(m.Reply, nodelink.InboxPrefix(node)+".") {
		s.log.Warn("node API: refusing to reply outside the node's inbox", "node", node, "reply", m.Reply)
		return
	}
	if req, v := nodelink.RequestOf(m); v != "" {
		s.answer(node, m.Reply, s.serveV2(ctx, node, v, req))
		return
	}
	resp := s.callV1(ctx, node, m.Data)
	b, _ := json.Marshal(resp)
	if limit := s.cfg.Conn.MaxPayload(); limit > 0 && int64(len(b)) > limit-1024 {
		b, _ = json.Marshal(statusResponse(apierrors.NewInternalError(fmt.Errorf(
			"the response (%d bytes) exceeds the NATS max_payload (%d bytes); page lists with limit and continue", len(b), limit))))
	}
	if err := m.Respond(b); err != nil {
		s.log.Warn("node API: reply", "node", node, "err", err)
	}
}

// serveV2 runs a version-2 request.
func (s *Service) serveV2(ctx context.Context, node, v string, req nodelink.APIRequest) nodelink.APIResponse {
	if v != nodelink.APIVersion {
		return statusResponse(apierrors.NewBadRequest(fmt.Sprintf("node API version %q is not served (this control plane serves 1 and %s)", v, nodelink.APIVersion)))
	}
	resp := s.call(ctx, node, req)
	if len(resp.Body) > nodelink.MaxAnswerBytes {
		return statusResponse(apierrors.NewInternalError(fmt.Errorf(
			"the response (%d bytes) exceeds the node API's limit (%d bytes); page lists with limit and continue", len(resp.Body), nodelink.MaxAnswerBytes)))
	}
	return resp
}

// answer sends a version-2 answer, in parts when it is larger than the
// NATS max_payload.
func (s *Service) answer(node, reply string, r nodelink.APIResponse) {
	for _, m := range nodelink.AnswerMsgs(reply, r, s.cfg.Conn.MaxPayload()) {
		if err := s.cfg.Conn.PublishMsg(m); err != nil {
			s.log.Warn("node API: reply", "node", node, "err", err)
			return
		}
	}
}

// callV1 decodes and runs a version-1 request.
func (s *Service) callV1(ctx context.Context, node string, data []byte) nodelink.APIResponse {
	if len(data) > s.cfg.MaxRequestBytes {
		return statusResponse(apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", apiserver.MaxBodyBytes)))
	}
	var req nodelink.APIRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return statusResponse(apierrors.NewBadRequest("node API request must be JSON {\"method\",\"path\",\"contentType\",\"body\"}: " + err.Error()))
	}
	return s.call(ctx, node, req)
}

// call runs req as node.
func (s *Service) call(ctx context.Context, node string, req nodelink.APIRequest) nodelink.APIResponse {
	switch req.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return statusResponse(apierrors.NewBadRequest(fmt.Sprintf("method %q is not served", req.Method)))
	}
	if !strings.HasPrefix(req.Path, "/") || strings.HasPrefix(req.Path, "//") {
		return statusResponse(apierrors.NewBadRequest(fmt.Sprintf("path %q must be absolute", req.Path)))
	}
	if len(req.Body) > apiserver.MaxBodyBytes {
		return statusResponse(apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", apiserver.MaxBodyBytes)))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	code, ct, body := s.cfg.API(ctx, apiserver.NodeUser(node), req.Method, req.Path, req.ContentType, req.Body)
	return nodelink.APIResponse{Code: code, ContentType: ct, Body: body}
}

// subjectNode returns the node a request subject belongs to.
func subjectNode(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0]+"."+parts[1] != nodelink.AgentPrefix || parts[3] != "api" {
		return "", false
	}
	node, err := subjects.DecodeToken(parts[2])
	if err != nil || len(validation.IsDNS1123Subdomain(node)) > 0 {
		return "", false
	}
	return node, true
}

func statusResponse(err apierrors.APIStatus) nodelink.APIResponse {
	st := err.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	body, _ := json.Marshal(st)
	return nodelink.APIResponse{Code: int(st.Code), ContentType: "application/json", Body: body}
}
