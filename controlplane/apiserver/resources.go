package apiserver

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// resource describes one served collection. The table built by
// newResources is immutable after construction.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	singular   string
	namespaced bool
	shortNames []string
	categories []string
	// verbs other than the usual CRUD set; nil means the full set.
	verbs []string
	// status and scale: the subresources served besides the object itself.
	status, scale bool
	// typ is the Go type of one object, listType of its list.
	typ, listType reflect.Type
	// fields returns the selectable fields of an object (always
	// metadata.name and metadata.namespace, plus the kind's own).
	fields func(obj runtime.Object) fields.Set
	// createOnUpdate: a PUT of a missing object creates it (Kubernetes'
	// AllowCreateOnUpdate); conditionalUpdate: a PUT must name the
	// resourceVersion it replaces (AllowUnconditionalUpdate false).
	createOnUpdate, conditionalUpdate bool
	// returnsDeleted: a delete that removes an object answers the object
	// (Kubernetes' ReturnDeletedObject), not a Status naming it.
	returnsDeleted bool
	// view: the resource is served from another's storage (see views.go);
	// nil for the rest.
	view *view
}

var allVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func (r *resource) gvk() schema.GroupVersionKind { return r.gvr.GroupVersion().WithKind(r.kind) }

// new returns an empty object of the resource's type with its kind set.
func (r *resource) new() runtime.Object {
	obj := reflect.New(r.typ).Interface().(runtime.Object)
	obj.GetObjectKind().SetGroupVersionKind(r.gvk())
	return obj
}

// hasGeneration reports whether objects of the kind get a
// metadata.generation that counts spec changes. As in Kubernetes, the
// workloads, pods, disruption budgets and ingresses do; namespaces, nodes, services, quotas, limit ranges
// and leases, whose specs nothing observes by generation, do not.
func (r *resource) hasGeneration() bool {
	switch r.kind {
	case "Pod", "ReplicationController", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob", "PodDisruptionBudget", "Ingress":
		return true
	}
	return false
}

// apiPath is the prefix of the resource's group-version: /api/v1 or
// /apis/<group>/<version>.
func apiPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

// registry indexes the served resources.
type registry struct {
	list   []*resource
	byGVR  map[schema.GroupVersionResource]*resource
	groups []schema.GroupVersion // in discovery order
	scheme *runtime.Scheme
}

