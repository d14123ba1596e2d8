package tables

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(testNow.Add(-d)) }

func agoPtr(d time.Duration) *metav1.Time { t := ago(d); return &t }

func ptr[T any](v T) *T { return &v }

var (
	podGVK        = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	nodeGVK       = schema.GroupVersionKind{Version: "v1", Kind: "Node"}
	deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	jobGVK        = schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
)

func objMeta(name string, age time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), CreationTimestamp: ago(age)}
}

// convertOne converts one object and returns its row's cells, checking that
// there is one cell per column.
func convertOne(t *testing.T, gvk schema.GroupVersionKind, obj runtime.Object) []interface{} {
	t.Helper()
	table, err := Convert(gvk, []runtime.Object{obj}, "", testNow)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(table.Rows))
	}
	cells := table.Rows[0].Cells
	if len(cells) != len(table.ColumnDefinitions) {
		t.Fatalf("%d cells for %d columns: %v", len(cells), len(table.ColumnDefinitions), cells)
	}
	return cells
}

func checkCells(t *testing.T, got, want []interface{}) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cells\n got %#v\nwant %#v", got, want)
	}
}

func columnNames(cols []metav1.TableColumnDefinition, priority int32) []string {
	var names []string
	for _, c := range cols {
		if c.Priority == priority {
			names = append(names, c.Name)
		}
	}
	return names
}

func TestColumnDefinitions(t *testing.T) {
	tests := []struct {
		gvk        schema.GroupVersionKind
		normal     string
		wide       string
		nameColumn int // index of the Format "name" column
	}{
		{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, "Name,Status,Age", "", 0},
		{nodeGVK, "Name,Status,Roles,Age,Version", "Internal-IP,External-IP,OS-Image,Kernel-Version,Container-Runtime", 0},
		{podGVK, "Name,Ready,Status,Restarts,Age", "IP,Node,Nominated Node,Readiness Gates", 0},
		{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "Name,Data,Age", "", 0},
		{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, "Name,Type,Data,Age", "", 0},
		{schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, "Name,Secrets,Age", "", 0},
		{schema.GroupVersionKind{Version: "v1", Kind: "Event"}, "Last Seen,Type,Reason,Object,Message", "Subobject,Source,First Seen,Count,Name", 9},
		{schema.GroupVersionKind{Group: "events.k8s.io", Version: "v1", Kind: "Event"}, "Last Seen,Type,Reason,Object,Message", "Subobject,Source,First Seen,Count,Name", 9},
		{schema.GroupVersionKind{Version: "v1", Kind: "Service"}, "Name,Type,Cluster-IP,External-IP,Port(s),Age", "Selector", 0},
		{schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}, "Name,Holder,Age", "", 0},
		{schema.GroupVersionKind{Group: "node.k8s.io", Version: "v1", Kind: "RuntimeClass"}, "Name,Handler,Age", "", 0},
		{deploymentGVK, "Name,Ready,Up-to-date,Available,Age", "Containers,Images,Selector", 0},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, "Name,Desired,Current,Ready,Age", "Containers,Images,Selector", 0},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, "Name,Desired,Current,Ready,Up-to-date,Available,Node Selector,Age", "Containers,Images,Selector", 0},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, "Name,Ready,Age", "Containers,Images", 0},
		{jobGVK, "Name,Status,Completions,Duration,Age", "Containers,Images,Selector", 0},
		{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}, "Name,Schedule,Timezone,Suspend,Active,Last Schedule,Age", "Containers,Images,Selector", 0},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}, "Name,Created At", "", 0},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}, "Name,Role,Age", "Users,Groups,ServiceAccounts", 0},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}, "Name,Role,Age", "Users,Groups,ServiceAccounts", 0},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ControllerRevision"}, "Name,Controller,Revision,Age", "", 0},
		{schema.GroupVersionKind{Version: "v1", Kind: "ResourceQuota"}, "Name,Age,Request,Limit", "", 0},
		{schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}, "Name,Created At", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.gvk.GroupKind().String(), func(t *testing.T) {
			cols := ColumnDefinitions(tt.gvk)
			if got := strings.Join(columnNames(cols, 0), ","); got != tt.normal {
				t.Errorf("priority 0 columns = %q, want %q", got, tt.normal)
			}
			if got := strings.Join(columnNames(cols, 1), ","); got != tt.wide {
				t.Errorf("priority 1 columns = %q, want %q", got, tt.wide)
			}
			for i, c := range cols {
				if c.Type == "" || c.Description == "" {
					t.Errorf("column %q has type %q, description %q", c.Name, c.Type, c.Description)
				}
				if (c.Format == "name") != (i == tt.nameColumn) {
					t.Errorf("column %d %q has format %q", i, c.Name, c.Format)
				}
				if c.Priority != 0 && c.Priority != 1 {
					t.Errorf("column %q has priority %d", c.Name, c.Priority)
				}
			}
			// Wide columns come after the normal ones except for Events,
			// whose Message (priority 0) follows Subobject and Source.
			if tt.gvk.Kind != "Event" {
				seenWide := false
				for _, c := range cols {
					if c.Priority == 1 {
						seenWide = true
					} else if seenWide {
						t.Errorf("normal column %q after a wide one", c.Name)
					}
				}
			}

			// The columns of an empty list are the same, and handed out as copies.
			table, err := Convert(tt.gvk, nil, "", testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(table.ColumnDefinitions, cols) {
				t.Errorf("empty table columns differ: %v", table.ColumnDefinitions)
			}
			if table.Rows == nil || len(table.Rows) != 0 {
				t.Errorf("empty table rows = %#v, want empty non-nil", table.Rows)
			}
			table.ColumnDefinitions[0].Name = "changed"
			if ColumnDefinitions(tt.gvk)[0].Name == "changed" {
				t.Error("modifying a table's columns changed the package's")
			}
		})
	}
}

