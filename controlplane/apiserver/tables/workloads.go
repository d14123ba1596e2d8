package tables

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// containerCells lays out the containers' names and images, comma-separated.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, len(containers))
	im := make([]string, len(containers))
	for i := range containers {
		n[i] = containers[i].Name
		im[i] = containers[i].Image
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

// replicas is spec.replicas as defaulted by the API (1 when unset).
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

func deploymentCells(d *appsv1.Deployment, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	selector := "<invalid>"
	if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		selector = s.String()
	}
	names, images := containerCells(d.Spec.Template.Spec.Containers)
	return []interface{}{
		d.Name,
		fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, replicas(d.Spec.Replicas)),
		int64(d.Status.UpdatedReplicas),
		int64(d.Status.AvailableReplicas),
		since(d.CreationTimestamp, now),
		names,
		images,
		selector,
	}, nil
}

func replicaSetCells(rs *appsv1.ReplicaSet, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	names, images := containerCells(rs.Spec.Template.Spec.Containers)
	return []interface{}{
		rs.Name,
		int64(replicas(rs.Spec.Replicas)),
		int64(rs.Status.Replicas),
		int64(rs.Status.ReadyReplicas),
		since(rs.CreationTimestamp, now),
		names,
		images,
		metav1.FormatLabelSelector(rs.Spec.Selector),
	}, nil
}

// replicationControllerCells are kube's printReplicationController: the
// selector map as labels.
func replicationControllerCells(rc *corev1.ReplicationController, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	var names, images string
	if rc.Spec.Template != nil {
		names, images = containerCells(rc.Spec.Template.Spec.Containers)
	}
	return []interface{}{
		rc.Name,
		int64(replicas(rc.Spec.Replicas)),
		int64(rc.Status.Replicas),
		int64(rc.Status.ReadyReplicas),
		since(rc.CreationTimestamp, now),
		names,
		images,
		labels.FormatLabels(rc.Spec.Selector),
	}, nil
}

func daemonSetCells(ds *appsv1.DaemonSet, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	names, images := containerCells(ds.Spec.Template.Spec.Containers)
	return []interface{}{
		ds.Name,
		int64(ds.Status.DesiredNumberScheduled),
		int64(ds.Status.CurrentNumberScheduled),
		int64(ds.Status.NumberReady),
		int64(ds.Status.UpdatedNumberScheduled),
		int64(ds.Status.NumberAvailable),
		labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
		since(ds.CreationTimestamp, now),
		names,
		images,
		metav1.FormatLabelSelector(ds.Spec.Selector),
	}, nil
}

func statefulSetCells(ss *appsv1.StatefulSet, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	names, images := containerCells(ss.Spec.Template.Spec.Containers)
	return []interface{}{
		ss.Name,
		fmt.Sprintf("%d/%d", ss.Status.ReadyReplicas, replicas(ss.Spec.Replicas)),
		since(ss.CreationTimestamp, now),
		names,
		images,
	}, nil
}

