package tables

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// fakeAPIServer is the least an API server must answer for `kubectl get pods`:
// discovery (plain /api, /api/v1 and /apis, no aggregated discovery) and the
// pod list, as a Table when kubectl asks for one.
type fakeAPIServer struct {
	pods func(now time.Time) []runtime.Object

	mu       sync.Mutex
	requests []string // "METHOD path?query Accept"
}

func (s *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Accept"))
	s.mu.Unlock()

	writeJSON := func(code int, v interface{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Method != http.MethodGet {
		writeJSON(http.StatusMethodNotAllowed, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonMethodNotAllowed, Code: http.StatusMethodNotAllowed})
		return
	}
	switch r.URL.Path {
	case "/version":
		writeJSON(http.StatusOK, map[string]string{"major": "1", "minor": "32", "gitVersion": "v1.32.4", "platform": "linux/amd64"})
	case "/api":
		writeJSON(http.StatusOK, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	case "/apis":
		writeJSON(http.StatusOK, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}})
	case "/api/v1":
		verbs := metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
		writeJSON(http.StatusOK, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1",
			APIResources: []metav1.APIResource{
				{Name: "nodes", SingularName: "node", Kind: "Node", Verbs: verbs, ShortNames: []string{"no"}},
				{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", Verbs: verbs, ShortNames: []string{"po"}, Categories: []string{"all"}},
			}})
	case "/api/v1/nodes":
		now := time.Now()
		table, err := Convert(nodeGVK, kubectlNodes(now), r.URL.Query().Get("includeObject"), now)
		if err != nil {
			writeJSON(http.StatusBadRequest, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonBadRequest, Message: err.Error(), Code: http.StatusBadRequest})
			return
		}
		writeJSON(http.StatusOK, table)
	case "/api/v1/namespaces/default/pods", "/api/v1/pods":
		now := time.Now()
		if !strings.Contains(r.Header.Get("Accept"), "as=Table") {
			list := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "7"}}
			for _, o := range s.pods(now) {
				list.Items = append(list.Items, *o.(*corev1.Pod))
			}
			writeJSON(http.StatusOK, list)
			return
		}
		table, err := Convert(podGVK, s.pods(now), r.URL.Query().Get("includeObject"), now)
		if err != nil {
			writeJSON(http.StatusBadRequest, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonBadRequest, Message: err.Error(), Code: http.StatusBadRequest})
			return
		}
		table.ResourceVersion = "7"
		writeJSON(http.StatusOK, table)
	default:
		writeJSON(http.StatusNotFound, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource", Code: http.StatusNotFound})
	}
}

func (s *fakeAPIServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.requests, "\n")
}

// kubectlPods are a running pod and a crash-looping one, with times chosen so
// that their printed ages do not change for a good while.
func kubectlPods(now time.Time) []runtime.Object {
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	web := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9c", Namespace: "default", UID: "1111", ResourceVersion: "5",
			Labels: map[string]string{"app": "web"}, CreationTimestamp: at(50 * time.Hour)},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.5", PodIPs: []corev1.PodIP{{IP: "10.244.1.5"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, Started: ptr(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(50 * time.Hour)}}}}},
	}
	worker := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-0", Namespace: "default", UID: "2222", ResourceVersion: "6",
			Labels: map[string]string{"app": "worker"}, CreationTimestamp: at(50 * time.Hour)},
		Spec: corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "worker", Image: "registry.example/worker:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.9", PodIPs: []corev1.PodIP{{IP: "10.244.0.9"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "worker", RestartCount: 5,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: at(26 * time.Hour)}}}}},
	}
	return []runtime.Object{web, worker}
}

func kubectlNodes(now time.Time) []runtime.Object {
	created := metav1.NewTime(now.Add(-30 * 24 * time.Hour))
	a := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "n-a", CreationTimestamp: created,
			Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.1"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian 13", KernelVersion: "6.12.0", ContainerRuntimeVersion: "wasmfleet://0.1.0"},
		},
	}
	b := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-b", UID: "n-b", CreationTimestamp: created},
		Spec:       corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.2"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
	return []runtime.Object{a, b}
}