func TestTableTypeMetaAndEmptyJSON(t *testing.T) {
	table, err := Convert(podGVK, []runtime.Object{}, "Metadata", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" {
		t.Errorf("TypeMeta = %+v", table.TypeMeta)
	}
	b, err := json.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"kind":"Table"`, `"apiVersion":"meta.k8s.io/v1"`, `"rows":[]`, `{"name":"Name","type":"string","format":"name","description":"Name must be unique`, `"name":"Restarts","type":"string","format":"","description":"The number of times`, `"name":"IP","type":"string","format":"","description":"podIP address allocated`} {
		if !strings.Contains(s, want) {
			t.Errorf("table JSON lacks %s:\n%s", want, s)
		}
	}
}

func running(name string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, Started: ptr(true), RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(time.Hour)}}}
}

func waiting(name, reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, RestartCount: restarts,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func terminated(name, reason string, exitCode, signal int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: exitCode, Signal: signal, FinishedAt: ago(time.Minute)}}}
}

func withLastTermination(cs corev1.ContainerStatus, finished time.Duration) corev1.ContainerStatus {
	cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: ago(finished)}
	return cs
}

func containers(names ...string) []corev1.Container {
	var cs []corev1.Container
	for _, n := range names {
		cs = append(cs, corev1.Container{Name: n, Image: "registry.example/" + n + ":1"})
	}
	return cs
}

