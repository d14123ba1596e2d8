package nodelink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
)

// Pod logs over the node link (`kubectl logs`): the API server asks the
// agent of the pod's node over NATS and streams the answer back; the
// device needs no inbound port. Both ends live here: [LogClient] on the
// control plane, [LogServer] in the agent.
//
// The protocol, one stream per request:
//
//  1. The control plane subscribes to a fresh reply subject
//     wasmfleet.agent.<node>.logdata.<id> (the node may publish there: it
//     is under its own wasmfleet.agent.<node>.>) and publishes a
//     [LogRequest] (JSON) on [LogSubject] (wasmfleet.agent.<node>.logs,
//     the one subject of that namespace the node may subscribe to). No
//     agent subscribed: NATS answers "no responders" at once (503).
//  2. The agent answers on the reply subject with messages whose
//     "Wasmfleet-Log" header says what they are: "error" (body: a
//     [LogError] in JSON; the request is refused) or "start", whose
//     "Wasmfleet-Log-Control" header names a subject in the agent's own
//     inbox ([InboxPrefix]) for the control plane's messages; then "data"
//     chunks of at most [LogChunkBytes] numbered by "Wasmfleet-Log-Seq"
//     (1, 2, …), "ping" while it has nothing to send, and finally "end" or
//     "error".
//  3. Flow control: the agent never has more than LogRequest.Window chunks
//     unacknowledged. The control plane acknowledges ("ack", header
//     "Wasmfleet-Log-Ack": chunks consumed) as its HTTP client takes the
//     data, so a slow client slows the agent instead of filling memory.
//  4. Liveness: the control plane repeats its ack every keep-alive interval
//     (1s) and sends "cancel" when its client goes away; an agent that has
//     not heard from the control plane for its idle timeout (5s) stops the
//     stream. The control plane likewise ends a stream whose agent sent
//     nothing (pings included) for its agent timeout.

// LogChunkBytes bounds one data message.
const LogChunkBytes = 32 << 10

// Defaults of the log stream's timing and window.
const (
	DefaultLogWindow       = 16
	DefaultLogKeepAlive    = time.Second
	DefaultLogIdleTimeout  = 5 * time.Second
	DefaultLogStartTimeout = 5 * time.Second
	maxLogWindow           = 256
)

// Message headers and kinds of the log protocol.
const (
	hdrLogKind    = "Wasmfleet-Log"
	hdrLogSeq     = "Wasmfleet-Log-Seq"
	hdrLogControl = "Wasmfleet-Log-Control"
	hdrLogAck     = "Wasmfleet-Log-Ack"

	logStart  = "start"
	logData   = "data"
	logPing   = "ping"
	logEnd    = "end"
	logError  = "error"
	logAck    = "ack"
	logCancel = "cancel"
)

// LogSubject is where the control plane asks node for container logs:
// wasmfleet.agent.<node>.logs. Only node may subscribe to it.
func LogSubject(node string) string {
	return AgentPrefix + "." + subjects.EncodeToken(node) + ".logs"
}

// logReplyPrefix starts the reply subjects of node's log streams:
// wasmfleet.agent.<node>.logdata.
func logReplyPrefix(node string) string {
	return AgentPrefix + "." + subjects.EncodeToken(node) + ".logdata."
}

// LogRequest asks for one container's log, with kubectl logs' options.
type LogRequest struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// UID is the pod's uid as the API server knows it (empty: any).
	UID       string `json:"uid,omitempty"`
	Container string `json:"container"`
	// Previous asks for the last terminated instance of the container.
	Previous bool `json:"previous,omitempty"`
	// Follow keeps streaming while the container runs.
	Follow     bool `json:"follow,omitempty"`
	Timestamps bool `json:"timestamps,omitempty"`
	// TailLines keeps only the last lines; SinceSeconds (on the agent's
	// clock) or SinceTime drop older lines; LimitBytes ends the stream
	// after that many bytes.
	TailLines    *int64     `json:"tailLines,omitempty"`
	SinceSeconds *int64     `json:"sinceSeconds,omitempty"`
	SinceTime    *time.Time `json:"sinceTime,omitempty"`
	LimitBytes   *int64     `json:"limitBytes,omitempty"`
	// Window is how many data chunks may be unacknowledged.
	Window int `json:"window"`
}

// LogError is an agent's refusal: Code is the HTTP status (400 for the
// kubelet's "container … is waiting to start" and the like), Message what
// the user reads.
type LogError struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