// TestKubectlGet runs the real kubectl against a server answering with
// Convert's Tables and checks that it prints exactly what it prints against
// kube-apiserver.
func TestKubectlGet(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kubectl is not on PATH: %v", err)
		}
		t.Skipf("kubectl is not on PATH: %v", err)
	}

	api := &fakeAPIServer{pods: kubectlPods}
	srv := httptest.NewServer(api) // listens on 127.0.0.1
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want 127.0.0.1", srv.URL)
	}

	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	config := `apiVersion: v1
kind: Config
clusters:
- name: wasmfleet
  cluster:
    server: ` + srv.URL + `
contexts:
- name: wasmfleet
  context:
    cluster: wasmfleet
    user: tester
    namespace: default
current-context: wasmfleet
users:
- name: tester
  user: {}
`
	if err := os.WriteFile(kubeconfig, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, args...)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"KUBECONFIG=" + kubeconfig,
			"KUBECACHEDIR=" + filepath.Join(home, "cache"),
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl %s: %v\nstderr:\n%s\nrequests:\n%s", strings.Join(args, " "), err, stderr.String(), api.log())
		}
		return string(out)
	}

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "pods"},
			"NAME         READY   STATUS             RESTARTS      AGE\n" +
				"web-7d4b9c   1/1     Running            0             2d2h\n" +
				"worker-0     0/1     CrashLoopBackOff   5 (26h ago)   2d2h\n"},
		{[]string{"get", "pods", "-o", "wide"},
			"NAME         READY   STATUS             RESTARTS      AGE    IP           NODE     NOMINATED NODE   READINESS GATES\n" +
				"web-7d4b9c   1/1     Running            0             2d2h   10.244.1.5   node-a   <none>           <none>\n" +
				"worker-0     0/1     CrashLoopBackOff   5 (26h ago)   2d2h   10.244.0.9   node-b   <none>           <none>\n"},
		// --show-labels reads the labels from each row's PartialObjectMetadata.
		{[]string{"get", "pods", "--show-labels"},
			"NAME         READY   STATUS             RESTARTS      AGE    LABELS\n" +
				"web-7d4b9c   1/1     Running            0             2d2h   app=web\n" +
				"worker-0     0/1     CrashLoopBackOff   5 (26h ago)   2d2h   app=worker\n"},
		// --sort-by asks for includeObject=Object and reads the whole objects
		// (worker-0 has the lower IP).
		{[]string{"get", "pods", "--sort-by=.status.podIP", "--no-headers"},
			"worker-0     0/1   CrashLoopBackOff   5 (26h ago)   2d2h\n" +
				"web-7d4b9c   1/1   Running            0             2d2h\n"},
		// -A adds NAMESPACE, read from each row's PartialObjectMetadata.
		{[]string{"get", "pods", "-A"},
			"NAMESPACE   NAME         READY   STATUS             RESTARTS      AGE\n" +
				"default     web-7d4b9c   1/1     Running            0             2d2h\n" +
				"default     worker-0     0/1     CrashLoopBackOff   5 (26h ago)   2d2h\n"},
		{[]string{"get", "nodes"},
			"NAME     STATUS                        ROLES           AGE   VERSION\n" +
				"node-a   Ready                         control-plane   30d   v1.37.2\n" +
				"node-b   NotReady,SchedulingDisabled   <none>          30d   v1.37.2\n"},
		{[]string{"get", "nodes", "-o", "wide"},
			"NAME     STATUS                        ROLES           AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE    KERNEL-VERSION   CONTAINER-RUNTIME\n" +
				"node-a   Ready                         control-plane   30d   v1.37.2   192.0.2.1     <none>        Debian 13   6.12.0           wasmfleet://0.1.0\n" +
				"node-b   NotReady,SchedulingDisabled   <none>          30d   v1.37.2   192.0.2.2     <none>        <unknown>   <unknown>        <unknown>\n"},
	}
	for _, tt := range tests {
		got := run(tt.args...)
		t.Logf("kubectl %s:\n%s", strings.Join(tt.args, " "), got)
		if got != tt.want {
			t.Errorf("kubectl %s printed\n%s\nwant\n%s\nrequests:\n%s", strings.Join(tt.args, " "), got, tt.want, api.log())
		}
	}

	// kubectl must have been answered with Tables, and have asked for the
	// whole objects only when sorting.
	log := api.log()
	t.Logf("requests:\n%s", log)
	var listed, sorted int
	for _, line := range strings.Split(log, "\n") {
		if !strings.HasPrefix(line, "GET /api/v1/namespaces/default/pods?") && !strings.HasPrefix(line, "GET /api/v1/pods?") &&
			!strings.HasPrefix(line, "GET /api/v1/nodes?") {
			continue
		}
		listed++
		if !strings.Contains(line, "as=Table;v=v1;g=meta.k8s.io") {
			t.Errorf("list request without a Table Accept: %s", line)
		}
		if strings.Contains(line, "includeObject=Object") {
			sorted++
		}
	}
	if listed != len(tests) || sorted != 1 {
		t.Errorf("%d list requests, %d with includeObject=Object; requests:\n%s", listed, sorted, log)
	}
}