func TestPodCells(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name      string
		pod       corev1.Pod
		want      []interface{}
		completed string // the row condition's reason, if any
	}{
		{
			name: "running",
			pod: corev1.Pod{
				ObjectMeta: objMeta("web-1", 50*time.Hour),
				Spec:       corev1.PodSpec{NodeName: "node-a", Containers: containers("web")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}, {IP: "fd00::7"}},
					Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
					ContainerStatuses: []corev1.ContainerStatus{running("web", 0)}},
			},
			want: []interface{}{"web-1", "1/1", "Running", "0", "2d2h", "10.0.0.7", "node-a", "<none>", "<none>"},
		},
		{
			name: "pending unscheduled",
			pod: corev1.Pod{
				ObjectMeta: objMeta("pending", 90*time.Second),
				Spec:       corev1.PodSpec{Containers: containers("a", "b")},
				Status:     corev1.PodStatus{Phase: corev1.PodPending},
			},
			want: []interface{}{"pending", "0/2", "Pending", "0", "90s", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "scheduling gated",
			pod: corev1.Pod{
				ObjectMeta: objMeta("gated", 7*time.Second),
				Spec:       corev1.PodSpec{Containers: containers("a"), SchedulingGates: []corev1.PodSchedulingGate{{Name: "example.com/gate"}}},
				Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
					{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}},
			},
			want: []interface{}{"gated", "0/1", "SchedulingGated", "0", "7s", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "crash loop with last restart",
			pod: corev1.Pod{
				ObjectMeta: objMeta("crashy", 3*time.Hour),
				Spec:       corev1.PodSpec{NodeName: "node-a", Containers: containers("app", "sidecar")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.8",
					ContainerStatuses: []corev1.ContainerStatus{
						withLastTermination(waiting("app", "CrashLoopBackOff", 5), 5*time.Minute),
						running("sidecar", 0),
					}},
			},
			want: []interface{}{"crashy", "1/2", "CrashLoopBackOff", "5 (5m ago)", "3h", "10.0.0.8", "node-a", "<none>", "<none>"},
		},
		{
			name: "completed",
			pod: corev1.Pod{
				ObjectMeta: objMeta("batch-x", 10*time.Minute),
				Spec:       corev1.PodSpec{NodeName: "node-b", Containers: containers("main")},
				Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
					ContainerStatuses: []corev1.ContainerStatus{terminated("main", "Completed", 0, 0)}},
			},
			want:      []interface{}{"batch-x", "0/1", "Completed", "0", "10m", "<none>", "node-b", "<none>", "<none>"},
			completed: "Succeeded",
		},
		{
			name: "failed with exit code and no reason",
			pod: corev1.Pod{
				ObjectMeta: objMeta("failing", 4*time.Minute+30*time.Second),
				Spec:       corev1.PodSpec{Containers: containers("main")},
				Status: corev1.PodStatus{Phase: corev1.PodFailed,
					ContainerStatuses: []corev1.ContainerStatus{terminated("main", "", 3, 0)}},
			},
			want:      []interface{}{"failing", "0/1", "ExitCode:3", "0", "4m30s", "<none>", "<none>", "<none>", "<none>"},
			completed: "Failed",
		},
		{
			name: "killed by signal",
			pod: corev1.Pod{
				ObjectMeta: objMeta("killed", time.Hour),
				Spec:       corev1.PodSpec{Containers: containers("main")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning,
					ContainerStatuses: []corev1.ContainerStatus{terminated("main", "", 137, 9)}},
			},
			want: []interface{}{"killed", "0/1", "Signal:9", "0", "60m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "completed container but another still running",
			pod: corev1.Pod{
				ObjectMeta: objMeta("half", time.Hour),
				Spec:       corev1.PodSpec{Containers: containers("done", "serve")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning,
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
					// Containers are looked at last to first: "done" decides.
					ContainerStatuses: []corev1.ContainerStatus{terminated("done", "Completed", 0, 0), running("serve", 0)}},
			},
			want: []interface{}{"half", "1/2", "NotReady", "0", "60m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "terminating",
			pod: func() corev1.Pod {
				p := corev1.Pod{
					ObjectMeta: objMeta("going", 20*time.Minute),
					Spec:       corev1.PodSpec{NodeName: "node-a", Containers: containers("web")},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9",
						ContainerStatuses: []corev1.ContainerStatus{running("web", 1)}},
				}
				p.DeletionTimestamp = agoPtr(5 * time.Second)
				return p
			}(),
			want: []interface{}{"going", "1/1", "Terminating", "1", "20m", "10.0.0.9", "node-a", "<none>", "<none>"},
		},
		{
			name: "deleted after succeeding stays Completed",
			pod: func() corev1.Pod {
				p := corev1.Pod{
					ObjectMeta: objMeta("done", 20*time.Minute),
					Spec:       corev1.PodSpec{Containers: containers("main")},
					Status: corev1.PodStatus{Phase: corev1.PodSucceeded,
						ContainerStatuses: []corev1.ContainerStatus{terminated("main", "Completed", 0, 0)}},
				}
				p.DeletionTimestamp = agoPtr(time.Second)
				return p
			}(),
			want:      []interface{}{"done", "0/1", "Completed", "0", "20m", "<none>", "<none>", "<none>", "<none>"},
			completed: "Succeeded",
		},
		{
			name: "node lost",
			pod: func() corev1.Pod {
				p := corev1.Pod{
					ObjectMeta: objMeta("lost", 20*time.Minute),
					Spec:       corev1.PodSpec{Containers: containers("main")},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, Reason: "NodeLost",
						ContainerStatuses: []corev1.ContainerStatus{running("main", 0)}},
				}
				p.DeletionTimestamp = agoPtr(time.Second)
				return p
			}(),
			want: []interface{}{"lost", "1/1", "Unknown", "0", "20m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "evicted",
			pod: corev1.Pod{
				ObjectMeta: objMeta("evicted", 20*time.Minute),
				Spec:       corev1.PodSpec{Containers: containers("main")},
				Status:     corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"},
			},
			want:      []interface{}{"evicted", "0/1", "Evicted", "0", "20m", "<none>", "<none>", "<none>", "<none>"},
			completed: "Failed",
		},
		{
			name: "init container running",
			pod: corev1.Pod{
				ObjectMeta: objMeta("init", time.Minute),
				Spec:       corev1.PodSpec{InitContainers: containers("setup", "migrate"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					InitContainerStatuses: []corev1.ContainerStatus{terminated("setup", "Completed", 0, 0), running("migrate", 0)},
					ContainerStatuses:     []corev1.ContainerStatus{waiting("app", "PodInitializing", 0)}},
			},
			want: []interface{}{"init", "0/1", "Init:1/2", "0", "60s", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "init container crash looping",
			pod: corev1.Pod{
				ObjectMeta: objMeta("initcrash", time.Hour),
				Spec:       corev1.PodSpec{InitContainers: containers("setup"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					InitContainerStatuses: []corev1.ContainerStatus{withLastTermination(waiting("setup", "CrashLoopBackOff", 4), 2*time.Minute)},
					ContainerStatuses:     []corev1.ContainerStatus{waiting("app", "PodInitializing", 0)}},
			},
			want: []interface{}{"initcrash", "0/1", "Init:CrashLoopBackOff", "4 (2m ago)", "60m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "init container failed",
			pod: corev1.Pod{
				ObjectMeta: objMeta("initerr", time.Hour),
				Spec:       corev1.PodSpec{InitContainers: containers("setup"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					InitContainerStatuses: []corev1.ContainerStatus{terminated("setup", "Error", 1, 0)}},
			},
			want: []interface{}{"initerr", "0/1", "Init:Error", "0", "60m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "init container failed with exit code",
			pod: corev1.Pod{
				ObjectMeta: objMeta("initexit", time.Hour),
				Spec:       corev1.PodSpec{InitContainers: containers("setup"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending,
					InitContainerStatuses: []corev1.ContainerStatus{terminated("setup", "", 2, 0)}},
			},
			want: []interface{}{"initexit", "0/1", "Init:ExitCode:2", "0", "60m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "sidecar counted and running",
			pod: func() corev1.Pod {
				p := corev1.Pod{
					ObjectMeta: objMeta("sidecar", 2*time.Hour),
					Spec:       corev1.PodSpec{InitContainers: containers("proxy"), Containers: containers("app")},
					Status: corev1.PodStatus{Phase: corev1.PodRunning,
						Conditions:            []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}},
						InitContainerStatuses: []corev1.ContainerStatus{withLastTermination(running("proxy", 2), 30*time.Minute)},
						ContainerStatuses:     []corev1.ContainerStatus{running("app", 0)}},
				}
				p.Spec.InitContainers[0].RestartPolicy = &always
				return p
			}(),
			want: []interface{}{"sidecar", "2/2", "Running", "2 (30m ago)", "120m", "<none>", "<none>", "<none>", "<none>"},
		},
		{
			name: "readiness gates and nominated node",
			pod: corev1.Pod{
				ObjectMeta: objMeta("gates", 9*24*time.Hour),
				Spec: corev1.PodSpec{Containers: containers("app"),
					ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}, {ConditionType: "example.com/dns"}}},
				Status: corev1.PodStatus{Phase: corev1.PodPending, NominatedNodeName: "node-z",
					Conditions: []corev1.PodCondition{{Type: "example.com/lb", Status: corev1.ConditionTrue}, {Type: "example.com/dns", Status: corev1.ConditionFalse}}},
			},
			want: []interface{}{"gates", "0/1", "Pending", "0", "9d", "<none>", "<none>", "node-z", "1/2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := Convert(podGVK, []runtime.Object{&tt.pod}, "", testNow)
			if err != nil {
				t.Fatal(err)
			}
			row := table.Rows[0]
			checkCells(t, row.Cells, tt.want)
			var reason string
			if len(row.Conditions) > 0 {
				c := row.Conditions[0]
				if c.Type != metav1.RowCompleted || c.Status != metav1.ConditionTrue {
					t.Errorf("row condition %+v", c)
				}
				reason = c.Reason
			}
			if reason != tt.completed {
				t.Errorf("row completed condition reason %q, want %q", reason, tt.completed)
			}
		})
	}
}

func node(name string, ready corev1.ConditionStatus, labels map[string]string) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, CreationTimestamp: ago(30 * 24 * time.Hour)},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: "192.0.2.10"}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2-wasmfleet", OSImage: "Debian GNU/Linux 13 (trixie)",
				KernelVersion: "6.12.0", ContainerRuntimeVersion: "wasmfleet://0.1.0"},
		},
	}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: ready}}
	}
	return n
}

