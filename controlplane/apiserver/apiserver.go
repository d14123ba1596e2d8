// Package apiserver serves the Kubernetes REST API on top of the etcd
// registry (controlplane/storage): discovery, OpenAPI v3, CRUD with
// optimistic concurrency, patches, watches (classic and streaming
// watch-list), Table output for kubectl, PartialObjectMetadata for the
// metadata client (JSON or protobuf; see partial.go), and the subresources
// controllers and agents use (status, scale, binding, eviction). It authenticates every
// request, validates and defaults every write (controlplane/apiserver/validation)
// and persists it in one etcd transaction. It is the only component that
// talks to etcd.
//
// A Server is an http.Handler, safe for concurrent use; it owns no
// goroutines besides those serving requests.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/version"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/openapi"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// MaxBodyBytes is the largest request body accepted (as kube-apiserver's 3 MiB).
const MaxBodyBytes = 3 << 20

// User is an authenticated caller.
type User struct {
	Name   string
	Groups []string
}

// Admin is the group whose members may do anything.
const Admin = "system:masters"

// Config holds a Server's dependencies.
type Config struct {
	Store *storage.Store
	// Authenticate maps a bearer token to a user.
	Authenticate func(token string) (User, bool)
	// ReadyChecks are the checks of /readyz besides ping (see
	// serveHealth).
	ReadyChecks []Check
	// Metrics is where request metrics are registered; nil: not collected.
	Metrics *prometheus.Registry
	// Public are extra handlers served without authentication (for
	// example /cacerts for joining nodes).
	Public map[string]http.Handler
	// Extra serve APIs that are not Kubernetes resources under path
	// prefixes (for example "/apis/modules.wasmfleet.io/" for the module
	// store), to authenticated admins only. A handler writes only its
	// successful answers; on failure it writes nothing and returns the
	// error, answered as a Kubernetes Status (API errors keep their code,
	// others are 500 and logged). Request bodies are not limited to
	// MaxBodyBytes: the handler sets its own limit.
	Extra  map[string]func(http.ResponseWriter, *http.Request) error
	Logger *slog.Logger
	// PodLogs serves pods/log (kubectl logs) from the nodes; nil: pods/log
	// is not served.
	PodLogs PodLogs
	// EventTTL is how long events live (0: forever), whichever group
	// (core/v1, events.k8s.io/v1) created them; etcd deletes them, as
	// Kubernetes' --event-ttl does.
	EventTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// DefaultTolerationSeconds is the tolerationSeconds of the
	// node.kubernetes.io/not-ready and unreachable NoExecute tolerations
	// added to every new pod that has none (Kubernetes'
	// DefaultTolerationSeconds admission); 0 means 300.
	DefaultTolerationSeconds int64
	// ServiceCIDR is the range Services' cluster IPs come from (zero:
	// DefaultServiceCIDR; see ValidateServiceCIDR), ServiceNodePortRange
	// that of their node ports (zero: DefaultServiceNodePortRange), as
	// kube-apiserver's --service-cluster-ip-range and
	// --service-node-port-range.
	ServiceCIDR          netip.Prefix
	ServiceNodePortRange utilnet.PortRange
}

// Validate reports a missing dependency.
func (c *Config) Validate() error {
	if c.Store == nil {
		return fmt.Errorf("apiserver: Store is required")
	}
	if c.Authenticate == nil {
		return fmt.Errorf("apiserver: Authenticate is required")
	}
	if c.ServiceCIDR.IsValid() {
		if err := ValidateServiceCIDR(c.ServiceCIDR); err != nil {
			return fmt.Errorf("apiserver: %w", err)
		}
	}
	if r := c.ServiceNodePortRange; r.Size < 0 || r.Size > 0 && (r.Base < 1 || r.Base+r.Size > 65536) {
		return fmt.Errorf("apiserver: invalid node port range %s", r.String())
	}
	return nil
}