func (e *LogError) Error() string { return e.Message }

// apiError is e as a Kubernetes API error.
func (e *LogError) apiError() error {
	switch e.Code {
	case http.StatusBadRequest:
		return apierrors.NewBadRequest(e.Message)
	case http.StatusTooManyRequests:
		return apierrors.NewTooManyRequests(e.Message, 1)
	case http.StatusServiceUnavailable:
		return apierrors.NewServiceUnavailable(e.Message)
	}
	reason := metav1.StatusReasonInternalError
	switch e.Code {
	case http.StatusNotFound:
		reason = metav1.StatusReasonNotFound
	case http.StatusForbidden:
		reason = metav1.StatusReasonForbidden
	}
	code := e.Code
	if code < 400 || code > 599 {
		code = http.StatusInternalServerError
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: e.Message}}
}

// LogOpener resolves a request to the log to send. An error refuses it
// (a *LogError keeps its code; other errors are 500). Otherwise write
// copies the log to w: everything asked for, then, while following, new
// lines until ctx ends or the log does (the container stopped). w's
// errors (the stream was cancelled, the byte limit reached) must end it.
type LogOpener func(req LogRequest) (write func(ctx context.Context, w io.Writer) error, err error)

// LogServerConfig configures [NewLogServer].
type LogServerConfig struct {
	// Conn is the node's NATS connection (its inbox prefix must be
	// InboxPrefix(Node)).
	Conn *nats.Conn
	Node string
	Open LogOpener
	// MaxStreams bounds the streams served at once (default 32); more
	// requests are refused with 429.
	MaxStreams int
	// IdleTimeout stops a stream the control plane has not been heard
	// from for that long (default DefaultLogIdleTimeout).
	IdleTimeout time.Duration
	// KeepAlive is how often an idle stream sends a ping (default
	// DefaultLogKeepAlive).
	KeepAlive time.Duration
	Logger    *slog.Logger
}

// LogServer is the agent's end of the log protocol: it answers the log
// requests for its node. Run it once; Active is safe from any goroutine.
type LogServer struct {
	cfg LogServerConfig
	log *slog.Logger

	mu      sync.Mutex
	closed  bool
	streams int
	follows int
	wg      sync.WaitGroup
}

// NewLogServer checks cfg and returns the server.
func NewLogServer(cfg LogServerConfig) (*LogServer, error) {
	if cfg.Conn == nil || cfg.Open == nil || cfg.Node == "" {
		return nil, errors.New("log server: Conn, Node and Open are required")
	}
	if !strings.HasPrefix(cfg.Conn.NewInbox(), InboxPrefix(cfg.Node)+".") {
		return nil, fmt.Errorf("log server: the NATS connection must use inbox prefix %s", InboxPrefix(cfg.Node))
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 32
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultLogIdleTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultLogKeepAlive
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LogServer{cfg: cfg, log: log}, nil
}

// Active returns the streams being served, and how many of them follow.
func (s *LogServer) Active() (streams, follows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams, s.follows
}

// Run serves log requests until ctx ends, then stops the streams and waits
// for them.
func (s *LogServer) Run(ctx context.Context) error {
	defer func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wg.Wait()
	}()
	sub, err := s.cfg.Conn.Subscribe(LogSubject(s.cfg.Node), func(m *nats.Msg) { s.accept(ctx, m) })
	if err != nil {
		return fmt.Errorf("log server: subscribe: %w", err)
	}
	<-ctx.Done()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		s.log.Warn("log server: unsubscribe", "err", err)
	}
	return nil
}

// accept starts serving one request message.
func (s *LogServer) accept(ctx context.Context, m *nats.Msg) {
	if !strings.HasPrefix(m.Reply, logReplyPrefix(s.cfg.Node)) {
		s.log.Warn("log request with a reply subject outside the node's log subjects", "reply", m.Reply)
		return
	}
	var req LogRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		s.refuse(m.Reply, &LogError{Code: http.StatusBadRequest, Message: "malformed log request: " + err.Error()})
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.refuse(m.Reply, &LogError{Code: http.StatusServiceUnavailable, Message: fmt.Sprintf("the agent of node %q is shutting down", s.cfg.Node)})
		return
	}
	if s.streams >= s.cfg.MaxStreams {
		s.mu.Unlock()
		s.refuse(m.Reply, &LogError{Code: http.StatusTooManyRequests, Message: fmt.Sprintf("too many log streams on node %q (limit %d)", s.cfg.Node, s.cfg.MaxStreams)})
		return
	}
	s.streams++
	if req.Follow {
		s.follows++
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			s.streams--
			if req.Follow {
				s.follows--
			}
			s.mu.Unlock()
			s.wg.Done()
		}()
		s.serve(ctx, m.Reply, req)
	}()
}

