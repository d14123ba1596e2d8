package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestDeleteAnswers: what a delete answers, as kube-apiserver's
// generic registry does.
func TestDeleteAnswers(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	hc := rawClient(t, c, true)

	// deleteRaw deletes path and decodes the 200 answer into out.
	deleteRaw := func(t *testing.T, path string, out any) {
		t.Helper()
		code, b := rawDo(t, c, hc, http.MethodDelete, path, "", nil, nil)
		if code != http.StatusOK {
			t.Fatalf("DELETE %s: %d %s", path, code, b)
		}
		must(t, json.Unmarshal(b, out))
	}
	// wantStatus checks the answer of a delete that removed the object of
	// a registry without ReturnDeletedObject.
	wantStatus := func(t *testing.T, st metav1.Status, group, resource, name string, uid types.UID) {
		t.Helper()
		want := metav1.StatusDetails{Name: name, Group: group, Kind: resource, UID: uid}
		if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusSuccess || st.Details == nil || !reflect.DeepEqual(*st.Details, want) {
			t.Errorf("answer %+v, want a Success Status with details %+v", st, want)
		}
	}

	t.Run("a removed object of most resources is answered by a Status", func(t *testing.T) {
		cm, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, semConfigMap("gone"), metav1.CreateOptions{})
		must(t, err)
		var st metav1.Status
		deleteRaw(t, "/api/v1/namespaces/"+testNS+"/configmaps/gone", &st)
		wantStatus(t, st, "", "configmaps", "gone", cm.UID)

		d, err := c.client.AppsV1().Deployments(testNS).Create(ctx, semDeployment("gone"), metav1.CreateOptions{})
		must(t, err)
		st = metav1.Status{}
		deleteRaw(t, "/apis/apps/v1/namespaces/"+testNS+"/deployments/gone", &st)
		wantStatus(t, st, "apps", "deployments", "gone", d.UID)

		// A dry run answers what the delete would.
		cm, err = c.client.CoreV1().ConfigMaps(testNS).Create(ctx, semConfigMap("kept"), metav1.CreateOptions{})
		must(t, err)
		st = metav1.Status{}
		deleteRaw(t, "/api/v1/namespaces/"+testNS+"/configmaps/kept?dryRun=All", &st)
		wantStatus(t, st, "", "configmaps", "kept", cm.UID)
		_, err = c.client.CoreV1().ConfigMaps(testNS).Get(ctx, "kept", metav1.GetOptions{})
		must(t, err)
	})

	t.Run("a removed pod is answered by itself at the revision of its deletion", func(t *testing.T) {
		p, err := c.client.CoreV1().Pods(testNS).Create(ctx, semPod("gone"), metav1.CreateOptions{})
		must(t, err)
		var got struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		deleteRaw(t, "/api/v1/namespaces/"+testNS+"/pods/gone", &got)
		if got.Kind != "Pod" || got.Metadata.UID != p.UID {
			t.Fatalf("answer kind %q uid %q, want the pod %q", got.Kind, got.Metadata.UID, p.UID)
		}
		created, _ := strconv.ParseInt(p.ResourceVersion, 10, 64)
		rv, err := strconv.ParseInt(got.Metadata.ResourceVersion, 10, 64)
		if err != nil || rv <= created || rv > etcdRevision(t, c) {
			t.Errorf("resourceVersion %q, want the deletion's revision (after %d)", got.Metadata.ResourceVersion, created)
		}
	})
}

