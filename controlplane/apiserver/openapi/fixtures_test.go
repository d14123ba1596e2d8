package openapi

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

var allVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

func res[T, L any](group, version, kind, plural string, namespaced bool, subs ...Subresource) Resource {
	return Resource{
		Group: group, Version: version, Kind: kind, Plural: plural, Namespaced: namespaced,
		Type: reflect.TypeFor[T](), ListType: reflect.TypeFor[L](), Verbs: allVerbs, Subresources: subs,
	}
}

func status[T any]() Subresource { return Subresource{Name: "status", Type: reflect.TypeFor[T]()} }

func scale() Subresource {
	return Subresource{Name: "scale", Type: reflect.TypeFor[autoscalingv1.Scale]()}
}

// kubectlResources is what the kubectl tests serve: core/v1 pods,
// namespaces, configmaps and apps/v1 deployments.
func kubectlResources() []Resource {
	return []Resource{
		res[corev1.Pod, corev1.PodList]("", "v1", "Pod", "pods", true,
			status[corev1.Pod](),
			Subresource{Name: "binding", Type: reflect.TypeFor[corev1.Binding](), Verbs: []string{"create"}},
			Subresource{Name: "eviction", Type: reflect.TypeFor[policyv1.Eviction](), Verbs: []string{"create"}},
			Subresource{Name: "log", Verbs: []string{"get"}},
		),
		res[corev1.Namespace, corev1.NamespaceList]("", "v1", "Namespace", "namespaces", false, status[corev1.Namespace]()),
		res[corev1.ConfigMap, corev1.ConfigMapList]("", "v1", "ConfigMap", "configmaps", true),
		res[appsv1.Deployment, appsv1.DeploymentList]("apps", "v1", "Deployment", "deployments", true,
			status[appsv1.Deployment](), scale()),
	}
}

// servedResources is the resource set of DESIGN.md (17 resources in 6
// group-versions), for the completeness tests and the benchmark.
func servedResources() []Resource {
	return append(kubectlResources(),
		res[corev1.Node, corev1.NodeList]("", "v1", "Node", "nodes", false, status[corev1.Node]()),
		res[corev1.Secret, corev1.SecretList]("", "v1", "Secret", "secrets", true),
		res[corev1.Event, corev1.EventList]("", "v1", "Event", "events", true),
		res[corev1.Service, corev1.ServiceList]("", "v1", "Service", "services", true, status[corev1.Service]()),
		res[appsv1.ReplicaSet, appsv1.ReplicaSetList]("apps", "v1", "ReplicaSet", "replicasets", true,
			status[appsv1.ReplicaSet](), scale()),
		res[appsv1.DaemonSet, appsv1.DaemonSetList]("apps", "v1", "DaemonSet", "daemonsets", true, status[appsv1.DaemonSet]()),
		res[batchv1.Job, batchv1.JobList]("batch", "v1", "Job", "jobs", true, status[batchv1.Job]()),
		res[coordinationv1.Lease, coordinationv1.LeaseList]("coordination.k8s.io", "v1", "Lease", "leases", true),
		res[nodev1.RuntimeClass, nodev1.RuntimeClassList]("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false),
		res[rbacv1.Role, rbacv1.RoleList]("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
		res[rbacv1.RoleBinding, rbacv1.RoleBindingList]("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
		res[rbacv1.ClusterRole, rbacv1.ClusterRoleList]("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
		res[rbacv1.ClusterRoleBinding, rbacv1.ClusterRoleBindingList]("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false),
	)
}