func (s *LogServer) refuse(reply string, e *LogError) {
	b, _ := json.Marshal(e)
	msg := &nats.Msg{Subject: reply, Header: nats.Header{hdrLogKind: {logError}}, Data: b}
	if err := s.cfg.Conn.PublishMsg(msg); err != nil {
		s.log.Warn("log stream: answer", "err", err)
	}
}

// serve runs one stream.
func (s *LogServer) serve(ctx context.Context, reply string, req LogRequest) {
	write, err := s.cfg.Open(req)
	if err != nil {
		var le *LogError
		if !errors.As(err, &le) {
			le = &LogError{Code: http.StatusInternalServerError, Message: err.Error()}
		}
		s.refuse(reply, le)
		return
	}
	window := req.Window
	if window <= 0 {
		window = DefaultLogWindow
	}
	window = min(window, maxLogWindow)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := &agentStream{nc: s.cfg.Conn, reply: reply, window: uint64(window), ctx: ctx, credit: make(chan struct{}, 1), cancel: cancel}
	if req.LimitBytes != nil {
		st.limit = *req.LimitBytes
	}
	st.heard.Store(time.Now().UnixNano())
	control := s.cfg.Conn.NewInbox()
	csub, err := s.cfg.Conn.Subscribe(control, st.onControl)
	if err != nil {
		s.refuse(reply, &LogError{Code: http.StatusInternalServerError, Message: "log stream: " + err.Error()})
		return
	}
	defer csub.Unsubscribe()
	if err := st.publish(&nats.Msg{Header: nats.Header{hdrLogKind: {logStart}, hdrLogControl: {control}}}); err != nil {
		return
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.watch(done, s.cfg.KeepAlive, s.cfg.IdleTimeout)
	}()
	// readCtx also ends when the byte limit is reached.
	readCtx, stopRead := context.WithCancel(ctx)
	st.stopRead = stopRead
	err = write(readCtx, st)
	stopRead()
	close(done)
	wg.Wait()
	switch {
	case st.limitHit.Load() || err == nil || ctx.Err() != nil:
		// Finished, limited, cancelled or abandoned: say so (harmless if
		// nobody listens any more).
		st.publish(&nats.Msg{Header: nats.Header{hdrLogKind: {logEnd}}})
	default:
		s.log.Warn("log stream failed", "pod", req.Namespace+"/"+req.Pod, "container", req.Container, "err", err)
		b, _ := json.Marshal(&LogError{Code: http.StatusInternalServerError, Message: err.Error()})
		st.publish(&nats.Msg{Header: nats.Header{hdrLogKind: {logError}}, Data: b})
	}
}

// agentStream is one stream's writer: it cuts the log into chunks and
// sends them within the window the control plane acknowledges.
type agentStream struct {
	nc     *nats.Conn
	reply  string
	window uint64
	ctx    context.Context
	cancel context.CancelFunc
	// stopRead ends the log copy (set before the first Write).
	stopRead context.CancelFunc
	credit   chan struct{}

	limit    int64 // 0: none
	written  int64
	limitHit atomic.Bool
	seq      uint64        // chunks sent
	acked    atomic.Uint64 // chunks the control plane consumed
	heard    atomic.Int64  // unix nanos of the last control message
	sent     atomic.Int64  // unix nanos of the last message sent
}

var errLogLimit = errors.New("log byte limit reached")

func (st *agentStream) publish(m *nats.Msg) error {
	m.Subject = st.reply
	st.sent.Store(time.Now().UnixNano())
	return st.nc.PublishMsg(m)
}

// onControl handles the control plane's acks and cancel.
func (st *agentStream) onControl(m *nats.Msg) {
	st.heard.Store(time.Now().UnixNano())
	switch m.Header.Get(hdrLogKind) {
	case logCancel:
		st.cancel()
	case logAck:
		n, err := strconv.ParseUint(m.Header.Get(hdrLogAck), 10, 64)
		if err != nil {
			return
		}
		for {
			cur := st.acked.Load()
			if n <= cur || st.acked.CompareAndSwap(cur, n) {
				break
			}
		}
		select {
		case st.credit <- struct{}{}:
		default:
		}
	}
}

