package apiserver_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

func clusterIPService(name, ip string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		ClusterIP: ip, Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
}

func nodePortService(name string, nodePorts ...int32) *corev1.Service {
	svc := clusterIPService(name, "")
	svc.Spec.Type = corev1.ServiceTypeNodePort
	svc.Spec.Ports = nil
	for i, np := range nodePorts {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "p" + strconv.Itoa(i), Port: int32(80 + i), NodePort: np})
	}
	return svc
}

// wantInvalid checks that err is a 422 whose only cause is field: msg.
func wantInvalid(t *testing.T, what string, err error, field, msg string) {
	t.Helper()
	se, ok := err.(apierrors.APIStatus)
	if !apierrors.IsInvalid(err) || !ok || len(se.Status().Details.Causes) != 1 {
		t.Fatalf("%s: %v, want 422 on %s", what, err, field)
	}
	if c := se.Status().Details.Causes[0]; c.Field != field || !strings.Contains(c.Message, msg) {
		t.Fatalf("%s: cause %s: %s, want %s: …%s", what, c.Field, c.Message, field, msg)
	}
}

// TestServiceClusterIPs: as kube-apiserver, a Service gets a cluster IP
// of the service CIDR, from its upper part, with its IP family; one asked
// for is its own, unless outside the range or another Service's (422);
// a deleted Service or one turned ExternalName frees its IP.
func TestServiceClusterIPs(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	svcs := c.client.CoreV1().Services(testNS)
	cidr := apiserver.DefaultServiceCIDR

	a, err := svcs.Create(ctx, clusterIPService("a", ""), metav1.CreateOptions{})
	must(t, err)
	ip, err := netip.ParseAddr(a.Spec.ClusterIP)
	if err != nil || !cidr.Contains(ip) || ip.As4()[2] == 0 || len(a.Spec.ClusterIPs) != 1 || a.Spec.ClusterIPs[0] != a.Spec.ClusterIP ||
		len(a.Spec.IPFamilies) != 1 || a.Spec.IPFamilies[0] != corev1.IPv4Protocol || ptr.Deref(a.Spec.IPFamilyPolicy, "") != corev1.IPFamilyPolicySingleStack {
		t.Fatalf("allocated: clusterIP %q clusterIPs %q families %v policy %v, want one of %s above its first 256", a.Spec.ClusterIP, a.Spec.ClusterIPs, a.Spec.IPFamilies, a.Spec.IPFamilyPolicy, cidr)
	}

	_, err = svcs.Create(ctx, clusterIPService("b", "10.43.0.10"), metav1.CreateOptions{})
	must(t, err)
	_, err = svcs.Create(ctx, clusterIPService("c", "10.43.0.10"), metav1.CreateOptions{})
	wantInvalid(t, "an IP another Service holds", err, "spec.clusterIPs", "failed to allocate IP 10.43.0.10: provided IP is already allocated")
	_, err = svcs.Create(ctx, clusterIPService("c", a.Spec.ClusterIP), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	wantInvalid(t, "a dry run asking for an IP another Service holds", err, "spec.clusterIPs", "provided IP is already allocated")
	_, err = svcs.Create(ctx, clusterIPService("c", "10.44.0.1"), metav1.CreateOptions{})
	wantInvalid(t, "an IP outside the range", err, "spec.clusterIPs", "failed to allocate IP 10.44.0.1: provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16")
	_, err = svcs.Create(ctx, clusterIPService("c", "10.43.255.255"), metav1.CreateOptions{})
	wantInvalid(t, "the broadcast address", err, "spec.clusterIPs", "not in the valid range")
	dual := clusterIPService("c", "")
	dual.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	_, err = svcs.Create(ctx, dual, metav1.CreateOptions{})
	wantInvalid(t, "dual stack", err, "spec.ipFamilyPolicy", "this cluster is not configured for dual-stack services")
	v6 := clusterIPService("c", "")
	v6.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	_, err = svcs.Create(ctx, v6, metav1.CreateOptions{})
	wantInvalid(t, "IPv6", err, "spec.ipFamilies[0]", "not configured on this cluster")

	// A dry run takes nothing.
	_, err = svcs.Create(ctx, clusterIPService("c", "10.43.0.11"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	must(t, err)
	_, err = svcs.Create(ctx, clusterIPService("c", "10.43.0.11"), metav1.CreateOptions{})
	must(t, err)

	// Headless and ExternalName Services hold no IP.
	h, err := svcs.Create(ctx, clusterIPService("headless", corev1.ClusterIPNone), metav1.CreateOptions{})
	must(t, err)
	if h.Spec.ClusterIP != corev1.ClusterIPNone || len(h.Spec.IPFamilies) != 1 {
		t.Errorf("headless: clusterIP %q families %v", h.Spec.ClusterIP, h.Spec.IPFamilies)
	}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}}
	ext, err = svcs.Create(ctx, ext, metav1.CreateOptions{})
	must(t, err)
	if ext.Spec.ClusterIP != "" || len(ext.Spec.IPFamilies) != 0 {
		t.Errorf("ExternalName: clusterIP %q families %v", ext.Spec.ClusterIP, ext.Spec.IPFamilies)
	}

	// Deleted, b frees 10.43.0.10; turned ExternalName, c frees 10.43.0.11,
	// and turned back it gets a new one.
	must(t, svcs.Delete(ctx, "b", metav1.DeleteOptions{}))
	_, err = svcs.Create(ctx, clusterIPService("d", "10.43.0.10"), metav1.CreateOptions{})
	must(t, err)
	_, err = svcs.Patch(ctx, "c", types.MergePatchType, []byte(`{"spec":{"type":"ExternalName","externalName":"c.example.com"}}`), metav1.PatchOptions{})
	must(t, err)
	_, err = svcs.Create(ctx, clusterIPService("e", "10.43.0.11"), metav1.CreateOptions{})
	must(t, err)
	back, err := svcs.Patch(ctx, "c", types.MergePatchType, []byte(`{"spec":{"type":"ClusterIP","externalName":null}}`), metav1.PatchOptions{})
	must(t, err)
	if back.Spec.ClusterIP == "" || back.Spec.ClusterIP == "10.43.0.11" {
		t.Errorf("ExternalName turned ClusterIP got %q", back.Spec.ClusterIP)
	}
	// Deleted, d frees 10.43.0.10 again.
	must(t, svcs.Delete(ctx, "d", metav1.DeleteOptions{}))
	_, err = svcs.Create(ctx, clusterIPService("f", "10.43.0.10"), metav1.CreateOptions{})
	must(t, err)
}

// TestServiceNodePorts: NodePort and LoadBalancer Services get node ports
// of the range, one per service port number, and a LoadBalancer with the
// Local traffic policy a health check node port; one asked for is refused
// outside the range or held by another Service; a Service turned
// ClusterIP or deleted frees its ports, and a replace keeps them.
func TestServiceNodePorts(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	svcs := c.client.CoreV1().Services(testNS)
	inRange := func(p int32) bool { return p >= 30000+86 && p <= 32767 }

	a := nodePortService("a", 0, 0)
	a.Spec.Ports = append(a.Spec.Ports, corev1.ServicePort{Name: "dns", Port: 80, Protocol: corev1.ProtocolUDP})
	a, err := svcs.Create(ctx, a, metav1.CreateOptions{})
	must(t, err)
	p := a.Spec.Ports
	if !inRange(p[0].NodePort) || !inRange(p[1].NodePort) || p[0].NodePort == p[1].NodePort || p[2].NodePort != p[0].NodePort {
		t.Fatalf("node ports %d %d %d: want two of the range's upper part, port 80's for TCP and UDP alike", p[0].NodePort, p[1].NodePort, p[2].NodePort)
	}
	_, err = svcs.Create(ctx, nodePortService("b", p[1].NodePort), metav1.CreateOptions{})
	wantInvalid(t, "a node port another Service holds", err, "spec.ports[0].nodePort", "provided port is already allocated")
	_, err = svcs.Create(ctx, nodePortService("b", 80), metav1.CreateOptions{})
	wantInvalid(t, "a node port outside the range", err, "spec.ports[0].nodePort", "provided port is not in the valid range. The range of valid ports is 30000-32767")
	_, err = svcs.Create(ctx, nodePortService("b", 30001), metav1.CreateOptions{})
	must(t, err)

	lb := nodePortService("lb", 0)
	lb.Spec.Type, lb.Spec.ExternalTrafficPolicy = corev1.ServiceTypeLoadBalancer, corev1.ServiceExternalTrafficPolicyLocal
	lb, err = svcs.Create(ctx, lb, metav1.CreateOptions{})
	must(t, err)
	if !inRange(lb.Spec.Ports[0].NodePort) || !inRange(lb.Spec.HealthCheckNodePort) || lb.Spec.HealthCheckNodePort == lb.Spec.Ports[0].NodePort {
		t.Errorf("load balancer: node port %d, health check node port %d", lb.Spec.Ports[0].NodePort, lb.Spec.HealthCheckNodePort)
	}
	noPorts := nodePortService("lb2", 0)
	noPorts.Spec.Type, noPorts.Spec.AllocateLoadBalancerNodePorts = corev1.ServiceTypeLoadBalancer, ptr.To(false)
	noPorts, err = svcs.Create(ctx, noPorts, metav1.CreateOptions{})
	must(t, err)
	if noPorts.Spec.Ports[0].NodePort != 0 {
		t.Errorf("allocateLoadBalancerNodePorts false: node port %d", noPorts.Spec.Ports[0].NodePort)
	}

	// Replaced by the manifest it was created from, a keeps its ports.
	again := nodePortService("a", 0, 0)
	again.ResourceVersion = a.ResourceVersion
	again, err = svcs.Update(ctx, again, metav1.UpdateOptions{})
	must(t, err)
	if again.Spec.Ports[0].NodePort != p[0].NodePort || again.Spec.Ports[1].NodePort != p[1].NodePort {
		t.Errorf("replaced: node ports %d %d, want %d %d", again.Spec.Ports[0].NodePort, again.Spec.Ports[1].NodePort, p[0].NodePort, p[1].NodePort)
	}
	// Turned ClusterIP, it frees them; turned NodePort again, it gets
	// others (or the same, if free).
	_, err = svcs.Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"type":"ClusterIP"}}`), metav1.PatchOptions{})
	must(t, err)
	_, err = svcs.Create(ctx, nodePortService("c", p[0].NodePort, p[1].NodePort), metav1.CreateOptions{})
	must(t, err)
	back, err := svcs.Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"type":"NodePort"}}`), metav1.PatchOptions{})
	must(t, err)
	if np := back.Spec.Ports[0].NodePort; !inRange(np) || np == p[0].NodePort || np == p[1].NodePort {
		t.Errorf("turned NodePort again: node port %d, held by c: %d %d", np, p[0].NodePort, p[1].NodePort)
	}
	// Asking for another's on an update is refused; deleted, b frees its.
	_, err = svcs.Patch(ctx, "a", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/ports/0/nodePort","value":30001}]`), metav1.PatchOptions{})
	wantInvalid(t, "an update asking for a held node port", err, "spec.ports[0].nodePort", "provided port is already allocated")
	must(t, svcs.Delete(ctx, "b", metav1.DeleteOptions{}))
	_, err = svcs.Patch(ctx, "a", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/ports/0/nodePort","value":30001}]`), metav1.PatchOptions{})
	must(t, err)
}

// TestServiceAllocationUnderContention: Services created at once in a
// small range each get their own values, the server picking again for a
// write that lost a value to another, until the range is full (500).
func TestServiceAllocationUnderContention(t *testing.T) {
	const n = 24
	c := startAPIWith(t, nil, func(cfg *apiserver.Config) {
		cfg.ServiceCIDR = netip.MustParsePrefix("10.50.0.0/27") // 30 addresses
		cfg.ServiceNodePortRange = utilnet.PortRange{Base: 31000, Size: n}
	})
	ctx := context.Background()
	svcs := c.client.CoreV1().Services(testNS)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = svcs.Create(ctx, nodePortService(fmt.Sprintf("s%d", i), 0), metav1.CreateOptions{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("s%d: %v", i, err)
		}
	}
	l, err := svcs.List(ctx, metav1.ListOptions{})
	must(t, err)
	ips, ports := map[string]bool{}, map[int32]bool{}
	for _, s := range l.Items {
		ips[s.Spec.ClusterIP], ports[s.Spec.Ports[0].NodePort] = true, true
	}
	if len(l.Items) != n || len(ips) != n || len(ports) != n {
		t.Fatalf("%d services with %d cluster IPs and %d node ports, want %d of each", len(l.Items), len(ips), len(ports), n)
	}
	_, err = svcs.Create(ctx, nodePortService("full", 0), metav1.CreateOptions{})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed to allocate a nodePort: range is full") {
		t.Fatalf("a Service beyond the node port range: %v", err)
	}
}

