package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Volume is a pod volume materialised on the node's disk.
type Volume struct {
	Dir string
	// ReadOnly: configMap and secret volumes are always read-only, as in
	// Kubernetes.
	ReadOnly bool
}

// Volumes materialises a pod's volumes under dir: configMap and secret
// contents as files (published atomically through a ..data link, as the
// kubelet does, so a guest never sees half an update), emptyDir as an empty
// directory. Calling it again refreshes configMap and secret files and
// keeps emptyDir contents. Other volume types are errors.
func Volumes(pod *corev1.Pod, dir string, lk Lookup) (map[string]Volume, error) {
	out := map[string]Volume{}
	for _, v := range pod.Spec.Volumes {
		vdir := filepath.Join(dir, v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(vdir, 0o700); err != nil {
				return nil, err
			}
			out[v.Name] = Volume{Dir: vdir}
			continue
		case v.ConfigMap != nil:
			files, err := configMapFiles(v.ConfigMap, lk)
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if err := publish(vdir, files); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.Secret != nil:
			files, err := secretFiles(v.Secret, lk)
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if err := publish(vdir, files); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		default:
			return nil, fmt.Errorf("volume %s: only configMap, secret and emptyDir volumes are supported for wasm pods", v.Name)
		}
		out[v.Name] = Volume{Dir: vdir, ReadOnly: true}
	}
	return out, nil
}

func configMapFiles(src *corev1.ConfigMapVolumeSource, lk Lookup) (map[string][]byte, error) {
	cm, err := lk.ConfigMap(src.Name)
	if err != nil {
		return nil, err
	}
	if cm == nil {
		if optional(src.Optional) {
			return map[string][]byte{}, nil
		}
		return nil, fmt.Errorf("configmap %q not found", src.Name)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return project(data, src.Items, optional(src.Optional))
}

func secretFiles(src *corev1.SecretVolumeSource, lk Lookup) (map[string][]byte, error) {
	s, err := lk.Secret(src.SecretName)
	if err != nil {
		return nil, err
	}
	if s == nil {
		if optional(src.Optional) {
			return map[string][]byte{}, nil
		}
		return nil, fmt.Errorf("secret %q not found", src.SecretName)
	}
	return project(s.Data, src.Items, optional(src.Optional))
}

// project maps keys to relative file paths (items, or every key as its own
// name).
func project(data map[string][]byte, items []corev1.KeyToPath, opt bool) (map[string][]byte, error) {
	if len(items) == 0 {
		return data, nil
	}
	files := map[string][]byte{}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return nil, fmt.Errorf("key %q not found", it.Key)
		}
		files[it.Path] = v
	}
	return files, nil
}

// publish writes files into a new timestamped directory inside vdir, then
// swaps the ..data link to it and points a link per top-level entry at
// ..data, so readers see either the old or the new set.
func publish(vdir string, files map[string][]byte) error {
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		return err
	}
	gen := "..gen_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	for p, b := range files {
		clean := filepath.Clean(p)
		if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("file path %q escapes the volume", p)
		}
		full := filepath.Join(vdir, gen, clean)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(vdir, gen), 0o700); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(vdir, "..data"))
	tmp := filepath.Join(vdir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(gen, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(vdir, "..data")); err != nil {
		return err
	}
	// Top-level names link through ..data; names no longer there go.
	top := map[string]bool{}
	for p := range files {
		top[strings.Split(filepath.Clean(p), string(filepath.Separator))[0]] = true
	}
	entries, _ := os.ReadDir(vdir)
	for _, e := range entries {
		if n := e.Name(); !strings.HasPrefix(n, "..") && !top[n] {
			os.Remove(filepath.Join(vdir, n))
		}
	}
	names := make([]string, 0, len(top))
	for n := range top {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		link := filepath.Join(vdir, n)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", n) {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(filepath.Join("..data", n), link); err != nil {
			return err
		}
	}
	if old != "" && old != gen {
		os.RemoveAll(filepath.Join(vdir, old))
	}
	return nil
}

// Mounts maps a container's volumeMounts onto materialised volumes.
func Mounts(c *corev1.Container, vols map[string]Volume) ([]runtime.Mount, error) {
	var out []runtime.Mount
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no such volume", m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			return nil, fmt.Errorf("volumeMount %s: subPath is not supported for wasm containers", m.Name)
		}
		out = append(out, runtime.Mount{HostPath: v.Dir, GuestPath: m.MountPath, ReadOnly: v.ReadOnly || m.ReadOnly})
	}
	return out, nil
}
