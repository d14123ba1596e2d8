// Package validation defaults and validates the API objects wasmfleet's API
// server accepts, the way kube-apiserver does for the same types.
//
// It owns three things:
//
//   - Default, which fills the fields Kubernetes fills on the way in
//     (k8s.io/kubernetes/pkg/apis/<group>/v1/defaults.go, the declarative
//     +default tags, and the parts of the registry strategies'
//     PrepareForCreate that only depend on the object itself);
//   - ValidateCreate, which returns the field errors kube-apiserver would
//     report for a new object;
//   - ValidateUpdate, which adds the immutability rules Kubernetes enforces.
//
// The field paths, error types and messages follow
// k8s.io/kubernetes/pkg/apis/*/validation, so a 422 built from the returned
// list with apierrors.NewInvalid reads like one from kube-apiserver.
//
// What stays with the caller (the API server's registry), as in Kubernetes:
//   - generate metadata.name from generateName and set metadata.uid and
//     creationTimestamp before Default and ValidateCreate (a Job's generated
//     selector uses both);
//   - set metadata.namespace from the request (and clear it for
//     cluster-scoped kinds) before validating;
//   - on update, copy uid, creationTimestamp, generation and, for an
//     unconditional update, resourceVersion from the stored object (as
//     rest.BeforeUpdate does), keep status on a spec update and spec on a
//     /status update (PrepareForUpdate), then call ValidateUpdate;
//   - set metadata.generation (1 on create, +1 when spec changes) and clear
//     status on create; allocate Service cluster IPs and node ports (and
//     check those asked for against the ranges they come from).
//
// All functions are pure apart from Default, which mutates its argument.
// They keep no state and are safe for concurrent use.
package validation

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Default fills in place the fields Kubernetes defaults for obj. Unknown
// kinds are left alone. Default is idempotent, so the API server may run it on
// every write, create or update, as kube-apiserver does when it decodes.
func Default(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		defaultNamespace(o)
	case *corev1.Node:
		defaultNode(o)
	case *corev1.Pod:
		defaultPod(o)
	case *corev1.ConfigMap:
		defaultConfigMap(o)
	case *corev1.LimitRange:
		defaultLimitRange(o)
	case *schedulingv1.PriorityClass:
		if o.PreemptionPolicy == nil {
			p := corev1.PreemptLowerPriority
			o.PreemptionPolicy = &p
		}
	case *corev1.Secret:
		defaultSecret(o)
	case *networkingv1.IngressClass:
		defaultIngressClass(o)
	case *corev1.Service:
		defaultService(o)
	case *appsv1.Deployment:
		defaultDeployment(o)
	case *appsv1.ReplicaSet:
		defaultReplicaSet(o)
	case *corev1.ReplicationController:
		defaultReplicationController(o)
	case *appsv1.DaemonSet:
		defaultDaemonSet(o)
	case *appsv1.StatefulSet:
		defaultStatefulSet(o)
	case *batchv1.Job:
		defaultJob(o)
	case *batchv1.CronJob:
		defaultCronJob(o)
	case *rbacv1.RoleBinding:
		defaultRoleRef(&o.RoleRef)
		defaultSubjects(o.Subjects)
	case *rbacv1.ClusterRoleBinding:
		defaultRoleRef(&o.RoleRef)
		defaultSubjects(o.Subjects)
	}
}