// TestServiceClaimsRepair: the repair claims the values of a Service
// written to etcd without its claims, and releases a claim whose Service
// is gone.
func TestServiceClaimsRepair(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	svcs := c.client.CoreV1().Services(testNS)
	legacy := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"legacy","namespace":"` + testNS + `","uid":"u-1","creationTimestamp":"2026-01-01T00:00:00Z"},` +
		`"spec":{"type":"NodePort","clusterIP":"10.43.0.20","clusterIPs":["10.43.0.20"],"ports":[{"port":80,"protocol":"TCP","targetPort":80,"nodePort":30100}]}}`
	_, err := c.etcd.Put(ctx, "/registry/services/"+testNS+"/legacy", legacy)
	must(t, err)
	_, err = c.etcd.Put(ctx, "/wasmfleet/claims/serviceips/10.43.0.21", testNS+"/gone/u-2")
	must(t, err)
	must(t, apiserver.RepairClaims(ctx, c.api))

	_, err = svcs.Create(ctx, clusterIPService("a", "10.43.0.20"), metav1.CreateOptions{})
	wantInvalid(t, "the legacy Service's IP", err, "spec.clusterIPs", "provided IP is already allocated")
	_, err = svcs.Create(ctx, nodePortService("b", 30100), metav1.CreateOptions{})
	wantInvalid(t, "the legacy Service's node port", err, "spec.ports[0].nodePort", "provided port is already allocated")
	_, err = svcs.Create(ctx, clusterIPService("a", "10.43.0.21"), metav1.CreateOptions{})
	must(t, err)
	// Deleted through the API, the legacy Service frees what it held.
	must(t, svcs.Delete(ctx, "legacy", metav1.DeleteOptions{}))
	_, err = svcs.Create(ctx, nodePortService("b", 30100), metav1.CreateOptions{})
	must(t, err)
}

// TestKubectlServices: kubectl's service commands see what the server
// allocated, and its refusal of a node port another Service holds.
func TestKubectlServices(t *testing.T) {
	c := startAPI(t)
	mustContain(t, c.kubectl(t, "", "create", "service", "nodeport", "web", "--tcp=80:8080", "--node-port=30080"), "service/web created")
	mustContain(t, c.kubectl(t, "", "create", "service", "clusterip", "api", "--tcp=443:8443"), "service/api created")
	mustContain(t, c.kubectl(t, "", "get", "services"), "web    NodePort    10.43.", "80:30080/TCP", "api    ClusterIP   10.43.", "443/TCP")
	mustContain(t, c.kubectl(t, "", "describe", "service", "web"), "IP Family Policy:         SingleStack", "IP Families:              IPv4",
		"IPs:                      10.43.", "NodePort:                 80-8080  30080/TCP")
	out, err := c.kubectlErr(t, "", "create", "service", "nodeport", "web2", "--tcp=80:8080", "--node-port=30080")
	if err == nil {
		t.Fatal("a second service with node port 30080 was created")
	}
	mustContain(t, out, `Service "web2" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`)
}
