package tables

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// benchPods makes n realistic pods: owned by a ReplicaSet, two containers, one
// of them restarted, running on one of 100 nodes.
func benchPods(n int) []runtime.Object {
	objs := make([]runtime.Object, n)
	for i := range objs {
		name := fmt.Sprintf("web-5d4f8b7c9-%05d", i)
		objs[i] = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: "default", UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)),
				ResourceVersion: fmt.Sprint(1000 + i), CreationTimestamp: ago(time.Duration(i) * time.Minute),
				Labels: map[string]string{"app": "web", "pod-template-hash": "5d4f8b7c9"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d4f8b7c9",
					UID: "rs-uid", Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
			},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%03d", i%100), Containers: containers("web", "log")},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.%d.%d", i/250, i%250),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{
					running("web", 0),
					withLastTermination(running("log", 2), 3*time.Hour),
				},
			},
		}
	}
	return objs
}

// BenchmarkConvertPods measures Convert of 10,000 pods with
// includeObject=Metadata (what `kubectl get pods` asks for).
func BenchmarkConvertPods(b *testing.B) {
	objs := benchPods(10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		table, err := Convert(podGVK, objs, IncludeMetadata, testNow)
		if err != nil || len(table.Rows) != len(objs) {
			b.Fatalf("rows %d, err %v", len(table.Rows), err)
		}
	}
}

// BenchmarkConvertPodsJSON adds the JSON encoding of the Table, which is what
// an API server spends in all to answer the request.
func BenchmarkConvertPodsJSON(b *testing.B) {
	objs := benchPods(10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		table, err := Convert(podGVK, objs, IncludeMetadata, testNow)
		if err != nil {
			b.Fatal(err)
		}
		if err := json.NewEncoder(io.Discard).Encode(table); err != nil {
			b.Fatal(err)
		}
	}
}
