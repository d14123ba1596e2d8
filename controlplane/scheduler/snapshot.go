package scheduler

import (
	"maps"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Kubernetes' defaults for containers without requests, used for scoring
// only (kube-scheduler's DefaultMilliCPURequest and DefaultMemoryRequest), so
// that request-less pods still spread.
const (
	defaultMilliCPURequest int64 = 100
	defaultMemoryRequest   int64 = 200 * 1024 * 1024
)

// nonZeroDefaults fills in missing container requests for scoring. It is
// read-only.
var nonZeroDefaults = corev1.ResourceList{
	corev1.ResourceCPU:    *resource.NewMilliQuantity(defaultMilliCPURequest, resource.DecimalSI),
	corev1.ResourceMemory: *resource.NewQuantity(defaultMemoryRequest, resource.BinarySI),
}

// Resources is an amount of node resources: cpu in millicores, memory and
// ephemeral storage in bytes, a pod count, and any other resource (extended
// resources, hugepages) by name.
type Resources struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	Pods             int64
	Scalar           map[corev1.ResourceName]int64
}

// ResourcesFromList converts a ResourceList.
func ResourcesFromList(rl corev1.ResourceList) Resources {
	var r Resources
	for name, q := range rl {
		switch name {
		case corev1.ResourceCPU:
			r.MilliCPU = q.MilliValue()
		case corev1.ResourceMemory:
			r.Memory = q.Value()
		case corev1.ResourceEphemeralStorage:
			r.EphemeralStorage = q.Value()
		case corev1.ResourcePods:
			r.Pods = q.Value()
		default:
			if r.Scalar == nil {
				r.Scalar = map[corev1.ResourceName]int64{}
			}
			r.Scalar[name] = q.Value()
		}
	}
	return r
}

func (r *Resources) add(o Resources, sign int64) {
	r.MilliCPU += sign * o.MilliCPU
	r.Memory += sign * o.Memory
	r.EphemeralStorage += sign * o.EphemeralStorage
	r.Pods += sign * o.Pods
	for name, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		r.Scalar[name] += sign * v
	}
}

// PodRequests is what pod asks of a node, as kube-scheduler counts it:
// containers, init containers (the larger of the running and init phases,
// restartable init containers included) and overhead.
func PodRequests(pod *corev1.Pod) Resources {
	r := ResourcesFromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	r.Pods = 1
	return r
}

// podNonZeroRequests is PodRequests with kube's defaults for containers that
// request no cpu or memory; it feeds the least-allocated score.
func podNonZeroRequests(pod *corev1.Pod) Resources {
	r := ResourcesFromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		NonMissingContainerRequests: nonZeroDefaults,
	}))
	r.Pods = 1
	return r
}

// hostPort is one host port a pod binds.
type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

const bindAllHostIP = "0.0.0.0"

// podHostPorts lists the host ports of pod's containers (and restartable
// init containers, which run alongside them), with kube's defaults: protocol
// TCP, host IP 0.0.0.0.
func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	add := func(cs []corev1.Container, restartableOnly bool) {
		for i := range cs {
			c := &cs[i]
			if restartableOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range c.Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := hostPort{ip: p.HostIP, protocol: p.Protocol, port: p.HostPort}
				if hp.ip == "" {
					hp.ip = bindAllHostIP
				}
				if hp.protocol == "" {
					hp.protocol = corev1.ProtocolTCP
				}
				out = append(out, hp)
			}
		}
	}
	add(pod.Spec.InitContainers, true)
	add(pod.Spec.Containers, false)
	return out
}

// PodInfo is a pod counted on a node, with what it uses there.
type PodInfo struct {
	Pod      *corev1.Pod
	Requests Resources // PodRequests
	NonZero  Resources // requests with kube's scoring defaults
	Ports    []hostPort
}

// NewPodInfo computes pod's usage.
func NewPodInfo(pod *corev1.Pod) *PodInfo {
	return &PodInfo{Pod: pod, Requests: PodRequests(pod), NonZero: podNonZeroRequests(pod), Ports: podHostPorts(pod)}
}

// podGroup counts a node's pods, not being deleted, that share a namespace
// and a label set. Replicas share both, so topology spreading matches a
// selector once per group rather than once per pod.
type podGroup struct {
	namespace string
	labels    labels.Set // the first pod's labels, read-only
	count     int
}