func TestNodeCells(t *testing.T) {
	cordoned := node("n3", corev1.ConditionTrue, map[string]string{"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"})
	cordoned.Spec.Unschedulable = true
	cordoned.Status.Addresses = append(cordoned.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.5"})
	bare := node("n5", corev1.ConditionTrue, nil)
	bare.Status.NodeInfo = corev1.NodeSystemInfo{}
	bare.Status.Addresses = nil

	tests := []struct {
		node *corev1.Node
		want []interface{}
	}{
		{node("n1", corev1.ConditionTrue, nil),
			[]interface{}{"n1", "Ready", "<none>", "30d", "v1.37.2-wasmfleet", "192.0.2.10", "<none>", "Debian GNU/Linux 13 (trixie)", "6.12.0", "wasmfleet://0.1.0"}},
		{node("n2", corev1.ConditionFalse, map[string]string{"node-role.kubernetes.io/worker": ""}),
			[]interface{}{"n2", "NotReady", "worker", "30d", "v1.37.2-wasmfleet", "192.0.2.10", "<none>", "Debian GNU/Linux 13 (trixie)", "6.12.0", "wasmfleet://0.1.0"}},
		{cordoned,
			[]interface{}{"n3", "Ready,SchedulingDisabled", "control-plane,edge,worker", "30d", "v1.37.2-wasmfleet", "192.0.2.10", "203.0.113.5", "Debian GNU/Linux 13 (trixie)", "6.12.0", "wasmfleet://0.1.0"}},
		{node("n4", "", nil),
			[]interface{}{"n4", "Unknown", "<none>", "30d", "v1.37.2-wasmfleet", "192.0.2.10", "<none>", "Debian GNU/Linux 13 (trixie)", "6.12.0", "wasmfleet://0.1.0"}},
		{bare,
			[]interface{}{"n5", "Ready", "<none>", "30d", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"}},
	}
	for _, tt := range tests {
		t.Run(tt.node.Name, func(t *testing.T) {
			checkCells(t, convertOne(t, nodeGVK, tt.node), tt.want)
		})
	}
}

func podTemplate(names ...string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers(names...)}}
}

func TestWorkloadCells(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tests := []struct {
		name string
		kind schema.GroupVersionKind
		obj  runtime.Object
		want []interface{}
	}{
		{"deployment", deploymentGVK, &appsv1.Deployment{
			ObjectMeta: objMeta("web", 3*24*time.Hour),
			Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Selector: sel, Template: podTemplate("web", "log")},
			Status:     appsv1.DeploymentStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2},
		}, []interface{}{"web", "2/3", int64(1), int64(2), "3d", "web,log", "registry.example/web:1,registry.example/log:1", "app=web"}},
		{"deployment scaled to zero, no selector", deploymentGVK, &appsv1.Deployment{
			ObjectMeta: objMeta("idle", time.Minute),
			Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(0)), Template: podTemplate("x")},
		}, []interface{}{"idle", "0/0", int64(0), int64(0), "60s", "x", "registry.example/x:1", ""}},
		{"deployment without replicas defaults to 1", deploymentGVK, &appsv1.Deployment{
			ObjectMeta: objMeta("one", time.Minute),
			Spec:       appsv1.DeploymentSpec{Selector: sel},
		}, []interface{}{"one", "0/1", int64(0), int64(0), "60s", "", "", "app=web"}},
		{"replicaset", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, &appsv1.ReplicaSet{
			ObjectMeta: objMeta("web-5d4f", 3*24*time.Hour),
			Spec:       appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Selector: sel, Template: podTemplate("web")},
			Status:     appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2},
		}, []interface{}{"web-5d4f", int64(3), int64(3), int64(2), "3d", "web", "registry.example/web:1", "app=web"}},
		{"daemonset", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, &appsv1.DaemonSet{
			ObjectMeta: objMeta("agent", 12*time.Hour),
			Spec: appsv1.DaemonSetSpec{Selector: sel, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: containers("agent"), NodeSelector: map[string]string{"kubernetes.io/os": "linux"}}}},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, CurrentNumberScheduled: 4, NumberReady: 3, UpdatedNumberScheduled: 2, NumberAvailable: 3},
		}, []interface{}{"agent", int64(4), int64(4), int64(3), int64(2), int64(3), "kubernetes.io/os=linux", "12h", "agent", "registry.example/agent:1", "app=web"}},
		{"daemonset without node selector", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, &appsv1.DaemonSet{
			ObjectMeta: objMeta("agent2", 12*time.Hour),
			Spec:       appsv1.DaemonSetSpec{Template: podTemplate("agent")},
		}, []interface{}{"agent2", int64(0), int64(0), int64(0), int64(0), int64(0), "<none>", "12h", "agent", "registry.example/agent:1", "<none>"}},
		{"statefulset", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, &appsv1.StatefulSet{
			ObjectMeta: objMeta("db", 12*time.Hour),
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr(int32(3)), Template: podTemplate("db")},
			Status:     appsv1.StatefulSetStatus{ReadyReplicas: 3},
		}, []interface{}{"db", "3/3", "12h", "db", "registry.example/db:1"}},
		{"job complete", jobGVK, &batchv1.Job{
			ObjectMeta: objMeta("pi", 2*time.Hour),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1)), Parallelism: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "abc"}}, Template: podTemplate("pi")},
			Status: batchv1.JobStatus{Succeeded: 1, StartTime: agoPtr(2 * time.Hour), CompletionTime: agoPtr(2*time.Hour - 47*time.Second),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue}, {Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}},
		}, []interface{}{"pi", "Complete", "1/1", "47s", "120m", "pi", "registry.example/pi:1", "batch.kubernetes.io/controller-uid=abc"}},
		{"job running", jobGVK, &batchv1.Job{
			ObjectMeta: objMeta("work", 6*time.Minute),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(5)), Parallelism: ptr(int32(2)), Template: podTemplate("w")},
			Status:     batchv1.JobStatus{Succeeded: 2, Active: 2, StartTime: agoPtr(5*time.Minute + 3*time.Second)},
		}, []interface{}{"work", "Running", "2/5", "5m3s", "6m", "w", "registry.example/w:1", "<none>"}},
		{"job work queue", jobGVK, &batchv1.Job{
			ObjectMeta: objMeta("queue", 6*time.Minute),
			Spec:       batchv1.JobSpec{Parallelism: ptr(int32(3)), Template: podTemplate("w")},
		}, []interface{}{"queue", "Running", "0/1 of 3", "", "6m", "w", "registry.example/w:1", "<none>"}},
		{"job failed", jobGVK, &batchv1.Job{
			ObjectMeta: objMeta("bad", 6*time.Minute),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1)), Template: podTemplate("w")},
			Status: batchv1.JobStatus{StartTime: agoPtr(6 * time.Minute),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue}, {Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}},
		}, []interface{}{"bad", "Failed", "0/1", "6m", "6m", "w", "registry.example/w:1", "<none>"}},
		{"job suspended", jobGVK, &batchv1.Job{
			ObjectMeta: objMeta("later", 6*time.Minute),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1)), Template: podTemplate("w")},
			Status:     batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}},
		}, []interface{}{"later", "Suspended", "0/1", "", "6m", "w", "registry.example/w:1", "<none>"}},
		{"job terminating", jobGVK, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "gone", CreationTimestamp: ago(6 * time.Minute), DeletionTimestamp: agoPtr(time.Second)},
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1)), Template: podTemplate("w")},
		}, []interface{}{"gone", "Terminating", "0/1", "", "6m", "w", "registry.example/w:1", "<none>"}},
		{"cronjob", schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}, &batchv1.CronJob{
			ObjectMeta: objMeta("nightly", 40*24*time.Hour),
			Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr(false),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate("backup")}}},
			Status: batchv1.CronJobStatus{LastScheduleTime: agoPtr(12 * time.Hour), Active: []corev1.ObjectReference{{Name: "nightly-1"}}},
		}, []interface{}{"nightly", "0 3 * * *", "<none>", "False", int64(1), "12h", "40d", "backup", "registry.example/backup:1", "<none>"}},
		{"cronjob never ran", schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}, &batchv1.CronJob{
			ObjectMeta: objMeta("hourly", time.Hour),
			Spec:       batchv1.CronJobSpec{Schedule: "@hourly", TimeZone: ptr("Etc/UTC")},
		}, []interface{}{"hourly", "@hourly", "Etc/UTC", "<unset>", int64(0), "<none>", "60m", "", "", "<none>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCells(t, convertOne(t, tt.kind, tt.obj), tt.want)
		})
	}
}

