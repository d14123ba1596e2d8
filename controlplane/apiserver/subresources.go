package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/budget"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// scaleOf returns the autoscaling/v1 Scale view of a Deployment,
// ReplicaSet, StatefulSet or ReplicationController (whose map selector is
// read as matchLabels).
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	var (
		spec   *int32
		status int32
		sel    *metav1.LabelSelector
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		spec, status, sel = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector
	case *appsv1.ReplicaSet:
		spec, status, sel = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector
	case *appsv1.StatefulSet:
		spec, status, sel = o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector
	case *corev1.ReplicationController:
		spec, status, sel = o.Spec.Replicas, o.Status.Replicas, &metav1.LabelSelector{MatchLabels: o.Spec.Selector}
	default:
		return nil, fmt.Errorf("%T has no scale subresource", obj)
	}
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		Status:   autoscalingv1.ScaleStatus{Replicas: status},
	}
	m := mustMeta(obj)
	sc.Name, sc.Namespace, sc.UID = m.GetName(), m.GetNamespace(), m.GetUID()
	sc.ResourceVersion, sc.CreationTimestamp = m.GetResourceVersion(), m.GetCreationTimestamp()
	if spec != nil {
		sc.Spec.Replicas = *spec
	}
	if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
		sc.Status.Selector = s.String()
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	case *corev1.ReplicationController:
		o.Spec.Replicas = &n
	}
}

// serveScale serves GET, PUT and PATCH of .../scale.
func (s *Server) serveScale(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	if info.verb == "get" {
		obj, _, err := s.load(r.Context(), info)
		if err != nil {
			return err
		}
		return writeObject(w, http.StatusOK, must(scaleOf(obj)))
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objInfo := &reqInfo{verb: "update", res: info.res, namespace: info.namespace, name: info.name, manager: managerName(r), ownFields: true}
	out, err := s.update(r.Context(), objInfo, func(cur runtime.Object, _ []byte) (runtime.Object, error) {
		sc := must(scaleOf(cur))
		want := &autoscalingv1.Scale{}
		switch {
		case info.verb == "update":
			if err := s.decodeInto(r, body, want); err != nil {
				return nil, err
			}
		case isApply(r):
			var err error
			if want, err = s.applyScale(r, body, info.res, sc, cur, objInfo.manager); err != nil {
				return nil, err
			}
		default:
			curJSON, _ := json.Marshal(sc)
			patched, err := applyPatch(r, body, curJSON, &autoscalingv1.Scale{})
			if err != nil {
				return nil, err
			}
			if err := decodePatched(r, body, patched, want); err != nil {
				return nil, err
			}
		}
		if err := checkScale(want, info, cur); err != nil {
			return nil, err
		}
		if want.Spec.Replicas < 0 {
			return nil, apierrors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), info.name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0"),
			})
		}
		setReplicas(cur, want.Spec.Replicas)
		if !isApply(r) {
			s.trackScale(info.res, sc, want, cur, objInfo.manager)
		}
		mustMeta(cur).SetResourceVersion(want.ResourceVersion)
		return cur, nil
	}, isDryRun(r))
	if err != nil {
		return err
	}
	return writeObject(w, http.StatusOK, must(scaleOf(out.obj)))
}