func jobConditionTrue(conditions []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	for _, c := range conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// jobCells is printJob: STATUS from the job's conditions, COMPLETIONS as
// succeeded/wanted, DURATION from start to completion (or to now).
func jobCells(job *batchv1.Job, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	var completions string
	switch {
	case job.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", job.Status.Succeeded, *job.Spec.Completions)
	case job.Spec.Parallelism != nil && *job.Spec.Parallelism > 1:
		completions = fmt.Sprintf("%d/1 of %d", job.Status.Succeeded, *job.Spec.Parallelism)
	default:
		completions = fmt.Sprintf("%d/1", job.Status.Succeeded)
	}

	var took string
	switch {
	case job.Status.StartTime == nil:
	case job.Status.CompletionTime == nil:
		took = duration.HumanDuration(now.Sub(job.Status.StartTime.Time))
	default:
		took = duration.HumanDuration(job.Status.CompletionTime.Sub(job.Status.StartTime.Time))
	}

	conds := job.Status.Conditions
	var status string
	switch {
	case jobConditionTrue(conds, batchv1.JobComplete):
		status = "Complete"
	case jobConditionTrue(conds, batchv1.JobFailed):
		status = "Failed"
	case job.DeletionTimestamp != nil:
		status = "Terminating"
	case jobConditionTrue(conds, batchv1.JobSuspended):
		status = "Suspended"
	case jobConditionTrue(conds, batchv1.JobFailureTarget):
		status = "FailureTarget"
	case jobConditionTrue(conds, batchv1.JobSuccessCriteriaMet):
		status = "SuccessCriteriaMet"
	default:
		status = "Running"
	}

	names, images := containerCells(job.Spec.Template.Spec.Containers)
	return []interface{}{
		job.Name,
		status,
		completions,
		took,
		since(job.CreationTimestamp, now),
		names,
		images,
		metav1.FormatLabelSelector(job.Spec.Selector),
	}, nil
}

func cronJobCells(cj *batchv1.CronJob, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	lastSchedule := "<none>"
	if cj.Status.LastScheduleTime != nil {
		lastSchedule = since(*cj.Status.LastScheduleTime, now)
	}
	timeZone := "<none>"
	if cj.Spec.TimeZone != nil {
		timeZone = *cj.Spec.TimeZone
	}
	suspend := "<unset>"
	if cj.Spec.Suspend != nil {
		suspend = "False"
		if *cj.Spec.Suspend {
			suspend = "True"
		}
	}
	names, images := containerCells(cj.Spec.JobTemplate.Spec.Template.Spec.Containers)
	return []interface{}{
		cj.Name,
		cj.Spec.Schedule,
		timeZone,
		suspend,
		int64(len(cj.Status.Active)),
		lastSchedule,
		since(cj.CreationTimestamp, now),
		names,
		images,
		metav1.FormatLabelSelector(cj.Spec.JobTemplate.Spec.Selector),
	}, nil
}

func leaseCells(l *coordinationv1.Lease, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	var holder string
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	return []interface{}{l.Name, holder, since(l.CreationTimestamp, now)}, nil
}

func runtimeClassCells(rc *nodev1.RuntimeClass, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return []interface{}{rc.Name, rc.Handler, since(rc.CreationTimestamp, now)}, nil
}

func priorityClassCells(pc *schedulingv1.PriorityClass, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	policy := "Unknown"
	if pc.PreemptionPolicy != nil {
		policy = string(*pc.PreemptionPolicy)
	}
	return []interface{}{pc.Name, int64(pc.Value), pc.GlobalDefault, since(pc.CreationTimestamp, now), policy}, nil
}

// podDisruptionBudgetCells gives N/A for the bound a budget does not set.
func podDisruptionBudgetCells(pdb *policyv1.PodDisruptionBudget, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	bound := func(v *intstr.IntOrString) string {
		if v == nil {
			return "N/A"
		}
		return v.String()
	}
	return []interface{}{pdb.Name, bound(pdb.Spec.MinAvailable), bound(pdb.Spec.MaxUnavailable), int64(pdb.Status.DisruptionsAllowed), since(pdb.CreationTimestamp, now)}, nil
}

// controllerRevisionCells names the controller as kubectl names a resource
// with its kind: daemonset.apps/NAME.
func controllerRevisionCells(cr *appsv1.ControllerRevision, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	controller := "<none>"
	if ref := metav1.GetControllerOf(cr); ref != nil {
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		controller = strings.ToLower(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}.String()) + "/" + ref.Name
	}
	return []interface{}{cr.Name, controller, cr.Revision, since(cr.CreationTimestamp, now)}, nil
}

// resourceQuotaCells lists each resource of status.hard as "NAME:
// USED/HARD", the limits.* ones in the Limit column.
func resourceQuotaCells(q *corev1.ResourceQuota, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	var requests, limits []string
	for _, name := range slices.Sorted(maps.Keys(q.Status.Hard)) {
		used, hard := q.Status.Used[name], q.Status.Hard[name]
		cell := fmt.Sprintf("%s: %s/%s", name, used.String(), hard.String())
		if strings.HasPrefix(string(name), "limits.") {
			limits = append(limits, cell)
		} else {
			requests = append(requests, cell)
		}
	}
	return []interface{}{q.Name, since(q.CreationTimestamp, now), strings.Join(requests, ", "), strings.Join(limits, ", ")}, nil
}

func roleBindingCells(rb *rbacv1.RoleBinding, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return bindingCells(rb.ObjectMeta, rb.RoleRef, rb.Subjects, now), nil
}

func clusterRoleBindingCells(rb *rbacv1.ClusterRoleBinding, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return bindingCells(rb.ObjectMeta, rb.RoleRef, rb.Subjects, now), nil
}

// bindingCells: the role as KIND/NAME, then the subjects by kind (service
// accounts as NAMESPACE/NAME), comma-separated.
func bindingCells(m metav1.ObjectMeta, role rbacv1.RoleRef, subjects []rbacv1.Subject, now time.Time) []interface{} {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		}
	}
	return []interface{}{m.Name, role.Kind + "/" + role.Name, since(m.CreationTimestamp, now),
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
}
