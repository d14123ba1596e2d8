package tables

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
)

const (
	// labelNodeRolePrefix marks a node role: node-role.kubernetes.io/<role>.
	labelNodeRolePrefix = "node-role.kubernetes.io/"
	// nodeLabelRole is the older role label: kubernetes.io/role=<role>.
	nodeLabelRole = "kubernetes.io/role"
	// nodeUnreachablePodReason is the pod status reason set when the node is lost.
	nodeUnreachablePodReason = "NodeLost"
)

// since is kube-apiserver's translateTimestampSince, relative to now.
func since(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microSince is translateMicroTimestampSince, relative to now.
func microSince(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func isRestartableInitContainer(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func podConditionTrue(conditions []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podCells is printPod: READY counts ready containers (restartable init
// containers, i.e. sidecars, included), STATUS is the most telling reason
// (an init container's as "Init:…", a waiting or terminated container's,
// "Terminating" while being deleted), RESTARTS adds "(<age> ago)" of the last
// restart.
func podCells(pod *corev1.Pod, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	restarts := 0
	sidecarRestarts := 0
	totalContainers := len(pod.Spec.Containers)
	readyContainers := 0
	var lastRestart, lastSidecarRestart time.Time

	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}

	var conditions []metav1.TableRowCondition
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodSucceeded), Message: "The pod has completed successfully."}}
	case corev1.PodFailed:
		conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(corev1.PodFailed), Message: "The pod failed."}}
	}

	initContainer := func(name string) *corev1.Container {
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == name {
				return &pod.Spec.InitContainers[i]
			}
		}
		return nil
	}
	for i := range pod.Spec.InitContainers {
		if isRestartableInitContainer(&pod.Spec.InitContainers[i]) {
			totalContainers++
		}
	}

	initializing := false
	for i := range pod.Status.InitContainerStatuses {
		cs := &pod.Status.InitContainerStatuses[i]
		restarts += int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && lastRestart.Before(t.FinishedAt.Time) {
			lastRestart = t.FinishedAt.Time
		}
		sidecar := isRestartableInitContainer(initContainer(cs.Name))
		if sidecar {
			sidecarRestarts += int(cs.RestartCount)
			if t := cs.LastTerminationState.Terminated; t != nil && lastSidecarRestart.Before(t.FinishedAt.Time) {
				lastSidecarRestart = t.FinishedAt.Time
			}
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case sidecar && cs.Started != nil && *cs.Started:
			if cs.Ready {
				readyContainers++
			}
			continue
		case cs.State.Terminated != nil:
			// The init container failed.
			switch t := cs.State.Terminated; {
			case t.Reason != "":
				reason = "Init:" + t.Reason
			case t.Signal != 0:
				reason = fmt.Sprintf("Init:Signal:%d", t.Signal)
			default:
				reason = fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}

	if !initializing || podConditionTrue(pod.Status.Conditions, corev1.PodInitialized) {
		restarts = sidecarRestarts
		lastRestart = lastSidecarRestart
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := &pod.Status.ContainerStatuses[i]
			restarts += int(cs.RestartCount)
			if t := cs.LastTerminationState.Terminated; t != nil && lastRestart.Before(t.FinishedAt.Time) {
				lastRestart = t.FinishedAt.Time
			}
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				readyContainers++
			}
		}
		// Back to "Running" if a container still runs.
		if reason == "Completed" && hasRunning {
			if podConditionTrue(pod.Status.Conditions, corev1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}

	terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if pod.DeletionTimestamp != nil && pod.Status.Reason == nodeUnreachablePodReason {
		reason = "Unknown"
	} else if pod.DeletionTimestamp != nil && !terminal {
		reason = "Terminating"
	}

	restartsCell := strconv.Itoa(restarts)
	if restarts != 0 && !lastRestart.IsZero() {
		restartsCell = fmt.Sprintf("%d (%s ago)", restarts, since(metav1.NewTime(lastRestart), now))
	}

	podIP := pod.Status.PodIP
	if len(pod.Status.PodIPs) > 0 {
		podIP = pod.Status.PodIPs[0].IP
	}
	readinessGates := "<none>"
	if len(pod.Spec.ReadinessGates) > 0 {
		trueConditions := 0
		for _, gate := range pod.Spec.ReadinessGates {
			for _, c := range pod.Status.Conditions {
				if c.Type == gate.ConditionType {
					if c.Status == corev1.ConditionTrue {
						trueConditions++
					}
					break
				}
			}
		}
		readinessGates = fmt.Sprintf("%d/%d", trueConditions, len(pod.Spec.ReadinessGates))
	}

	return []interface{}{
		pod.Name,
		strconv.Itoa(readyContainers) + "/" + strconv.Itoa(totalContainers),
		reason,
		restartsCell,
		since(pod.CreationTimestamp, now),
		orNone(podIP),
		orNone(pod.Spec.NodeName),
		orNone(pod.Status.NominatedNodeName),
		readinessGates,
	}, conditions
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// nodeCells is printNode: STATUS is Ready, NotReady or Unknown, plus
// SchedulingDisabled when cordoned.
func nodeCells(node *corev1.Node, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	var status []string
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			status = []string{string(c.Type)}
		} else {
			status = []string{"Not" + string(c.Type)}
		}
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if node.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}

	roles := strings.Join(nodeRoles(node), ",")
	if roles == "" {
		roles = "<none>"
	}

	info := node.Status.NodeInfo
	return []interface{}{
		node.Name,
		strings.Join(status, ","),
		roles,
		since(node.CreationTimestamp, now),
		info.KubeletVersion,
		nodeAddress(node, corev1.NodeInternalIP),
		nodeAddress(node, corev1.NodeExternalIP),
		orUnknown(info.OSImage),
		orUnknown(info.KernelVersion),
		orUnknown(info.ContainerRuntimeVersion),
	}, nil
}

