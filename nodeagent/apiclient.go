package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
)

// DefaultAPITimeout bounds an API call whose context has no deadline.
const DefaultAPITimeout = 30 * time.Second

// APIClient calls the Kubernetes API over the node's NATS connection (see
// nodelink.APIRequest): requests go to nodelink.APISubject(node), answers
// come back to the connection's inbox, which must be the node's
// (nats.CustomInboxPrefix(Credentials.NATSInboxPrefix)). The control plane
// runs them as system:node:<node>, so only what the node authorizer
// allows succeeds. While the connection is down (or before the agent has
// one, see newDetachedAPIClient) calls fail at once with ErrNotConnected
// instead of waiting for an answer that cannot come: the agent keeps
// running its pods and retries. Safe for concurrent use.
type APIClient struct {
	nc      atomic.Pointer[nats.Conn]
	node    string
	subject string
	// version1Since is when (Unix nanoseconds) a control plane last
	// answered in the node API's version 1 (it is older): requests go in
	// version 1 for retryVersion2 after it, then version 2 is tried again
	// (the control plane may have been upgraded).
	version1Since atomic.Int64
}

// retryVersion2 is how long an agent speaks the node API's version 1 to
// a control plane that answered in it before it tries version 2 again.
const retryVersion2 = 10 * time.Minute

// ErrNotConnected: the node has no link to the control plane now.
var ErrNotConnected = errors.New("not connected to the control plane")

// NewAPIClient returns the client for node over nc.
func NewAPIClient(nc *nats.Conn, node string) (*APIClient, error) {
	if nc == nil || node == "" {
		return nil, errors.New("api client: a connection and a node name are required")
	}
	c := newDetachedAPIClient(node)
	return c, c.attach(nc)
}

// newDetachedAPIClient returns a client for node without a connection yet
// (attach gives it one): an agent that has not joined still runs its
// static pods.
func newDetachedAPIClient(node string) *APIClient {
	return &APIClient{node: node, subject: nodelink.APISubject(node)}
}

// attach gives the client its connection (once).
func (c *APIClient) attach(nc *nats.Conn) error {
	if !strings.HasPrefix(nc.NewInbox(), nodelink.InboxPrefix(c.node)+".") {
		return fmt.Errorf("api client: the NATS connection must use inbox prefix %s", nodelink.InboxPrefix(c.node))
	}
	if !c.nc.CompareAndSwap(nil, nc) {
		return errors.New("api client: already connected")
	}
	return nil
}

// conn is the client's connection (nil before attach).
func (c *APIClient) conn() *nats.Conn { return c.nc.Load() }

// Node is the node the client speaks for.
func (c *APIClient) Node() string { return c.node }

// Do sends one request and returns the HTTP status code and body the API
// server answered (a Kubernetes Status on errors). err is only for
// transport failures (timeout, no control plane, malformed answer).
func (c *APIClient) Do(ctx context.Context, method, path, contentType string, body []byte) (code int, resp []byte, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultAPITimeout)
		defer cancel()
	}
	nc := c.conn()
	if nc == nil || !nc.IsConnected() {
		return 0, nil, fmt.Errorf("api %s %s: %w", method, path, ErrNotConnected)
	}
	req := nodelink.APIRequest{Method: method, Path: path, ContentType: contentType, Body: body}
	var r nodelink.APIResponse
	v1 := time.Since(time.Unix(0, c.version1Since.Load())) < retryVersion2
	if !v1 {
		r, err = nodelink.Call(ctx, nc, c.subject, req)
		if v1 = errors.Is(err, nodelink.ErrVersion1); v1 {
			c.version1Since.Store(time.Now().UnixNano())
		}
	}
	if v1 {
		r, err = callVersion1(ctx, nc, c.subject, req)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("api %s %s: %w", method, path, err)
	}
	return r.Code, r.Body, nil
}

// callVersion1 sends req in the node API's version 1, to a control plane
// older than version 2.
func callVersion1(ctx context.Context, nc *nats.Conn, subject string, req nodelink.APIRequest) (nodelink.APIResponse, error) {
	var r nodelink.APIResponse
	data, err := json.Marshal(req)
	if err != nil {
		return r, err
	}
	m, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Code == 0 {
		return r, errors.New("malformed answer")
	}
	return r, nil
}

// call sends in as JSON (unless nil) and decodes a 2xx answer into out
// (unless nil); other answers become *apierrors.StatusError, so
// apierrors.IsForbidden, IsNotFound, IsConflict… work.
func (c *APIClient) call(ctx context.Context, method, path, contentType string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		if contentType == "" {
			contentType = "application/json"
		}
	}
	code, resp, err := c.Do(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	if code < 200 || code > 299 {
		var st metav1.Status
		if json.Unmarshal(resp, &st) != nil || st.Kind != "Status" {
			st = metav1.Status{Status: metav1.StatusFailure, Code: int32(code), Reason: metav1.StatusReasonUnknown,
				Message: fmt.Sprintf("%s %s: HTTP %d", method, path, code)}
		}
		return &apierrors.StatusError{ErrStatus: st}
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return fmt.Errorf("api %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// GetNode reads a Node.
func (c *APIClient) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	out := &corev1.Node{}
	return out, c.call(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(name), "", nil, out)
}

// CreateNode registers the node's Node object.
func (c *APIClient) CreateNode(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	out := &corev1.Node{}
	return out, c.call(ctx, http.MethodPost, "/api/v1/nodes", "", n, out)
}

// UpdateNode replaces the Node (its status is kept; see UpdateNodeStatus).
func (c *APIClient) UpdateNode(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	out := &corev1.Node{}
	return out, c.call(ctx, http.MethodPut, "/api/v1/nodes/"+url.PathEscape(n.Name), "", n, out)
}

// UpdateNodeStatus replaces the Node's status.
func (c *APIClient) UpdateNodeStatus(ctx context.Context, n *corev1.Node) (*corev1.Node, error) {
	out := &corev1.Node{}
	return out, c.call(ctx, http.MethodPut, "/api/v1/nodes/"+url.PathEscape(n.Name)+"/status", "", n, out)
}

func leasePath(name string) string {
	return "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + url.PathEscape(name)
}

// GetLease reads a lease in kube-node-lease.
func (c *APIClient) GetLease(ctx context.Context, name string) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	return out, c.call(ctx, http.MethodGet, leasePath(name), "", nil, out)
}

// CreateLease creates a lease in kube-node-lease.
func (c *APIClient) CreateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	return out, c.call(ctx, http.MethodPost, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", "", l, out)
}

// UpdateLease replaces a lease in kube-node-lease (optimistic concurrency
// on its resourceVersion).
func (c *APIClient) UpdateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	return out, c.call(ctx, http.MethodPut, leasePath(l.Name), "", l, out)
}