func newRegistry() (*registry, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, coordinationv1.AddToScheme,
		nodev1.AddToScheme, schedulingv1.AddToScheme, rbacv1.AddToScheme, autoscalingv1.AddToScheme, policyv1.AddToScheme,
		authorizationv1.AddToScheme, authenticationv1.AddToScheme, eventsv1.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})

	core := schema.GroupVersion{Version: "v1"}
	apps := appsv1.SchemeGroupVersion
	all := []string{"all"}
	res := []*resource{
		{gvr: core.WithResource("namespaces"), kind: "Namespace", shortNames: []string{"ns"}, status: true, returnsDeleted: true,
			verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"},
			fields: func(o runtime.Object) fields.Set {
				return fields.Set{"status.phase": string(o.(*corev1.Namespace).Status.Phase)}
			}},
		{gvr: core.WithResource("nodes"), kind: "Node", shortNames: []string{"no"}, status: true,
			fields: func(o runtime.Object) fields.Set {
				return fields.Set{"spec.unschedulable": fmt.Sprint(o.(*corev1.Node).Spec.Unschedulable)}
			}},
		{gvr: core.WithResource("pods"), kind: "Pod", namespaced: true, shortNames: []string{"po"}, categories: all, status: true, returnsDeleted: true,
			fields: podFields},
		{gvr: core.WithResource("configmaps"), kind: "ConfigMap", namespaced: true, shortNames: []string{"cm"}},
		{gvr: core.WithResource("secrets"), kind: "Secret", namespaced: true,
			fields: func(o runtime.Object) fields.Set { return fields.Set{"type": string(o.(*corev1.Secret).Type)} }},
		{gvr: core.WithResource("events"), kind: "Event", namespaced: true, shortNames: []string{"ev"}, fields: eventFields, createOnUpdate: true},
		{gvr: core.WithResource("services"), kind: "Service", namespaced: true, shortNames: []string{"svc"}, categories: all, status: true, createOnUpdate: true, returnsDeleted: true,
			fields: func(o runtime.Object) fields.Set {
				return fields.Set{"spec.clusterIP": o.(*corev1.Service).Spec.ClusterIP, "spec.type": string(o.(*corev1.Service).Spec.Type)}
			}},
		{gvr: core.WithResource("serviceaccounts"), kind: "ServiceAccount", namespaced: true, shortNames: []string{"sa"}, returnsDeleted: true},
		{gvr: core.WithResource("resourcequotas"), kind: "ResourceQuota", namespaced: true, shortNames: []string{"quota"}, status: true, returnsDeleted: true},
		{gvr: core.WithResource("limitranges"), kind: "LimitRange", namespaced: true, shortNames: []string{"limits"}, createOnUpdate: true},
		{gvr: core.WithResource("replicationcontrollers"), kind: "ReplicationController", namespaced: true, shortNames: []string{"rc"}, categories: all, status: true, scale: true,
			fields: func(o runtime.Object) fields.Set {
				return fields.Set{"status.replicas": strconv.Itoa(int(o.(*corev1.ReplicationController).Status.Replicas))}
			}},
		{gvr: apps.WithResource("deployments"), kind: "Deployment", namespaced: true, shortNames: []string{"deploy"}, categories: all, status: true, scale: true},
		{gvr: apps.WithResource("replicasets"), kind: "ReplicaSet", namespaced: true, shortNames: []string{"rs"}, categories: all, status: true, scale: true,
			fields: func(o runtime.Object) fields.Set {
				return fields.Set{"status.replicas": strconv.Itoa(int(o.(*appsv1.ReplicaSet).Status.Replicas))}
			}},
		{gvr: apps.WithResource("daemonsets"), kind: "DaemonSet", namespaced: true, shortNames: []string{"ds"}, categories: all, status: true},
		{gvr: apps.WithResource("statefulsets"), kind: "StatefulSet", namespaced: true, shortNames: []string{"sts"}, categories: all, status: true, scale: true},
		{gvr: apps.WithResource("controllerrevisions"), kind: "ControllerRevision", namespaced: true},
		// The core events again, in their own group (as kube-apiserver,
		// after apps in discovery): one storage, see views.go.
		{gvr: eventsv1.SchemeGroupVersion.WithResource("events"), kind: "Event", namespaced: true, shortNames: []string{"ev"}, fields: eventsFields, createOnUpdate: true},
		// As kube-apiserver: batch/v1 lists cronjobs first.
		{gvr: batchv1.SchemeGroupVersion.WithResource("cronjobs"), kind: "CronJob", namespaced: true, shortNames: []string{"cj"}, categories: all, status: true},
		{gvr: batchv1.SchemeGroupVersion.WithResource("jobs"), kind: "Job", namespaced: true, categories: all, status: true,
			fields: func(o runtime.Object) fields.Set {
				return fields.Set{"status.successful": strconv.Itoa(int(o.(*batchv1.Job).Status.Succeeded))}
			}},
		{gvr: networkingv1.SchemeGroupVersion.WithResource("ingressclasses"), kind: "IngressClass"},
		{gvr: networkingv1.SchemeGroupVersion.WithResource("ingresses"), kind: "Ingress", namespaced: true, shortNames: []string{"ing"}, status: true},
		{gvr: policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"), kind: "PodDisruptionBudget", namespaced: true, shortNames: []string{"pdb"}, status: true},
		{gvr: coordinationv1.SchemeGroupVersion.WithResource("leases"), kind: "Lease", namespaced: true, createOnUpdate: true, conditionalUpdate: true},
		{gvr: nodev1.SchemeGroupVersion.WithResource("runtimeclasses"), kind: "RuntimeClass", createOnUpdate: true, conditionalUpdate: true},
		{gvr: schedulingv1.SchemeGroupVersion.WithResource("priorityclasses"), kind: "PriorityClass", shortNames: []string{"pc"}},
		{gvr: rbacv1.SchemeGroupVersion.WithResource("roles"), kind: "Role", namespaced: true, createOnUpdate: true},
		{gvr: rbacv1.SchemeGroupVersion.WithResource("rolebindings"), kind: "RoleBinding", namespaced: true, createOnUpdate: true},
		{gvr: rbacv1.SchemeGroupVersion.WithResource("clusterroles"), kind: "ClusterRole", createOnUpdate: true},
		{gvr: rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"), kind: "ClusterRoleBinding", createOnUpdate: true},
		{gvr: authorizationv1.SchemeGroupVersion.WithResource("selfsubjectaccessreviews"), kind: "SelfSubjectAccessReview",
			verbs: []string{"create"}},
		{gvr: authorizationv1.SchemeGroupVersion.WithResource("selfsubjectrulesreviews"), kind: "SelfSubjectRulesReview",
			verbs: []string{"create"}},
		{gvr: authenticationv1.SchemeGroupVersion.WithResource("selfsubjectreviews"), kind: "SelfSubjectReview",
			verbs: []string{"create"}},
	}
	r := &registry{list: res, byGVR: map[schema.GroupVersionResource]*resource{}, scheme: scheme}
	seen := map[schema.GroupVersion]bool{}
	for _, x := range res {
		gvk := x.gvk()
		t, ok := scheme.AllKnownTypes()[gvk]
		if !ok {
			return nil, fmt.Errorf("resource %s: kind %s not in scheme", x.gvr, gvk)
		}
		x.typ = t
		if lt, ok := scheme.AllKnownTypes()[gvk.GroupVersion().WithKind(x.kind+"List")]; ok {
			x.listType = lt
		}
		x.singular = strings.ToLower(x.kind)
		if x.verbs == nil {
			x.verbs = allVerbs
		}
		r.byGVR[x.gvr] = x
		if gv := x.gvr.GroupVersion(); !seen[gv] {
			seen[gv] = true
			r.groups = append(r.groups, gv)
		}
	}
	r.byGVR[eventsv1.SchemeGroupVersion.WithResource("events")].view = eventsView(r.byGVR[core.WithResource("events")])
	return r, nil
}

// lookup finds a resource by group, version and plural name.
func (r *registry) lookup(gv schema.GroupVersion, plural string) *resource {
	return r.byGVR[gv.WithResource(plural)]
}

func podFields(o runtime.Object) fields.Set {
	p := o.(*corev1.Pod)
	return fields.Set{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

// eventFields are Kubernetes' selectable fields of a core/v1 Event; source
// is the reporting controller for events that have no source (those
// written through events.k8s.io/v1).
func eventFields(o runtime.Object) fields.Set {
	e := o.(*corev1.Event)
	source := e.Source.Component
	if source == "" {
		source = e.ReportingController
	}
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         source,
		"type":                           e.Type,
	}
}