func TestSimpleKindCells(t *testing.T) {
	lbSvc := &corev1.Service{
		ObjectMeta: objMeta("edge", time.Hour),
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"},
			Ports: []corev1.ServicePort{{Port: 443, NodePort: 31443, Protocol: corev1.ProtocolTCP}}},
	}
	lbReady := lbSvc.DeepCopy()
	lbReady.Name = "edge2"
	lbReady.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.9"}, {Hostname: "lb.example.com"}}
	lbReady.Spec.ExternalIPs = []string{"203.0.113.1"}

	tests := []struct {
		name string
		kind schema.GroupVersionKind
		obj  runtime.Object
		want []interface{}
	}{
		{"namespace", schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "default", CreationTimestamp: ago(400 * 24 * time.Hour)},
			Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		}, []interface{}{"default", "Active", "400d"}},
		{"configmap", schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, &corev1.ConfigMap{
			ObjectMeta: objMeta("cfg", 5*time.Hour),
			Data:       map[string]string{"a": "1", "b": "2"},
			BinaryData: map[string][]byte{"c": {3}},
		}, []interface{}{"cfg", int64(3), "5h"}},
		{"secret", schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, &corev1.Secret{
			ObjectMeta: objMeta("tls", 5*time.Hour),
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"tls.crt": {1}, "tls.key": {2}},
		}, []interface{}{"tls", "kubernetes.io/tls", int64(2), "5h"}},
		{"serviceaccount", schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, &corev1.ServiceAccount{
			ObjectMeta: objMeta("default", 5*time.Hour),
		}, []interface{}{"default", int64(0), "5h"}},
		{"lease", schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}, &coordinationv1.Lease{
			ObjectMeta: objMeta("controller", 5*time.Hour),
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr("cp-0_1234")},
		}, []interface{}{"controller", "cp-0_1234", "5h"}},
		{"lease without holder", schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}, &coordinationv1.Lease{
			ObjectMeta: objMeta("free", 5*time.Hour),
		}, []interface{}{"free", "", "5h"}},
		{"controllerrevision", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ControllerRevision"}, &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: "ds-5d9f", CreationTimestamp: ago(time.Hour),
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ds", Controller: ptr(true)}}},
			Revision: 3,
		}, []interface{}{"ds-5d9f", "daemonset.apps/ds", int64(3), "60m"}},
		{"controllerrevision without controller", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ControllerRevision"}, &appsv1.ControllerRevision{
			ObjectMeta: objMeta("lone", time.Hour), Revision: 1,
		}, []interface{}{"lone", "<none>", int64(1), "60m"}},
		{"resourcequota", schema.GroupVersionKind{Version: "v1", Kind: "ResourceQuota"}, &corev1.ResourceQuota{
			ObjectMeta: objMeta("q", time.Hour),
			Status: corev1.ResourceQuotaStatus{
				Hard: corev1.ResourceList{"pods": resource.MustParse("10"), "requests.cpu": resource.MustParse("2"), "limits.memory": resource.MustParse("1Gi")},
				Used: corev1.ResourceList{"pods": resource.MustParse("3")},
			},
		}, []interface{}{"q", "60m", "pods: 3/10, requests.cpu: 0/2", "limits.memory: 0/1Gi"}},
		{"rolebinding", schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}, &rbacv1.RoleBinding{
			ObjectMeta: objMeta("rb", time.Hour),
			RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: "bob"}, {Kind: "User", Name: "eve"}, {Kind: "Group", Name: "ops"},
				{Kind: "ServiceAccount", Namespace: "kube-system", Name: "agent"}},
		}, []interface{}{"rb", "ClusterRole/view", "60m", "bob, eve", "ops", "kube-system/agent"}},
		{"runtimeclass", schema.GroupVersionKind{Group: "node.k8s.io", Version: "v1", Kind: "RuntimeClass"}, &nodev1.RuntimeClass{
			ObjectMeta: metav1.ObjectMeta{Name: "wasm", CreationTimestamp: ago(8 * time.Hour)},
			Handler:    "wasmtime",
		}, []interface{}{"wasm", "wasmtime", "8h"}},
		{"service clusterip", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, &corev1.Service{
			ObjectMeta: objMeta("kubernetes", 400*24*time.Hour),
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1"},
				Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}}},
		}, []interface{}{"kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP,53/UDP", "400d", "<none>"}},
		{"service headless with selector", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, &corev1.Service{
			ObjectMeta: objMeta("db", time.Hour),
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", Selector: map[string]string{"app": "db"}},
		}, []interface{}{"db", "ClusterIP", "None", "<none>", "<none>", "60m", "app=db"}},
		{"service loadbalancer pending", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, lbSvc,
			[]interface{}{"edge", "LoadBalancer", "10.96.0.20", "<pending>", "443:31443/TCP", "60m", "<none>"}},
		{"service loadbalancer ready", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, lbReady,
			[]interface{}{"edge2", "LoadBalancer", "10.96.0.20", "198.51.100.9,lb.example.com,203.0.113.1", "443:31443/TCP", "60m", "<none>"}},
		{"service externalname", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, &corev1.Service{
			ObjectMeta: objMeta("ext", time.Hour),
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"},
		}, []interface{}{"ext", "ExternalName", "<none>", "db.example.com", "<none>", "60m", "<none>"}},
		{"default table", schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "default", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)))},
		}, []interface{}{"reader", "2026-01-02T02:04:05Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCells(t, convertOne(t, tt.kind, tt.obj), tt.want)
		})
	}
}