func podPath(ns, name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(ns) + "/pods/" + url.PathEscape(name)
}

// GetPod reads a pod (only pods bound to this node are readable).
func (c *APIClient) GetPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	return out, c.call(ctx, http.MethodGet, podPath(ns, name), "", nil, out)
}

// listPageSize is the pods ListPods asks for in one page. A page whose
// answer is too large for the node API (nodelink.MaxAnswerBytes; in
// version 1 the NATS max_payload) gets an internal error and is asked for
// again at half the size.
const listPageSize = 100

// ListPods lists the pods bound to this node, in all namespaces, in pages
// (one snapshot: the list's resourceVersion is that of the first page).
func (c *APIClient) ListPods(ctx context.Context) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	limit, cont := listPageSize, ""
	for {
		q := url.Values{"fieldSelector": {"spec.nodeName=" + c.node}, "limit": {strconv.Itoa(limit)}}
		if cont != "" {
			q.Set("continue", cont)
		}
		page := &corev1.PodList{}
		err := c.call(ctx, http.MethodGet, "/api/v1/pods?"+q.Encode(), "", nil, page)
		if apierrors.IsInternalError(err) && limit > 1 {
			limit /= 2
			continue
		}
		if err != nil {
			return nil, err
		}
		if cont == "" {
			out.ResourceVersion = page.ResourceVersion
		}
		out.Items = append(out.Items, page.Items...)
		if cont = page.Continue; cont == "" {
			return out, nil
		}
	}
}

// CreatePod creates a pod; the node authorizer lets a node create only
// mirror pods of its static pods.
func (c *APIClient) CreatePod(ctx context.Context, p *corev1.Pod) (*corev1.Pod, error) {
	out := &corev1.Pod{}
	return out, c.call(ctx, http.MethodPost, "/api/v1/namespaces/"+url.PathEscape(p.Namespace)+"/pods", "", p, out)
}

// UpdatePodStatus replaces a pod's status and returns the pod's new
// resourceVersion, all its callers need: the rest of the answer is not
// decoded.
func (c *APIClient) UpdatePodStatus(ctx context.Context, p *corev1.Pod) (resourceVersion string, err error) {
	var out struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	err = c.call(ctx, http.MethodPut, podPath(p.Namespace, p.Name)+"/status", "", p, &out)
	return out.Metadata.ResourceVersion, err
}

// DeletePod deletes a pod with the given grace period (nil: the pod's own)
// and, when uid is set, only that incarnation of it: the agent confirms a
// termination with grace 0.
func (c *APIClient) DeletePod(ctx context.Context, ns, name string, grace *int64, uid string) error {
	opts := &metav1.DeleteOptions{TypeMeta: metav1.TypeMeta{Kind: "DeleteOptions", APIVersion: "v1"}, GracePeriodSeconds: grace}
	if uid != "" {
		u := types.UID(uid)
		opts.Preconditions = &metav1.Preconditions{UID: &u}
	}
	return c.call(ctx, http.MethodDelete, podPath(ns, name), "", opts, nil)
}

// GetRuntimeClass reads a RuntimeClass.
func (c *APIClient) GetRuntimeClass(ctx context.Context, name string) (*nodev1.RuntimeClass, error) {
	out := &nodev1.RuntimeClass{}
	return out, c.call(ctx, http.MethodGet, "/apis/node.k8s.io/v1/runtimeclasses/"+url.PathEscape(name), "", nil, out)
}

// GetSecret reads a secret a pod bound to this node references.
func (c *APIClient) GetSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	return out, c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(ns)+"/secrets/"+url.PathEscape(name), "", nil, out)
}

// GetConfigMap reads a configmap a pod bound to this node references.
func (c *APIClient) GetConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	out := &corev1.ConfigMap{}
	return out, c.call(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(ns)+"/configmaps/"+url.PathEscape(name), "", nil, out)
}

// CreateEvent records a core/v1 Event. The stored event is not decoded:
// no caller needs it, and an agent starting many pods records three each.
func (c *APIClient) CreateEvent(ctx context.Context, e *corev1.Event) error {
	ns := e.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return c.call(ctx, http.MethodPost, "/api/v1/namespaces/"+url.PathEscape(ns)+"/events", "", e, nil)
}

// PatchEvent applies a strategic merge patch to Event name of namespace ns
// (an event recorded again: its count and times).
func (c *APIClient) PatchEvent(ctx context.Context, ns, name string, patch []byte) error {
	return c.call(ctx, http.MethodPatch, "/api/v1/namespaces/"+url.PathEscape(ns)+"/events/"+url.PathEscape(name),
		"application/strategic-merge-patch+json", json.RawMessage(patch), nil)
}
