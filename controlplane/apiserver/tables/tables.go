// Package tables renders API objects as meta.k8s.io/v1 Tables, the
// server-side printing that `kubectl get` asks for with
// `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//
// The columns, their priorities (priority 1 is shown only with `-o wide`) and
// the cell formatting follow kube-apiserver's printers
// (k8s.io/kubernetes/pkg/printers/internalversion), so the real kubectl prints
// the same output against wasmfleet as against Kubernetes. Like
// kube-apiserver, a Table always carries every column (the "wide" cells too);
// kubectl hides the priority-1 columns unless `-o wide` is given.
//
// Kinds without a dedicated printer get kube-apiserver's default table:
// NAME and "Created At".
package tables

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The values of the includeObject argument of Convert (the includeObject
// query parameter of a Table request, metav1.IncludeObjectPolicy).
const (
	// IncludeNone leaves each row's Object empty.
	IncludeNone = string(metav1.IncludeNone)
	// IncludeMetadata (the default, as in kube-apiserver) puts a
	// meta.k8s.io/v1 PartialObjectMetadata in each row.
	IncludeMetadata = string(metav1.IncludeMetadata)
	// IncludeObject puts the whole object in each row.
	IncludeObject = string(metav1.IncludeObject)
)

// BadIncludeObjectError is returned by Convert for an includeObject value
// other than "", None, Metadata and Object. An API server answers it with 400
// BadRequest, as kube-apiserver does.
type BadIncludeObjectError struct {
	Value string
}

func (e *BadIncludeObjectError) Error() string {
	return fmt.Sprintf("unrecognized includeObject value: %q", e.Value)
}

// Convert builds a meta.k8s.io/v1 Table of objs, which are all of kind gvk
// (typed k8s.io/api objects such as *corev1.Pod, or *unstructured.Unstructured;
// a list object such as *corev1.PodList is expanded into its items).
//
// now is the reference time of the AGE and other relative-time cells.
//
// includeObject is "None", "Metadata" (also for "") or "Object": each row's
// Object is then, respectively, empty, a *metav1.PartialObjectMetadata with
// kind PartialObjectMetadata and apiVersion meta.k8s.io/v1, or the object
// itself with its kind and apiVersion set (to gvk when the object had none; the
// caller's object is never modified). Rows carry the object in
// RawExtension.Object, so json.Marshal of the Table, or any apimachinery JSON
// encoder, writes it with its kind and apiVersion. Rows share data (labels,
// annotations, the object itself) with objs: do not modify objs while the
// Table is in use.
//
// An empty objs still yields the kind's column definitions and a non-nil,
// empty Rows. The caller fills in ResourceVersion, Continue and
// RemainingItemCount.
func Convert(gvk schema.GroupVersionKind, objs []runtime.Object, includeObject string, now time.Time) (*metav1.Table, error) {
	switch includeObject {
	case "", IncludeMetadata, IncludeNone, IncludeObject:
	default:
		return nil, &BadIncludeObjectError{Value: includeObject}
	}

	p := printerFor(gvk.GroupKind())
	table := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{Kind: "Table", APIVersion: metav1.SchemeGroupVersion.String()},
		ColumnDefinitions: copyColumns(p.columns),
		Rows:              make([]metav1.TableRow, 0, len(objs)),
	}

	add := func(obj runtime.Object) error {
		cells, conditions, err := p.cells(obj, now)
		if err != nil {
			return err
		}
		row := metav1.TableRow{Cells: cells, Conditions: conditions}
		if row.Object, err = rowObject(obj, gvk, includeObject); err != nil {
			return err
		}
		table.Rows = append(table.Rows, row)
		return nil
	}

	for _, obj := range objs {
		if obj == nil {
			return nil, fmt.Errorf("tables: nil object in a %s list", gvk.Kind)
		}
		if meta.IsListType(obj) {
			if err := meta.EachListItem(obj, add); err != nil {
				return nil, err
			}
			continue
		}
		if err := add(obj); err != nil {
			return nil, err
		}
	}
	return table, nil
}

// ColumnDefinitions returns the columns of gvk's Table: those of its printer,
// or NAME and "Created At" for a kind without one. The slice is the caller's
// to modify.
func ColumnDefinitions(gvk schema.GroupVersionKind) []metav1.TableColumnDefinition {
	return copyColumns(printerFor(gvk.GroupKind()).columns)
}

func copyColumns(cols []metav1.TableColumnDefinition) []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition(nil), cols...)
}

// rowObject is what kube-apiserver's asTable puts in a row for includeObject.
func rowObject(obj runtime.Object, gvk schema.GroupVersionKind, includeObject string) (runtime.RawExtension, error) {
	switch includeObject {
	case IncludeNone:
		return runtime.RawExtension{}, nil
	case IncludeObject:
		if !obj.GetObjectKind().GroupVersionKind().Empty() {
			return runtime.RawExtension{Object: obj}, nil
		}
		cp := obj.DeepCopyObject()
		cp.GetObjectKind().SetGroupVersionKind(gvk)
		return runtime.RawExtension{Object: cp}, nil
	default: // Metadata
		m, err := meta.Accessor(obj)
		if err != nil {
			return runtime.RawExtension{}, fmt.Errorf("tables: %T has no object metadata: %w", obj, err)
		}
		partial := meta.AsPartialObjectMetadata(m)
		partial.TypeMeta = metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: metav1.SchemeGroupVersion.String()}
		return runtime.RawExtension{Object: partial}, nil
	}
}