// TestDeletionFinalizers: the orphan and foregroundDeletion finalizers a
// delete sets, as kube-apiserver's deletionFinalizersForGarbageCollection.
func TestDeletionFinalizers(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	hc := rawClient(t, c, true)
	cms := c.client.CoreV1().ConfigMaps(testNS)

	t.Run("a batch/v1 Job orphans its pods by default, with a warning", func(t *testing.T) {
		jobs := c.client.BatchV1().Jobs(testNS)
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "kept-pods"},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "hello:v1"}},
			}}},
		}
		_, err := jobs.Create(ctx, job, metav1.CreateOptions{})
		must(t, err)
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url+"/apis/batch/v1/namespaces/"+testNS+"/jobs/kept-pods", nil)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Warning"), "child pods are preserved by default") {
			t.Errorf("delete: %d, Warning %q, want 200 and the warning", resp.StatusCode, resp.Header.Get("Warning"))
		}
		got, err := jobs.Get(ctx, "kept-pods", metav1.GetOptions{})
		if err != nil || got.DeletionTimestamp == nil || !slices.Equal(got.Finalizers, []string{metav1.FinalizerOrphanDependents}) {
			t.Fatalf("after a delete without a policy: %v, finalizers %v, want kept being deleted with the orphan finalizer", err, got.Finalizers)
		}
		// An explicit policy is followed, and silently.
		_, err = jobs.Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "gone"}, Spec: job.Spec}, metav1.CreateOptions{})
		must(t, err)
		must(t, jobs.Delete(ctx, "gone", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}))
		if _, err := jobs.Get(ctx, "gone", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after a background delete: %v, want NotFound", err)
		}
	})

	t.Run("the policy replaces the finalizer the object had", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			policy metav1.DeletionPropagation
			want   []string // nil: removed
		}{
			{"to-background", metav1.DeletePropagationBackground, nil},
			{"to-foreground", metav1.DeletePropagationForeground, []string{"example.com/hold", metav1.FinalizerDeleteDependents}},
		} {
			in := semConfigMap(tc.name)
			in.Finalizers = []string{metav1.FinalizerOrphanDependents}
			if tc.want != nil {
				in.Finalizers = append(in.Finalizers, "example.com/hold")
			}
			_, err := cms.Create(ctx, in, metav1.CreateOptions{})
			must(t, err)
			must(t, cms.Delete(ctx, tc.name, metav1.DeleteOptions{PropagationPolicy: &tc.policy}))
			got, err := cms.Get(ctx, tc.name, metav1.GetOptions{})
			switch {
			case tc.want == nil && !apierrors.IsNotFound(err):
				t.Errorf("%s: after a %s delete: %v, finalizers %v, want NotFound", tc.name, tc.policy, err, got.Finalizers)
			case tc.want != nil && (err != nil || !slices.Equal(got.Finalizers, tc.want)):
				t.Errorf("%s: after a %s delete: %v, finalizers %v, want %v", tc.name, tc.policy, err, got.Finalizers, tc.want)
			}
		}
	})
}

// TestEvictionDeleteOptions: an eviction's DeleteOptions are validated as a
// delete's: kube-apiserver's pod registry refuses them with 422 when it
// deletes. Refused, nothing happens to the pod.
func TestEvictionDeleteOptions(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)
	in := semPod("stays")
	in.Spec.NodeName = "edge-1"
	p, err := pods.Create(ctx, in, metav1.CreateOptions{})
	must(t, err)
	for _, opts := range []metav1.DeleteOptions{
		{DryRun: []string{"Bogus"}},
		{OrphanDependents: ptr.To(false), PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)},
		{PropagationPolicy: ptr.To(metav1.DeletionPropagation("Sideways"))},
	} {
		err := c.client.PolicyV1().Evictions(testNS).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "stays", Namespace: testNS}, DeleteOptions: &opts})
		if !apierrors.IsInvalid(err) {
			t.Errorf("eviction with %+v: %v, want 422 Invalid", opts, err)
		}
	}
	got, err := pods.Get(ctx, "stays", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp != nil || got.ResourceVersion != p.ResourceVersion {
		t.Errorf("after refused evictions: %v, deletionTimestamp %v, resourceVersion %s → %s, want untouched", err, got.DeletionTimestamp, p.ResourceVersion, got.ResourceVersion)
	}
}

