package apiserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// deleteOptions reads DeleteOptions from the body (kubectl sends one) or,
// when there is none, from the query, as kube-apiserver does.
func (s *Server) deleteOptions(r *http.Request) (metav1.DeleteOptions, error) {
	var opts metav1.DeleteOptions
	body, err := readBody(r)
	if err != nil {
		return opts, err
	}
	if len(body) > 0 {
		if err := s.decodeInto(r, body, &opts); err != nil {
			return opts, err
		}
		// Of any group version: clients send their resource's.
		if k := opts.Kind; k != "" && k != "DeleteOptions" {
			return opts, badRequest("the body of a delete is DeleteOptions, not %s", k)
		}
	} else if err := deleteOptionsFromQuery(r.URL.Query(), &opts); err != nil {
		return opts, err
	}
	return opts, validateDeleteOptions(&opts)
}

// validateDeleteOptions refuses options kube-apiserver refuses (a bogus
// dryRun or propagationPolicy, both it and orphanDependents), be they a
// delete's or an eviction's.
func validateDeleteOptions(opts *metav1.DeleteOptions) error {
	if errs := metav1validation.ValidateDeleteOptions(opts); len(errs) > 0 {
		return apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind("DeleteOptions").GroupKind(), "", errs)
	}
	return nil
}

func deleteOptionsFromQuery(q url.Values, opts *metav1.DeleteOptions) error {
	if v := q.Get("gracePeriodSeconds"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("invalid gracePeriodSeconds %q", v)
		}
		opts.GracePeriodSeconds = &g
	}
	if v := q.Get("orphanDependents"); v != "" {
		o, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("invalid orphanDependents %q", v)
		}
		opts.OrphanDependents = &o
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q["dryRun"]; len(v) > 0 {
		opts.DryRun = v
	}
	return nil
}

// immortalNamespaces may not be deleted, as in Kubernetes.
var immortalNamespaces = map[string]bool{metav1.NamespaceDefault: true, metav1.NamespaceSystem: true, metav1.NamespacePublic: true}

