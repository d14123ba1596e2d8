package apiserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

// BenchmarkCreatePod measures the API server's create path in process
// (apiserver.Do: no TLS, no HTTP/2) against an embedded etcd without fsync:
// what the server itself spends per pod create, allocations included.
//
//	go test ./controlplane/apiserver -run '^$' -bench CreatePod -benchmem -cpuprofile cpu.out
func BenchmarkCreatePod(b *testing.B) {
	c := startAPI(b)
	const placeholder = "bench-template-000000"
	tmpl, err := json.Marshal(benchPod(placeholder))
	must(b, err)
	admin := apiserver.User{Name: "admin", Groups: []string{apiserver.Admin}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		body := bytes.Replace(tmpl, []byte(placeholder), []byte(fmt.Sprintf("bench-%06d", i)), 1)
		i++
		code, _, resp := c.api.Do(b.Context(), admin, http.MethodPost, "/api/v1/namespaces/"+testNS+"/pods", "application/json", body)
		if code != http.StatusCreated {
			b.Fatalf("create: %d %s", code, resp)
		}
	}
}

// benchPod is a pod of a typical fleet workload: labels, an annotation,
// env, resources, a volume.
func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"app.kubernetes.io/name":      "sensor-gateway",
				"app.kubernetes.io/instance":  "sensor-gateway-eu-west",
				"app.kubernetes.io/component": "ingest",
				"fleet.wasmfleet.io/site":     "site-0042",
			},
			Annotations: map[string]string{"fleet.wasmfleet.io/rollout": "2026-11-26T00:00:00Z/canary-3"},
		},
		Spec: corev1.PodSpec{
			RuntimeClassName: ptr.To("wasm"),
			Containers: []corev1.Container{{
				Name:  "ingest",
				Image: "sensor:v2",
				Args:  []string{"--interval", "5s"},
				Env:   []corev1.EnvVar{{Name: "SITE", Value: "site-0042"}, {Name: "MODE", Value: "ingest"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				Ports:        []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}},
				VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/sensor"}},
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sensor"}}}}},
		},
	}
}