// ValidateCreate returns the field errors for a new object, or nil if it is
// valid. Call it after Default. Unknown kinds return nil.
func ValidateCreate(obj runtime.Object) field.ErrorList {
	var errs field.ErrorList
	switch o := obj.(type) {
	case *corev1.Namespace:
		errs = validateNamespace(o)
	case *corev1.Node:
		errs = validateNode(o)
	case *corev1.Pod:
		errs = validatePodCreate(o)
	case *corev1.ConfigMap:
		errs = validateConfigMap(o)
	case *corev1.Secret:
		errs = validateSecret(o)
	case *corev1.Event:
		errs = validateEvent(o)
	case *corev1.Service:
		errs = validateService(o)
	case *corev1.ServiceAccount:
		errs = validateServiceAccount(o)
	case *corev1.ResourceQuota:
		errs = validateResourceQuota(o)
	case *corev1.LimitRange:
		errs = validateLimitRange(o)
	case *corev1.Binding:
		errs = validateBinding(o)
	case *appsv1.Deployment:
		errs = validateDeployment(o)
	case *appsv1.ReplicaSet:
		errs = validateReplicaSet(o)
	case *corev1.ReplicationController:
		errs = validateReplicationController(o)
	case *appsv1.DaemonSet:
		errs = validateDaemonSet(o)
	case *appsv1.StatefulSet:
		errs = validateStatefulSet(o)
	case *appsv1.ControllerRevision:
		errs = validateControllerRevision(o)
	case *batchv1.Job:
		errs = validateJob(o, true)
	case *batchv1.CronJob:
		errs = validateCronJobCreate(o)
	case *coordinationv1.Lease:
		errs = validateLease(o)
	case *nodev1.RuntimeClass:
		errs = validateRuntimeClass(o)
	case *schedulingv1.PriorityClass:
		errs = validatePriorityClass(o)
	case *rbacv1.Role:
		errs = validateRole(o)
	case *rbacv1.ClusterRole:
		errs = validateClusterRole(o)
	case *rbacv1.RoleBinding:
		errs = validateRoleBinding(o)
	case *rbacv1.ClusterRoleBinding:
		errs = validateClusterRoleBinding(o)
	case *autoscalingv1.Scale:
		errs = validateScale(o)
	case *policyv1.Eviction:
		errs = validateEviction(o)
	case *policyv1.PodDisruptionBudget:
		errs = validatePodDisruptionBudget(o)
	case *networkingv1.Ingress:
		errs = validateIngressCreate(o)
	case *networkingv1.IngressClass:
		errs = validateIngressClass(o)
	default:
		return nil
	}
	return normalize(errs)
}

// ValidateUpdate returns the field errors for replacing old with obj: those
// of the new object itself plus the immutability rules of its kind. old must
// be the stored object of the same type. Kinds without rules of their own
// get those of their metadata.
func ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	var errs field.ErrorList
	switch o := obj.(type) {
	case *corev1.Namespace:
		errs = update(o, old, validateNamespaceUpdate)
	case *corev1.Node:
		errs = update(o, old, validateNodeUpdate)
	case *corev1.Pod:
		errs = update(o, old, validatePodUpdate)
	case *corev1.ConfigMap:
		errs = update(o, old, validateConfigMapUpdate)
	case *corev1.Secret:
		errs = update(o, old, validateSecretUpdate)
	case *corev1.Event:
		errs = update(o, old, validateEventUpdate)
	case *corev1.Service:
		errs = update(o, old, validateServiceUpdate)
	case *corev1.ServiceAccount:
		errs = update(o, old, validateServiceAccountUpdate)
	case *corev1.ResourceQuota:
		errs = update(o, old, validateResourceQuotaUpdate)
	case *corev1.LimitRange:
		errs = update(o, old, validateLimitRangeUpdate)
	case *corev1.Binding:
		errs = validateBinding(o)
	case *appsv1.Deployment:
		errs = update(o, old, validateDeploymentUpdate)
	case *appsv1.ReplicaSet:
		errs = update(o, old, validateReplicaSetUpdate)
	case *corev1.ReplicationController:
		errs = update(o, old, validateReplicationControllerUpdate)
	case *appsv1.DaemonSet:
		errs = update(o, old, validateDaemonSetUpdate)
	case *appsv1.StatefulSet:
		errs = update(o, old, validateStatefulSetUpdate)
	case *appsv1.ControllerRevision:
		errs = update(o, old, validateControllerRevisionUpdate)
	case *batchv1.Job:
		errs = update(o, old, validateJobUpdate)
	case *batchv1.CronJob:
		errs = update(o, old, validateCronJobUpdate)
	case *coordinationv1.Lease:
		errs = update(o, old, validateLeaseUpdate)
	case *nodev1.RuntimeClass:
		errs = update(o, old, validateRuntimeClassUpdate)
	case *schedulingv1.PriorityClass:
		errs = update(o, old, validatePriorityClassUpdate)
	case *rbacv1.Role:
		errs = update(o, old, validateRoleUpdate)
	case *rbacv1.ClusterRole:
		errs = update(o, old, validateClusterRoleUpdate)
	case *rbacv1.RoleBinding:
		errs = update(o, old, validateRoleBindingUpdate)
	case *rbacv1.ClusterRoleBinding:
		errs = update(o, old, validateClusterRoleBindingUpdate)
	case *autoscalingv1.Scale:
		// Like kube-apiserver: the scale subresource checks the new value only;
		// the owner's update is validated on its own.
		errs = validateScale(o)
	case *policyv1.Eviction:
		errs = validateEviction(o)
	case *policyv1.PodDisruptionBudget:
		errs = update(o, old, validatePodDisruptionBudgetUpdate)
	case *networkingv1.Ingress:
		errs = update(o, old, validateIngressUpdate)
	case *networkingv1.IngressClass:
		errs = update(o, old, validateIngressClassUpdate)
	default:
		nm, err := meta.Accessor(obj)
		if err != nil {
			return nil
		}
		om, err := meta.Accessor(old)
		if err != nil {
			return nil
		}
		errs = apimachineryvalidation.ValidateObjectMetaAccessorUpdate(nm, om, field.NewPath("metadata"))
	}
	return normalize(errs)
}

