package apiserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	autoscalingv1ac "k8s.io/client-go/applyconfigurations/autoscaling/v1"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// This file proves the API server's Kubernetes semantics with the real
// client-go against a real etcd: server-set fields, subresources,
// optimistic concurrency, deletion, watches, informers and pagination.

// guard bounds every wait in these tests. It is a hang detector, not a
// timing assertion: nothing here should come close to it.
const guard = 60 * time.Second

const testNS = "default"

func semPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "sem"}},
		Spec: corev1.PodSpec{
			RuntimeClassName: ptr.To("wasm"),
			Containers:       []corev1.Container{{Name: "main", Image: "hello:v1"}},
		},
	}
}

func semDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RuntimeClassName: ptr.To("wasm"),
					Containers:       []corev1.Container{{Name: "main", Image: "hello:v1"}},
				},
			},
		},
	}
}

func semConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"n": "0"}}
}

// etcdKV reads key straight from etcd; ok is false when it is absent.
func etcdKV(t *testing.T, c *cluster, key string) (modRev int64, value []byte, ok bool) {
	t.Helper()
	resp, err := c.etcd.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("etcd get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil, false
	}
	return resp.Kvs[0].ModRevision, resp.Kvs[0].Value, true
}

// etcdRevision is etcd's current revision: it moves on every write.
func etcdRevision(t *testing.T, c *cluster) int64 {
	t.Helper()
	resp, err := c.etcd.Get(t.Context(), "/registry/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("etcd revision: %v", err)
	}
	return resp.Header.Revision
}