func TestEventCells(t *testing.T) {
	coreGVK := schema.GroupVersionKind{Version: "v1", Kind: "Event"}
	eventsGVK := schema.GroupVersionKind{Group: "events.k8s.io", Version: "v1", Kind: "Event"}
	tests := []struct {
		name string
		kind schema.GroupVersionKind
		obj  runtime.Object
		want []interface{}
	}{
		{"core event with count", coreGVK, &corev1.Event{
			ObjectMeta:     objMeta("web-1.17a", time.Hour),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1", FieldPath: "spec.containers{web}"},
			Reason:         "BackOff", Type: corev1.EventTypeWarning, Message: "Back-off restarting failed container\n",
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-a"},
			FirstTimestamp: ago(time.Hour), LastTimestamp: ago(3 * time.Minute), Count: 12,
		}, []interface{}{"3m", "Warning", "BackOff", "pod/web-1", "spec.containers{web}", "kubelet, node-a", "Back-off restarting failed container", "60m", int64(12), "web-1.17a"}},
		{"core event new style", coreGVK, &corev1.Event{
			ObjectMeta:     objMeta("ns.1", time.Hour),
			InvolvedObject: corev1.ObjectReference{Kind: "Namespace"},
			Reason:         "Created", Type: corev1.EventTypeNormal, Message: "made",
			EventTime:           metav1.NewMicroTime(testNow.Add(-90 * time.Second)),
			ReportingController: "wasmfleet/controller", ReportingInstance: "cp-0",
		}, []interface{}{"90s", "Normal", "Created", "namespace", "", "wasmfleet/controller, cp-0", "made", "90s", int64(1), "ns.1"}},
		{"core event series", coreGVK, &corev1.Event{
			ObjectMeta:     objMeta("s.1", time.Hour),
			InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "n1"},
			Reason:         "Flap", Type: corev1.EventTypeNormal,
			EventTime:           metav1.NewMicroTime(testNow.Add(-time.Hour)),
			Series:              &corev1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(testNow.Add(-20 * time.Second))},
			ReportingController: "kubelet",
		}, []interface{}{"20s", "Normal", "Flap", "node/n1", "", "kubelet", "", "60m", int64(4), "s.1"}},
		{"events.k8s.io event", eventsGVK, &eventsv1.Event{
			ObjectMeta: objMeta("web.2", time.Hour),
			EventTime:  metav1.NewMicroTime(testNow.Add(-2 * time.Minute)),
			Regarding:  corev1.ObjectReference{Kind: "Deployment", Name: "web"},
			Reason:     "ScalingReplicaSet", Type: "Normal", Note: "Scaled up replica set web-5d4f to 3",
			ReportingController: "deployment-controller", ReportingInstance: "cp-0",
		}, []interface{}{"2m", "Normal", "ScalingReplicaSet", "deployment/web", "", "deployment-controller, cp-0", "Scaled up replica set web-5d4f to 3", "2m", int64(1), "web.2"}},
		{"event without times", coreGVK, &corev1.Event{
			ObjectMeta:     objMeta("odd", time.Hour),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p"},
		}, []interface{}{"<unknown>", "", "", "pod/p", "", "", "", "<unknown>", int64(1), "odd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCells(t, convertOne(t, tt.kind, tt.obj), tt.want)
		})
	}
}

