package nodelink_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/nodeagent"
)

// wantForbidden fails unless err is a 403 from the API server.
func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: %v, want 403 Forbidden", what, err)
		return
	}
	if msg := err.Error(); !strings.Contains(msg, "system:node:") {
		t.Errorf("%s: unclear message %q", what, msg)
	}
}

func TestNodeAPIOverNATS(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const node, other = "edge-1.site-a", "edge-2"

	// The agent joins as it does in production and connects with its
	// credentials and inbox prefix.
	creds, err := nodeagent.Join(ctx, c.url, c.token, node, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nc, errs, err := nodeConn(t, creds.JoinResponse, creds.NATSPassword)
	if err != nil {
		t.Fatal(err)
	}
	api, err := nodeagent.NewAPIClient(nc, node)
	if err != nil {
		t.Fatal(err)
	}
	admin := c.client

	// Node registration and status.
	n, err := api.CreateNode(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"kubernetes.io/hostname": node}}})
	if err != nil {
		t.Fatalf("register own Node: %v", err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}
	if _, err := api.UpdateNodeStatus(ctx, n); err != nil {
		t.Fatalf("update own Node status: %v", err)
	}
	if got, err := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err != nil || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Fatalf("admin sees node %+v %v", got.Status, err)
	}
	n, err = api.GetNode(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["example.com/site"] = "a"
	if _, err := api.UpdateNode(ctx, n); err != nil {
		t.Fatalf("update own Node: %v", err)
	}
	_, err = api.CreateNode(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: other}})
	wantForbidden(t, "create another node's Node", err)
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	theirs, err := api.GetNode(ctx, other) // reading nodes is allowed
	if err != nil {
		t.Fatalf("get another Node: %v", err)
	}
	theirs.Labels = map[string]string{"evil": "yes"}
	_, err = api.UpdateNode(ctx, theirs)
	wantForbidden(t, "update another node's Node", err)
	_, err = api.UpdateNodeStatus(ctx, theirs)
	wantForbidden(t, "update another node's status", err)
	code, _, err := api.Do(ctx, http.MethodDelete, "/api/v1/nodes/"+node, "", nil)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("delete own Node: %d %v", code, err)
	}

	// Lease: create and renew its own, not another's.
	now := metav1.NewMicroTime(time.Now())
	lease, err := api.CreateLease(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: "kube-node-lease"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr(node), LeaseDurationSeconds: ptr(int32(40)), RenewTime: &now}})
	if err != nil {
		t.Fatalf("create own lease: %v", err)
	}
	renew := metav1.NewMicroTime(now.Add(10 * time.Second).Truncate(time.Microsecond))
	lease.Spec.RenewTime = &renew
	if lease, err = api.UpdateLease(ctx, lease); err != nil {
		t.Fatalf("renew own lease: %v", err)
	}
	if got, err := admin.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{}); err != nil || got.Spec.RenewTime == nil || !got.Spec.RenewTime.Time.Equal(renew.Time) {
		t.Fatalf("admin sees lease %+v %v", got, err)
	}
	if _, err := api.GetLease(ctx, node); err != nil {
		t.Fatalf("get own lease: %v", err)
	}
	_, err = api.CreateLease(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: other, Namespace: "kube-node-lease"}})
	wantForbidden(t, "create another node's lease", err)
	if _, err := admin.CoordinationV1().Leases("kube-node-lease").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = api.UpdateLease(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: other, Namespace: "kube-node-lease"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr(node)}})
	wantForbidden(t, "update another node's lease", err)
	_, err = api.GetLease(ctx, other)
	wantForbidden(t, "get another node's lease", err)

	// Pods, with the secrets and configmaps they reference.
	for _, s := range []string{"referenced", "unreferenced", "theirs-secret"} {
		if _, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s}, StringData: map[string]string{"k": s}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"a": "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mine := boundPod("mine", node)
	mine.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "referenced"}, Key: "k"}}}}
	mine.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}}
	theirPod := boundPod("theirs", other)
	theirPod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "theirs-secret"}}}}
	for _, p := range []*corev1.Pod{mine, theirPod, boundPod("unbound", "")} {
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod, err := api.GetPod(ctx, "default", "mine")
	if err != nil {
		t.Fatalf("get own pod: %v", err)
	}
	list, err := api.ListPods(ctx)
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "mine" {
		t.Fatalf("list own pods: %v %v", list, err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	rv, err := api.UpdatePodStatus(ctx, pod)
	if err != nil {
		t.Fatalf("update own pod status: %v", err)
	}
	if got, err := admin.CoreV1().Pods("default").Get(ctx, "mine", metav1.GetOptions{}); err != nil || got.Status.Phase != corev1.PodRunning || got.ResourceVersion != rv {
		t.Fatalf("admin sees pod phase %q at resourceVersion %s (the update returned %q) %v", got.Status.Phase, got.ResourceVersion, rv, err)
	}
	for _, name := range []string{"theirs", "unbound"} {
		p, err := admin.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodFailed
		_, err = api.UpdatePodStatus(ctx, p)
		wantForbidden(t, "update status of pod "+name, err)
		_, err = api.GetPod(ctx, "default", name)
		wantForbidden(t, "get pod "+name, err)
		wantForbidden(t, "delete pod "+name, api.DeletePod(ctx, "default", name, ptr(int64(0)), ""))
	}
	patch := []byte(`{"status":{"phase":"Failed"}}`)
	code, body, err := api.Do(ctx, http.MethodPatch, "/api/v1/namespaces/default/pods/theirs/status", "application/merge-patch+json", patch)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("patch status of another node's pod: %d %s %v", code, body, err)
	}
	if p, _ := admin.CoreV1().Pods("default").Get(ctx, "theirs", metav1.GetOptions{}); p.Status.Phase != corev1.PodPending {
		t.Errorf("another node's pod changed: %q", p.Status.Phase)
	}
	for _, path := range []string{
		"/api/v1/pods",
		"/api/v1/namespaces/default/pods",
		"/api/v1/pods?fieldSelector=" + url.QueryEscape("spec.nodeName="+other),
	} {
		code, body, err := api.Do(ctx, http.MethodGet, path, "", nil)
		if err != nil || code != http.StatusForbidden {
			t.Errorf("GET %s: %d %s %v, want 403", path, code, body, err)
		}
	}

	// Only the secrets and configmaps its pods reference.
	if s, err := api.GetSecret(ctx, "default", "referenced"); err != nil || string(s.Data["k"]) != "referenced" {
		t.Errorf("get referenced secret: %v %v", s, err)
	}
	if cm, err := api.GetConfigMap(ctx, "default", "settings"); err != nil || cm.Data["a"] != "b" {
		t.Errorf("get referenced configmap: %v %v", cm, err)
	}
	for _, ref := range [][2]string{{"default", "unreferenced"}, {"default", "theirs-secret"}, {"kube-system", "wasmfleet-node-" + node}, {"default", "missing"}} {
		_, err := api.GetSecret(ctx, ref[0], ref[1])
		wantForbidden(t, "get secret "+ref[0]+"/"+ref[1], err)
	}
	code, body, err = api.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/secrets", "", nil)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("list secrets: %d %s %v", code, body, err)
	}

	// Everything else is forbidden.
	deploy := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`)
	code, body, err = api.Do(ctx, http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", "application/json", deploy)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("create deployment: %d %s %v", code, body, err)
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) != nil || st.Kind != "Status" || st.Reason != metav1.StatusReasonForbidden || !strings.Contains(st.Message, `"system:node:`+node+`"`) {
		t.Errorf("forbidden answer %s", body)
	}
	code, _, err = api.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", "application/json", []byte(`{"metadata":{"name":"x"}}`))
	if err != nil || code != http.StatusForbidden {
		t.Errorf("create pod: %d %v", code, err)
	}
	// Watches need a stream: refused over this transport.
	code, _, err = api.Do(ctx, http.MethodGet, "/api/v1/pods?watch=true&fieldSelector="+url.QueryEscape("spec.nodeName="+node), "", nil)
	if err != nil || code != http.StatusBadRequest {
		t.Errorf("watch: %d %v", code, err)
	}

	// Events in any namespace.
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "mine.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "mine", UID: pod.UID},
		Reason:         "Started", Message: "Started container main", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "wasmfleet-agent", Host: node}, Count: 1}
	if err := api.CreateEvent(ctx, ev); err != nil {
		t.Errorf("create event: %v", err)
	}
	if _, err := admin.CoreV1().Events("default").Get(ctx, "mine.1", metav1.GetOptions{}); err != nil {
		t.Errorf("admin sees event: %v", err)
	}

	// The final delete of its own pod.
	if err := api.DeletePod(ctx, "default", "mine", ptr(int64(0)), string(pod.UID)); err != nil {
		t.Errorf("delete own pod: %v", err)
	}
	if _, err := admin.CoreV1().Pods("default").Get(ctx, "mine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("own pod after delete: %v", err)
	}

	// NATS: a node cannot publish on another node's API subject.
	if err := nc.PublishRequest(nodelink.APISubject(other), nc.NewInbox(), []byte(`{"method":"GET","path":"/api/v1/nodes"}`)); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, errs, "publish", nodelink.APISubject(other))

	// Replies go only to the requesting node's inbox: a reply subject
	// elsewhere (another node's inbox, a node's pod subjects, a plain
	// inbox) gets nothing.
	adminURL, err := os.ReadFile(filepath.Join(c.dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	anc, err := nats.Connect(strings.TrimSpace(string(adminURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	spy, err := anc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := anc.Flush(); err != nil {
		t.Fatal(err)
	}
	req := []byte(`{"method":"GET","path":"/api/v1/nodes/` + node + `"}`)
	bad := []string{nodelink.InboxPrefix(other) + ".steal", "wasmfleet.nodes." + other + ".x", "_INBOX.plain", nodelink.InboxPrefix(node)}
	for _, reply := range bad {
		if err := nc.PublishRequest(nodelink.APISubject(node), reply, req); err != nil {
			t.Fatal(err)
		}
	}
	good := nodelink.InboxPrefix(node) + ".ok"
	if err := nc.PublishRequest(nodelink.APISubject(node), good, req); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case <-deadline:
			t.Fatal("no reply to the node's own inbox")
		default:
		}
		m, err := spy.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case m.Subject == good:
			var r nodelink.APIResponse
			if err := json.Unmarshal(m.Data, &r); err != nil || r.Code != http.StatusOK {
				t.Errorf("reply %s: %v", m.Data, err)
			}
			done = true
		case slices.Contains(bad, m.Subject):
			t.Errorf("reply sent to %s: %s", m.Subject, m.Data)
		}
	}
	// A request from the admin connection on node's subject runs as that
	// node, too — but only answers into the node's inbox.
	if _, err := anc.Request(nodelink.APISubject(node), req, time.Second); err == nil {
		t.Error("the service answered a request whose reply subject is not the node's inbox")
	}
}
