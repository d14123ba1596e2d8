package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
)

// Node authorization, after Kubernetes' Node authorizer and NodeRestriction
// admission, narrowed to what the wasmfleet agent needs. A node is a user
// named NodeUserPrefix+<node> in group NodesGroup (nodelink gives agents
// that identity on their NATS API requests). It may:
//
//   - nodes: get, list, watch any; create, update, patch its own Node and
//     get, update, patch its own nodes/status;
//   - leases in kube-node-lease: get, create, update, patch its own (name =
//     node name);
//   - pods: get pods bound to it; list and watch only with a fieldSelector
//     requiring spec.nodeName=<node>; get, update, patch pods/status and
//     delete of pods bound to it (spec.nodeName checked on the stored object
//     inside the write's read-modify-write loop); create of mirror pods of
//     its static pods (NodeRestriction's rules, checked on the object: the
//     kubernetes.io/config.mirror annotation, bound to the node, owned by
//     nothing or by its Node only, no service account, and no secrets,
//     configmaps or persistent volume claims referenced);
//   - runtimeclasses: get, list, watch (the agent runs a pod with its
//     class's handler);
//   - events (core and events.k8s.io): create, update, patch in any
//     namespace;
//   - configmaps and secrets: get those a pod bound to it references
//     (volumes, projected volumes, env valueFrom, envFrom, imagePullSecrets
//     for secrets).
//
// Everything else is 403 Forbidden.

// NodesGroup is the group of node users.
const NodesGroup = "system:nodes"

// NodeUserPrefix starts a node user's name: "system:node:<node>".
const NodeUserPrefix = "system:node:"

// NodeLeaseNamespace holds the nodes' heartbeat leases.
const NodeLeaseNamespace = "kube-node-lease"

// NodeUser is the identity of node.
func NodeUser(node string) User {
	return User{Name: NodeUserPrefix + node, Groups: []string{NodesGroup, "system:authenticated"}}
}

// nodeOf returns the node a user is, if it is one.
func nodeOf(u User) (string, bool) {
	name, ok := strings.CutPrefix(u.Name, NodeUserPrefix)
	if !ok || name == "" || !slices.Contains(u.Groups, NodesGroup) {
		return "", false
	}
	return name, true
}

// nodeVerdict is the static part of a node authorization decision.
type nodeVerdict int

const (
	nodeDeny nodeVerdict = iota
	nodeAllow
	// nodeOwnName: allowed if the created object is named after the node
	// (checked on the decoded object in createObject).
	nodeOwnName
	// nodeOwnPod: allowed if the stored pod is bound to the node (checked
	// on the current object by get, update and delete).
	nodeOwnPod
	// nodeReferenced: allowed if a pod bound to the node references the
	// configmap or secret.
	nodeReferenced
	// nodeMirrorPod: allowed if the created pod is a mirror pod the node
	// may create (checked on the decoded object in createObject).
	nodeMirrorPod
)

func (v nodeVerdict) String() string {
	return [...]string{"deny", "allow", "own-name", "own-pod", "referenced", "mirror-pod"}[v]
}

// nodeDecide is what node may do with info (query: the request's query),
// and why not.
func nodeDecide(node string, info *reqInfo, q url.Values) (nodeVerdict, string) {
	if info == nil || info.res == nil {
		return nodeDeny, "nodes may only access the resources they need"
	}
	gr := info.res.gvr.GroupResource()
	verb, sub := info.verb, info.subresource
	switch {
	case gr.Group == "node.k8s.io" && gr.Resource == "runtimeclasses" && sub == "":
		switch verb {
		case "get", "list", "watch":
			return nodeAllow, ""
		}
		return nodeDeny, "a node may only read runtime classes"
	case gr.Group == "" && gr.Resource == "nodes":
		switch sub {
		case "":
			switch verb {
			case "get", "list", "watch":
				return nodeAllow, ""
			case "create":
				return nodeOwnName, ""
			case "update", "patch":
				if info.name == node {
					return nodeAllow, ""
				}
				return nodeDeny, "a node may only modify its own Node object"
			}
		case "status":
			if info.name == node && (verb == "get" || verb == "update" || verb == "patch") {
				return nodeAllow, ""
			}
			return nodeDeny, "a node may only modify its own Node status"
		}
	case gr.Group == "coordination.k8s.io" && gr.Resource == "leases" && sub == "":
		if info.namespace != NodeLeaseNamespace {
			return nodeDeny, "a node may only access leases in " + NodeLeaseNamespace
		}
		switch verb {
		case "create":
			return nodeOwnName, ""
		case "get", "update", "patch":
			if info.name == node {
				return nodeAllow, ""
			}
			return nodeDeny, "a node may only access its own lease"
		}
	case gr.Group == "" && gr.Resource == "pods":
		switch sub {
		case "":
			switch verb {
			case "get", "delete":
				return nodeOwnPod, ""
			case "create":
				return nodeMirrorPod, ""
			case "list", "watch":
				if selectsNode(q.Get("fieldSelector"), node) {
					return nodeAllow, ""
				}
				return nodeDeny, fmt.Sprintf("a node may only %s pods with fieldSelector spec.nodeName=%s", verb, node)
			}
		case "status":
			switch verb {
			case "get", "update", "patch":
				return nodeOwnPod, ""
			}
		}
	case (gr.Group == "" || gr.Group == "events.k8s.io") && gr.Resource == "events" && sub == "":
		switch verb {
		case "create", "update", "patch":
			return nodeAllow, ""
		}
	case gr.Group == "" && (gr.Resource == "configmaps" || gr.Resource == "secrets") && sub == "":
		if verb == "get" && info.name != "" {
			return nodeReferenced, ""
		}
		return nodeDeny, fmt.Sprintf("a node may only get %s its pods reference", gr.Resource)
	}
	return nodeDeny, "nodes may only access the resources they need"
}