// NodeInfo is one node and what the pods bound (or assumed) to it use.
// Node is nil while pods name a node the informer has not delivered (or
// has deleted); such a NodeInfo is never a scheduling candidate.
//
// The filter loop touches every NodeInfo it visits, so the struct is kept
// at 256 bytes: one more word puts it in the 288-byte size class, whose
// objects straddle cache lines, and BenchmarkSchedule/plain measured 40%
// slower. Hence the packed small fields and the interned strings.
type NodeInfo struct {
	Node *corev1.Node

	// Facts derived from Node by SetNode, so that the filters of a plain
	// pod touch nothing but the NodeInfo.
	unschedulable   bool
	hasPreferTaints bool                  // any PreferNoSchedule taint
	idx             int32                 // position in Snapshot.list, -1 if absent
	readyTaint      *corev1.Taint         // the taint standing for Ready != True, nil when ready
	arch            unique.Handle[string] // kubernetes.io/arch
	// noScheduleTaints are the NoSchedule and NoExecute taints.
	noScheduleTaints []corev1.Taint
	// runtimes are the classes labeled runtime.wasmfleet.io/<class>=true,
	// interned so that filterRuntimeClass compares pointers instead of
	// reading each node's own copy of the strings.
	runtimes []unique.Handle[string]

	Allocatable Resources
	// Requested and NonZeroRequested sum the pods' Requests and NonZero.
	Requested, NonZeroRequested Resources
	Pods                        []*PodInfo
	podGroups                   []podGroup // of Pods, for countMatching
	usedPorts                   map[hostPort]int
}

// Name is the node's name.
func (n *NodeInfo) Name() string {
	if n.Node == nil {
		return ""
	}
	return n.Node.Name
}

func (n *NodeInfo) addPod(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	n.Requested.add(pi.Requests, 1)
	n.NonZeroRequested.add(pi.NonZero, 1)
	n.groupPod(pi.Pod, 1)
	for _, p := range pi.Ports {
		if n.usedPorts == nil {
			n.usedPorts = map[hostPort]int{}
		}
		n.usedPorts[p]++
	}
}

func (n *NodeInfo) removePod(uid types.UID) {
	for i, pi := range n.Pods {
		if pi.Pod.UID != uid {
			continue
		}
		last := len(n.Pods) - 1
		n.Pods[i] = n.Pods[last]
		n.Pods[last] = nil
		n.Pods = n.Pods[:last]
		n.Requested.add(pi.Requests, -1)
		n.NonZeroRequested.add(pi.NonZero, -1)
		n.groupPod(pi.Pod, -1)
		for _, p := range pi.Ports {
			if n.usedPorts[p]--; n.usedPorts[p] <= 0 {
				delete(n.usedPorts, p)
			}
		}
		return
	}
}

// groupPod adds delta to the count of pod's group, creating the group or
// dropping an empty one. Pods being deleted belong to no group: topology
// spreading does not count them.
func (n *NodeInfo) groupPod(pod *corev1.Pod, delta int) {
	if pod.DeletionTimestamp != nil {
		return
	}
	for i := range n.podGroups {
		g := &n.podGroups[i]
		if g.namespace != pod.Namespace || !maps.Equal(g.labels, labels.Set(pod.Labels)) {
			continue
		}
		if g.count += delta; g.count == 0 {
			last := len(n.podGroups) - 1
			n.podGroups[i] = n.podGroups[last]
			n.podGroups[last] = podGroup{}
			n.podGroups = n.podGroups[:last]
		}
		return
	}
	n.podGroups = append(n.podGroups, podGroup{namespace: pod.Namespace, labels: pod.Labels, count: delta})
}

// portConflict reports whether p clashes with a port in use, as kube's
// HostPortInfo.CheckConflict: 0.0.0.0 clashes with every IP on the same
// protocol and port.
func (n *NodeInfo) portConflict(p hostPort) bool {
	if len(n.usedPorts) == 0 {
		return false
	}
	if p.ip == bindAllHostIP {
		for u := range n.usedPorts {
			if u.protocol == p.protocol && u.port == p.port {
				return true
			}
		}
		return false
	}
	if n.usedPorts[p] > 0 {
		return true
	}
	return n.usedPorts[hostPort{ip: bindAllHostIP, protocol: p.protocol, port: p.port}] > 0
}