// printer renders the rows of one kind.
type printer struct {
	columns []metav1.TableColumnDefinition
	// cells returns the row's cells (one per column, wide ones included) and
	// its conditions.
	cells func(obj runtime.Object, now time.Time) ([]interface{}, []metav1.TableRowCondition, error)
}

// typed makes a printer for objects of type *T, also accepting
// *unstructured.Unstructured, which it converts to T.
func typed[T any, PT interface {
	*T
	runtime.Object
}](columns []metav1.TableColumnDefinition, fn func(o PT, now time.Time) ([]interface{}, []metav1.TableRowCondition)) printer {
	return printer{
		columns: columns,
		cells: func(obj runtime.Object, now time.Time) ([]interface{}, []metav1.TableRowCondition, error) {
			switch o := obj.(type) {
			case PT:
				cells, conds := fn(o, now)
				return cells, conds, nil
			case *unstructured.Unstructured:
				var t T
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &t); err != nil {
					return nil, nil, fmt.Errorf("tables: converting %s %q: %w", o.GetKind(), o.GetName(), err)
				}
				cells, conds := fn(PT(&t), now)
				return cells, conds, nil
			default:
				var want PT
				return nil, nil, fmt.Errorf("tables: want %T, got %T", want, obj)
			}
		},
	}
}

// printerFor returns gk's printer, or the default one.
func printerFor(gk schema.GroupKind) printer {
	switch gk.Group {
	case "":
		switch gk.Kind {
		case "Pod":
			return typed(podColumns, podCells)
		case "Node":
			return typed(nodeColumns, nodeCells)
		case "Namespace":
			return typed(namespaceColumns, namespaceCells)
		case "ConfigMap":
			return typed(configMapColumns, configMapCells)
		case "Secret":
			return typed(secretColumns, secretCells)
		case "Event":
			return typed(eventColumns, coreEventCells)
		case "Service":
			return typed(serviceColumns, serviceCells)
		case "ServiceAccount":
			return typed(serviceAccountColumns, serviceAccountCells)
		case "ResourceQuota":
			return typed(resourceQuotaColumns, resourceQuotaCells)
		case "ReplicationController":
			return typed(replicationControllerColumns, replicationControllerCells)
		}
	case "apps":
		switch gk.Kind {
		case "Deployment":
			return typed(deploymentColumns, deploymentCells)
		case "ReplicaSet":
			return typed(replicaSetColumns, replicaSetCells)
		case "DaemonSet":
			return typed(daemonSetColumns, daemonSetCells)
		case "StatefulSet":
			return typed(statefulSetColumns, statefulSetCells)
		case "ControllerRevision":
			return typed(controllerRevisionColumns, controllerRevisionCells)
		}
	case "batch":
		switch gk.Kind {
		case "Job":
			return typed(jobColumns, jobCells)
		case "CronJob":
			return typed(cronJobColumns, cronJobCells)
		}
	case "events.k8s.io":
		if gk.Kind == "Event" {
			return typed(eventColumns, eventsEventCells)
		}
	case "networking.k8s.io":
		switch gk.Kind {
		case "Ingress":
			return typed(ingressColumns, ingressCells)
		case "IngressClass":
			return typed(ingressClassColumns, ingressClassCells)
		}
	case "policy":
		if gk.Kind == "PodDisruptionBudget" {
			return typed(podDisruptionBudgetColumns, podDisruptionBudgetCells)
		}
	case "coordination.k8s.io":
		if gk.Kind == "Lease" {
			return typed(leaseColumns, leaseCells)
		}
	case "node.k8s.io":
		if gk.Kind == "RuntimeClass" {
			return typed(runtimeClassColumns, runtimeClassCells)
		}
	case "scheduling.k8s.io":
		if gk.Kind == "PriorityClass" {
			return typed(priorityClassColumns, priorityClassCells)
		}
	case "rbac.authorization.k8s.io":
		switch gk.Kind {
		case "RoleBinding":
			return typed(roleBindingColumns, roleBindingCells)
		case "ClusterRoleBinding":
			return typed(clusterRoleBindingColumns, clusterRoleBindingCells)
		}
	}
	return printer{columns: defaultColumns, cells: defaultCells}
}

// defaultCells is kube-apiserver's default table convertor: the name and the
// creation time in RFC 3339, UTC.
func defaultCells(obj runtime.Object, _ time.Time) ([]interface{}, []metav1.TableRowCondition, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("tables: %T cannot be converted to a Table: %w", obj, err)
	}
	return []interface{}{m.GetName(), m.GetCreationTimestamp().Time.UTC().Format(time.RFC3339)}, nil, nil
}
