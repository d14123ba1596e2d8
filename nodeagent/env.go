package nodeagent

import (
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// ReasonCreateContainerConfigError is the waiting reason for a container
// whose environment cannot be built (a missing ConfigMap or Secret key).
const ReasonCreateContainerConfigError = "CreateContainerConfigError"

// Lookup reads the ConfigMaps and Secrets of the pod's namespace; a missing
// object is (nil, nil).
type Lookup interface {
	ConfigMap(name string) (*corev1.ConfigMap, error)
	Secret(name string) (*corev1.Secret, error)
}

// Env builds a container's environment as the kubelet does: envFrom
// sources first, then env in order; $(NAME) in a value expands to a
// variable defined before it ($$ escapes), and later definitions win.
func Env(pod *corev1.Pod, c *corev1.Container, lk Lookup) ([]runtime.EnvVar, error) {
	var out []runtime.EnvVar
	index := map[string]int{}
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			out[i].Value = value
			return
		}
		index[name] = len(out)
		out = append(out, runtime.EnvVar{Name: name, Value: value})
	}
	lookup := func(name string) (string, bool) {
		if i, ok := index[name]; ok {
			return out[i].Value, true
		}
		return "", false
	}
	for _, from := range c.EnvFrom {
		data, err := envFromData(from, lk)
		if err != nil {
			return nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup))
			continue
		}
		v, ok, err := envValueFrom(pod, c, e.ValueFrom, lk)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return out, nil
}

// podHostname is the pod's hostname as the kubelet computes it
// (GeneratePodHostNameAndDomain): spec.hostname, else the pod's name, cut
// to 63 characters and then of a trailing '-' or '.'; a pod on the host's
// network has the node's (lower case, as the kubelet's default).
func podHostname(pod *corev1.Pod) string {
	if pod.Spec.HostNetwork {
		h, _ := os.Hostname()
		return strings.ToLower(h)
	}
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// withHostname puts HOSTNAME=hostname before env unless the container sets
// HOSTNAME itself, as Kubernetes' container runtimes do: the kubelet's
// $(VAR) expansion does not see it.
func withHostname(env []runtime.EnvVar, hostname string) []runtime.EnvVar {
	if hostname == "" || slices.ContainsFunc(env, func(e runtime.EnvVar) bool { return e.Name == "HOSTNAME" }) {
		return env
	}
	return append([]runtime.EnvVar{{Name: "HOSTNAME", Value: hostname}}, env...)
}

func envFromData(from corev1.EnvFromSource, lk Lookup) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := lk.ConfigMap(from.ConfigMapRef.Name)
		if err != nil {
			return nil, err
		}
		if cm == nil {
			if optional(from.ConfigMapRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		s, err := lk.Secret(from.SecretRef.Name)
		if err != nil {
			return nil, err
		}
		if s == nil {
			if optional(from.SecretRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("secret %q not found", from.SecretRef.Name)
		}
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return data, nil
	}
	return nil, nil
}

func optional(b *bool) bool { return b != nil && *b }

// envValueFrom resolves one valueFrom; ok is false for a missing optional
// key (the variable is then not set, as in Kubernetes).
func envValueFrom(pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource, lk Lookup) (string, bool, error) {
	switch {
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := lk.ConfigMap(ref.Name)
		if err != nil {
			return "", false, err
		}
		if cm != nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, true, nil
			}
		}
		if optional(ref.Optional) {
			return "", false, nil
		}
		if cm == nil {
			return "", false, fmt.Errorf("configmap %q not found", ref.Name)
		}
		return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := lk.Secret(ref.Name)
		if err != nil {
			return "", false, err
		}
		if s != nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), true, nil
			}
		}
		if optional(ref.Optional) {
			return "", false, nil
		}
		if s == nil {
			return "", false, fmt.Errorf("secret %q not found", ref.Name)
		}
		return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
	case src.FieldRef != nil:
		v, err := podField(pod, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceField(c, src.ResourceFieldRef)
		return v, err == nil, err
	}
	return "", false, fmt.Errorf("no value source")
}

// podField reads the downward-API fields a wasm pod has (it has no IP).
func podField(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs":
		return "", nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(rest, "']") {
			return m[strings.TrimSuffix(rest, "']")], nil
		}
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// resourceField reads limits.* or requests.* of the container in units of
// the divisor (rounded up), as the downward API does.
func resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	var list corev1.ResourceList
	switch {
	case ok && kind == "limits":
		list = c.Resources.Limits
	case ok && kind == "requests":
		list = c.Resources.Requests
	default:
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
}

// expandArgs expands $(NAME) references in a container's command or args
// with its environment env, as the kubelet does (see expand).
func expandArgs(args []string, env []runtime.EnvVar) []string {
	if len(args) == 0 {
		return args
	}
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, lookup)
	}
	return out
}

// expand replaces $(NAME) with an earlier variable's value; $$ escapes a
// dollar; unknown references stay as written.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				name := s[i+2 : i+2+end]
				if v, ok := lookup(name); ok {
					b.WriteString(v)
				} else {
					b.WriteString(s[i : i+3+end])
				}
				i += 2 + end
				continue
			}
		}
		b.WriteByte('$')
	}
	return b.String()
}