// watch pings while the stream is quiet and cancels it once the control
// plane has been silent for idle, until done closes.
func (st *agentStream) watch(done <-chan struct{}, keepAlive, idle time.Duration) {
	t := time.NewTicker(keepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if now.Sub(time.Unix(0, st.heard.Load())) > idle {
			st.cancel()
			return
		}
		if now.Sub(time.Unix(0, st.sent.Load())) >= keepAlive {
			st.publish(&nats.Msg{Header: nats.Header{hdrLogKind: {logPing}}})
		}
	}
}

// Write sends p in chunks, waiting for credit; it fails once the stream
// is cancelled or the byte limit is reached.
func (st *agentStream) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if err := st.ctx.Err(); err != nil {
			return total, err
		}
		n := min(len(p), LogChunkBytes)
		if st.limit > 0 {
			rest := st.limit - st.written
			if rest <= 0 {
				return total, errLogLimit
			}
			n = int(min(int64(n), rest))
		}
		for st.seq-st.acked.Load() >= st.window {
			select {
			case <-st.ctx.Done():
				return total, st.ctx.Err()
			case <-st.credit:
			}
		}
		st.seq++
		err := st.publish(&nats.Msg{Header: nats.Header{hdrLogKind: {logData}, hdrLogSeq: {strconv.FormatUint(st.seq, 10)}}, Data: p[:n]})
		if err != nil {
			return total, fmt.Errorf("send log: %w", err)
		}
		st.written += int64(n)
		total += n
		p = p[n:]
		if st.limit > 0 && st.written >= st.limit {
			st.limitHit.Store(true)
			st.stopRead()
			if len(p) > 0 {
				return total, errLogLimit
			}
		}
	}
	return total, nil
}

// LogClientConfig configures [NewLogClient].
type LogClientConfig struct {
	// Conn is the control plane's admin NATS connection.
	Conn *nats.Conn
	// StartTimeout bounds the wait for the agent's first answer (default
	// DefaultLogStartTimeout).
	StartTimeout time.Duration
	// AgentTimeout ends a stream whose agent has sent nothing for that
	// long (default DefaultLogIdleTimeout).
	AgentTimeout time.Duration
	// KeepAlive is how often the agent is told the stream is still wanted
	// (default DefaultLogKeepAlive; keep it well under the agents' idle
	// timeout).
	KeepAlive time.Duration
	// Window is the chunks an agent may send ahead (default
	// DefaultLogWindow).
	Window int
}

// LogClient is the control plane's end of the log protocol (the API
// server gets it as apiserver.PodLogs through linkserver.PodLogs). Safe for
// concurrent use.
type LogClient struct {
	cfg LogClientConfig
}

// NewLogClient checks cfg and returns the client.
func NewLogClient(cfg LogClientConfig) (*LogClient, error) {
	if cfg.Conn == nil {
		return nil, errors.New("log client: Conn is required")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultLogStartTimeout
	}
	if cfg.AgentTimeout <= 0 {
		cfg.AgentTimeout = DefaultLogIdleTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultLogKeepAlive
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultLogWindow
	}
	cfg.Window = min(cfg.Window, maxLogWindow)
	return &LogClient{cfg: cfg}, nil
}

// Open asks the agent of node for the log req names (req.Window is the
// client's). It fails with 503 when no agent of that node is connected and
// 504 when it does not answer in time, or with the agent's refusal (400
// for a container that has not started, …); its errors are Kubernetes API
// errors. The stream ends with io.EOF at the log's end; Close stops the
// agent.
func (c *LogClient) Open(ctx context.Context, node string, req LogRequest) (io.ReadCloser, error) {
	if len(validation.IsDNS1123Subdomain(node)) > 0 {
		return nil, apierrors.NewInternalError(fmt.Errorf("pod %s/%s is bound to an invalid node name %q", req.Namespace, req.Pod, node))
	}
	nc := c.cfg.Conn
	reply := logReplyPrefix(node) + strings.TrimPrefix(nats.NewInbox(), "_INBOX.")
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("log stream: subscribe: %w", err))
	}
	pending := 4*c.cfg.Window + 16
	if err := sub.SetPendingLimits(pending, pending*(LogChunkBytes+4096)); err != nil {
		sub.Unsubscribe()
		return nil, apierrors.NewInternalError(fmt.Errorf("log stream: %w", err))
	}
	req.Window = c.cfg.Window
	data, _ := json.Marshal(req)
	if err := nc.PublishMsg(&nats.Msg{Subject: LogSubject(node), Reply: reply, Data: data}); err != nil {
		sub.Unsubscribe()
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("cannot reach the agent of node %q: %v", node, err))
	}
	control, err := c.awaitStart(ctx, sub, node)
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	s := &logStream{nc: nc, sub: sub, node: node, control: control, ctx: ctx,
		agentTimeout: c.cfg.AgentTimeout, ackEvery: uint64(max(1, c.cfg.Window/2)), nextSeq: 1, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.keepAlive(c.cfg.KeepAlive)
	return s, nil
}