// nodeAddress returns the node's first address of type t, or "<none>".
func nodeAddress(node *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range node.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

// nodeRoles returns the sorted roles from node-role.kubernetes.io/<role> and
// kubernetes.io/role=<role> labels.
func nodeRoles(node *corev1.Node) []string {
	var roles []string
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			roles = append(roles, r)
		}
	}
	for k, v := range node.Labels {
		switch {
		case strings.HasPrefix(k, labelNodeRolePrefix):
			add(strings.TrimPrefix(k, labelNodeRolePrefix))
		case k == nodeLabelRole:
			add(v)
		}
	}
	sort.Strings(roles)
	return roles
}

func namespaceCells(ns *corev1.Namespace, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return []interface{}{ns.Name, string(ns.Status.Phase), since(ns.CreationTimestamp, now)}, nil
}

func configMapCells(cm *corev1.ConfigMap, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return []interface{}{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), since(cm.CreationTimestamp, now)}, nil
}

func secretCells(s *corev1.Secret, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return []interface{}{s.Name, string(s.Type), int64(len(s.Data)), since(s.CreationTimestamp, now)}, nil
}

func serviceAccountCells(sa *corev1.ServiceAccount, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	return []interface{}{sa.Name, int64(len(sa.Secrets)), since(sa.CreationTimestamp, now)}, nil
}

// event is what printEvent reads of an Event, core/v1 or events.k8s.io/v1.
type event struct {
	name                string
	firstTimestamp      metav1.Time
	lastTimestamp       metav1.Time
	eventTime           metav1.MicroTime
	series              *eventsv1.EventSeries
	count               int32
	regarding           corev1.ObjectReference
	eventType, reason   string
	source              corev1.EventSource
	reportingController string
	reportingInstance   string
	message             string
}