// delete deletes the addressed object as Kubernetes does: objects with
// finalizers, and pods running on a node with a grace period, only get a
// deletionTimestamp; the rest are removed at once (pods after a write that
// marks them terminating with grace 0). It returns the answer
// (the object as left, or for one removed what deletedBody says) and the
// status code: 200, or as kube-apiserver 202 for an object not removed at
// once when orphanDependents is false.
func (s *Server) delete(ctx context.Context, info *reqInfo, opts metav1.DeleteOptions) ([]byte, int, error) {
	gr := info.res.gvr.GroupResource()
	if info.res.gvr.Resource == "namespaces" && immortalNamespaces[info.name] {
		return nil, 0, apierrors.NewForbidden(gr, info.name, errors.New("this namespace may not be deleted"))
	}
	if err := refuseSystemPriorityClassDelete(info); err != nil {
		return nil, 0, err
	}
	pending := http.StatusOK
	if o := opts.OrphanDependents; o != nil && !*o {
		pending = http.StatusAccepted
	}
	if orphansByDefault(info.res) && opts.OrphanDependents == nil && opts.PropagationPolicy == nil {
		warn(ctx, "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning")
	}
	// marked is the pod this delete wrote terminating with grace 0 (its
	// metadata, value and revision): removed by someone else meanwhile, it
	// is as good as removed by this delete, as in kube-apiserver
	// (kubernetes#19403).
	var marked struct {
		m     metav1.Object
		value []byte
		rev   int64
	}
	for range maxUpdateRetries {
		obj, so, err := s.load(ctx, info)
		if apierrors.IsNotFound(err) && marked.value != nil {
			return s.deletedBody(info.res, marked.m, marked.value, marked.rev)
		}
		if err != nil {
			return nil, 0, err
		}
		if err := s.admitCurrent(ctx, info, obj); err != nil {
			return nil, 0, err
		}
		m := mustMeta(obj)
		if err := checkPreconditions(gr, m, opts.Preconditions); err != nil {
			return nil, 0, err
		}
		grace := gracePeriod(obj, opts.GracePeriodSeconds)
		_, isPod := obj.(*corev1.Pod)
		if g := m.GetDeletionGracePeriodSeconds(); isPod && m.GetDeletionTimestamp() != nil && g != nil && *g > 0 {
			// As kube-apiserver's BeforeDelete: a graceful deletion under
			// way may only be shortened; else it changes nothing, not
			// even the finalizers.
			if opts.GracePeriodSeconds == nil {
				return s.deleteAnswer(info.res, so.Value, so.Rev, pending)
			}
			if grace = *opts.GracePeriodSeconds; grace < 0 {
				grace = 1
			}
			if grace >= *g {
				return s.deleteAnswer(info.res, so.Value, so.Rev, pending)
			}
		}
		fins := deletionFinalizers(info.res, m.GetFinalizers(), opts)
		if ns, ok := obj.(*corev1.Namespace); ok && len(ns.Spec.Finalizers) > 0 {
			// As kube-apiserver's namespace registry: the first delete
			// marks the namespace Terminating for the namespace
			// controller, with no grace period; later ones change
			// nothing until it is finalized.
			if ns.DeletionTimestamp != nil {
				return s.deleteAnswer(info.res, so.Value, so.Rev, pending)
			}
			ns.Status.Phase = corev1.NamespaceTerminating
			grace = -1
		}
		if grace == 0 && len(fins) == 0 && !isPod {
			if len(opts.DryRun) > 0 {
				return s.deletedBody(info.res, m, so.Value, so.Rev)
			}
			rev, err := s.store.DeleteReleasing(ctx, info.key(), so.Rev, releaseOf(obj))
			if err != nil {
				if errors.Is(err, storage.ErrConflict) {
					continue
				}
				return nil, 0, storageError(err, gr, info.name)
			}
			s.wrote(info.res.gvr.Resource, rev)
			return s.deletedBody(info.res, m, so.Value, rev)
		}
		// Graceful: record the deadline; whoever owns the object finishes it.
		m.SetFinalizers(fins)
		now := s.now()
		if dt, g := m.GetDeletionTimestamp(), m.GetDeletionGracePeriodSeconds(); dt == nil {
			if m.GetGeneration() > 0 {
				// As Kubernetes: a deletion is a change its controllers
				// must observe.
				m.SetGeneration(m.GetGeneration() + 1)
			}
			t := metav1.NewTime(now.Add(time.Duration(max(grace, 0)) * time.Second))
			m.SetDeletionTimestamp(&t)
			if grace >= 0 {
				m.SetDeletionGracePeriodSeconds(&grace)
			}
		} else if g != nil && grace < *g {
			// Shortened: the deadline moves back by as much.
			t := metav1.NewTime(dt.Add(time.Duration(grace-*g) * time.Second))
			m.SetDeletionTimestamp(&t)
			m.SetDeletionGracePeriodSeconds(&grace)
		}
		m.SetResourceVersion("")
		value, err := storedValue(info.res, obj)
		if err != nil {
			return nil, 0, err
		}
		if finished(obj) {
			if len(opts.DryRun) > 0 {
				return s.deletedBody(info.res, m, value, so.Rev)
			}
			rev := so.Rev
			if isPod && string(value) != string(so.Value) {
				// As kube-apiserver, whose pod strategy makes every pod
				// deletion graceful: one without grace is written first
				// (deletionTimestamp now, grace 0), so that watchers see
				// the pod terminating, then removed.
				if rev, err = s.store.Update(ctx, info.key(), value, so.Rev, so.Lease); err != nil {
					if errors.Is(err, storage.ErrConflict) {
						continue
					}
					return nil, 0, storageError(err, gr, info.name)
				}
				marked.m, marked.value, marked.rev = m, value, rev
			}
			rev, err = s.store.DeleteReleasing(ctx, info.key(), rev, releaseOf(obj))
			switch {
			case errors.Is(err, storage.ErrNotFound) && marked.value != nil:
				return s.deletedBody(info.res, marked.m, marked.value, marked.rev)
			case errors.Is(err, storage.ErrConflict):
				continue
			case err != nil:
				return nil, 0, storageError(err, gr, info.name)
			}
			s.wrote(info.res.gvr.Resource, rev)
			return s.deletedBody(info.res, m, value, rev)
		}
		if string(value) == string(so.Value) || len(opts.DryRun) > 0 {
			// Already being deleted and nothing changed: like Kubernetes,
			// write nothing (no new resourceVersion, no watch event). A
			// dry run answers the object as the delete would leave it.
			return s.deleteAnswer(info.res, value, so.Rev, pending)
		}
		rev, err := s.store.Update(ctx, info.key(), value, so.Rev, so.Lease)
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, 0, storageError(err, gr, info.name)
		}
		// A namespace refuses new content at once, not when the watch
		// catches up.
		s.wrote(info.res.gvr.Resource, rev)
		return s.deleteAnswer(info.res, value, rev, pending)
	}
	return nil, 0, storageError(storage.ErrConflict, gr, info.name)
}

// deletedBody answers a delete that removed the object (value, m its
// metadata) at revision rev as kube-apiserver's finalizeDelete does: the
// object for the resources whose registry returns it, else a Status
// naming it (kind is the resource, as there) and its uid, by which
// kubectl delete --wait tells the object gone from one created again.
func (s *Server) deletedBody(res *resource, m metav1.Object, value []byte, rev int64) ([]byte, int, error) {
	if res.returnsDeleted {
		return s.deleteAnswer(res, value, rev, http.StatusOK)
	}
	return statusSuccess(&metav1.StatusDetails{Name: m.GetName(), Group: res.gvr.Group, Kind: res.gvr.Resource, UID: m.GetUID()}), http.StatusOK, nil
}