// awaitStart waits for the agent's first answer and returns its control
// subject.
func (c *LogClient) awaitStart(ctx context.Context, sub *nats.Subscription, node string) (string, error) {
	sctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(sctx)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return "", apierrors.NewServiceUnavailable(fmt.Sprintf("the agent of node %q is not connected: cannot get the log", node))
		case err != nil && ctx.Err() != nil:
			return "", ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			return "", apierrors.NewTimeoutError(fmt.Sprintf("the agent of node %q did not answer the log request within %s", node, c.cfg.StartTimeout), 1)
		case err != nil:
			return "", apierrors.NewServiceUnavailable(fmt.Sprintf("log request to node %q: %v", node, err))
		}
		switch m.Header.Get(hdrLogKind) {
		case logError:
			return "", decodeLogError(m.Data)
		case logStart:
			control := m.Header.Get(hdrLogControl)
			if !strings.HasPrefix(control, InboxPrefix(node)+".") {
				return "", apierrors.NewInternalError(fmt.Errorf("the agent of node %q named a control subject outside its inbox", node))
			}
			return control, nil
		}
		// Anything else is not the agent's answer; keep waiting.
	}
}

func decodeLogError(b []byte) error {
	var le LogError
	if err := json.Unmarshal(b, &le); err != nil || le.Message == "" {
		return apierrors.NewInternalError(errors.New("the agent sent a malformed log error"))
	}
	return le.apiError()
}

// logStream is the control plane's reader of one stream.
type logStream struct {
	nc           *nats.Conn
	sub          *nats.Subscription
	node         string
	control      string
	ctx          context.Context
	agentTimeout time.Duration
	ackEvery     uint64

	// Read's state (one reader at a time, as io.Reader).
	buf     []byte
	nextSeq uint64
	err     error

	consumed atomic.Uint64 // data chunks read completely
	acked    atomic.Uint64 // the last ack sent

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func (s *logStream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	if len(s.buf) == 0 {
		c := s.consumed.Add(1)
		if c-s.acked.Load() >= s.ackEvery {
			s.ack()
		}
	}
	return n, nil
}

// next waits for the agent's next message: data fills s.buf; the end of
// the stream is returned as an error (io.EOF on a clean end).
func (s *logStream) next() error {
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.agentTimeout)
		m, err := s.sub.NextMsgWithContext(ctx)
		cancel()
		if err != nil {
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("the agent of node %q stopped answering the log stream", s.node)
			}
			return fmt.Errorf("log stream from node %q: %w", s.node, err)
		}
		switch m.Header.Get(hdrLogKind) {
		case logData:
			seq, err := strconv.ParseUint(m.Header.Get(hdrLogSeq), 10, 64)
			if err != nil || seq != s.nextSeq {
				return fmt.Errorf("log stream from node %q lost data (chunk %s, want %d)", s.node, m.Header.Get(hdrLogSeq), s.nextSeq)
			}
			s.nextSeq++
			if len(m.Data) == 0 {
				s.consumed.Add(1)
				continue
			}
			s.buf = m.Data
			return nil
		case logEnd:
			return io.EOF
		case logError:
			return decodeLogError(m.Data)
		}
		// ping, or not a log message: keep waiting.
	}
}

// ack tells the agent how many chunks were consumed (also a keep-alive).
func (s *logStream) ack() {
	c := s.consumed.Load()
	s.acked.Store(c)
	s.nc.PublishMsg(&nats.Msg{Subject: s.control, Header: nats.Header{hdrLogKind: {logAck}, hdrLogAck: {strconv.FormatUint(c, 10)}}})
}

func (s *logStream) keepAlive(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.ack()
		}
	}
}

// Close tells the agent to stop and releases the stream.
func (s *logStream) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.nc.PublishMsg(&nats.Msg{Subject: s.control, Header: nats.Header{hdrLogKind: {logCancel}}})
		s.sub.Unsubscribe()
	})
	return nil
}
