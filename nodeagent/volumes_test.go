package nodeagent

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/runtime"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVolumes(t *testing.T) {
	yes := true
	lk := fakeLookup{
		cms:     map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"sensor.json": `{"interval":"5s"}`, "old": "x"}}},
		secrets: map[string]*corev1.Secret{"creds": {Data: map[string][]byte{"token": []byte("s3cret")}}},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", Items: []corev1.KeyToPath{{Key: "token", Path: "api/token"}}}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "maybe", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: &yes}}},
	}}}
	dir := t.TempDir()
	vols, err := Volumes(pod, dir, lk)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(vols["config"].Dir, "sensor.json")); got != `{"interval":"5s"}` {
		t.Errorf("configmap file = %q", got)
	}
	if got := readFile(t, filepath.Join(vols["creds"].Dir, "api", "token")); got != "s3cret" {
		t.Errorf("secret file = %q", got)
	}
	if !vols["config"].ReadOnly || !vols["creds"].ReadOnly || vols["scratch"].ReadOnly {
		t.Errorf("read-only flags: %+v", vols)
	}
	os.WriteFile(filepath.Join(vols["scratch"].Dir, "state"), []byte("kept"), 0o600)

	// An update replaces the files atomically, drops removed keys and
	// keeps emptyDir contents.
	lk.cms["cfg"] = &corev1.ConfigMap{Data: map[string]string{"sensor.json": `{"interval":"1s"}`}}
	if vols, err = Volumes(pod, dir, lk); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(vols["config"].Dir, "sensor.json")); got != `{"interval":"1s"}` {
		t.Errorf("updated configmap file = %q", got)
	}
	if _, err := os.Stat(filepath.Join(vols["config"].Dir, "old")); !os.IsNotExist(err) {
		t.Errorf("removed key still there: %v", err)
	}
	entries, _ := os.ReadDir(vols["config"].Dir)
	if len(entries) != 3 { // ..data, one generation, sensor.json
		t.Errorf("%d entries after an update, want 3 (old generation removed)", len(entries))
	}
	if got := readFile(t, filepath.Join(vols["scratch"].Dir, "state")); got != "kept" {
		t.Errorf("emptyDir lost its contents: %q", got)
	}

	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/sensor"},
		{Name: "scratch", MountPath: "/tmp/s", ReadOnly: true},
		{Name: "scratch", MountPath: "/data"},
	}}
	mounts, err := Mounts(c, vols)
	if err != nil {
		t.Fatal(err)
	}
	want := []runtime.Mount{
		{HostPath: vols["config"].Dir, GuestPath: "/etc/sensor", ReadOnly: true},
		{HostPath: vols["scratch"].Dir, GuestPath: "/tmp/s", ReadOnly: true},
		{HostPath: vols["scratch"].Dir, GuestPath: "/data"},
	}
	if !reflect.DeepEqual(mounts, want) {
		t.Errorf("mounts %+v", mounts)
	}
}

func TestVolumeErrors(t *testing.T) {
	lk := fakeLookup{cms: map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"k": "v"}}}}
	for name, v := range map[string]corev1.Volume{
		"missing configmap": {Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}},
		"missing key":       {Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "x", Path: "x"}}}}},
		"escaping path":     {Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "k", Path: "../../etc/passwd"}}}}},
		"hostPath":          {Name: "v", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
	} {
		pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{v}}}
		if _, err := Volumes(pod, t.TempDir(), lk); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Mounts(&corev1.Container{VolumeMounts: []corev1.VolumeMount{{Name: "x", MountPath: "/x"}}}, nil); err == nil {
		t.Error("mount of an unknown volume: no error")
	}
	vols := map[string]Volume{"v": {Dir: "/x"}}
	if _, err := Mounts(&corev1.Container{VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/x", SubPath: "a"}}}, vols); err == nil {
		t.Error("subPath: no error")
	}
}
