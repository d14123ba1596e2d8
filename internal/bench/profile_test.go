package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// These benchmarks run the control plane in the test process, so that
// `go test -bench -cpuprofile/-blockprofile/-mutexprofile` can profile both
// sides of what `wasmfleet bench controlplane` measures. (A server started
// apart serves its own profiles to admins under /debug/pprof/: point
// WASMFLEET_BENCH_KUBECONFIG at it to profile the server alone.) The client
// runs in the same process: focus a profile on the server with, for example,
//
//	go tool pprof -focus 'apiserver|etcdserver|http2serverConn|nats-server' cpu.out
//
// Example:
//
//	go test ./internal/bench -run '^$' -bench PodCreate -benchtime 4000x -cpuprofile cpu.out

// inProcess starts a control plane with fsync on (the default) and returns
// a client-go clientset (QPS unlimited) with the bench namespace created,
// and its rest config. With WASMFLEET_BENCH_KUBECONFIG it uses that server
// instead, which must have the bench namespace.
func inProcess(b *testing.B) (*kubernetes.Clientset, *rest.Config) {
	cs, rc, _ := inProcessEtcd(b)
	return cs, rc
}

// inProcessEtcd is inProcess, also returning the server's etcd client URL
// (WASMFLEET_BENCH_ETCD's with WASMFLEET_BENCH_KUBECONFIG).
func inProcessEtcd(b *testing.B) (*kubernetes.Clientset, *rest.Config, string) {
	b.Helper()
	kc, etcdURL := os.Getenv("WASMFLEET_BENCH_KUBECONFIG"), os.Getenv("WASMFLEET_BENCH_ETCD")
	if kc == "" {
		cfg := testcluster.Config(b, b.TempDir())
		cfg.EtcdUnsafeNoFsync = false // as measured: fsync on
		c := testcluster.StartWith(b, cfg)
		kc, etcdURL = c.Kubeconfig(), "http://"+c.Config.EtcdClientListen
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		b.Fatal(err)
	}
	rc.QPS, rc.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("WASMFLEET_BENCH_KUBECONFIG") == "" {
		// The event publisher is ready shortly after the API.
		for i := 0; ; i++ {
			if _, err = cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err == nil || i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return cs, rc, etcdURL
}

// BenchmarkPodCreate32 creates pods through the API with 32 goroutines
// sharing one clientset (on GOMAXPROCS=2: parallelism 16).
func BenchmarkPodCreate32(b *testing.B) {
	cs, _ := inProcess(b)
	create32(b, "p", func(name string) error {
		_, err := cs.CoreV1().Pods(Namespace).Create(context.Background(), benchPod(name), metav1.CreateOptions{})
		return err
	})
}

// BenchmarkPlainCreate32 creates pods as the bench's plain HTTPS phase
// does, with 32 goroutines sharing one HTTP/2 connection.
func BenchmarkPlainCreate32(b *testing.B) {
	pc := plainInProcess(b)
	create32(b, "q", func(name string) error { return pc.create(context.Background(), name) })
}

// plainInProcess returns a plainCreator over the shared HTTP/2 connection
// of inProcess's server.
func plainInProcess(b *testing.B) *plainCreator {
	_, rc := inProcess(b)
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := newPlainCreator(hc, rc.Host)
	if err != nil {
		b.Fatal(err)
	}
	return pc
}

// BenchmarkRawCreate32 runs the raw etcd phase's create transaction (the
// API server's, with a pod the API stored) from 32 goroutines over gRPC:
// the baseline of BenchmarkPlainCreate32 on the same server. Against a
// server started apart, WASMFLEET_BENCH_ETCD gives its etcd client URL.
func BenchmarkRawCreate32(b *testing.B) {
	cs, _, etcdURL := inProcessEtcd(b)
	if _, err := cs.CoreV1().Pods(Namespace).Create(context.Background(), benchPod(fmt.Sprintf("t-%d", time.Now().UnixNano())), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	r := &runner{res: &Result{}}
	var err error
	if r.etcd, err = clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}); err != nil {
		b.Fatal(err)
	}
	defer r.etcd.Close()
	create, err := r.rawCreate(context.Background(), fmt.Sprintf("t%d", time.Now().UnixNano()))
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(max(1, 32/testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(context.Background(), 0, int(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPlainCreate1 creates pods as the bench's plain HTTPS phase
// does, one at a time.
func BenchmarkPlainCreate1(b *testing.B) {
	pc := plainInProcess(b)
	start := time.Now().UnixNano()
	b.ResetTimer()
	for i := range b.N {
		if err := pc.create(context.Background(), fmt.Sprintf("s-%07d-%d", i, start)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainH1Create32 creates pods as the bench's HTTP/1.1 phase
// does: 32 goroutines, each with a connection of its own.
func BenchmarkPlainH1Create32(b *testing.B) { connCreate32(b, false) }

// BenchmarkPlainH2Create32 is BenchmarkPlainH1Create32 over HTTP/2.
func BenchmarkPlainH2Create32(b *testing.B) { connCreate32(b, true) }

func connCreate32(b *testing.B, http2 bool) {
	_, rc := inProcess(b)
	pcs := make(chan *plainCreator, 32)
	for range cap(pcs) {
		pc, closeIdle, err := newConnCreator(rc, http2)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(closeIdle)
		pcs <- pc
	}
	create32(b, "c", func(name string) error {
		pc := <-pcs
		defer func() { pcs <- pc }()
		return pc.create(context.Background(), name)
	})
}

// create32 calls create b.N times from 32 goroutines, with names
// <prefix>-<n>-<start time> that no earlier run used.
func create32(b *testing.B, prefix string, create func(name string) error) {
	var n atomic.Int64
	start := time.Now().UnixNano()
	b.SetParallelism(max(1, 32/testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(fmt.Sprintf("%s-%07d-%d", prefix, n.Add(1), start)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPodCreate1 creates pods through the API one at a time.
func BenchmarkPodCreate1(b *testing.B) {
	cs, _ := inProcess(b)
	start := time.Now().UnixNano()
	b.ResetTimer()
	for i := range b.N {
		if _, err := cs.CoreV1().Pods(Namespace).Create(context.Background(), benchPod(fmt.Sprintf("p-%07d-%d", i, start)), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkClientDecodePod measures what a client-go typed client spends
// decoding one create response, as JSON (what the server answered before it spoke protobuf) and as
// protobuf (what the client asks for first).
func BenchmarkClientDecodePod(b *testing.B) {
	pod := benchPod("p-0000001")
	pod.UID = "7d0e3c1e-6f0b-4d8e-9a51-3c2b1f0e9d11"
	pod.CreationTimestamp = metav1.Now()
	pod.ResourceVersion = "123456"
	for _, ct := range []string{kruntime.ContentTypeJSON, kruntime.ContentTypeProtobuf} {
		info, ok := kruntime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), ct)
		if !ok {
			b.Fatalf("no serializer for %s", ct)
		}
		data, err := kruntime.Encode(scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), pod)
		if err != nil {
			b.Fatal(err)
		}
		dec := scheme.Codecs.UniversalDeserializer()
		b.Run(ct, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var out corev1.Pod
				if _, _, err := dec.Decode(data, nil, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
