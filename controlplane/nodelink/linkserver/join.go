package linkserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// JoinConfig configures [JoinHandler].
type JoinConfig struct {
	// IsJoinToken checks the bearer token (pki.Bundle.IsJoinToken).
	IsJoinToken func(string) bool
	// Store persists the credential hash.
	Store *storage.Store
	// NATSURL is the URL nodes dial (no credentials in it). Empty, each
	// node is told nats://HOST:NATSPort with the HOST it reached this API
	// at (for a NATS listening on every address of the API's machine).
	NATSURL  string
	NATSPort string
	Logger   *slog.Logger
}

// JoinHandler serves POST /join: Authorization "Bearer <join token>" (the
// full K10… token or its "<id>.<secret>"), body {"nodeName": "..."} (a
// DNS-1123 subdomain). It creates or rotates the node's credential and
// answers a [nodelink.JoinResponse]. Errors are Kubernetes Status objects: 401 for
// a missing or wrong token, 422 for a bad node name, 413 for a body over
// 64 KiB, 400 for one that is not JSON, 405 for other methods.
func JoinHandler(cfg JoinConfig) (http.Handler, error) {
	if cfg.IsJoinToken == nil || cfg.Store == nil || (cfg.NATSURL == "" && cfg.NATSPort == "") {
		return nil, errors.New("join handler: IsJoinToken, Store and NATSURL or NATSPort are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds := &credentials{store: cfg.Store, now: time.Now}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "join"}, r.Method))
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !cfg.IsJoinToken(strings.TrimSpace(tok)) {
			writeStatus(w, apierrors.NewUnauthorized("Unauthorized: a valid join token is required"))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, nodelink.MaxJoinBody+1))
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest("read body: "+err.Error()))
			return
		}
		if len(body) > nodelink.MaxJoinBody {
			writeStatus(w, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("join request body is limited to %d bytes", nodelink.MaxJoinBody)))
			return
		}
		var req nodelink.JoinRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeStatus(w, apierrors.NewBadRequest("join request body must be JSON {\"nodeName\": \"...\"}: "+err.Error()))
			return
		}
		if msgs := validation.IsDNS1123Subdomain(req.NodeName); len(msgs) > 0 {
			writeStatus(w, apierrors.NewInvalid(schema.GroupKind{Kind: "Node"}, req.NodeName,
				field.ErrorList{field.Invalid(field.NewPath("nodeName"), req.NodeName, strings.Join(msgs, "; "))}))
			return
		}
		secret, err := creds.issue(r.Context(), req.NodeName)
		if err != nil {
			log.Error("join: issue node credential", "node", req.NodeName, "err", err)
			writeStatus(w, apierrors.NewInternalError(errors.New("could not store the node credential")))
			return
		}
		log.Info("node joined", "node", req.NodeName)
		out, _ := json.Marshal(nodelink.JoinResponse{
			NodeName:        req.NodeName,
			NATSURL:         natsURL(cfg, r.Host),
			NATSUser:        nodelink.NATSUser(req.NodeName),
			NATSPassword:    secret,
			NATSInboxPrefix: nodelink.InboxPrefix(req.NodeName),
			ConsumerName:    nodelink.ConsumerName(req.NodeName),
			Stream:          subjects.DefaultStream,
			FilterSubject:   subjects.NodeFilter(req.NodeName),
		})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
	}), nil
}

func writeStatus(w http.ResponseWriter, err apierrors.APIStatus) {
	st := err.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	body, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(body)
}

// natsURL is the NATS URL for a node that reached the API at hostport.
func natsURL(cfg JoinConfig, hostport string) string {
	if cfg.NATSURL != "" {
		return cfg.NATSURL
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	return "nats://" + net.JoinHostPort(host, cfg.NATSPort)
}
