package gc

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// BenchmarkInformerCache compares what the collector's caches cost with
// the dynamic client (full objects, as before) and with the metadata
// client (PartialObjectMetadata): the time to sync an informer of 1,000
// pods and the heap it holds once synced.
//
//	go test -run '^$' -bench InformerCache -benchtime 5x ./controlplane/controllers/gc/
func BenchmarkInformerCache(b *testing.B) {
	const pods = 1000
	c := testcluster.Start(b)
	rc := c.RESTConfig(b)
	client := c.Client(b)
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "00000000-0000-0000-0000-00000000000a"}
	for i := range pods {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%04d", i), Labels: map[string]string{"app": "web"}, OwnerReferences: []metav1.OwnerReference{owner}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "hello:1", Args: []string{"--listen=:8080", "--log-level=info"},
				Env: []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "REGION", Value: "eu-west"}},
			}}},
		}
		if _, err := client.CoreV1().Pods("bench").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	mc, err := metadata.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		new  func() cache.SharedIndexInformer
	}{
		{"dynamic", func() cache.SharedIndexInformer {
			return dynamicinformer.NewFilteredDynamicInformer(dyn, gvr, "bench", 0, cache.Indexers{}, nil).Informer()
		}},
		{"metadata", func() cache.SharedIndexInformer {
			return metadatainformer.NewFilteredMetadataInformer(mc, gvr, "bench", 0, cache.Indexers{}, nil).Informer()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var heap, sync float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				inf := tc.new()
				ictx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				start := time.Now()
				go func() { inf.RunWithContext(ictx); close(done) }()
				if !cache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
					b.Fatal("informer did not sync")
				}
				sync += float64(time.Since(start).Milliseconds())
				runtime.GC()
				runtime.ReadMemStats(&after)
				if n := len(inf.GetStore().List()); n != pods {
					b.Fatalf("cached %d pods, want %d", n, pods)
				}
				heap += float64(after.HeapAlloc) - float64(before.HeapAlloc)
				cancel()
				<-done
			}
			b.ReportMetric(heap/float64(b.N)/pods, "heap-B/pod")
			b.ReportMetric(sync/float64(b.N), "sync-ms")
		})
	}
}
