package nodeagent

import (
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/runtime"
)

type fakeLookup struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (f fakeLookup) ConfigMap(name string) (*corev1.ConfigMap, error) { return f.cms[name], nil }
func (f fakeLookup) Secret(name string) (*corev1.Secret, error)       { return f.secrets[name], nil }

func TestEnv(t *testing.T) {
	yes := true
	lk := fakeLookup{
		cms:     map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"INTERVAL": "5s", "UNIT": "C"}}},
		secrets: map[string]*corev1.Secret{"creds": {Data: map[string][]byte{"token": []byte("s3cret")}}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor-1", Namespace: "site-a", UID: "u-1", Labels: map[string]string{"zone": "north"}},
		Spec:       corev1.PodSpec{NodeName: "edge-7"},
	}
	c := &corev1.Container{
		Name:      "main",
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}},
		EnvFrom:   []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}, Prefix: "CFG_"}},
		Env: []corev1.EnvVar{
			{Name: "MODE", Value: "fast"},
			{Name: "LABEL", Value: "$(MODE)-$(NOPE)-$$(MODE)"},
			{Name: "INTERVAL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "INTERVAL"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
			{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "nope", Optional: &yes}}},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "ZONE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['zone']"}}},
			{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "MODE", Value: "slow"},
		},
	}
	env, err := Env(pod, c, lk)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range env {
		got = append(got, e.Name+"="+e.Value)
	}
	want := "CFG_INTERVAL=5s CFG_UNIT=C MODE=slow LABEL=fast-$(NOPE)-$(MODE) INTERVAL=5s TOKEN=s3cret POD=sensor-1 NS=site-a NODE=edge-7 ZONE=north MEM_MI=64"
	if strings.Join(got, " ") != want {
		t.Errorf("env\n got %s\nwant %s", strings.Join(got, " "), want)
	}

	for name, e := range map[string]corev1.EnvVar{
		"missing configmap": {Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}},
		"missing key":       {Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "k"}}},
		"bad field":         {Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nope"}}},
	} {
		if _, err := Env(pod, &corev1.Container{Env: []corev1.EnvVar{e}}, lk); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseImage(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		image      string
		allowFiles bool
		src        ImageSource
		url, dig   string
		bad        bool
	}{
		{image: "hello:v1", src: FromStore},
		{image: "acme/sensor@sha256:" + d, src: FromStore, dig: "sha256:" + d},
		{image: "https://modules.example.com/x.wasm#sha256=" + d, src: FromHTTPS, url: "https://modules.example.com/x.wasm", dig: "sha256:" + d},
		{image: "https://modules.example.com/x.wasm", bad: true},
		{image: "https://modules.example.com/x.wasm#sha256=ABC", bad: true},
		{image: "file:///opt/m/x.wasm", allowFiles: true, src: FromFile, url: "/opt/m/x.wasm"},
		{image: "file:///opt/m/x.wasm", bad: true},
		{image: "http://insecure/x.wasm#sha256=" + d, bad: true},
		{image: "hello", bad: true},
		{image: "Hello:v1", bad: true},
	} {
		img, err := ParseImage(tc.image, tc.allowFiles)
		if (err != nil) != tc.bad {
			t.Errorf("%s: err %v, want bad=%v", tc.image, err, tc.bad)
			continue
		}
		if err == nil && (img.Source != tc.src || img.URL != tc.url || img.Digest != tc.dig) {
			t.Errorf("%s: %+v", tc.image, img)
		}
	}
}

// TestExpandArgs: a container's command and args see its environment, as
// with the kubelet: $(NAME) expands, $$ escapes, unknown names stay.
func TestExpandArgs(t *testing.T) {
	env := []runtime.EnvVar{{Name: "GREET", Value: "hello"}, {Name: "WHO", Value: "edge"}}
	got := expandArgs([]string{"$(GREET), $(WHO)!", "$$(GREET)", "$(NOPE)", "plain"}, env)
	want := []string{"hello, edge!", "$(GREET)", "$(NOPE)", "plain"}
	if !slices.Equal(got, want) {
		t.Errorf("expandArgs = %q, want %q", got, want)
	}
	if got := expandArgs(nil, env); got != nil {
		t.Errorf("expandArgs(nil) = %q", got)
	}
}

// TestPodHostname: the kubelet's hostname of a pod, and HOSTNAME put
// before the container's environment unless the container sets it.
func TestPodHostname(t *testing.T) {
	node, _ := os.Hostname()
	long := strings.Repeat("a", 62) + "-b"
	for _, c := range []struct {
		pod  corev1.Pod
		want string
	}{
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"}}, "web-0"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"}, Spec: corev1.PodSpec{Hostname: "db"}}, "db"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long}}, strings.Repeat("a", 62)}, // cut to 63, then of its trailing '-'
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"}, Spec: corev1.PodSpec{HostNetwork: true}}, strings.ToLower(node)},
	} {
		if got := podHostname(&c.pod); got != c.want {
			t.Errorf("podHostname(%q, hostname %q, hostNetwork %v) = %q, want %q", c.pod.Name, c.pod.Spec.Hostname, c.pod.Spec.HostNetwork, got, c.want)
		}
	}
	env := []runtime.EnvVar{{Name: "A", Value: "1"}}
	if got := withHostname(env, "web-0"); !slices.Equal(got, []runtime.EnvVar{{Name: "HOSTNAME", Value: "web-0"}, {Name: "A", Value: "1"}}) {
		t.Errorf("withHostname = %v", got)
	}
	own := []runtime.EnvVar{{Name: "HOSTNAME", Value: "mine"}}
	if got := withHostname(own, "web-0"); !slices.Equal(got, own) {
		t.Errorf("withHostname of a container that sets HOSTNAME = %v", got)
	}
}