// checkStored asserts that obj's resourceVersion is the etcd mod revision
// of key and that the stored value is JSON without a resourceVersion.
func checkStored(t *testing.T, c *cluster, key string, obj metav1.Object) {
	t.Helper()
	rev, value, ok := etcdKV(t, c, key)
	if !ok {
		t.Fatalf("%s: not in etcd", key)
	}
	if got := obj.GetResourceVersion(); got != strconv.FormatInt(rev, 10) {
		t.Errorf("%s: resourceVersion %q, etcd mod revision %d", key, got, rev)
	}
	var stored struct {
		Kind     string         `json:"kind"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(value, &stored); err != nil {
		t.Fatalf("%s: stored value is not JSON: %v\n%s", key, err, value)
	}
	if _, has := stored.Metadata["resourceVersion"]; has {
		t.Errorf("%s: stored value carries a resourceVersion: %s", key, value)
	}
	if stored.Metadata["name"] != obj.GetName() || stored.Metadata["uid"] != string(obj.GetUID()) {
		t.Errorf("%s: stored metadata %v does not match the object %s/%s", key, stored.Metadata, obj.GetName(), obj.GetUID())
	}
}

func checkCreated(t *testing.T, obj metav1.Object, wantGeneration int64) {
	t.Helper()
	if obj.GetUID() == "" {
		t.Errorf("%s: no uid", obj.GetName())
	}
	if ts := obj.GetCreationTimestamp(); ts.IsZero() {
		t.Errorf("%s: no creationTimestamp", obj.GetName())
	}
	if obj.GetGeneration() != wantGeneration {
		t.Errorf("%s: generation %d, want %d", obj.GetName(), obj.GetGeneration(), wantGeneration)
	}
}

func TestServerSetFields(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)

	in := semPod("fields")
	in.UID = "client-chosen"
	in.Generation = 7
	pod, err := pods.Create(ctx, in, metav1.CreateOptions{})
	must(t, err)
	checkCreated(t, pod, 1)
	if pod.UID == "client-chosen" {
		t.Errorf("uid taken from the client")
	}
	checkStored(t, c, "/registry/pods/default/fields", pod)

	// A label change is not a spec change.
	pod.Labels["extra"] = "yes"
	pod, err = pods.Update(ctx, pod, metav1.UpdateOptions{})
	must(t, err)
	if pod.Generation != 1 {
		t.Errorf("generation after a label change: %d, want 1", pod.Generation)
	}
	checkStored(t, c, "/registry/pods/default/fields", pod)

	// Nor is a status change.
	pod.Status.Phase = corev1.PodRunning
	pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	must(t, err)
	if pod.Generation != 1 || pod.Status.Phase != corev1.PodRunning {
		t.Errorf("after UpdateStatus: generation %d phase %s, want 1 Running", pod.Generation, pod.Status.Phase)
	}
	checkStored(t, c, "/registry/pods/default/fields", pod)

	// The uid is a precondition: an update naming another one is refused
	// (409, as Kubernetes does) instead of landing on whatever holds the
	// name.
	uid, created := pod.UID, pod.CreationTimestamp
	before := etcdRevision(t, c)
	other := pod.DeepCopy()
	other.UID = "changed"
	if _, err := pods.Update(ctx, other, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update with another uid: %v, want 409 Conflict", err)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("a refused update wrote to etcd")
	}

	// A spec change bumps the generation; creationTimestamp and a
	// missing uid are taken from the stored object.
	pod.Spec.Containers[0].Image = "hello:v2"
	pod.UID = ""
	pod.CreationTimestamp = metav1.NewTime(created.Add(-time.Hour))
	pod, err = pods.Update(ctx, pod, metav1.UpdateOptions{})
	must(t, err)
	if pod.Generation != 2 {
		t.Errorf("generation after a spec change: %d, want 2", pod.Generation)
	}
	if pod.UID != uid || !pod.CreationTimestamp.Equal(&created) {
		t.Errorf("update changed server-owned metadata: uid %s→%s, created %v→%v", uid, pod.UID, created, pod.CreationTimestamp)
	}
	checkStored(t, c, "/registry/pods/default/fields", pod)

	// As in Kubernetes, only a delete starts a deletion: an update that
	// sets deletionTimestamp or deletionGracePeriodSeconds is invalid.
	before = etcdRevision(t, c)
	for what, set := range map[string]func(*corev1.Pod){
		"deletionTimestamp":          func(p *corev1.Pod) { p.DeletionTimestamp = &created },
		"deletionGracePeriodSeconds": func(p *corev1.Pod) { p.DeletionGracePeriodSeconds = new(int64(5)) },
	} {
		deleting := pod.DeepCopy()
		set(deleting)
		_, err := pods.Update(ctx, deleting, metav1.UpdateOptions{})
		if st := (apierrors.APIStatus)(nil); !errors.As(err, &st) || !apierrors.IsInvalid(err) ||
			len(st.Status().Details.Causes) != 1 || st.Status().Details.Causes[0].Field != "metadata."+what {
			t.Errorf("update setting %s: %v, want 422 on metadata.%s", what, err, what)
		}
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("a refused update wrote to etcd")
	}

	// Deployments the same way.
	deps := c.client.AppsV1().Deployments(testNS)
	d, err := deps.Create(ctx, semDeployment("web"), metav1.CreateOptions{})
	must(t, err)
	checkCreated(t, d, 1)
	checkStored(t, c, "/registry/deployments/default/web", d)
	d.Labels = map[string]string{"tier": "front"}
	d, err = deps.Update(ctx, d, metav1.UpdateOptions{})
	must(t, err)
	d.Status.ObservedGeneration, d.Status.Replicas = 1, 1
	d, err = deps.UpdateStatus(ctx, d, metav1.UpdateOptions{})
	must(t, err)
	if d.Generation != 1 {
		t.Errorf("deployment generation after label and status changes: %d, want 1", d.Generation)
	}
	d.Spec.Replicas = ptr.To[int32](3)
	d, err = deps.Update(ctx, d, metav1.UpdateOptions{})
	must(t, err)
	if d.Generation != 2 {
		t.Errorf("deployment generation after a spec change: %d, want 2", d.Generation)
	}
	checkStored(t, c, "/registry/deployments/default/web", d)

	// Cluster-scoped: /registry/nodes/NAME. Nodes have no generation, as
	// in Kubernetes.
	node, err := c.client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}}, metav1.CreateOptions{})
	must(t, err)
	checkCreated(t, node, 0)
	checkStored(t, c, "/registry/nodes/edge-1", node)

	// Nor have kinds without a spec.
	cm, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, semConfigMap("plain"), metav1.CreateOptions{})
	must(t, err)
	checkCreated(t, cm, 0)
	checkStored(t, c, "/registry/configmaps/default/plain", cm)

	// A GET answers the same resourceVersion.
	got, err := pods.Get(ctx, "fields", metav1.GetOptions{})
	must(t, err)
	if got.ResourceVersion != pod.ResourceVersion {
		t.Errorf("GET resourceVersion %s, update answered %s", got.ResourceVersion, pod.ResourceVersion)
	}
}

func TestStatusSubresource(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()

	// Dynamic kubelet configuration is gone from Kubernetes: its fields
	// are dropped on create, and on update unless the node had them.
	t.Run("node config source dropped", func(t *testing.T) {
		nodes := c.client.CoreV1().Nodes()
		src := &corev1.NodeConfigSource{ConfigMap: &corev1.ConfigMapNodeConfigSource{Namespace: "kube-system", Name: "kubelet", KubeletConfigKey: "kubelet"}}
		n, err := nodes.Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "configured"},
			Spec:       corev1.NodeSpec{ConfigSource: src},
			Status:     corev1.NodeStatus{Config: &corev1.NodeConfigStatus{Error: "old"}},
		}, metav1.CreateOptions{})
		must(t, err)
		if n.Spec.ConfigSource != nil || n.Status.Config != nil {
			t.Errorf("created node keeps configSource %v, status.config %v", n.Spec.ConfigSource, n.Status.Config)
		}
		n.Spec.ConfigSource = src
		n, err = nodes.Update(ctx, n, metav1.UpdateOptions{})
		must(t, err)
		n.Status.Config = &corev1.NodeConfigStatus{Error: "new"}
		n, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		must(t, err)
		if n.Spec.ConfigSource != nil || n.Status.Config != nil {
			t.Errorf("updated node keeps configSource %v, status.config %v", n.Spec.ConfigSource, n.Status.Config)
		}
	})

	t.Run("pods", func(t *testing.T) {
		pods := c.client.CoreV1().Pods(testNS)
		pod, err := pods.Create(ctx, semPod("st"), metav1.CreateOptions{})
		must(t, err)
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("new pod phase %q, want Pending", pod.Status.Phase)
		}
		// UpdateStatus ignores the spec and the owner references, and
		// takes the labels and annotations, as Kubernetes' pods/status.
		pod.Spec.Containers[0].Image = "changed:v9"
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "0c9e1d52-0000-4000-8000-000000000001"}}
		pod.Labels["via"] = "status"
		pod.Annotations = map[string]string{"via": "status"}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.Message = "up"
		pod, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		must(t, err)
		if pod.Spec.Containers[0].Image != "hello:v1" || len(pod.OwnerReferences) != 0 {
			t.Errorf("UpdateStatus changed the object: image %q owners %v", pod.Spec.Containers[0].Image, pod.OwnerReferences)
		}
		if pod.Labels["via"] != "status" || pod.Annotations["via"] != "status" {
			t.Errorf("UpdateStatus lost the metadata: labels %v annotations %v", pod.Labels, pod.Annotations)
		}
		if pod.Status.Phase != corev1.PodRunning || pod.Status.Message != "up" {
			t.Errorf("UpdateStatus lost the status: %+v", pod.Status)
		}
		// Update ignores the status.
		pod.Status.Phase = corev1.PodFailed
		pod.Status.Message = "spoofed"
		pod.Labels["via"] = "update"
		pod, err = pods.Update(ctx, pod, metav1.UpdateOptions{})
		must(t, err)
		if pod.Status.Phase != corev1.PodRunning || pod.Status.Message != "up" {
			t.Errorf("Update changed the status: %+v", pod.Status)
		}
		if pod.Labels["via"] != "update" {
			t.Errorf("Update lost the label change: %v", pod.Labels)
		}
		got, err := pods.Get(ctx, "st", metav1.GetOptions{})
		must(t, err)
		if got.Status.Phase != corev1.PodRunning || got.Spec.Containers[0].Image != "hello:v1" {
			t.Errorf("stored pod: phase %s image %s", got.Status.Phase, got.Spec.Containers[0].Image)
		}
	})

	t.Run("deployments", func(t *testing.T) {
		deps := c.client.AppsV1().Deployments(testNS)
		in := semDeployment("st")
		in.Status.Replicas = 42 // dropped on create
		d, err := deps.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
		if d.Status.Replicas != 0 {
			t.Errorf("create kept the status: %+v", d.Status)
		}
		// As Kubernetes' deployments/status: not the spec nor the labels,
		// but the annotations.
		d.Spec.Replicas = ptr.To[int32](5)
		d.Labels = map[string]string{"via": "status"}
		d.Annotations = map[string]string{"via": "status"}
		d.Status.Replicas, d.Status.ReadyReplicas = 3, 2
		d, err = deps.UpdateStatus(ctx, d, metav1.UpdateOptions{})
		must(t, err)
		if *d.Spec.Replicas != 1 || d.Generation != 1 || d.Labels["via"] != "" {
			t.Errorf("UpdateStatus changed the spec or labels: replicas %d generation %d labels %v", *d.Spec.Replicas, d.Generation, d.Labels)
		}
		if d.Annotations["via"] != "status" {
			t.Errorf("UpdateStatus lost the annotations: %v", d.Annotations)
		}
		if d.Status.Replicas != 3 || d.Status.ReadyReplicas != 2 {
			t.Errorf("UpdateStatus lost the status: %+v", d.Status)
		}
		d.Spec.Replicas = ptr.To[int32](2)
		d.Status.Replicas = 9
		d, err = deps.Update(ctx, d, metav1.UpdateOptions{})
		must(t, err)
		if *d.Spec.Replicas != 2 || d.Generation != 2 {
			t.Errorf("Update lost the spec: replicas %d generation %d", *d.Spec.Replicas, d.Generation)
		}
		if d.Status.Replicas != 3 {
			t.Errorf("Update changed the status: %+v", d.Status)
		}
	})
}

// TestGenerationOnlyWhereKubernetesSetsIt: namespaces, services and leases
// get no metadata.generation, also when their spec changes.
func TestGenerationOnlyWhereKubernetesSetsIt(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	ns, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gen"}}, metav1.CreateOptions{})
	must(t, err)
	svc, err := c.client.CoreV1().Services(testNS).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "gen"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	must(t, err)
	lease, err := c.client.CoordinationV1().Leases(testNS).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "gen"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a")}}, metav1.CreateOptions{})
	must(t, err)
	lease.Spec.HolderIdentity = ptr.To("b")
	lease, err = c.client.CoordinationV1().Leases(testNS).Update(ctx, lease, metav1.UpdateOptions{})
	must(t, err)
	svc.Spec.Ports[0].Port = 81
	svc, err = c.client.CoreV1().Services(testNS).Update(ctx, svc, metav1.UpdateOptions{})
	must(t, err)
	if ns.Generation != 0 || svc.Generation != 0 || lease.Generation != 0 {
		t.Errorf("generations: namespace %d, service %d, lease %d; want none", ns.Generation, svc.Generation, lease.Generation)
	}
}

// TestPatchCannotMoveNamespace: a patch that changes metadata.namespace
// gets 400, as from Kubernetes, and writes nothing.
func TestPatchCannotMoveNamespace(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	_, err := cms.Create(ctx, semConfigMap("stay"), metav1.CreateOptions{})
	must(t, err)
	before := etcdRevision(t, c)
	_, err = cms.Patch(ctx, "stay", types.MergePatchType, []byte(`{"metadata":{"namespace":"kube-system"},"data":{"k":"moved"}}`), metav1.PatchOptions{})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "does not match the namespace sent on the request") {
		t.Errorf("patching the namespace: %v, want 400", err)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("the refused patch wrote: revision %d → %d", before, after)
	}
}

func TestOptimisticConcurrency(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)

	t.Run("stale update conflicts", func(t *testing.T) {
		cm, err := cms.Create(ctx, semConfigMap("stale"), metav1.CreateOptions{})
		must(t, err)
		fresh := cm.DeepCopy()
		fresh.Data["n"] = "1"
		_, err = cms.Update(ctx, fresh, metav1.UpdateOptions{})
		must(t, err)
		before := etcdRevision(t, c)
		cm.Data["n"] = "lost"
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			t.Fatalf("stale update: %v, want 409 Conflict", err)
		}
		if after := etcdRevision(t, c); after != before {
			t.Errorf("a conflicting update wrote to etcd: revision %d → %d", before, after)
		}
		// The same with a merge patch carrying the stale resourceVersion.
		patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"data":{"n":"lost"}}`, cm.ResourceVersion)
		_, err = cms.Patch(ctx, "stale", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if !apierrors.IsConflict(err) {
			t.Fatalf("stale patch: %v, want 409 Conflict", err)
		}
		got, err := cms.Get(ctx, "stale", metav1.GetOptions{})
		must(t, err)
		if got.Data["n"] != "1" {
			t.Errorf("value %q, want 1", got.Data["n"])
		}
	})

	const workers, each = 32, 20
	// Contention between 32 writers can take many rounds; the backoff
	// only spreads them out.
	backoff := wait.Backoff{Steps: 100000, Duration: 5 * time.Millisecond, Factor: 1, Jitter: 3}
	hammer := func(t *testing.T, name string, increment func(ctx context.Context) error) {
		t.Helper()
		_, err := cms.Create(ctx, semConfigMap(name), metav1.CreateOptions{})
		must(t, err)
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			errs      []error
			conflicts int
		)
		for range workers {
			wg.Go(func() {
				for range each {
					err := retry.RetryOnConflict(backoff, func() error {
						err := increment(ctx)
						if apierrors.IsConflict(err) {
							mu.Lock()
							conflicts++
							mu.Unlock()
						}
						return err
					})
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		got, err := cms.Get(ctx, name, metav1.GetOptions{})
		must(t, err)
		t.Logf("%d increments, %d conflicts retried", workers*each, conflicts)
		if got.Data["n"] != strconv.Itoa(workers*each) {
			t.Errorf("counter %s, want %d: updates were lost", got.Data["n"], workers*each)
		}
		if conflicts == 0 {
			t.Logf("no conflicts happened; the test did not exercise the race")
		}
	}

	t.Run("no lost update: get+update", func(t *testing.T) {
		hammer(t, "counter-update", func(ctx context.Context) error {
			cm, err := cms.Get(ctx, "counter-update", metav1.GetOptions{})
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(cm.Data["n"])
			if err != nil {
				return err
			}
			cm.Data["n"] = strconv.Itoa(n + 1)
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
			return err
		})
	})

	t.Run("no lost update: merge patch with resourceVersion", func(t *testing.T) {
		hammer(t, "counter-patch", func(ctx context.Context) error {
			cm, err := cms.Get(ctx, "counter-patch", metav1.GetOptions{})
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(cm.Data["n"])
			if err != nil {
				return err
			}
			patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q},"data":{"n":"%d"}}`, cm.ResourceVersion, n+1)
			_, err = cms.Patch(ctx, "counter-patch", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		})
	})
}

// deleteCode deletes through the REST client and returns the HTTP status.
func deleteCode(t *testing.T, c *cluster, resource, name string, opts metav1.DeleteOptions) int {
	t.Helper()
	var code int
	res := c.client.CoreV1().RESTClient().Delete().Namespace(testNS).Resource(resource).Name(name).Body(&opts).Do(t.Context())
	res.StatusCode(&code)
	if err := res.Error(); err != nil {
		t.Fatalf("delete %s/%s: %v", resource, name, err)
	}
	return code
}

func TestDeletion(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cms := c.client.CoreV1().ConfigMaps(testNS)
	pods := c.client.CoreV1().Pods(testNS)

	t.Run("finalizer holds the object", func(t *testing.T) {
		in := semConfigMap("held")
		in.Finalizers = []string{"example.com/hold"}
		_, err := cms.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
		if code := deleteCode(t, c, "configmaps", "held", metav1.DeleteOptions{}); code != http.StatusAccepted && code != http.StatusOK {
			t.Errorf("delete answered %d, want 202 or 200", code)
		}
		cm, err := cms.Get(ctx, "held", metav1.GetOptions{})
		must(t, err)
		if cm.DeletionTimestamp == nil {
			t.Fatalf("no deletionTimestamp after delete")
		}
		// Deleting again changes nothing and writes nothing.
		before := etcdRevision(t, c)
		deleteCode(t, c, "configmaps", "held", metav1.DeleteOptions{})
		again, err := cms.Get(ctx, "held", metav1.GetOptions{})
		must(t, err)
		if !again.DeletionTimestamp.Equal(cm.DeletionTimestamp) || again.ResourceVersion != cm.ResourceVersion {
			t.Errorf("second delete changed the object: deletionTimestamp %v → %v, resourceVersion %s → %s",
				cm.DeletionTimestamp, again.DeletionTimestamp, cm.ResourceVersion, again.ResourceVersion)
		}
		if after := etcdRevision(t, c); after != before {
			t.Errorf("second delete wrote to etcd: revision %d → %d", before, after)
		}
		// Finalizers cannot be added once deletion started: 422, as
		// Kubernetes, whether added or put in place of another one
		// (which would otherwise delete the object).
		for _, fins := range [][]string{{"example.com/hold", "example.com/late"}, {"example.com/late"}} {
			again.Finalizers = fins
			_, err := cms.Update(ctx, again, metav1.UpdateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "no new finalizers can be added if the object is being deleted") {
				t.Errorf("adding a finalizer to an object being deleted (%v): %v, want 422", fins, err)
			}
			got, err := cms.Get(ctx, "held", metav1.GetOptions{})
			must(t, err)
			if !slices.Equal(got.Finalizers, []string{"example.com/hold"}) {
				t.Errorf("finalizers %v after a refused update", got.Finalizers)
			}
		}
		cm, err = cms.Get(ctx, "held", metav1.GetOptions{})
		must(t, err)
		cm.Finalizers = nil
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		must(t, err)
		if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after removing the last finalizer: %v, want NotFound", err)
		}
		if _, _, ok := etcdKV(t, c, "/registry/configmaps/default/held"); ok {
			t.Errorf("still in etcd")
		}
	})

	t.Run("bound pod is deleted gracefully", func(t *testing.T) {
		in := semPod("bound")
		in.Spec.NodeName = "edge-1"
		_, err := pods.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
		if code := deleteCode(t, c, "pods", "bound", metav1.DeleteOptions{}); code != http.StatusAccepted && code != http.StatusOK {
			t.Errorf("delete answered %d", code)
		}
		pod, err := pods.Get(ctx, "bound", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("bound pod gone after a graceful delete: %v", err)
		}
		if pod.DeletionTimestamp == nil || pod.DeletionGracePeriodSeconds == nil || *pod.DeletionGracePeriodSeconds != 30 {
			t.Fatalf("deletionTimestamp %v gracePeriod %v, want set and 30", pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds)
		}
		must(t, pods.Delete(ctx, "bound", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
		if _, err := pods.Get(ctx, "bound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after a delete with grace 0: %v, want NotFound", err)
		}
	})

	// As kube-apiserver, whose pod strategy makes every pod deletion
	// graceful: a pod deleted without grace is first written terminating
	// (deletionTimestamp, grace 0), then removed. Other kinds go at once.
	t.Run("pod deleted without grace is marked then removed", func(t *testing.T) {
		for _, tc := range []struct {
			name, node string
			grace      *int64
		}{
			{"forced", "edge-1", ptr.To[int64](0)},
			{"unscheduled", "", nil},
		} {
			in := semPod(tc.name)
			in.Spec.NodeName = tc.node
			created, err := pods.Create(ctx, in, metav1.CreateOptions{})
			must(t, err)
			w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: created.ResourceVersion, FieldSelector: "metadata.name=" + tc.name})
			must(t, err)
			must(t, pods.Delete(ctx, tc.name, metav1.DeleteOptions{GracePeriodSeconds: tc.grace}))
			marked := expectPodEvent(t, w, watch.Modified, tc.name)
			gone := expectPodEvent(t, w, watch.Deleted, tc.name)
			w.Stop()
			for _, p := range []*corev1.Pod{marked, gone} {
				if p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 0 {
					t.Errorf("%s: event of resourceVersion %s: deletionTimestamp %v grace %v, want set and 0",
						tc.name, p.ResourceVersion, p.DeletionTimestamp, p.DeletionGracePeriodSeconds)
				}
			}
		}
		cm, err := cms.Create(ctx, semConfigMap("at-once"), metav1.CreateOptions{})
		must(t, err)
		w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion, FieldSelector: "metadata.name=at-once"})
		must(t, err)
		defer w.Stop()
		must(t, cms.Delete(ctx, "at-once", metav1.DeleteOptions{}))
		if ev := nextEvent(t, w); ev.Type != watch.Deleted {
			t.Errorf("a configmap's delete: first event %s, want DELETED", ev.Type)
		}
	})

	t.Run("unbound pod is deleted at once", func(t *testing.T) {
		_, err := pods.Create(ctx, semPod("unbound"), metav1.CreateOptions{})
		must(t, err)
		if code := deleteCode(t, c, "pods", "unbound", metav1.DeleteOptions{}); code != http.StatusOK {
			t.Errorf("delete answered %d, want 200", code)
		}
		if _, err := pods.Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after delete: %v, want NotFound", err)
		}
		if err := pods.Delete(ctx, "unbound", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("second delete: %v, want NotFound", err)
		}
	})

	t.Run("orphan propagation adds the orphan finalizer", func(t *testing.T) {
		_, err := cms.Create(ctx, semConfigMap("orphaner"), metav1.CreateOptions{})
		must(t, err)
		must(t, cms.Delete(ctx, "orphaner", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}))
		cm, err := cms.Get(ctx, "orphaner", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("orphan delete removed the object: %v", err)
		}
		if cm.DeletionTimestamp == nil || !slices.Contains(cm.Finalizers, metav1.FinalizerOrphanDependents) {
			t.Errorf("deletionTimestamp %v finalizers %v, want set and %q", cm.DeletionTimestamp, cm.Finalizers, metav1.FinalizerOrphanDependents)
		}
	})

	t.Run("preconditions", func(t *testing.T) {
		cm, err := cms.Create(ctx, semConfigMap("precond"), metav1.CreateOptions{})
		must(t, err)
		err = cms.Delete(ctx, "precond", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("other"))}})
		if !apierrors.IsConflict(err) {
			t.Errorf("delete with a wrong uid precondition: %v, want Conflict", err)
		}
		must(t, cms.Delete(ctx, "precond", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion}}))
	})
}

func TestBinding(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)
	_, err := pods.Create(ctx, semPod("tobind"), metav1.CreateOptions{})
	must(t, err)
	bind := func(node string) error {
		return pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: "tobind"},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
	}
	must(t, bind("edge-1"))
	pod, err := pods.Get(ctx, "tobind", metav1.GetOptions{})
	must(t, err)
	if pod.Spec.NodeName != "edge-1" {
		t.Errorf("nodeName %q, want edge-1", pod.Spec.NodeName)
	}
	scheduled := false
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionTrue {
			scheduled = true
		}
	}
	if !scheduled {
		t.Errorf("no PodScheduled=True condition: %+v", pod.Status.Conditions)
	}
	before := etcdRevision(t, c)
	if err := bind("edge-2"); !apierrors.IsConflict(err) {
		t.Errorf("second binding: %v, want 409 Conflict", err)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("a refused binding wrote to etcd")
	}
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "missing"}, Target: corev1.ObjectReference{Name: "edge-1"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("binding a missing pod: %v, want NotFound", err)
	}
	_, err = pods.Create(ctx, semPod("badbind"), metav1.CreateOptions{})
	must(t, err)
	err = pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "badbind"}, Target: corev1.ObjectReference{Kind: "Pod"}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "target.kind") || !strings.Contains(err.Error(), "target.name") {
		t.Errorf("binding to a Pod with no name: %v, want 422 naming target.kind and target.name", err)
	}
}

func TestScaleSubresource(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	deps := c.client.AppsV1().Deployments(testNS)
	_, err := deps.Create(ctx, semDeployment("scaled"), metav1.CreateOptions{})
	must(t, err)
	sc, err := deps.GetScale(ctx, "scaled", metav1.GetOptions{})
	must(t, err)
	if sc.Spec.Replicas != 1 || sc.Status.Selector != "app=scaled" {
		t.Errorf("scale %+v", sc)
	}
	sc.Spec.Replicas = 4
	sc, err = deps.UpdateScale(ctx, "scaled", sc, metav1.UpdateOptions{})
	must(t, err)
	if sc.Spec.Replicas != 4 {
		t.Errorf("UpdateScale answered replicas %d", sc.Spec.Replicas)
	}
	d, err := deps.Get(ctx, "scaled", metav1.GetOptions{})
	must(t, err)
	if *d.Spec.Replicas != 4 || d.Generation != 2 {
		t.Errorf("deployment replicas %d generation %d, want 4 and 2", *d.Spec.Replicas, d.Generation)
	}
	if sc.ResourceVersion != d.ResourceVersion {
		t.Errorf("scale resourceVersion %s, deployment %s", sc.ResourceVersion, d.ResourceVersion)
	}
	// A stale scale conflicts.
	stale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: testNS, ResourceVersion: "1"}, Spec: autoscalingv1.ScaleSpec{Replicas: 9}}
	if _, err := deps.UpdateScale(ctx, "scaled", stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale scale: %v, want Conflict", err)
	}
	// Negative replicas are invalid.
	sc.Spec.Replicas = -1
	if _, err := deps.UpdateScale(ctx, "scaled", sc, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("negative replicas: %v, want Invalid", err)
	}
	d, err = deps.Get(ctx, "scaled", metav1.GetOptions{})
	must(t, err)
	if *d.Spec.Replicas != 4 || d.Generation != 2 {
		t.Errorf("after refused scales: replicas %d generation %d", *d.Spec.Replicas, d.Generation)
	}

	// Server-side apply to /scale, as an autoscaler does it: the manager
	// owns spec.replicas "with subresource scale"; another manager's apply
	// conflicts unless forced.
	sc, err = deps.ApplyScale(ctx, "scaled", autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(6)), metav1.ApplyOptions{FieldManager: "hpa", Force: true})
	must(t, err)
	d, err = deps.Get(ctx, "scaled", metav1.GetOptions{})
	must(t, err)
	if sc.Spec.Replicas != 6 || *d.Spec.Replicas != 6 {
		t.Errorf("applied scale: scale %d, deployment %d, want 6", sc.Spec.Replicas, *d.Spec.Replicas)
	}
	if i := slices.IndexFunc(d.ManagedFields, func(e metav1.ManagedFieldsEntry) bool { return e.Manager == "hpa" }); i < 0 ||
		d.ManagedFields[i].Subresource != "scale" || d.ManagedFields[i].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managed fields after the applied scale: %+v", d.ManagedFields)
	}
	_, err = deps.ApplyScale(ctx, "scaled", autoscalingv1ac.Scale().WithSpec(autoscalingv1ac.ScaleSpec().WithReplicas(2)), metav1.ApplyOptions{FieldManager: "other"})
	if !apierrors.IsConflict(err) {
		t.Errorf("another manager's apply to the scale: %v, want Conflict", err)
	}
}

// nextEvent reads one event, failing the test if none comes in time.
func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatalf("watch closed")
		}
		return ev
	case <-time.After(guard):
		t.Fatalf("no watch event within %v", guard)
	}
	panic("unreachable")
}

func expectPodEvent(t *testing.T, w watch.Interface, typ watch.EventType, name string) *corev1.Pod {
	t.Helper()
	ev := nextEvent(t, w)
	pod, ok := ev.Object.(*corev1.Pod)
	if ev.Type != typ || !ok || pod.Name != name {
		t.Fatalf("event %s %T %v, want %s of pod %s", ev.Type, ev.Object, ev.Object, typ, name)
	}
	return pod
}

func TestWatch(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)
	// A revision from before the first watch of pods: the watch cache
	// does not hold it.
	early := etcdRevision(t, c)

	t.Run("events in order", func(t *testing.T) {
		_, err := pods.Create(ctx, semPod("existing"), metav1.CreateOptions{})
		must(t, err)
		list, err := pods.List(ctx, metav1.ListOptions{})
		must(t, err)
		w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		must(t, err)
		defer w.Stop()
		_, err = pods.Create(ctx, semPod("w1"), metav1.CreateOptions{})
		must(t, err)
		p, err := pods.Get(ctx, "w1", metav1.GetOptions{})
		must(t, err)
		p.Labels["step"] = "2"
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		must(t, err)
		must(t, pods.Delete(ctx, "w1", metav1.DeleteOptions{}))

		// The delete, as kube-apiserver's, first marks the pod terminating.
		var revs []int64
		for i, want := range []watch.EventType{watch.Added, watch.Modified, watch.Modified, watch.Deleted} {
			pod := expectPodEvent(t, w, want, "w1")
			rv, err := strconv.ParseInt(pod.ResourceVersion, 10, 64)
			must(t, err)
			revs = append(revs, rv)
			if i == 1 && (pod.Labels["step"] != "2" || pod.DeletionTimestamp != nil) {
				t.Errorf("first MODIFIED carries %v, deletionTimestamp %v", pod.Labels, pod.DeletionTimestamp)
			}
			if i == 2 && pod.DeletionTimestamp == nil {
				t.Errorf("second MODIFIED without deletionTimestamp")
			}
		}
		if !slices.IsSorted(revs) || len(slices.Compact(slices.Clone(revs))) != len(revs) {
			t.Errorf("event resourceVersions not increasing: %v", revs)
		}
		listRV, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
		if revs[0] <= listRV {
			t.Errorf("first event %d not after the list %d", revs[0], listRV)
		}
		// The DELETED event's resourceVersion is the deletion's revision.
		if cur := etcdRevision(t, c); revs[3] != cur {
			t.Errorf("DELETED at %d, etcd revision %d", revs[3], cur)
		}
	})

	t.Run("compacted resourceVersion gets 410", func(t *testing.T) {
		list, err := pods.List(ctx, metav1.ListOptions{})
		must(t, err)
		for i := range 3 {
			_, err := pods.Create(ctx, semPod(fmt.Sprintf("gone-%d", i)), metav1.CreateOptions{})
			must(t, err)
		}
		rev := etcdRevision(t, c)
		_, err = c.etcd.Compact(ctx, rev, clientv3.WithCompactPhysical())
		must(t, err)
		// A compacted revision the watch cache holds is served from it,
		// as kube-apiserver's watch cache does.
		w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		must(t, err)
		defer w.Stop()
		for i := range 3 {
			expectPodEvent(t, w, watch.Added, fmt.Sprintf("gone-%d", i))
		}
		// One it does not hold is expired.
		w, err = pods.Watch(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(early, 10)})
		must(t, err)
		defer w.Stop()
		ev := nextEvent(t, w)
		if ev.Type != watch.Error {
			t.Fatalf("event %s %v, want ERROR", ev.Type, ev.Object)
		}
		st, ok := ev.Object.(*metav1.Status)
		if !ok {
			t.Fatalf("ERROR carries %T, want *metav1.Status", ev.Object)
		}
		err = apierrors.FromObject(st)
		if st.Code != http.StatusGone || !(apierrors.IsResourceExpired(err) || apierrors.IsGone(err)) {
			t.Errorf("ERROR status %+v, want code 410 Expired/Gone", st)
		}
		// A list at the compacted revision is expired too.
		_, err = pods.List(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Errorf("list at a compacted revision: %v, want 410", err)
		}
	})

	t.Run("label selector: stops matching is DELETED", func(t *testing.T) {
		list, err := pods.List(ctx, metav1.ListOptions{})
		must(t, err)
		w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "app=sel"})
		must(t, err)
		defer w.Stop()
		// The same watch in protobuf and as metadata, and one without
		// the selector, which sees every change as MODIFIED.
		prc := rest.CopyConfig(c.rest)
		prc.ContentType = "application/vnd.kubernetes.protobuf"
		pcs, err := kubernetes.NewForConfig(prc)
		must(t, err)
		pw, err := pcs.CoreV1().Pods(testNS).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "app=sel"})
		must(t, err)
		defer pw.Stop()
		mc, err := metadata.NewForConfig(c.rest)
		must(t, err)
		mw, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Namespace(testNS).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "app=sel"})
		must(t, err)
		defer mw.Stop()
		all, err := pcs.CoreV1().Pods(testNS).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, FieldSelector: "metadata.name=sel"})
		must(t, err)
		defer all.Stop()
		other := semPod("other")
		other.Labels = map[string]string{"app": "nope"}
		_, err = pods.Create(ctx, other, metav1.CreateOptions{})
		must(t, err)
		in := semPod("sel")
		in.Labels = map[string]string{"app": "sel"}
		_, err = pods.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
		expectPodEvent(t, w, watch.Added, "sel") // not "other"
		expectPodEvent(t, pw, watch.Added, "sel")
		expectPodEvent(t, all, watch.Added, "sel")
		if ev := nextEvent(t, mw); ev.Type != watch.Added {
			t.Fatalf("metadata watch: %s %+v, want ADDED", ev.Type, ev.Object)
		}

		relabel := func(v string) string {
			p, err := pods.Get(ctx, "sel", metav1.GetOptions{})
			must(t, err)
			p.Labels["app"] = v
			p, err = pods.Update(ctx, p, metav1.UpdateOptions{})
			must(t, err)
			return p.ResourceVersion
		}
		rv := relabel("gone")
		// As kube-apiserver's watch cache: the object as it was while it
		// matched, at the revision of the change.
		for _, w := range []watch.Interface{w, pw} {
			if p := expectPodEvent(t, w, watch.Deleted, "sel"); p.Labels["app"] != "sel" || p.ResourceVersion != rv {
				t.Errorf("DELETED carries labels %v at %s, want the object before the change (app=sel) at %s", p.Labels, p.ResourceVersion, rv)
			}
		}
		if ev := nextEvent(t, mw); ev.Type != watch.Deleted {
			t.Fatalf("metadata watch: %s %+v, want DELETED", ev.Type, ev.Object)
		} else if m := ev.Object.(*metav1.PartialObjectMetadata); m.Labels["app"] != "sel" || m.ResourceVersion != rv {
			t.Errorf("metadata DELETED carries labels %v at %s, want app=sel at %s", m.Labels, m.ResourceVersion, rv)
		}
		// A watcher without the label selector gets the new object.
		if p := expectPodEvent(t, all, watch.Modified, "sel"); p.Labels["app"] != "gone" || p.ResourceVersion != rv {
			t.Errorf("MODIFIED carries labels %v at %s, want app=gone at %s", p.Labels, p.ResourceVersion, rv)
		}
		relabel("sel")
		expectPodEvent(t, w, watch.Added, "sel")
		p, err := pods.Get(ctx, "sel", metav1.GetOptions{})
		must(t, err)
		p.Annotations = map[string]string{"touch": "1"}
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		must(t, err)
		expectPodEvent(t, w, watch.Modified, "sel")
		must(t, pods.Delete(ctx, "sel", metav1.DeleteOptions{}))
		expectPodEvent(t, w, watch.Modified, "sel")
		expectPodEvent(t, w, watch.Deleted, "sel")
	})
}

// requestLog records the URLs a client asked for.
type requestLog struct {
	mu   sync.Mutex
	urls []*url.URL
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return testenv.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		l.mu.Lock()
		l.urls = append(l.urls, r.URL)
		l.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (l *requestLog) get() []*url.URL {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.urls)
}

func TestInformerWatchList(t *testing.T) {
	// client-go v0.37 turns WatchListClient on by default (beta, default
	// true since 1.35); KUBE_FEATURE_WatchListClient=false would turn it off.
	if !clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient) {
		t.Fatalf("client-go WatchListClient is off; this test covers the streaming watch-list (unset KUBE_FEATURE_WatchListClient)")
	}
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)
	for i := range 3 {
		_, err := pods.Create(ctx, semPod(fmt.Sprintf("pre-%d", i)), metav1.CreateOptions{})
		must(t, err)
	}

	t.Run("shared informer", func(t *testing.T) {
		var log requestLog
		rc := rest.CopyConfig(c.rest)
		rc.Wrap(log.wrap)
		cs, err := kubernetes.NewForConfig(rc)
		must(t, err)
		factory := informers.NewSharedInformerFactory(cs, 0)
		inf := factory.Core().V1().Pods().Informer()
		var (
			mu   sync.Mutex
			seen = sets.New[string]()
			got  = make(chan string, 100)
		)
		_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
			p := obj.(*corev1.Pod)
			mu.Lock()
			seen.Insert(p.Name)
			mu.Unlock()
			got <- p.Name
		}})
		must(t, err)
		stop := make(chan struct{})
		defer func() { close(stop); factory.Shutdown() }()
		factory.Start(stop)
		syncCtx, cancel := context.WithTimeout(ctx, guard)
		defer cancel()
		if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
			t.Fatalf("informer did not sync; requests: %v", log.get())
		}
		keys := inf.GetStore().ListKeys()
		slices.Sort(keys)
		if want := []string{"default/pre-0", "default/pre-1", "default/pre-2"}; !slices.Equal(keys, want) {
			t.Errorf("synced store %v, want %v", keys, want)
		}
		_, err = pods.Create(ctx, semPod("post"), metav1.CreateOptions{})
		must(t, err)
		for name := ""; name != "post"; {
			select {
			case name = <-got:
			case <-time.After(guard):
				t.Fatalf("informer did not see the new pod")
			}
		}
		reqs := log.get()
		for _, u := range reqs {
			t.Logf("informer request: %s", u.RequestURI())
		}
		if len(reqs) == 0 {
			t.Fatalf("no requests recorded")
		}
		q := reqs[0].Query()
		if q.Get("watch") != "true" || q.Get("sendInitialEvents") != "true" || q.Get("resourceVersionMatch") != "NotOlderThan" {
			t.Errorf("first informer request %s is not a streaming watch-list", reqs[0].RequestURI())
		}
		for _, u := range reqs {
			if u.Query().Get("watch") != "true" {
				t.Errorf("informer fell back to a LIST: %s", u.RequestURI())
			}
		}
	})

	t.Run("raw watch-list stream", func(t *testing.T) {
		hc := rawClient(t, c, true)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", nil)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("watch-list: %d %s", resp.StatusCode, b)
		}
		type event struct {
			Type   string `json:"type"`
			Object struct {
				Kind     string            `json:"kind"`
				Metadata metav1.ObjectMeta `json:"metadata"`
			} `json:"object"`
		}
		events := make(chan event)
		errc := make(chan error, 1)
		go func() {
			defer close(events)
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev event
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					errc <- fmt.Errorf("bad event line %q: %v", sc.Text(), err)
					return
				}
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
		next := func() event {
			t.Helper()
			select {
			case ev, ok := <-events:
				if !ok {
					select {
					case err := <-errc:
						t.Fatal(err)
					default:
					}
					t.Fatalf("stream ended")
				}
				return ev
			case <-time.After(guard):
				t.Fatalf("no event within %v", guard)
			}
			panic("unreachable")
		}
		list, err := pods.List(ctx, metav1.ListOptions{})
		must(t, err)
		want := sets.New[string]()
		for _, p := range list.Items {
			want.Insert(p.Name)
		}
		added := sets.New[string]()
		var bookmark event
		for {
			ev := next()
			if ev.Type == "BOOKMARK" {
				bookmark = ev
				break
			}
			if ev.Type != "ADDED" || ev.Object.Kind != "Pod" {
				t.Fatalf("initial event %s %s, want ADDED Pod", ev.Type, ev.Object.Kind)
			}
			added.Insert(ev.Object.Metadata.Name)
		}
		if !added.Equal(want) {
			t.Errorf("initial events %v, want %v", sets.List(added), sets.List(want))
		}
		if bookmark.Object.Metadata.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
			t.Errorf("bookmark %+v lacks %s: \"true\"", bookmark.Object.Metadata, metav1.InitialEventsAnnotationKey)
		}
		if bookmark.Object.Metadata.ResourceVersion == "" || bookmark.Object.Kind != "Pod" {
			t.Errorf("bookmark kind %q resourceVersion %q", bookmark.Object.Kind, bookmark.Object.Metadata.ResourceVersion)
		}
		bmRV, _ := strconv.ParseInt(bookmark.Object.Metadata.ResourceVersion, 10, 64)
		listRV, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
		if bmRV < listRV {
			t.Errorf("bookmark resourceVersion %d older than a list before it (%d)", bmRV, listRV)
		}
		// Then live events.
		_, err = pods.Create(ctx, semPod("live"), metav1.CreateOptions{})
		must(t, err)
		if ev := next(); ev.Type != "ADDED" || ev.Object.Metadata.Name != "live" {
			t.Errorf("live event %s %s, want ADDED live", ev.Type, ev.Object.Metadata.Name)
		}
	})

	t.Run("sendInitialEvents without resourceVersionMatch is 422", func(t *testing.T) {
		hc := rawClient(t, c, true)
		code, body := rawDo(t, c, hc, http.MethodGet, "/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true", "", nil, nil)
		st := statusOf(t, code, body)
		if code != http.StatusUnprocessableEntity || st.Reason != metav1.StatusReasonInvalid {
			t.Errorf("%d %s, want 422 Invalid", code, body)
		}
	})
}

func TestPagination(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)
	want := sets.New[string]()
	for i := range 25 {
		in := semPod(fmt.Sprintf("p%02d", i))
		if i%3 == 0 {
			in.Spec.NodeName = "edge-1"
		}
		_, err := pods.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
		want.Insert(in.Name)
	}
	// Every fourth pod is Running.
	running := sets.New[string]()
	for i := 0; i < 25; i += 4 {
		p, err := pods.Get(ctx, fmt.Sprintf("p%02d", i), metav1.GetOptions{})
		must(t, err)
		p.Status.Phase = corev1.PodRunning
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		must(t, err)
		running.Insert(p.Name)
	}

	t.Run("continue", func(t *testing.T) {
		var (
			names []string
			rv    string
			pages int
			opts  = metav1.ListOptions{Limit: 10}
		)
		for {
			list, err := pods.List(ctx, opts)
			must(t, err)
			pages++
			if rv == "" {
				rv = list.ResourceVersion
			} else if list.ResourceVersion != rv {
				t.Errorf("page %d at resourceVersion %s, first page at %s", pages, list.ResourceVersion, rv)
			}
			for _, p := range list.Items {
				names = append(names, p.Name)
			}
			if list.Continue == "" {
				if n := len(list.Items); n != 5 {
					t.Errorf("last page has %d items, want 5", n)
				}
				break
			}
			if len(list.Items) != 10 {
				t.Errorf("page %d has %d items, want 10", pages, len(list.Items))
			}
			// Writes between pages, before and after the cursor, must not
			// show up in (or disturb) a list at a fixed revision.
			for _, name := range []string{fmt.Sprintf("p%02da%d", pages*10-5, pages), fmt.Sprintf("p%02da%d", pages*10+5, pages), fmt.Sprintf("z%d", pages)} {
				_, err := pods.Create(ctx, semPod(name), metav1.CreateOptions{})
				must(t, err)
			}
			must(t, pods.Delete(ctx, fmt.Sprintf("p%02d", pages*10+1), metav1.DeleteOptions{}))
			opts.Continue = list.Continue
		}
		if pages != 3 {
			t.Errorf("%d pages, want 3", pages)
		}
		if !slices.IsSorted(names) || len(names) != len(sets.New(names...)) {
			t.Errorf("pages not in order or with duplicates: %v", names)
		}
		if got := sets.New(names...); !got.Equal(want) {
			t.Errorf("paged list differs: missing %v, extra %v", sets.List(want.Difference(got)), sets.List(got.Difference(want)))
		}
	})

	t.Run("a first page at a resourceVersion is exact", func(t *testing.T) {
		before, err := pods.List(ctx, metav1.ListOptions{})
		must(t, err)
		_, err = pods.Create(ctx, semPod("after-rv"), metav1.CreateOptions{})
		must(t, err)
		defer pods.Delete(ctx, "after-rv", metav1.DeleteOptions{})
		has := func(l *corev1.PodList) bool {
			return slices.ContainsFunc(l.Items, func(p corev1.Pod) bool { return p.Name == "after-rv" })
		}
		// As kube-apiserver: resourceVersion without resourceVersionMatch
		// is exact with a limit, not older than it without one.
		exact, err := pods.List(ctx, metav1.ListOptions{ResourceVersion: before.ResourceVersion, Limit: 1000})
		must(t, err)
		if exact.ResourceVersion != before.ResourceVersion || has(exact) || len(exact.Items) != len(before.Items) {
			t.Errorf("limit with resourceVersion %s: list at %s with %d pods (after-rv %v), want the %d at %s",
				before.ResourceVersion, exact.ResourceVersion, len(exact.Items), has(exact), len(before.Items), before.ResourceVersion)
		}
		for _, opts := range []metav1.ListOptions{
			{ResourceVersion: before.ResourceVersion},
			{ResourceVersion: before.ResourceVersion, Limit: 1000, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan},
		} {
			fresh, err := pods.List(ctx, opts)
			must(t, err)
			if !has(fresh) {
				t.Errorf("%+v: list at %s without the pod created after %s", opts, fresh.ResourceVersion, before.ResourceVersion)
			}
		}
	})

	// Restore the set: the pages above deleted p11 and p21 and added others.
	all, err := pods.List(ctx, metav1.ListOptions{})
	must(t, err)
	current := map[string]corev1.Pod{}
	for _, p := range all.Items {
		current[p.Name] = p
	}

	t.Run("field selectors", func(t *testing.T) {
		cases := []struct {
			selector string
			match    func(p corev1.Pod) bool
		}{
			{"spec.nodeName=edge-1", func(p corev1.Pod) bool { return p.Spec.NodeName == "edge-1" }},
			{"spec.nodeName=", func(p corev1.Pod) bool { return p.Spec.NodeName == "" }},
			{"spec.nodeName!=edge-1", func(p corev1.Pod) bool { return p.Spec.NodeName != "edge-1" }},
			{"status.phase=Running", func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }},
			{"status.phase=Pending,spec.nodeName=edge-1", func(p corev1.Pod) bool {
				return p.Status.Phase == corev1.PodPending && p.Spec.NodeName == "edge-1"
			}},
			{"metadata.name=p03", func(p corev1.Pod) bool { return p.Name == "p03" }},
			{"metadata.namespace=default", func(p corev1.Pod) bool { return true }},
			// kube-apiserver's other selectable pod fields.
			{"spec.serviceAccountName=", func(p corev1.Pod) bool { return p.Spec.ServiceAccountName == "" }},
			{"spec.hostNetwork=false", func(p corev1.Pod) bool { return !p.Spec.HostNetwork }},
			{"status.nominatedNodeName=", func(p corev1.Pod) bool { return p.Status.NominatedNodeName == "" }},
		}
		for _, tc := range cases {
			wantNames := sets.New[string]()
			for _, p := range current {
				if tc.match(p) {
					wantNames.Insert(p.Name)
				}
			}
			if wantNames.Len() == 0 {
				t.Fatalf("%s: the fixture selects nothing", tc.selector)
			}
			list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: tc.selector})
			if err != nil {
				t.Errorf("%s: %v", tc.selector, err)
				continue
			}
			got := sets.New[string]()
			for _, p := range list.Items {
				got.Insert(p.Name)
			}
			if !got.Equal(wantNames) {
				t.Errorf("%s: got %v, want %v", tc.selector, sets.List(got), sets.List(wantNames))
			}
			// The same through pages of 3.
			paged := sets.New[string]()
			opts := metav1.ListOptions{FieldSelector: tc.selector, Limit: 3}
			for {
				list, err := pods.List(ctx, opts)
				must(t, err)
				if len(list.Items) > 3 {
					t.Errorf("%s: page of %d with limit 3", tc.selector, len(list.Items))
				}
				for _, p := range list.Items {
					if paged.Has(p.Name) {
						t.Errorf("%s: %s twice across pages", tc.selector, p.Name)
					}
					paged.Insert(p.Name)
				}
				if list.Continue == "" {
					break
				}
				opts.Continue = list.Continue
			}
			if !paged.Equal(wantNames) {
				t.Errorf("%s paged: got %v, want %v", tc.selector, sets.List(paged), sets.List(wantNames))
			}
		}
		// Running pods also through the status and label selectors combined.
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running", LabelSelector: "app=sem"})
		must(t, err)
		if len(list.Items) != running.Len() {
			t.Errorf("Running pods: %d, want %d", len(list.Items), running.Len())
		}
	})

	t.Run("unsupported field selector", func(t *testing.T) {
		for _, sel := range []string{"spec.bogus=x", "metadata.labels=x", "status.hostIP=1.2.3.4"} {
			_, err := pods.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if !apierrors.IsBadRequest(err) {
				t.Errorf("%s: %v, want 400 BadRequest", sel, err)
			}
			_, err = pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel})
			if !apierrors.IsBadRequest(err) {
				t.Errorf("watch %s: %v, want 400 BadRequest", sel, err)
			}
		}
	})

	t.Run("bad continue token", func(t *testing.T) {
		_, err := pods.List(ctx, metav1.ListOptions{Limit: 10, Continue: "garbage"})
		if !apierrors.IsBadRequest(err) {
			t.Errorf("garbage continue: %v, want 400", err)
		}
	})
}

func TestNamespaceLifecycle(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	before := etcdRevision(t, c)
	_, err := c.client.CoreV1().Pods("nowhere").Create(ctx, semPod("lost"), metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: %v, want 404 NotFound", err)
	}
	if st := err.(apierrors.APIStatus).Status(); st.Details == nil || st.Details.Kind != "namespaces" || st.Details.Name != "nowhere" {
		t.Errorf("NotFound details %+v, want namespaces/nowhere", st.Details)
	}
	in := semPod("mismatch")
	in.Namespace = "kube-system"
	_, err = c.client.CoreV1().Pods(testNS).Create(ctx, in, metav1.CreateOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("namespace mismatch: %v, want 400 BadRequest", err)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("refused creates wrote to etcd: revision %d → %d", before, after)
	}

	// A namespace created later accepts pods.
	nss := c.client.CoreV1().Namespaces()
	_, err = nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "nowhere"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = c.client.CoreV1().Pods("nowhere").Create(ctx, semPod("found"), metav1.CreateOptions{})
	must(t, err)
	if _, _, ok := etcdKV(t, c, "/registry/pods/nowhere/found"); !ok {
		t.Errorf("pod not at /registry/pods/nowhere/found")
	}

	// A namespace being deleted waits for its finalizer and takes no new
	// content (NamespaceLifecycle admission: 403 Forbidden).
	must(t, nss.Delete(ctx, "nowhere", metav1.DeleteOptions{}))
	ns, err := nss.Get(ctx, "nowhere", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace gone before its content: %v", err)
	}
	if ns.DeletionTimestamp == nil || ns.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("deleted namespace: deletionTimestamp %v phase %s, want set and Terminating", ns.DeletionTimestamp, ns.Status.Phase)
	}
	before = etcdRevision(t, c)
	_, err = c.client.CoreV1().ConfigMaps("nowhere").Create(ctx, semConfigMap("late"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("create in a terminating namespace: %v, want 403 Forbidden", err)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("create in a terminating namespace wrote to etcd")
	}
	// Existing content can still be changed and deleted.
	must(t, c.client.CoreV1().Pods("nowhere").Delete(ctx, "found", metav1.DeleteOptions{}))
}

// rawClient is an HTTPS client trusting the cluster CA and sending no
// credentials of its own; http2 picks the protocol.
func rawClient(t *testing.T, c *cluster, http2 bool) *http.Client {
	t.Helper()
	ca := c.rest.TLSClientConfig.CAData
	if len(ca) == 0 && c.rest.TLSClientConfig.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(c.rest.TLSClientConfig.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("no CA in the rest config")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: http2}
	if !http2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// rawDo sends one request with the admin token unless header sets
// Authorization (an empty value sends none) and returns the code and body.
func rawDo(t *testing.T, c *cluster, hc *http.Client, method, path, contentType string, body io.Reader, header http.Header) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	must(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	maps.Copy(req.Header, header)
	if v, ok := header["Authorization"]; ok && len(v) == 1 && v[0] == "" {
		req.Header.Del("Authorization")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// statusOf decodes a Status body and checks it is one with code.
func statusOf(t *testing.T, code int, body []byte) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.APIVersion != "v1" {
		t.Fatalf("answer %d is not a Status (%v): %.300s", code, err, body)
	}
	if int(st.Code) != code || st.Status != metav1.StatusFailure {
		t.Errorf("Status code %d status %q, HTTP %d", st.Code, st.Status, code)
	}
	if strings.TrimSpace(st.Message) == "" {
		t.Errorf("Status without a message: %s", body)
	}
	return st
}

// TestListItemsCarryNoTypeMeta: as kube-apiserver's, a JSON list's items
// have no kind and apiVersion (the list's say what they are), and each has
// its resourceVersion.
func TestListItemsCarryNoTypeMeta(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	cm, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, semConfigMap("typed"), metav1.CreateOptions{})
	must(t, err)
	raw, err := c.client.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/"+testNS+"/configmaps").SetHeader("Accept", "application/json").DoRaw(ctx)
	must(t, err)
	var list struct {
		Kind, APIVersion string
		Items            []map[string]json.RawMessage
	}
	must(t, json.Unmarshal(raw, &list))
	if list.Kind != "ConfigMapList" || list.APIVersion != "v1" || len(list.Items) != 1 {
		t.Fatalf("list %s %s with %d items: %s", list.Kind, list.APIVersion, len(list.Items), raw)
	}
	item := list.Items[0]
	var meta metav1.ObjectMeta
	must(t, json.Unmarshal(item["metadata"], &meta))
	if _, ok := item["kind"]; ok || item["apiVersion"] != nil || meta.ResourceVersion != cm.ResourceVersion || string(item["data"]) == "" {
		t.Errorf("list item %s", raw)
	}
}

// TestDaemonSetTemplateGeneration: a DaemonSet's template generation
// (deprecated.daemonset.template.generation, kube's internal
// spec.templateGeneration) is 1 on create unless set higher, one more on
// each template change, and no update or /status write sets it, as
// kube-apiserver's strategy does; a value that is not a number is refused.
func TestDaemonSetTemplateGeneration(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	dss := c.client.AppsV1().DaemonSets(testNS)
	labels := map[string]string{"app": "agent"}
	newDS := func(name, gen string) *appsv1.DaemonSet {
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "agent:1"}}}},
		}}
		if gen != "" {
			ds.Annotations = map[string]string{appsv1.DeprecatedTemplateGeneration: gen}
		}
		return ds
	}
	gen := func(ds *appsv1.DaemonSet) string { return ds.Annotations[appsv1.DeprecatedTemplateGeneration] }
	for _, c := range []struct{ given, want string }{{"", "1"}, {"0", "1"}, {"-3", "1"}, {"5", "5"}} {
		ds, err := dss.Create(ctx, newDS("given"+strings.TrimPrefix(c.given, "-"), c.given), metav1.CreateOptions{})
		must(t, err)
		if gen(ds) != c.want {
			t.Errorf("created with %q: template generation %q, want %q", c.given, gen(ds), c.want)
		}
	}
	if _, err := dss.Create(ctx, newDS("nan", "x"), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.annotations[deprecated.daemonset.template.generation]") {
		t.Errorf("created with a template generation that is not a number: %v, want 422 naming the annotation", err)
	}

	ds, err := dss.Get(ctx, "given", metav1.GetOptions{})
	must(t, err)
	ds.Annotations[appsv1.DeprecatedTemplateGeneration] = "9" // not the caller's to set
	ds.Spec.MinReadySeconds = 3
	ds, err = dss.Update(ctx, ds, metav1.UpdateOptions{})
	must(t, err)
	if gen(ds) != "1" || ds.Generation != 2 {
		t.Errorf("after a spec change outside the template: template generation %q, generation %d; want 1 and 2", gen(ds), ds.Generation)
	}
	delete(ds.Annotations, appsv1.DeprecatedTemplateGeneration)
	ds.Spec.Template.Spec.Containers[0].Image = "agent:2"
	ds, err = dss.Update(ctx, ds, metav1.UpdateOptions{})
	must(t, err)
	if gen(ds) != "2" || ds.Generation != 3 {
		t.Errorf("after a template change: template generation %q, generation %d; want 2 and 3", gen(ds), ds.Generation)
	}
	ds.Annotations[appsv1.DeprecatedTemplateGeneration] = "7"
	ds.Status.NumberReady = 1
	ds, err = dss.UpdateStatus(ctx, ds, metav1.UpdateOptions{})
	must(t, err)
	if gen(ds) != "2" {
		t.Errorf("after a /status write: template generation %q, want 2", gen(ds))
	}
	ds, err = dss.Patch(ctx, "given", types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"agent:3"}]}}}}`), metav1.PatchOptions{})
	must(t, err)
	if gen(ds) != "3" {
		t.Errorf("after a patched template: template generation %q, want 3", gen(ds))
	}
}

// TestReplicaSetStatusValidation: a /status write is checked as
// kube-apiserver's ValidateReplicaSetStatusUpdate does, and nothing of a
// refused one is stored.
func TestReplicaSetStatusValidation(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	rss := c.client.AppsV1().ReplicaSets(testNS)
	labels := map[string]string{"app": "web"}
	rs, err := rss.Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.ReplicaSetSpec{
		Replicas: ptr.To[int32](2),
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "web:1"}}}},
	}}, metav1.CreateOptions{})
	must(t, err)
	for _, tc := range []struct {
		name   string
		status appsv1.ReplicaSetStatus
		want   string
	}{
		{"negative", appsv1.ReplicaSetStatus{Replicas: -1}, "status.replicas: Invalid value: -1: must be greater than or equal to 0"},
		{"ready above replicas", appsv1.ReplicaSetStatus{Replicas: 1, ReadyReplicas: 2}, "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"},
		{"available above ready", appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 1, AvailableReplicas: 2}, "status.availableReplicas: Invalid value: 2: cannot be greater than readyReplicas"},
		{"negative terminating", appsv1.ReplicaSetStatus{Replicas: 1, TerminatingReplicas: ptr.To[int32](-1)}, "status.terminatingReplicas: Invalid value: -1: must be greater than or equal to 0"},
	} {
		bad := rs.DeepCopy()
		bad.Status = tc.status
		if _, err := rss.UpdateStatus(ctx, bad, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want 422 with %q", tc.name, err, tc.want)
		}
	}
	rs.Status = appsv1.ReplicaSetStatus{Replicas: 2, FullyLabeledReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 1, TerminatingReplicas: ptr.To[int32](0), ObservedGeneration: 1}
	got, err := rss.UpdateStatus(ctx, rs, metav1.UpdateOptions{})
	must(t, err)
	if got.Status.AvailableReplicas != 1 || got.Status.ReadyReplicas != 2 {
		t.Errorf("a valid status was stored as %+v", got.Status)
	}
}