// TestGracefulDeletionUnderWay: a pod's graceful deletion under way may
// only be shortened, its deadline moved back by as much, as kube-apiserver's
// BeforeDelete; any other delete changes nothing.
func TestGracefulDeletionUnderWay(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	pods := c.client.CoreV1().Pods(testNS)
	in := semPod("slow")
	in.Spec.NodeName = "edge-1"
	_, err := pods.Create(ctx, in, metav1.CreateOptions{})
	must(t, err)
	must(t, pods.Delete(ctx, "slow", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](60)}))
	first, err := pods.Get(ctx, "slow", metav1.GetOptions{})
	must(t, err)
	if first.DeletionTimestamp == nil || first.DeletionGracePeriodSeconds == nil || *first.DeletionGracePeriodSeconds != 60 {
		t.Fatalf("after a delete with 60s: deletionTimestamp %v grace %v", first.DeletionTimestamp, first.DeletionGracePeriodSeconds)
	}
	for _, opts := range []metav1.DeleteOptions{
		{},                                      // the pod's own 30s is no request
		{GracePeriodSeconds: ptr.To[int64](90)}, // longer
		{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)},
	} {
		must(t, pods.Delete(ctx, "slow", opts))
		got, err := pods.Get(ctx, "slow", metav1.GetOptions{})
		must(t, err)
		if got.ResourceVersion != first.ResourceVersion || len(got.Finalizers) > 0 {
			t.Errorf("delete with %+v changed the pod: grace %d, finalizers %v", opts, *got.DeletionGracePeriodSeconds, got.Finalizers)
		}
	}
	must(t, pods.Delete(ctx, "slow", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](20)}))
	got, err := pods.Get(ctx, "slow", metav1.GetOptions{})
	must(t, err)
	if want := first.DeletionTimestamp.Add(-40 * time.Second); *got.DeletionGracePeriodSeconds != 20 || !got.DeletionTimestamp.Time.Equal(want) {
		t.Errorf("shortened to 20s: grace %d deletionTimestamp %v, want 20 and %v", *got.DeletionGracePeriodSeconds, got.DeletionTimestamp, want)
	}
}

// TestDeleteCollection: a deletecollection deletes what its selectors
// match and answers, as kube-apiserver's Store.DeleteCollection, the list
// of those objects as they were.
func TestDeleteCollection(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	hc := rawClient(t, c, true)
	cms := c.client.CoreV1().ConfigMaps(testNS)
	for name, x := range map[string]string{"a1": "1", "a2": "1", "b": "2"} {
		in := semConfigMap(name)
		in.Labels = map[string]string{"x": x}
		_, err := cms.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
	}
	code, b := rawDo(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+testNS+"/configmaps?labelSelector=x%3D1", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("deletecollection: %d %s", code, b)
	}
	var list corev1.ConfigMapList
	must(t, json.Unmarshal(b, &list))
	var names []string
	for _, cm := range list.Items {
		names = append(names, cm.Name)
	}
	if list.Kind != "ConfigMapList" || list.APIVersion != "v1" || list.ResourceVersion == "" || !slices.Equal(names, []string{"a1", "a2"}) {
		t.Errorf("answer %s %s resourceVersion %q items %v, want a ConfigMapList of a1 and a2", list.APIVersion, list.Kind, list.ResourceVersion, names)
	}
	left, err := cms.List(ctx, metav1.ListOptions{})
	must(t, err)
	if len(left.Items) != 1 || left.Items[0].Name != "b" {
		t.Errorf("left %d configmaps, want b alone", len(left.Items))
	}
	// Its list options are checked as a list's: refused, it deletes nothing.
	for _, q := range []string{"resourceVersionMatch=NotOlderThan", "resourceVersion=abc", "labelSelector=x%3D%3D%3D1"} {
		code, b := rawDo(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+testNS+"/configmaps?"+q, "", nil, nil)
		if code != http.StatusBadRequest && code != http.StatusUnprocessableEntity {
			t.Errorf("deletecollection ?%s: %d %.200s, want 400 or 422", q, code, b)
		}
	}
	if left, err := cms.List(ctx, metav1.ListOptions{}); err != nil || len(left.Items) != 1 {
		t.Fatalf("after refused deletecollections: %v, %d left, want 1", err, len(left.Items))
	}
	// client-go's DeleteCollection reads no answer; it works too.
	must(t, cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}))
	if left, err := cms.List(ctx, metav1.ListOptions{}); err != nil || len(left.Items) != 0 {
		t.Errorf("after deleting all: %v, %d left", err, len(left.Items))
	}
}