// selectsNode reports whether the field selector requires
// spec.nodeName=node (other requirements may narrow it further).
func selectsNode(selector, node string) bool {
	fs, err := fields.ParseSelector(selector)
	if err != nil {
		return false
	}
	for _, r := range fs.Requirements() {
		if r.Field == "spec.nodeName" && (r.Operator == selection.Equals || r.Operator == selection.DoubleEquals) && r.Value == node {
			return true
		}
	}
	return false
}

// forbidden is the 403 of a request u may not make: kube-apiserver's
// message (its responsewriters' forbiddenMessage), then the authorizer's
// reason, if any.
func forbidden(u User, info *reqInfo, reason string) error {
	if info == nil || info.res == nil {
		return apierrors.NewForbidden(schema.GroupResource{}, "", fmt.Errorf("User %q cannot do this: %s", u.Name, reason))
	}
	resource := info.res.gvr.Resource
	if info.subresource != "" {
		resource += "/" + info.subresource
	}
	msg := fmt.Sprintf("User %q cannot %s resource %q in API group %q", u.Name, info.verb, resource, info.res.gvr.Group)
	if info.namespace != "" {
		msg += fmt.Sprintf(" in the namespace %q", info.namespace)
	} else {
		msg += " at the cluster scope"
	}
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(info.res.gvr.GroupResource(), info.name, errors.New(msg))
}

// authorize decides whether the request's user may do info; it returns nil
// or the error to answer (403).
func (s *Server) authorize(r *http.Request, u User, info *reqInfo) error {
	if authorized(u, info) || strings.HasPrefix(info.res.gvr.Resource, "selfsubject") {
		// Anyone may ask who they are and what they may do (Kubernetes'
		// system:basic-user).
		return nil
	}
	node, ok := nodeOf(u)
	if !ok {
		return forbidden(u, info, "")
	}
	v, reason := nodeDecide(node, info, r.URL.Query())
	switch v {
	case nodeAllow, nodeOwnName, nodeMirrorPod:
		return nil
	case nodeOwnPod:
		if info.verb != "get" {
			return nil // checked by update and delete on the object they change
		}
		obj, _, err := s.load(r.Context(), info)
		if apierrors.IsNotFound(err) {
			return forbidden(u, info, "no relationship found between the node and this pod")
		}
		if err != nil {
			return err
		}
		return s.admitCurrent(r.Context(), info, obj)
	case nodeReferenced:
		ok, err := s.podsReference(r.Context(), node, info)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		reason = fmt.Sprintf("no pod bound to node %q references this %s", node, strings.TrimSuffix(info.res.gvr.Resource, "s"))
	}
	return forbidden(u, info, reason)
}

// admitCreate is the NodeRestriction check on an object a node creates:
// its Node and its Lease must carry its name; a pod must be a mirror pod it
// may create (mirrorPodRefusal). Requests without a node user (including
// the server's own Ensure) pass.
func (s *Server) admitCreate(ctx context.Context, info *reqInfo, obj runtime.Object) error {
	u := userFrom(ctx)
	node, ok := nodeOf(u)
	if !ok || slices.Contains(u.Groups, Admin) {
		return nil
	}
	switch info.res.gvr.Resource {
	case "nodes", "leases":
		if name := mustMeta(obj).GetName(); name != node {
			return forbidden(u, &reqInfo{verb: "create", res: info.res, namespace: info.namespace, name: name},
				fmt.Sprintf("node %q may only create an object named %q", node, node))
		}
	case "pods":
		if pod, ok := obj.(*corev1.Pod); ok {
			if why := mirrorPodRefusal(node, pod); why != "" {
				return forbidden(u, &reqInfo{verb: "create", res: info.res, namespace: info.namespace, name: pod.Name}, why)
			}
		}
	}
	return nil
}