// update type-checks old against obj and runs fn.
func update[T runtime.Object](obj T, old runtime.Object, fn func(obj, old T) field.ErrorList) field.ErrorList {
	o, ok := old.(T)
	if !ok {
		return field.ErrorList{field.InternalError(field.NewPath(""), fmt.Errorf("cannot update %T from a stored %T", obj, old))}
	}
	return fn(obj, o)
}

// normalize drops exact duplicates (update validation re-validates the new
// object's metadata, as Kubernetes does) and returns nil for no errors.
func normalize(errs field.ErrorList) field.ErrorList {
	if len(errs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(errs))
	out := errs[:0]
	for _, e := range errs {
		key := string(e.Type) + "\x00" + e.Field + "\x00" + e.Error()
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, e)
	}
	return out
}

// validateObjectMeta is core's ValidateObjectMeta: apimachinery's checks
// (name, generateName, namespace, labels, annotations and their 256 KiB total,
// ownerReferences, finalizers, managedFields) plus the rule that unqualified
// finalizer names must be standard Kubernetes ones.
//
// A name that is still empty while generateName is set is not reported: the
// API server generates it before storing the object.
func validateObjectMeta(meta *metav1.ObjectMeta, namespaced bool, nameFn apimachineryvalidation.ValidateNameFunc) field.ErrorList {
	metadataPath := field.NewPath("metadata")
	errs := apimachineryObjectMeta(meta, namespaced, nameFn, metadataPath)
	if meta.Name == "" && meta.GenerateName != "" {
		namePath := metadataPath.Child("name").String()
		kept := errs[:0]
		for _, e := range errs {
			if e.Field == namePath && e.Type == field.ErrorTypeRequired {
				continue
			}
			kept = append(kept, e)
		}
		errs = kept
	}
	for i, f := range meta.Finalizers {
		errs = append(errs, validateKubeFinalizerName(f, metadataPath.Child("finalizers").Index(i))...)
	}
	return errs
}

// validateObjectMetaUpdate checks that name, namespace, uid,
// creationTimestamp, deletionTimestamp and deletionGracePeriodSeconds are
// unchanged, that generation does not go back, that resourceVersion is set,
// and that no finalizer is added once deletion started.
func validateObjectMetaUpdate(meta, old *metav1.ObjectMeta) field.ErrorList {
	metadataPath := field.NewPath("metadata")
	errs := apimachineryvalidation.ValidateObjectMetaUpdate(meta, old, metadataPath)
	for i, f := range meta.Finalizers {
		errs = append(errs, validateKubeFinalizerName(f, metadataPath.Child("finalizers").Index(i))...)
	}
	return errs
}

// standardFinalizers are the finalizer names allowed without a domain prefix.
var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}

func validateKubeFinalizerName(name string, fldPath *field.Path) field.ErrorList {
	if !strings.Contains(name, "/") && !standardFinalizers[name] {
		return field.ErrorList{field.Invalid(fldPath, name, "name is neither a standard finalizer name nor is it fully qualified")}
	}
	return nil
}

// validateNonnegative is apimachinery's ValidateNonnegativeField for int32s.
func validateNonnegative(v int32, fldPath *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateNonnegativeField(int64(v), fldPath)
}

// validateImmutable reports fldPath as immutable unless the values are
// semantically equal.
func validateImmutable(newVal, oldVal any, fldPath *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateImmutableField(newVal, oldVal, fldPath)
}

// nameErrors turns the messages of a name check into Invalid errors.
func nameErrors(msgs []string, fldPath *field.Path, value string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(fldPath, value, msg))
	}
	return errs
}