// Snapshot is the scheduler's view of the cluster: every node with the pods
// bound or assumed to it. It is updated incrementally (SetNode, RemoveNode,
// AddPod, RemovePod) and read by Core.Schedule. Not safe for concurrent
// use: the Scheduler guards it with a mutex.
type Snapshot struct {
	nodes map[string]*NodeInfo
	list  []*NodeInfo // nodes with Node != nil, in no particular order
	pods  map[types.UID]string
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{nodes: map[string]*NodeInfo{}, pods: map[types.UID]string{}}
}

// NumNodes is the number of known nodes (scheduling candidates).
func (s *Snapshot) NumNodes() int { return len(s.list) }

// NumPods is the number of pods counted on nodes.
func (s *Snapshot) NumPods() int { return len(s.pods) }

// Get returns the named node's info, or nil.
func (s *Snapshot) Get(name string) *NodeInfo {
	ni := s.nodes[name]
	if ni == nil || ni.Node == nil {
		return nil
	}
	return ni
}

// PodNode is the node pod uid is counted on, or "".
func (s *Snapshot) PodNode(uid types.UID) string { return s.pods[uid] }

func (s *Snapshot) nodeInfo(name string) *NodeInfo {
	ni := s.nodes[name]
	if ni == nil {
		ni = &NodeInfo{idx: -1}
		s.nodes[name] = ni
	}
	return ni
}

// SetNode adds node or replaces it (keeping its pods).
func (s *Snapshot) SetNode(node *corev1.Node) {
	ni := s.nodeInfo(node.Name)
	ni.Node = node
	ni.Allocatable = ResourcesFromList(node.Status.Allocatable)
	ni.unschedulable = node.Spec.Unschedulable
	ni.readyTaint = nil
	if t, ok := readyTaint(node); ok {
		ni.readyTaint = &t
	}
	ni.noScheduleTaints, ni.hasPreferTaints = nil, false
	for _, t := range node.Spec.Taints {
		if noScheduleOrExecute(&t) {
			ni.noScheduleTaints = append(ni.noScheduleTaints, t)
		} else if t.Effect == corev1.TaintEffectPreferNoSchedule {
			ni.hasPreferTaints = true
		}
	}
	ni.runtimes = ni.runtimes[:0]
	for k, v := range node.Labels {
		if class, ok := strings.CutPrefix(k, RuntimeClassLabelPrefix); ok && v == "true" {
			ni.runtimes = append(ni.runtimes, unique.Make(class))
		}
	}
	ni.arch = unique.Make(node.Labels[corev1.LabelArchStable])
	if ni.idx < 0 {
		ni.idx = int32(len(s.list))
		s.list = append(s.list, ni)
	}
}

// RemoveNode forgets the named node. Pods still bound to it keep being
// counted (on a NodeInfo without Node) until they are removed.
func (s *Snapshot) RemoveNode(name string) {
	ni := s.nodes[name]
	if ni == nil {
		return
	}
	if ni.idx >= 0 {
		last := len(s.list) - 1
		s.list[ni.idx] = s.list[last]
		s.list[ni.idx].idx = ni.idx
		s.list[last] = nil
		s.list = s.list[:last]
		ni.idx = -1
	}
	ni.Node = nil
	if len(ni.Pods) == 0 {
		delete(s.nodes, name)
	}
}

// AddPod counts pod (spec.nodeName set) on its node, replacing an earlier
// version of the same pod (by UID) wherever that was counted.
func (s *Snapshot) AddPod(pod *corev1.Pod) {
	s.RemovePod(pod.UID)
	s.nodeInfo(pod.Spec.NodeName).addPod(NewPodInfo(pod))
	s.pods[pod.UID] = pod.Spec.NodeName
}

// RemovePod stops counting pod uid; it reports whether it was counted.
func (s *Snapshot) RemovePod(uid types.UID) bool {
	name, ok := s.pods[uid]
	if !ok {
		return false
	}
	delete(s.pods, uid)
	if ni := s.nodes[name]; ni != nil {
		ni.removePod(uid)
		if ni.Node == nil && len(ni.Pods) == 0 {
			delete(s.nodes, name)
		}
	}
	return true
}