// checkScale refuses a Scale written to info's /scale that is not the
// scale of cur, as kube-apiserver does: another kind or API version, name
// or namespace is 400, another uid 409 (it is a precondition).
func checkScale(sc *autoscalingv1.Scale, info *reqInfo, cur runtime.Object) error {
	if err := checkKindOf(sc, autoscalingv1.SchemeGroupVersion.WithKind("Scale")); err != nil {
		return err
	}
	if sc.Name != info.name {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", sc.Name, info.name)
	}
	if sc.Namespace != "" && sc.Namespace != info.namespace {
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if uid := mustMeta(cur).GetUID(); sc.UID != "" && sc.UID != uid {
		return apierrors.NewConflict(schema.GroupResource{Group: info.res.gvr.Group, Resource: info.res.gvr.Resource + "/scale"}, info.name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", sc.UID, uid))
	}
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func writeObject(w http.ResponseWriter, code int, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	writeJSON(w, code, b)
	return nil
}

// bind serves POST pods/<name>/binding: the scheduler's placement, set once.
func (s *Server) bind(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var b corev1.Binding
	if err := s.decodeSubject(r, body, &b, info, corev1.SchemeGroupVersion.WithKind("Binding")); err != nil {
		return err
	}
	// As Kubernetes' ValidatePodBinding.
	var errs field.ErrorList
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"}))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(field.NewPath("target", "name"), ""))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), info.name, errs)
	}
	if b.Name != "" && b.Name != info.name {
		return badRequest("the name of the binding (%s) does not match the name on the URL (%s)", b.Name, info.name)
	}
	podInfo := &reqInfo{verb: "update", res: info.res, namespace: info.namespace, name: info.name, subresource: "binding", manager: managerName(r)}
	gr := info.res.gvr.GroupResource()
	_, err = s.update(r.Context(), podInfo, func(cur runtime.Object, _ []byte) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(gr, info.name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", b.UID, pod.UID))
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(gr, info.name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", info.name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(gr, info.name, fmt.Errorf("pod %s is already assigned to node %q", info.name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.now())})
		pod.ResourceVersion = ""
		return pod, nil
	}, isDryRun(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, statusSuccess(nil))
	return nil
}

// decodeSubject decodes the body of a POST to a pod's subresource (a
// Binding, an Eviction) and refuses, as kube-apiserver does, a body of
// another kind than want (in its version or one of also) or for another
// namespace: it must not act on the pod.
func (s *Server) decodeSubject(r *http.Request, body []byte, obj runtime.Object, info *reqInfo, want schema.GroupVersionKind, also ...string) error {
	if err := s.decodeInto(r, body, obj); err != nil {
		return err
	}
	if gvk := obj.GetObjectKind().GroupVersionKind(); gvk.Group == want.Group && slices.Contains(also, gvk.Version) {
		want.Version = gvk.Version
	}
	if err := checkKindOf(obj, want); err != nil {
		return err
	}
	if ns := mustMeta(obj).GetNamespace(); ns != "" && ns != info.namespace {
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// evict serves POST pods/<name>/eviction as kube-apiserver's eviction
// does: a pod that is pending, finished or already being deleted is
// deleted at once; any other only when the PodDisruptionBudget that
// selects it (at most one) allows a disruption, which the eviction then
// takes from the budget's status (disruptionsAllowed, disruptedPods) for
// the disruption controller to see; else 429 TooManyRequests, on which
// kubectl drain tries again. The pod gets the DisruptionTarget condition
// before it is deleted, gracefully.
func (s *Server) evict(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var ev policyv1.Eviction
	// policy/v1beta1's has the same fields; kubectl drain falls back to it.
	if err := s.decodeSubject(r, body, &ev, info, policyv1.SchemeGroupVersion.WithKind("Eviction"), "v1beta1"); err != nil {
		return err
	}
	if ev.Name != "" && ev.Name != info.name {
		return badRequest("name in URL does not match name in Eviction object")
	}
	var opts metav1.DeleteOptions
	if ev.DeleteOptions != nil {
		opts = *ev.DeleteOptions
	}
	if isDryRun(r) {
		// As Kubernetes: the request's dryRun (its CreateOptions) holds
		// for the delete too, not only the eviction's own DeleteOptions.
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if err := validateDeleteOptions(&opts); err != nil {
		return err
	}
	// A pending pod that starts meanwhile is evicted again, with budgets,
	// as often and as spaced as Kubernetes' EvictionsRetry.
	backoff := wait.Backoff{Steps: 20, Duration: 500 * time.Millisecond, Factor: 1, Jitter: 0.1}
	for {
		moved, err := s.evictOnce(r, info, opts)
		if !moved || backoff.Steps <= 1 {
			if err != nil {
				return err
			}
			break
		}
		select {
		case <-time.After(backoff.Step()):
		case <-r.Context().Done():
			return err
		}
	}
	writeJSON(w, http.StatusCreated, statusSuccess(nil))
	return nil
}

// evictOnce decides on the pod as it reads it, then marks and deletes it;
// moved says that a pod that needed no budget changed meanwhile (err is
// then the conflict).
func (s *Server) evictOnce(r *http.Request, info *reqInfo, opts metav1.DeleteOptions) (moved bool, err error) {
	ctx := r.Context()
	cur, _, err := s.load(ctx, info)
	if err != nil {
		return false, err
	}
	pod := cur.(*corev1.Pod)
	dryRun := len(opts.DryRun) > 0
	// pin: the decision holds for this version of the pod only (it was
	// pending, or unready under a healthy budget), so the delete names it.
	var pin bool
	var pdbName string
	switch {
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil:
	case pod.Status.Phase == corev1.PodPending:
		pin = true
	default:
		if pdbName, pin, err = s.takeDisruption(ctx, r, pod, dryRun); err != nil {
			return false, err
		}
	}
	pinned := pin && (opts.Preconditions == nil || opts.Preconditions.ResourceVersion == nil)
	if pinned {
		p := metav1.Preconditions{ResourceVersion: ptr.To(pod.ResourceVersion)}
		if opts.Preconditions != nil {
			p.UID = opts.Preconditions.UID
		}
		opts.Preconditions = &p
	}
	err = s.markAndDelete(r, info, opts)
	if pinned && apierrors.IsConflict(err) {
		if pdbName != "" {
			return false, budgetBusy(pdbName)
		}
		return true, err
	}
	return false, err
}

// markAndDelete gives the pod the DisruptionTarget condition (unless a dry
// run) and deletes it with opts.
func (s *Server) markAndDelete(r *http.Request, info *reqInfo, opts metav1.DeleteOptions) error {
	if len(opts.DryRun) == 0 {
		// As Kubernetes: the pod says why it goes (DisruptionTarget)
		// before it is deleted; the delete's resourceVersion
		// precondition, checked here, then names the pod so updated.
		statusInfo := &reqInfo{verb: "update", subresource: "status", res: info.res, namespace: info.namespace, name: info.name, manager: managerName(r)}
		st, err := s.update(r.Context(), statusInfo, func(cur runtime.Object, _ []byte) (runtime.Object, error) {
			pod := cur.(*corev1.Pod)
			if err := checkPreconditions(info.res.gvr.GroupResource(), pod, opts.Preconditions); err != nil {
				return nil, err
			}
			setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting", LastTransitionTime: metav1.NewTime(s.now())})
			return pod, nil
		}, false)
		if err != nil {
			return err
		}
		if p := opts.Preconditions; p != nil && p.ResourceVersion != nil {
			opts.Preconditions = &metav1.Preconditions{UID: p.UID, ResourceVersion: ptr.To(mustMeta(st.obj).GetResourceVersion())}
		}
	}
	podInfo := &reqInfo{verb: "delete", res: info.res, namespace: info.namespace, name: info.name}
	_, _, err := s.delete(r.Context(), podInfo, opts)
	return err
}

// maxDisruptedPods is how many evictions a budget may hold that the
// disruption controller has not confirmed (Kubernetes' MaxDisruptedPodSize).
const maxDisruptedPods = 2000

// takeDisruption finds the budget that selects pod and takes one
// disruption from it (only checks, in a dry run); pdbName names it (""
// when none selects the pod). An unready pod is let go without taking one
// when its budget says so (unhealthyPodEvictionPolicy AlwaysAllow) or is
// healthy without it; pin then says that this holds for the pod as read.
func (s *Server) takeDisruption(ctx context.Context, r *http.Request, pod *corev1.Pod, dryRun bool) (pdbName string, pin bool, err error) {
	res := s.reg.lookup(policyv1.SchemeGroupVersion, "poddisruptionbudgets")
	page, err := s.store.List(ctx, storage.Prefix("poddisruptionbudgets", pod.Namespace), storage.ListOptions{})
	if err != nil {
		return "", false, storageError(err, res.gvr.GroupResource(), "")
	}
	var pdb *policyv1.PodDisruptionBudget
	for _, so := range page.Items {
		obj, err := s.decodeStored(res, so)
		if err != nil {
			return "", false, err
		}
		if p := obj.(*policyv1.PodDisruptionBudget); budget.Selector(p).Matches(labels.Set(pod.Labels)) {
			if pdb != nil {
				return "", false, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError,
					Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}}
			}
			pdb = p
		}
	}
	if pdb == nil {
		return "", false, nil
	}
	if !budget.Healthy(pod) {
		if p := pdb.Spec.UnhealthyPodEvictionPolicy; p != nil && *p == policyv1.AlwaysAllow {
			return pdb.Name, true, nil
		}
		if pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0 {
			return pdb.Name, true, nil
		}
	}
	info := &reqInfo{verb: "update", subresource: "status", res: res, namespace: pdb.Namespace, name: pdb.Name, manager: managerName(r)}
	_, err = s.update(ctx, info, func(cur runtime.Object, _ []byte) (runtime.Object, error) {
		p := cur.(*policyv1.PodDisruptionBudget)
		switch {
		case p.Status.ObservedGeneration < p.Generation:
			return nil, budgetBusy(p.Name)
		case p.Status.DisruptionsAllowed < 0:
			return nil, apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), p.Name, errors.New("pdb disruptions allowed is negative"))
		case len(p.Status.DisruptedPods) > maxDisruptedPods:
			return nil, apierrors.NewForbidden(policyv1.Resource("poddisruptionbudget"), p.Name,
				errors.New("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
		case p.Status.DisruptionsAllowed == 0:
			return nil, budgetRefusal(0, fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", p.Name, p.Status.DesiredHealthy, p.Status.CurrentHealthy))
		}
		p.Status.DisruptionsAllowed--
		if p.Status.DisruptionsAllowed == 0 {
			budget.SetCondition(p)
		}
		if p.Status.DisruptedPods == nil {
			p.Status.DisruptedPods = map[string]metav1.Time{}
		}
		p.Status.DisruptedPods[pod.Name] = metav1.NewTime(s.now())
		return p, nil
	}, dryRun)
	return pdb.Name, false, err
}

// budgetBusy is the 429 of an eviction whose budget's status is not
// current (or whose pod changed under a decision the budget allowed).
func budgetBusy(name string) error {
	return budgetRefusal(10, fmt.Sprintf("The disruption budget %s is still being processed by the server.", name))
}

// budgetRefusal is the 429 of an eviction a budget refuses, for cause.
func budgetRefusal(retryAfterSeconds int, cause string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", retryAfterSeconds)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: cause})
	return err
}

// selfSubjectAccessReview answers kubectl auth can-i.
func (s *Server) selfSubjectAccessReview(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var rev authorizationv1.SelfSubjectAccessReview
	if err := s.decodeInto(r, body, &rev); err != nil {
		return err
	}
	if err := checkKindOf(&rev, authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectAccessReview")); err != nil {
		return err
	}
	u := userFrom(r.Context())
	var info *reqInfo
	if a := rev.Spec.ResourceAttributes; a != nil {
		info = &reqInfo{verb: a.Verb, namespace: a.Namespace, name: a.Name, subresource: a.Subresource}
	}
	// Denied without a reason, as by kube's RBAC authorizer when no rule
	// matches (kubectl auth can-i prints a reason after its "no").
	rev.Status.Allowed = authorized(u, info)
	rev.TypeMeta = metav1.TypeMeta{Kind: "SelfSubjectAccessReview", APIVersion: "authorization.k8s.io/v1"}
	return writeObject(w, http.StatusCreated, &rev)
}

// selfReview answers kubectl auth whoami (SelfSubjectReview) and auth
// can-i --list (SelfSubjectRulesReview): admins may do everything; a node's
// rules depend on the objects it asks about, so they are not listed.
func (s *Server) selfReview(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := s.decodeObject(r, body, info.res)
	if err != nil {
		return err
	}
	u := userFrom(r.Context())
	switch rev := obj.(type) {
	case *authenticationv1.SelfSubjectReview:
		rev.Status.UserInfo = authenticationv1.UserInfo{Username: u.Name, Groups: u.Groups}
	case *authorizationv1.SelfSubjectRulesReview:
		_, node := nodeOf(u)
		switch {
		case authorized(u, nil):
			rev.Status.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}
			rev.Status.NonResourceRules = []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}
		case node:
			rev.Status.Incomplete = true
			rev.Status.EvaluationError = "a node may read and write what concerns itself: its rules depend on the objects"
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(info.res.gvk())
	return writeObject(w, http.StatusCreated, obj)
}