func coreEventCells(e *corev1.Event, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	ev := event{
		name:                e.Name,
		firstTimestamp:      e.FirstTimestamp,
		lastTimestamp:       e.LastTimestamp,
		eventTime:           e.EventTime,
		count:               e.Count,
		regarding:           e.InvolvedObject,
		eventType:           e.Type,
		reason:              e.Reason,
		source:              e.Source,
		reportingController: e.ReportingController,
		reportingInstance:   e.ReportingInstance,
		message:             e.Message,
	}
	if e.Series != nil {
		ev.series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return eventCells(&ev, now), nil
}

func eventsEventCells(e *eventsv1.Event, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	ev := event{
		name:                e.Name,
		firstTimestamp:      e.DeprecatedFirstTimestamp,
		lastTimestamp:       e.DeprecatedLastTimestamp,
		eventTime:           e.EventTime,
		series:              e.Series,
		count:               e.DeprecatedCount,
		regarding:           e.Regarding,
		eventType:           e.Type,
		reason:              e.Reason,
		source:              e.DeprecatedSource,
		reportingController: e.ReportingController,
		reportingInstance:   e.ReportingInstance,
		message:             e.Note,
	}
	return eventCells(&ev, now), nil
}

// eventCells is printEvent.
func eventCells(e *event, now time.Time) []interface{} {
	first := since(e.firstTimestamp, now)
	if e.firstTimestamp.IsZero() {
		first = microSince(e.eventTime, now)
	}
	last := since(e.lastTimestamp, now)
	if e.lastTimestamp.IsZero() {
		last = first
	}
	count := e.count
	if e.series != nil {
		last = microSince(e.series.LastObservedTime, now)
		count = e.series.Count
	} else if count == 0 {
		// Singleton events of the new API have no count.
		count = 1
	}

	target := strings.ToLower(e.regarding.Kind)
	if e.regarding.Name != "" {
		target += "/" + e.regarding.Name
	}

	component := e.source.Component
	if component == "" {
		component = e.reportingController
	}
	instance := e.source.Host
	if instance == "" {
		instance = e.reportingInstance
	}
	source := component
	if instance != "" {
		source = component + ", " + instance
	}

	return []interface{}{
		last,
		e.eventType,
		e.reason,
		target,
		e.regarding.FieldPath,
		source,
		strings.TrimSpace(e.message),
		first,
		int64(count),
		e.name,
	}
}

// serviceCells is printService (with kube-apiserver's wide=true: the load
// balancer addresses are not clipped).
func serviceCells(svc *corev1.Service, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	clusterIP := "<none>"
	if len(svc.Spec.ClusterIPs) > 0 {
		clusterIP = svc.Spec.ClusterIPs[0]
	} else if svc.Spec.ClusterIP != "" {
		clusterIP = svc.Spec.ClusterIP
	}
	ports := make([]string, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		if p.NodePort > 0 {
			ports[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			ports[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return []interface{}{
		svc.Name,
		string(svc.Spec.Type),
		clusterIP,
		serviceExternalIP(svc),
		orNone(strings.Join(ports, ",")),
		since(svc.CreationTimestamp, now),
		labels.FormatLabels(svc.Spec.Selector),
	}, nil
}

func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		in := svc.Status.LoadBalancer.Ingress
		lb := loadBalancerAddresses(len(in), func(i int) (string, string) { return in[i].IP, in[i].Hostname })
		all := append(lb, svc.Spec.ExternalIPs...)
		if len(all) > 0 {
			return strings.Join(all, ",")
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// loadBalancerAddresses lists the n load balancer ingress points that at
// returns, each by its IP or else its hostname, sorted and without
// repeats (kube's loadBalancerStatusStringer).
func loadBalancerAddresses(n int, at func(i int) (ip, hostname string)) []string {
	seen := map[string]bool{}
	var addrs []string
	for i := range n {
		addr, hostname := at(i)
		if addr == "" {
			addr = hostname
		}
		if addr != "" && !seen[addr] {
			seen[addr] = true
			addrs = append(addrs, addr)
		}
	}
	sort.Strings(addrs)
	return addrs
}