// deleteAnswer answers a delete with the object (stored as value) at rev,
// as a client of res reads it, and code.
func (s *Server) deleteAnswer(res *resource, value []byte, rev int64, code int) ([]byte, int, error) {
	b, err := s.wire(res, value, rev)
	if err != nil {
		return nil, 0, err
	}
	return b, code, nil
}

// gracePeriod is the seconds a deletion waits: for pods on a node that have
// not finished, the requested period (1 if negative, as Kubernetes) or the
// pod's own (default 30); zero for everything else.
func gracePeriod(obj runtime.Object, requested *int64) int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return 0
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if requested != nil {
		if *requested < 0 {
			return 1
		}
		return *requested
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// deletionFinalizers returns the finalizers of an object whose deletion
// starts, as kube-apiserver's deletionFinalizersForGarbageCollection: the
// orphan or foregroundDeletion finalizer (never both) as the options ask,
// else as the object's finalizers already ask, else as the resource's
// default; fins themselves when that changes nothing. Events, which
// Kubernetes does not garbage-collect, get neither.
func deletionFinalizers(res *resource, fins []string, opts metav1.DeleteOptions) []string {
	var orphan, foreground bool
	switch {
	case res.stored().gvr.GroupResource() == corev1.Resource("events"):
	case opts.OrphanDependents != nil:
		orphan = *opts.OrphanDependents
	case opts.PropagationPolicy != nil:
		orphan = *opts.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *opts.PropagationPolicy == metav1.DeletePropagationForeground
	case slices.Contains(fins, metav1.FinalizerOrphanDependents):
		orphan = true
	case slices.Contains(fins, metav1.FinalizerDeleteDependents):
		foreground = true
	default:
		orphan = orphansByDefault(res)
	}
	if orphan == slices.Contains(fins, metav1.FinalizerOrphanDependents) && foreground == slices.Contains(fins, metav1.FinalizerDeleteDependents) {
		return fins
	}
	out := slices.DeleteFunc(slices.Clone(fins), func(f string) bool {
		return f == metav1.FinalizerOrphanDependents || f == metav1.FinalizerDeleteDependents
	})
	if orphan {
		out = append(out, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		out = append(out, metav1.FinalizerDeleteDependents)
	}
	return out
}

// orphansByDefault reports whether deleting an object of res with no
// propagation policy orphans its dependents: as in Kubernetes, only
// batch/v1 Jobs do, for compatibility (their pods stay).
func orphansByDefault(res *resource) bool {
	return res.gvr == batchv1.SchemeGroupVersion.WithResource("jobs")
}

// deleteCollection deletes every object the list selectors match and, as
// kube-apiserver, answers the list of them as they were before.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	opts, err := s.deleteOptions(r)
	if err != nil {
		return err
	}
	if err := checkListOptions(r.URL.Query(), false); err != nil {
		return err
	}
	sel, err := parseSelectors(r, info.res)
	if err != nil {
		return err
	}
	page, err := s.store.List(r.Context(), storage.Prefix(info.res.gvr.Resource, info.namespace), storage.ListOptions{})
	if err != nil {
		return storageError(err, info.res.gvr.GroupResource(), "")
	}
	var matched []storage.Object
	for _, so := range page.Items {
		obj, err := s.decode(info.res, so)
		if err != nil {
			return err
		}
		if !sel.matches(info.res, obj) {
			continue
		}
		matched = append(matched, so)
		m := mustMeta(obj)
		one := &reqInfo{verb: "delete", res: info.res, namespace: m.GetNamespace(), name: m.GetName()}
		if _, _, err := s.delete(r.Context(), one, opts); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	b, err := s.listJSON(info.res, matched, strconv.FormatInt(page.Rev, 10), "", nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// checkPreconditions answers 409 Conflict, as Kubernetes does, when m is
// not the object p names.
func checkPreconditions(gr schema.GroupResource, m metav1.Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	if p.UID != nil && *p.UID != m.GetUID() {
		return apierrors.NewConflict(gr, m.GetName(), errors.New("Precondition failed: UID in precondition: "+string(*p.UID)+", UID in object meta: "+string(m.GetUID())))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
		return apierrors.NewConflict(gr, m.GetName(), errors.New("Precondition failed: ResourceVersion in precondition: "+*p.ResourceVersion+", ResourceVersion in object meta: "+m.GetResourceVersion()))
	}
	return nil
}