// Server is the API server's HTTP handler.
type Server struct {
	cfg     Config
	store   *storage.Store
	reg     *registry
	log     *slog.Logger
	openapi *openapi.Documents
	// fields runs server-side apply (see apply.go).
	fields  *fieldManagers
	now     func() time.Time
	metrics *metrics
	// protobuf decodes request bodies sent as Kubernetes protobuf.
	protobuf *protobuf.Serializer
	// namespaces (those being deleted), runtimeClasses, limitRanges,
	// priorityClasses and resourceQuotas (whether there are any) are
	// filled by Run.
	namespaces      objCache[struct{}]
	runtimeClasses  objCache[nodev1.RuntimeClass]
	limitRanges     objCache[corev1.LimitRange]
	priorityClasses objCache[schedulingv1.PriorityClass]
	resourceQuotas  objCache[struct{}]
	// watches serves watch requests; Run closes it.
	watches *storage.WatchCache
	// protoEvents encodes watch events as protobuf once for all watchers.
	protoEvents *protoMemo
	// bookmarkEvery is the interval of watch bookmarks in nanoseconds
	// (bookmarkInterval; tests shorten it).
	bookmarkEvery atomic.Int64
}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg, err := newRegistry()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: cfg.Store, reg: reg, log: cfg.Logger, now: cfg.Now,
		protobuf: protobuf.NewSerializer(reg.scheme, reg.scheme), watches: storage.NewWatchCache(cfg.Store, 0), protoEvents: newProtoMemo(),
		namespaces: objCache[struct{}]{keep: terminating}, runtimeClasses: objCache[nodev1.RuntimeClass]{keep: runtimeClass},
		limitRanges: objCache[corev1.LimitRange]{keep: limitRangeOf}, priorityClasses: objCache[schedulingv1.PriorityClass]{keep: priorityClassOf},
		resourceQuotas: objCache[struct{}]{keep: anyQuota}}
	s.bookmarkEvery.Store(int64(bookmarkInterval))
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if !s.cfg.ServiceCIDR.IsValid() {
		s.cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if s.cfg.ServiceNodePortRange.Size == 0 {
		s.cfg.ServiceNodePortRange = DefaultServiceNodePortRange
	}
	if s.openapi, err = buildOpenAPI(reg, cfg.PodLogs != nil); err != nil {
		return nil, err
	}
	s.fields = &fieldManagers{docs: s.openapi, scheme: reg.scheme, convertor: viewConvertor{runtime.UnsafeObjectConvertor(reg.scheme), reg}}
	if cfg.Metrics != nil {
		s.metrics = newMetrics(cfg.Metrics)
	}
	return s, nil
}

// Version is what /version answers: the Kubernetes API level served, and,
// as kube-apiserver's, the build: Go's version and platform, and the
// commit, tree state and time Go recorded when it built from a checkout.
var Version = buildVersion()

func buildVersion() version.Info {
	v := version.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2-wasmfleet",
		GoVersion: goruntime.Version(), Compiler: goruntime.Compiler, Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.GitCommit = s.Value
		case "vcs.time":
			v.BuildDate = s.Value
		case "vcs.modified":
			v.GitTreeState = map[string]string{"true": "dirty", "false": "clean"}[s.Value]
		}
	}
	return v
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodGet {
		growStack()
	}
	rec := &recorder{ResponseWriter: w, code: http.StatusOK}
	var info *reqInfo
	defer func() {
		if p := recover(); p != nil {
			s.recoverPanic(rec, r, p)
		}
		if s.metrics != nil {
			s.metrics.observe(info, r, rec.code, time.Since(start))
		}
	}()
	info = s.serve(rec, r)
}

// recoverPanic answers a request whose handler panicked as kube-apiserver
// does: the panic and its stack go to the log, the client gets a 500
// Status if nothing was written yet, else its stream or connection is
// cut (http.ErrAbortHandler, which net/http does not log again).
func (s *Server) recoverPanic(rec *recorder, r *http.Request, p any) {
	if p == http.ErrAbortHandler {
		panic(p)
	}
	s.log.Error("request panicked", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
	if rec.wrote {
		panic(http.ErrAbortHandler)
	}
	s.writeError(rec, r, apierrors.NewInternalError(errors.New("this request caused the API server to panic; its log has the details")))
}

// serve answers r and returns what it was, for metrics.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) *reqInfo {
	switch p := r.URL.Path; {
	case healthPath(p, "/livez"), healthPath(p, "/healthz"), healthPath(p, "/readyz"):
		s.serveHealth(w, r)
		return nil
	case p == "/version":
		b, _ := json.Marshal(Version)
		writeJSON(w, http.StatusOK, b)
		return nil
	}
	if h, ok := s.cfg.Public[r.URL.Path]; ok {
		h.ServeHTTP(w, r)
		return nil
	}
	user, ok := s.authenticate(r)
	if !ok {
		s.writeError(w, r, apierrors.NewUnauthorized("Unauthorized"))
		return nil
	}
	user, err := impersonate(r, user)
	if err != nil {
		s.writeError(w, r, err)
		return nil
	}
	return s.serveAs(w, r, user)
}

// impersonate returns who r acts as, as kube-apiserver decides it: the
// user named by Impersonate-User, in the groups of Impersonate-Group and
// system:authenticated, when user may impersonate (admins may); user when
// r impersonates no one. kubectl --as and client-go's ImpersonationConfig
// send these headers.
func impersonate(r *http.Request, user User) (User, error) {
	name, groups := r.Header.Get("Impersonate-User"), r.Header.Values("Impersonate-Group")
	if name == "" {
		partial := len(groups) > 0 || r.Header.Get("Impersonate-Uid") != ""
		for k := range r.Header {
			partial = partial || strings.HasPrefix(k, "Impersonate-Extra-")
		}
		if partial {
			return User{}, badRequest("impersonating groups, a uid or extra fields requires Impersonate-User")
		}
		return user, nil
	}
	if !slices.Contains(user.Groups, Admin) {
		return User{}, apierrors.NewForbidden(schema.GroupResource{Resource: "users"}, name,
			fmt.Errorf("User %q cannot impersonate resource \"users\" in API group \"\" at the cluster scope", user.Name))
	}
	all := "system:authenticated"
	if name == "system:anonymous" {
		all = "system:unauthenticated"
	}
	return User{Name: name, Groups: append(slices.Clone(groups), all)}, nil
}

