package apiserver_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
