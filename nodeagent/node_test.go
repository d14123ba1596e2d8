package nodeagent

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// TestAgentYAMLDocumentsDefaults loads configs/agent.yaml: it must give
// exactly the defaults and name every key.
func TestAgentYAMLDocumentsDefaults(t *testing.T) {
	v := viper.New()
	v.SetConfigFile("../configs/agent.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	var got Config
	if err := v.Unmarshal(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Labels) == 0 {
		got.Labels = nil
	}
	if want := Defaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/agent.yaml gives\n%+v\nwant\n%+v", got, want)
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		if key := typ.Field(i).Tag.Get("mapstructure"); key != "-" && !v.InConfig(key) {
			t.Errorf("configs/agent.yaml does not document %q", key)
		}
	}
}

func validConfig() Config {
	c := Defaults()
	c.Server, c.TokenFile, c.NodeName = "https://127.0.0.1:6443", "/tmp/token", "edge-1"
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil {
		t.Fatal("empty config is valid")
	}
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Config){
		"http server":              func(c *Config) { c.Server = "http://x:6443" },
		"bad node name":            func(c *Config) { c.NodeName = "Edge_1" },
		"bad label":                func(c *Config) { c.Labels = map[string]string{"a b": "c"} },
		"renew >= lease":           func(c *Config) { c.LeaseRenewInterval = c.LeaseDuration },
		"bad quantity":             func(c *Config) { c.ReservedMemory = "lots" },
		"one log file":             func(c *Config) { c.LogMaxFiles = 1 },
		"no token file":            func(c *Config) { c.TokenFile = "" },
		"zero pods":                func(c *Config) { c.MaxPods = 0 },
		"negative memory":          func(c *Config) { c.DefaultMemoryLimit = "-1Mi" },
		"no file checks":           func(c *Config) { c.FileCheckFrequency = 0 },
		"bad containerd namespace": func(c *Config) { c.ContainerdNamespace = "a/b" },
	} {
		c := validConfig()
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	labels, err := ParseLabels("site=north, hw=rpi4,")
	if err != nil || !reflect.DeepEqual(labels, map[string]string{"site": "north", "hw": "rpi4"}) {
		t.Errorf("ParseLabels = %v, %v", labels, err)
	}
	if _, err := ParseLabels("site"); err == nil {
		t.Error("ParseLabels accepted a label without =")
	}
}

func TestBuildNode(t *testing.T) {
	c := validConfig()
	c.Labels = map[string]string{"site": "north"}
	c.ReservedCPU, c.ReservedMemory = "500m", "1Gi"
	si := SystemInfo{Arch: "arm64", OS: "linux", KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12", CPUs: 4, MemoryBytes: 8 << 30, InternalIPs: []string{"192.0.2.7"}}
	n, err := BuildNode(c, si, []runtime.Info{{Name: "wasm", Version: "wazero v1.12.0", Mode: "compiler"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"site": "north", "kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "arm64", "beta.kubernetes.io/os": "linux", "kubernetes.io/hostname": "edge-1", "runtime.wasmfleet.io/wasm": "true"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	for name, want := range map[corev1.ResourceName][2]string{corev1.ResourceCPU: {"4", "3500m"}, corev1.ResourceMemory: {"8Gi", "7Gi"}, corev1.ResourcePods: {"110", "110"}} {
		c, a := n.Status.Capacity[name], n.Status.Allocatable[name]
		if c.Cmp(resource.MustParse(want[0])) != 0 || a.Cmp(resource.MustParse(want[1])) != 0 {
			t.Errorf("%s capacity %s allocatable %s, want %v", name, c.String(), a.String(), want)
		}
	}
	if n.Status.NodeInfo.ContainerRuntimeVersion != "wasm://v1.12.0" || n.Status.NodeInfo.Architecture != "arm64" || n.Status.NodeInfo.KubeletVersion != Version {
		t.Errorf("node info %+v", n.Status.NodeInfo)
	}
	if n.Status.Conditions[0].Type != corev1.NodeReady || n.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Errorf("conditions %+v", n.Status.Conditions)
	}
	if errs := validation.ValidateCreate(n); len(errs) > 0 {
		t.Errorf("the API server would refuse the node: %v", errs)
	}
	c.ReservedMemory = "16Gi"
	if _, err := BuildNode(c, si, nil, time.Now()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("reserving more than the capacity: %v", err)
	}
}

func TestReadSystemInfo(t *testing.T) {
	si := ReadSystemInfo()
	if si.CPUs < 1 || si.Arch == "" || si.OS == "" {
		t.Fatalf("system info %+v", si)
	}
	if si.OS == "linux" && (si.MemoryBytes <= 0 || si.KernelVersion == "") {
		t.Errorf("linux system info without memory or kernel: %+v", si)
	}
}