// TestDryRunDeleteAnswersTheOutcome: a dry-run delete of an object that
// would only be marked for deletion answers it so marked, as kube-apiserver
// (its update is dry-run), and writes nothing.
func TestDryRunDeleteAnswersTheOutcome(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	hc := rawClient(t, c, true)
	in := semConfigMap("held")
	in.Finalizers = []string{"example.com/hold"}
	_, err := c.client.CoreV1().ConfigMaps(testNS).Create(ctx, in, metav1.CreateOptions{})
	must(t, err)
	before := etcdRevision(t, c)
	code, b := rawDo(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+testNS+"/configmaps/held?dryRun=All&propagationPolicy=Foreground", "", nil, nil)
	var got corev1.ConfigMap
	if code != http.StatusOK || json.Unmarshal(b, &got) != nil {
		t.Fatalf("dry-run delete: %d %s", code, b)
	}
	if got.DeletionTimestamp == nil || !slices.Equal(got.Finalizers, []string{"example.com/hold", metav1.FinalizerDeleteDependents}) {
		t.Errorf("answer: deletionTimestamp %v finalizers %v, want set and [example.com/hold foregroundDeletion]", got.DeletionTimestamp, got.Finalizers)
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("a dry-run delete wrote (revision %d → %d)", before, after)
	}
}

// TestNamespaceDeletion: as kube-apiserver's namespace registry, the first
// delete marks a namespace Terminating with a deletionTimestamp and no
// grace period; later deletes change nothing until it is finalized.
func TestNamespaceDeletion(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	nss := c.client.CoreV1().Namespaces()
	_, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ending"}}, metav1.CreateOptions{})
	must(t, err)
	must(t, nss.Delete(ctx, "ending", metav1.DeleteOptions{}))
	first, err := nss.Get(ctx, "ending", metav1.GetOptions{})
	must(t, err)
	if first.DeletionTimestamp == nil || first.DeletionGracePeriodSeconds != nil || first.Status.Phase != corev1.NamespaceTerminating {
		t.Errorf("after delete: deletionTimestamp %v deletionGracePeriodSeconds %v phase %s, want set, unset, Terminating",
			first.DeletionTimestamp, first.DeletionGracePeriodSeconds, first.Status.Phase)
	}
	must(t, nss.Delete(ctx, "ending", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}))
	again, err := nss.Get(ctx, "ending", metav1.GetOptions{})
	must(t, err)
	if again.ResourceVersion != first.ResourceVersion || len(again.Finalizers) > 0 {
		t.Errorf("a second delete changed the namespace: resourceVersion %s → %s, finalizers %v", first.ResourceVersion, again.ResourceVersion, again.Finalizers)
	}
	// Finalized, it goes.
	again.Spec.Finalizers = nil
	_, err = nss.Finalize(ctx, again, metav1.UpdateOptions{})
	must(t, err)
	if _, err := nss.Get(ctx, "ending", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after finalizing: %v, want NotFound", err)
	}
}

