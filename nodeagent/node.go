package nodeagent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// Version is the kubelet version the agent reports.
const Version = "v1.37.2-wasmfleet"

// RuntimeClassLabelPrefix marks the runtime classes a node supports, one
// label each (runtime.wasmfleet.io/wasm=true), so a RuntimeClass's
// scheduling.nodeSelector and the scheduler can select on them.
const RuntimeClassLabelPrefix = "runtime.wasmfleet.io/"

// SystemInfo is what the agent reports about its machine.
type SystemInfo struct {
	Hostname, Arch, OS, KernelVersion, OSImage, MachineID, BootID string
	CPUs                                                          int
	MemoryBytes                                                   int64
	// InternalIPs are the machine's non-loopback unicast addresses.
	InternalIPs []string
}

// ReadSystemInfo reads SystemInfo from the running machine (Linux /proc and
// /etc; fields it cannot read stay empty).
func ReadSystemInfo() SystemInfo {
	si := SystemInfo{Arch: goruntime.GOARCH, OS: goruntime.GOOS, CPUs: goruntime.NumCPU()}
	si.Hostname, _ = os.Hostname()
	si.KernelVersion = readTrim("/proc/sys/kernel/osrelease")
	si.MachineID = readTrim("/etc/machine-id")
	si.BootID = readTrim("/proc/sys/kernel/random/boot_id")
	si.OSImage = osImage("/etc/os-release")
	si.MemoryBytes = memTotal("/proc/meminfo")
	si.InternalIPs = internalIPs()
	return si
}

// internalIPs are the machine's non-loopback unicast addresses.
func internalIPs() []string {
	var ips []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
				ips = append(ips, ipn.IP.String())
			}
		}
	}
	return ips
}

// HostIPs picks a pod's status.hostIPs from the node's addresses as the
// kubelet does: the first of each family, IPv4 first.
func HostIPs(ips []string) []corev1.HostIP {
	var v4, v6 string
	for _, s := range ips {
		ip := net.ParseIP(s)
		switch {
		case ip == nil:
		case ip.To4() != nil && v4 == "":
			v4 = s
		case ip.To4() == nil && v6 == "":
			v6 = s
		}
	}
	var out []corev1.HostIP
	for _, s := range []string{v4, v6} {
		if s != "" {
			out = append(out, corev1.HostIP{IP: s})
		}
	}
	return out
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func osImage(path string) string {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "unknown"
}

func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BuildNode returns the Node the agent registers: labels, capacity and
// allocatable, node info, addresses, the runtime classes it supports and a
// Ready condition as of now.
func BuildNode(cfg Config, si SystemInfo, runtimes []runtime.Info, now time.Time) (*corev1.Node, error) {
	reservedCPU, err := resource.ParseQuantity(cfg.ReservedCPU)
	if err != nil {
		return nil, fmt.Errorf("reserved-cpu: %w", err)
	}
	reservedMem, err := resource.ParseQuantity(cfg.ReservedMemory)
	if err != nil {
		return nil, fmt.Errorf("reserved-memory: %w", err)
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(si.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(si.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(cfg.MaxPods), resource.DecimalSI),
	}
	allocatable := capacity.DeepCopy()
	for name, reserved := range map[corev1.ResourceName]resource.Quantity{corev1.ResourceCPU: reservedCPU, corev1.ResourceMemory: reservedMem} {
		q := allocatable[name]
		q.Sub(reserved)
		if q.Sign() < 0 {
			return nil, fmt.Errorf("reserved %s (%s) exceeds the capacity (%s)", name, reserved.String(), capacity.Name(name, resource.DecimalSI).String())
		}
		allocatable[name] = q
	}

	labels := map[string]string{}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	labels[corev1.LabelArchStable] = si.Arch
	labels[corev1.LabelOSStable] = si.OS
	// The beta labels too, as the kubelet still sets them: old manifests
	// select nodes by them.
	labels["beta.kubernetes.io/arch"] = si.Arch
	labels["beta.kubernetes.io/os"] = si.OS
	labels[corev1.LabelHostname] = cfg.NodeName
	var versions []string
	for _, rt := range runtimes {
		labels[RuntimeClassLabelPrefix+rt.Name] = "true"
		v := rt.Version // "containerd://1.7.x" as it is, "wazero v1.12.0" as wasm://v1.12.0
		if !strings.Contains(v, "://") {
			v = rt.Name + "://" + strings.TrimPrefix(v, "wazero ")
		}
		versions = append(versions, v)
	}
	sort.Strings(versions)

	addrs := []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: cfg.NodeName}}
	for _, ip := range si.InternalIPs {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	t := metav1.NewTime(now)
	cond := func(typ corev1.NodeConditionType, st corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: st, Reason: reason, Message: msg, LastHeartbeatTime: t, LastTransitionTime: t}
	}
	return &corev1.Node{
		TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable,
			Addresses:   addrs,
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: si.MachineID, BootID: si.BootID, KernelVersion: si.KernelVersion, OSImage: si.OSImage,
				OperatingSystem: si.OS, Architecture: si.Arch, KubeletVersion: Version,
				ContainerRuntimeVersion: strings.Join(versions, ","),
			},
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "wasmfleet agent is posting ready status"),
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "agent has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "agent has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "agent has sufficient PID available"),
			},
		},
	}, nil
}