// mirrorPodRefusal says why node may not create pod ("" if it may), as
// Kubernetes' NodeRestriction admission does: only mirror pods, bound to
// the node, owned by nothing or by its own Node, using no service account
// and referencing no secrets, configmaps or persistent volume claims.
func mirrorPodRefusal(node string, pod *corev1.Pod) string {
	if pod.Annotations[corev1.MirrorPodAnnotationKey] == "" {
		return fmt.Sprintf("node %q may only create mirror pods (annotated %s)", node, corev1.MirrorPodAnnotationKey)
	}
	if pod.Spec.NodeName != node {
		return fmt.Sprintf("node %q may only create mirror pods bound to itself", node)
	}
	switch len(pod.OwnerReferences) {
	case 0:
	case 1:
		o := pod.OwnerReferences[0]
		if o.APIVersion != "v1" || o.Kind != "Node" || o.Name != node {
			return fmt.Sprintf("node %q may only create mirror pods owned by its own Node", node)
		}
	default:
		return fmt.Sprintf("node %q may only create mirror pods with at most one owner, its Node", node)
	}
	if pod.Spec.ServiceAccountName != "" {
		return fmt.Sprintf("node %q may not create pods that use a service account", node)
	}
	refs := ""
	visitPodRefs(&pod.Spec, func(secret bool, name string) {
		if refs == "" {
			refs = "configmaps"
			if secret {
				refs = "secrets"
			}
		}
	})
	for _, v := range pod.Spec.Volumes {
		if refs == "" && (v.PersistentVolumeClaim != nil || v.Ephemeral != nil) {
			refs = "persistentvolumeclaims"
		}
	}
	if refs != "" {
		return fmt.Sprintf("node %q may not create pods that reference %s", node, refs)
	}
	return ""
}

// admitCurrent is the NodeRestriction check on the stored object a node
// reads, changes or deletes: a pod must be bound to it.
func (s *Server) admitCurrent(ctx context.Context, info *reqInfo, cur runtime.Object) error {
	u := userFrom(ctx)
	node, ok := nodeOf(u)
	if !ok || slices.Contains(u.Groups, Admin) {
		return nil
	}
	if pod, isPod := cur.(*corev1.Pod); isPod && pod.Spec.NodeName != node {
		why := "the pod is not bound to any node"
		if pod.Spec.NodeName != "" {
			why = "the pod is bound to another node"
		}
		return forbidden(u, info, fmt.Sprintf("node %q may only act on pods bound to it: %s", node, why))
	}
	return nil
}

// podsReference reports whether a pod bound to node in the object's
// namespace references the configmap or secret info names.
func (s *Server) podsReference(ctx context.Context, node string, info *reqInfo) (bool, error) {
	pods := s.reg.lookup(corev1.SchemeGroupVersion, "pods")
	if pods == nil {
		return false, errors.New("pods are not served")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return false, err
	}
	sel := selectors{label: labels.Everything(), field: fields.OneTermEqualSelector("spec.nodeName", node)}
	_, objs, _, _, _, err := s.listPage(req, &reqInfo{verb: "list", res: pods, namespace: info.namespace}, sel, 0, "")
	if err != nil {
		return false, err
	}
	secret := info.res.gvr.Resource == "secrets"
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok && podReferences(&p.Spec, secret, info.name) {
			return true, nil
		}
	}
	return false, nil
}

// podReferences reports whether spec references the secret (or configmap)
// name.
func podReferences(spec *corev1.PodSpec, secret bool, name string) bool {
	found := false
	visitPodRefs(spec, func(isSecret bool, n string) {
		if isSecret == secret && n == name {
			found = true
		}
	})
	return found
}

// visitPodRefs calls f for every configmap and secret spec references.
func visitPodRefs(spec *corev1.PodSpec, f func(secret bool, name string)) {
	if spec == nil {
		return
	}
	for _, s := range spec.ImagePullSecrets {
		f(true, s.Name)
	}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			f(false, v.ConfigMap.Name)
		case v.Secret != nil:
			f(true, v.Secret.SecretName)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					f(false, src.ConfigMap.Name)
				}
				if src.Secret != nil {
					f(true, src.Secret.Name)
				}
			}
		}
	}
	visit := func(env []corev1.EnvVar, from []corev1.EnvFromSource) {
		for _, e := range env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				f(false, r.Name)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				f(true, r.Name)
			}
		}
		for _, e := range from {
			if e.ConfigMapRef != nil {
				f(false, e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				f(true, e.SecretRef.Name)
			}
		}
	}
	for _, c := range spec.InitContainers {
		visit(c.Env, c.EnvFrom)
	}
	for _, c := range spec.Containers {
		visit(c.Env, c.EnvFrom)
	}
	for _, c := range spec.EphemeralContainers {
		visit(c.Env, c.EnvFrom)
	}
}
