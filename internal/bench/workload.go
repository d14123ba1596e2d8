package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// Namespace is where the benchmark creates its objects.
const Namespace = "bench"

// benchPod returns the pod every create sends: one container with the
// fields real workloads carry (labels, env, ports, resources, a config
// volume). As stored by the API server (defaults, uid, timestamps, status
// added) it is about 1.5 KB of JSON.
func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: Namespace,
			Labels: map[string]string{
				"app.kubernetes.io/name":       "sensor-gateway",
				"app.kubernetes.io/instance":   "sensor-gateway-eu-west",
				"app.kubernetes.io/component":  "ingest",
				"app.kubernetes.io/managed-by": "wasmfleet-bench",
				"fleet.wasmfleet.io/site":      "site-0042",
			},
			Annotations: map[string]string{
				"fleet.wasmfleet.io/rollout": "2026-11-26T00:00:00Z/canary-3",
			},
		},
		Spec: corev1.PodSpec{
			RuntimeClassName: ptr("wasm"),
			Containers: []corev1.Container{{
				Name:  "ingest",
				Image: "sensor-gateway@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				Args:  []string{"--listen=:8080", "--upstream=nats://hub.example.com:4222", "--batch=64"},
				Env: []corev1.EnvVar{
					{Name: "SITE", Value: "site-0042"},
					{Name: "REGION", Value: "eu-west"},
					{Name: "LOG_LEVEL", Value: "info"},
					{Name: "SAMPLE_INTERVAL", Value: "250ms"},
				},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/sensor-gateway", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{
				Name:         "config",
				VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sensor-gateway-config"}}},
			}},
			NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"},
			Tolerations: []corev1.Toleration{{
				Key: "fleet.wasmfleet.io/intermittent-link", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// benchConfigMap returns a valid ConfigMap of about 1.5 KB of JSON.
func benchConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: Namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "wasmfleet-bench"},
		},
		Data: map[string]string{"config.yaml": strings.Repeat("key: value # padding\n", 64)},
	}
}

// storedConfigMap is benchConfigMap as the API server would store it
// (uid and creationTimestamp set, no resourceVersion), for writing straight
// into etcd.
func storedConfigMap(name string) ([]byte, error) {
	cm := benchConfigMap(name)
	cm.UID = uuid.NewUUID()
	cm.CreationTimestamp = metav1.NewTime(time.Now().Truncate(time.Second))
	return json.Marshal(cm)
}

// phaseResult is the outcome of a count-bounded, concurrent phase.
type phaseResult struct {
	Ops       int
	Clients   int
	Elapsed   time.Duration
	Latencies []time.Duration // per operation, unsorted
	ServerCPU time.Duration   // CPU time the server process used meanwhile
	BenchCPU  time.Duration   // CPU time this process used meanwhile
	// OtherCPU is the CPU time the rest of the machine used meanwhile
	// (other processes, kernel threads), Steal the time the hypervisor
	// took from it: measures of interference.
	OtherCPU, Steal time.Duration
	// Server is what the server's metrics say (API phases only), computed
	// by finish from serverSums, their change over the phase.
	Server     ServerTimes
	serverSums promSums
	// RoundRates are the rates of the parts added, in order (the rounds of
	// a phase run in rounds).
	RoundRates []float64
}

// add adds q, a later part of the same phase, to p; finish completes p
// once every part has been added.
func (p *phaseResult) add(q phaseResult) {
	p.Ops += q.Ops
	p.Clients = q.Clients
	p.Elapsed += q.Elapsed
	p.Latencies = append(p.Latencies, q.Latencies...)
	p.ServerCPU += q.ServerCPU
	p.BenchCPU += q.BenchCPU
	p.OtherCPU += q.OtherCPU
	p.Steal += q.Steal
	p.RoundRates = append(p.RoundRates, q.Rate())
	if q.serverSums != nil {
		p.serverSums = p.serverSums.add(q.serverSums)
	}
}

func (p *phaseResult) finish() {
	if p.serverSums != nil {
		p.Server = serverTimes(promSums{}, p.serverSums, "pods")
	}
}

// Rate is operations per second.
func (p phaseResult) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Ops) / p.Elapsed.Seconds()
}

// runPhase calls op(ctx, worker, i) for i in [0, total) from clients
// goroutines and times it. The first error cancels the others and is
// returned; every goroutine has returned when runPhase does.
func runPhase(ctx context.Context, m *meter, clients, total int, op func(ctx context.Context, worker, i int) error) (phaseResult, error) {
	res := phaseResult{Ops: total, Clients: clients}
	if total <= 0 {
		return res, nil
	}
	clients = max(1, min(clients, total))
	lat := make([]time.Duration, total)
	var next atomic.Int64
	before := m.sample()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for w := range clients {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= total || gctx.Err() != nil {
					return gctx.Err()
				}
				t := time.Now()
				if err := op(gctx, w, i); err != nil {
					return fmt.Errorf("operation %d: %w", i, err)
				}
				lat[i] = time.Since(t)
			}
		})
	}
	err := g.Wait()
	res.Elapsed = time.Since(start)
	after := m.sample()
	res.ServerCPU, res.BenchCPU = after.server-before.server, after.bench-before.bench
	res.OtherCPU, res.Steal = after.other(before)
	res.Latencies = lat
	return res, err
}