// TestEventDeletionIgnoresPropagation: Kubernetes does not garbage-collect
// events (their strategy's policy is Unsupported): a delete that asks to
// orphan or to wait for dependents removes an event at once.
func TestEventDeletionIgnoresPropagation(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	evs := c.client.CoreV1().Events(testNS)
	for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationOrphan, metav1.DeletePropagationForeground} {
		name := "ev-" + strings.ToLower(string(policy))
		_, err := evs.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: "p"},
			Reason:         "Test", Message: "m", Type: corev1.EventTypeNormal,
		}, metav1.CreateOptions{})
		must(t, err)
		must(t, evs.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}))
		if got, err := evs.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("after a %s delete: %v, finalizers %v, want NotFound", policy, err, got.Finalizers)
		}
	}
}

// TestKubectlDeleteAnswers: the real kubectl deletes through the answers
// above (a Status whose uid it waits on, the list of a selector's
// objects), also as a server-side dry run.
func TestKubectlDeleteAnswers(t *testing.T) {
	c := startAPI(t)
	for _, name := range []string{"a", "b", "c"} {
		c.kubectl(t, "", "create", "configmap", name, "--from-literal=k=v")
	}
	c.kubectl(t, "", "label", "configmap", "b", "c", "set=bc")
	mustContain(t, c.kubectl(t, "", "delete", "configmap", "a", "--dry-run=server"), `configmap "a" deleted (server dry run)`)
	mustContain(t, c.kubectl(t, "", "delete", "configmap", "a"), `configmap "a" deleted`)
	mustContain(t, c.kubectl(t, "", "delete", "configmap", "-l", "set=bc"), `configmap "b" deleted`, `configmap "c" deleted`)
	if out := c.kubectl(t, "", "get", "configmaps", "-o", "name"); strings.Contains(out, "configmap/") {
		t.Errorf("configmaps left: %s", out)
	}
}

// removeAfterMark removes a pod's key as soon as the API server has
// written it terminating with grace 0: another client's deletion between
// the two writes of a forced delete.
type removeAfterMark struct {
	pb.KVClient
	c   **cluster // set once the server runs: requests before do not match
	key string
}

func (k removeAfterMark) Txn(ctx context.Context, in *pb.TxnRequest, opts ...grpc.CallOption) (*pb.TxnResponse, error) {
	resp, err := k.KVClient.Txn(ctx, in, opts...)
	for _, op := range in.Success {
		if put := op.GetRequestPut(); err == nil && resp.Succeeded && put != nil && string(put.Key) == k.key &&
			strings.Contains(string(put.Value), `"deletionGracePeriodSeconds":0`) {
			if _, err := (*k.c).etcd.Delete(ctx, k.key); err != nil {
				return nil, err
			}
		}
	}
	return resp, err
}

// TestForcedDeleteRacingAnotherDeletion: a pod that another deletion
// removes after this one wrote it terminating is deleted all the same: 200
// with the pod as marked, as kube-apiserver (kubernetes#19403), not 404.
func TestForcedDeleteRacingAnotherDeletion(t *testing.T) {
	const key = "/registry/pods/" + testNS + "/raced"
	var c *cluster
	c = startAPIWithKV(t, func(kv pb.KVClient) pb.KVClient {
		return removeAfterMark{KVClient: kv, c: &c, key: key}
	})
	pods := c.client.CoreV1().Pods(testNS)
	in := semPod("raced")
	in.Spec.NodeName = "edge-1"
	_, err := pods.Create(t.Context(), in, metav1.CreateOptions{})
	must(t, err)
	hc := rawClient(t, c, true)
	code, b := rawDo(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+testNS+"/pods/raced?gracePeriodSeconds=0", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("forced delete answered %d %s, want 200", code, b)
	}
	var got corev1.Pod
	must(t, json.Unmarshal(b, &got))
	if got.Name != "raced" || got.DeletionTimestamp == nil || got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != 0 {
		t.Errorf("answer: %s deletionTimestamp %v grace %v, want the pod as marked", got.Name, got.DeletionTimestamp, got.DeletionGracePeriodSeconds)
	}
}