// serveAs answers r for the authenticated user (HTTPS, or Do).
func (s *Server) serveAs(w http.ResponseWriter, r *http.Request, user User) *reqInfo {
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, &reqState{user: user, w: w}))
	p := r.URL.Path
	switch {
	case p == "/metrics":
		if s.cfg.Metrics == nil {
			s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, p))
			return nil
		}
		promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return nil
	case p == "/openapi/v2" || p == "/openapi/v3" || strings.HasPrefix(p, "/openapi/v3/"):
		s.openapi.ServeHTTP(w, r)
		return nil
	case p == "/api" || p == "/apis" || p == "/api/" || p == "/apis/":
		s.serveDiscovery(w, r, p)
		return nil
	}
	for prefix, h := range s.cfg.Extra {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		if !slices.Contains(user.Groups, Admin) {
			s.writeError(w, r, apierrors.NewForbidden(schema.GroupResource{}, "", fmt.Errorf("User %q cannot %s path %q", user.Name, r.Method, p)))
		} else if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
		return nil
	}
	info, err := s.parse(r)
	if err != nil {
		// A group or version without resources is still discoverable.
		if s.serveDiscovery(w, r, p) {
			return nil
		}
		s.writeError(w, r, err)
		return nil
	}
	if err := s.authorize(r, user, info); err != nil {
		s.writeError(w, r, err)
		return info
	}
	if err := s.handle(w, r, info); err != nil {
		s.writeError(w, r, err)
	}
	return info
}

// reqState is what the handlers of a request share through its context.
type reqState struct {
	user   User
	w      http.ResponseWriter
	warned []string // the warnings given, in order
	// warnRunes counts the runes of the Warning texts sent; warnCut says
	// they are being cut (see warn).
	warnRunes int
	warnCut   bool
}

type stateKey struct{}

func userFrom(ctx context.Context) User {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st.user
	}
	return User{}
}

// The bounds of a response's warnings, kube-apiserver's: past
// warnTotalRunes of text in all, each text is cut to warnItemRunes.
const (
	warnTotalRunes = 4 * 1024
	warnItemRunes  = 256
)

// warn adds a Warning header to ctx's response, once per message, as
// kube-apiserver does (kubectl prints them, client-go logs them). As
// kube-apiserver's warning recorder: once the texts would pass
// warnTotalRunes, they are all sent again cut to warnItemRunes, and the
// further ones too until the cut ones reach the bound; the rest are
// dropped.
func warn(ctx context.Context, msg string) {
	st, ok := ctx.Value(stateKey{}).(*reqState)
	if !ok || msg == "" || (st.warnCut && st.warnRunes >= warnTotalRunes) || slices.Contains(st.warned, msg) {
		return
	}
	st.warned = append(st.warned, msg)
	text, n := msg, utf8.RuneCountInString(msg)
	if st.warnCut {
		text, n = cutWarning(msg)
	}
	h, err := utilnet.NewWarningHeader(299, "-", text)
	if err != nil {
		return
	}
	if st.warnCut || st.warnRunes+n <= warnTotalRunes {
		st.warnRunes += n
		st.w.Header().Add("Warning", h)
		return
	}
	st.warnCut, st.warnRunes = true, 0
	st.w.Header().Del("Warning")
	for _, m := range st.warned {
		text, n := cutWarning(m)
		if h, err := utilnet.NewWarningHeader(299, "-", text); err == nil {
			st.warnRunes += n
			st.w.Header().Add("Warning", h)
		}
	}
}

// cutWarning returns msg cut to warnItemRunes, and its length in runes.
func cutWarning(msg string) (string, int) {
	n := 0
	for i := range msg {
		if n == warnItemRunes {
			return msg[:i], n
		}
		n++
	}
	return msg, n
}

func (s *Server) authenticate(r *http.Request) (User, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return User{}, false
	}
	return s.cfg.Authenticate(strings.TrimSpace(tok))
}

// authorized decides whether user may do info. Members of Admin may do
// everything; nodes get what nodeDecide allows (see authorize, nodeauthz.go).
func authorized(u User, info *reqInfo) bool {
	for _, g := range u.Groups {
		if g == Admin {
			return true
		}
	}
	return false
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(s))
}

// recorder remembers the status code for metrics; Unwrap lets
// http.ResponseController reach the Flusher underneath.
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	r.code, r.wrote = code, true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