func samplePod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("u-" + name), ResourceVersion: "42",
			Labels: map[string]string{"app": "web"}, CreationTimestamp: ago(time.Hour)},
		Spec:   corev1.PodSpec{NodeName: "node-a", Containers: containers("web")},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{running("web", 0)}},
	}
}

func rowJSON(t *testing.T, row metav1.TableRow) map[string]interface{} {
	t.Helper()
	b, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Object map[string]interface{} `json:"object"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Object
}

func TestIncludeObject(t *testing.T) {
	pod := samplePod("web-1")

	t.Run("default is Metadata", func(t *testing.T) {
		for _, include := range []string{"", "Metadata"} {
			table, err := Convert(podGVK, []runtime.Object{pod}, include, testNow)
			if err != nil {
				t.Fatal(err)
			}
			partial, ok := table.Rows[0].Object.Object.(*metav1.PartialObjectMetadata)
			if !ok {
				t.Fatalf("row object is %T", table.Rows[0].Object.Object)
			}
			if partial.Name != "web-1" || partial.UID != pod.UID || partial.Labels["app"] != "web" {
				t.Errorf("partial metadata %+v", partial.ObjectMeta)
			}
			obj := rowJSON(t, table.Rows[0])
			if obj["kind"] != "PartialObjectMetadata" || obj["apiVersion"] != "meta.k8s.io/v1" {
				t.Errorf("row object JSON kind/apiVersion: %v", obj)
			}
			if _, ok := obj["spec"]; ok {
				t.Errorf("metadata row carries spec: %v", obj)
			}
			md := obj["metadata"].(map[string]interface{})
			if md["name"] != "web-1" || md["namespace"] != "default" || md["resourceVersion"] != "42" {
				t.Errorf("row metadata JSON %v", md)
			}
		}
	})

	t.Run("None", func(t *testing.T) {
		table, err := Convert(podGVK, []runtime.Object{pod}, "None", testNow)
		if err != nil {
			t.Fatal(err)
		}
		if table.Rows[0].Object.Object != nil || table.Rows[0].Object.Raw != nil {
			t.Errorf("row object %+v", table.Rows[0].Object)
		}
		if obj := rowJSON(t, table.Rows[0]); obj != nil {
			t.Errorf("row object JSON %v", obj)
		}
	})

	t.Run("Object", func(t *testing.T) {
		table, err := Convert(podGVK, []runtime.Object{pod}, "Object", testNow)
		if err != nil {
			t.Fatal(err)
		}
		obj := rowJSON(t, table.Rows[0])
		if obj["kind"] != "Pod" || obj["apiVersion"] != "v1" {
			t.Errorf("row object JSON kind/apiVersion: %v", obj)
		}
		if spec, ok := obj["spec"].(map[string]interface{}); !ok || spec["nodeName"] != "node-a" {
			t.Errorf("row object spec %v", obj["spec"])
		}
		if !pod.GetObjectKind().GroupVersionKind().Empty() {
			t.Error("Convert set the caller's object's kind")
		}

		// An object that knows its kind is used as it is.
		withKind := samplePod("web-2")
		withKind.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		table, err = Convert(podGVK, []runtime.Object{withKind}, "Object", testNow)
		if err != nil {
			t.Fatal(err)
		}
		if table.Rows[0].Object.Object != withKind {
			t.Error("object with kind was copied")
		}
	})

	t.Run("bad value", func(t *testing.T) {
		_, err := Convert(podGVK, []runtime.Object{pod}, "Everything", testNow)
		var bad *BadIncludeObjectError
		if !errors.As(err, &bad) || bad.Value != "Everything" {
			t.Fatalf("err = %v", err)
		}
		if err.Error() != `unrecognized includeObject value: "Everything"` {
			t.Errorf("message %q", err)
		}
	})
}

func TestConvertInputs(t *testing.T) {
	t.Run("list objects are expanded", func(t *testing.T) {
		list := &corev1.PodList{Items: []corev1.Pod{*samplePod("a"), *samplePod("b")}}
		table, err := Convert(podGVK, []runtime.Object{list, samplePod("c")}, "", testNow)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range table.Rows {
			names = append(names, r.Cells[0].(string))
		}
		if strings.Join(names, ",") != "a,b,c" {
			t.Errorf("rows %v", names)
		}
	})

	t.Run("unstructured", func(t *testing.T) {
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(samplePod("u"))
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: raw}
		u.SetAPIVersion("v1")
		u.SetKind("Pod")
		table, err := Convert(podGVK, []runtime.Object{u}, "Object", testNow)
		if err != nil {
			t.Fatal(err)
		}
		checkCells(t, table.Rows[0].Cells, []interface{}{"u", "1/1", "Running", "0", "60m", "<none>", "node-a", "<none>", "<none>"})
		if table.Rows[0].Object.Object != u {
			t.Error("unstructured object with kind not used as it is")
		}
	})

	t.Run("wrong type", func(t *testing.T) {
		_, err := Convert(podGVK, []runtime.Object{&corev1.Node{}}, "", testNow)
		if err == nil || !strings.Contains(err.Error(), "*v1.Pod") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("nil object", func(t *testing.T) {
		if _, err := Convert(podGVK, []runtime.Object{nil}, "", testNow); err == nil {
			t.Error("no error")
		}
	})

	t.Run("JSON round trip", func(t *testing.T) {
		table, err := Convert(deploymentGVK, []runtime.Object{&appsv1.Deployment{
			ObjectMeta: objMeta("web", time.Hour), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2))},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}}}, "", testNow)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(table)
		if err != nil {
			t.Fatal(err)
		}
		var back metav1.Table
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Rows) != 1 || len(back.ColumnDefinitions) != 8 {
			t.Fatalf("decoded %+v", back)
		}
		if got := back.Rows[0].Cells; got[1] != "2/2" || got[2] != float64(2) {
			t.Errorf("decoded cells %#v", got)
		}
	})
}
