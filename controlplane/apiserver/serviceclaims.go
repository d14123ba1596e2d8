package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// Services get their cluster IPs and node ports here, as kube-apiserver's
// service allocators give them: a cluster IP from the service CIDR, node
// ports from the node port range, each held by one Service at most. A
// value a Service holds is a claim (storage.Claims): a key under
// claimsPrefix, taken and released in the transaction that writes the
// Service, so two Services never hold one value and a deleted Service
// frees its values at once.

// Defaults of the ranges: k3s's service CIDR, kube-apiserver's node ports.
var (
	DefaultServiceCIDR          = netip.MustParsePrefix("10.43.0.0/16")
	DefaultServiceNodePortRange = utilnet.PortRange{Base: 30000, Size: 2768}
)

// MaxServiceCIDRBits is the most host bits a service CIDR may have, as
// kube-apiserver's limit (a /12 for IPv4, a /108 for IPv6).
const MaxServiceCIDRBits = 20

// ValidateServiceCIDR reports a service CIDR that cannot be used: it must
// be a network address whose host part has 2 to MaxServiceCIDRBits bits.
func ValidateServiceCIDR(p netip.Prefix) error {
	if !p.IsValid() || p != p.Masked() {
		return fmt.Errorf("service CIDR %s: not a network address", p)
	}
	if host := p.Addr().BitLen() - p.Bits(); host < 2 || host > MaxServiceCIDRBits {
		return fmt.Errorf("service CIDR %s: want 2 to %d host bits, not %d", p, MaxServiceCIDRBits, host)
	}
	return nil
}

const (
	claimsPrefix    = "/wasmfleet/claims/"
	clusterIPClaims = claimsPrefix + "serviceips/"
	nodePortClaims  = claimsPrefix + "servicenodeports/"
)

func clusterIPClaim(ip netip.Addr) string { return clusterIPClaims + ip.String() }
func nodePortClaim(port int32) string     { return nodePortClaims + strconv.Itoa(int(port)) }

// serviceOwner is the value of the claims svc holds.
func serviceOwner(svc *corev1.Service) string {
	return svc.Namespace + "/" + svc.Name + "/" + string(svc.UID)
}

// heldClaims are the claim keys of the values svc holds.
func heldClaims(svc *corev1.Service) sets.Set[string] {
	keys := sets.New[string]()
	if svc.Spec.Type != corev1.ServiceTypeExternalName {
		for _, ip := range svc.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				keys.Insert(clusterIPClaim(a))
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			keys.Insert(nodePortClaim(p.NodePort))
		}
	}
	if svc.Spec.HealthCheckNodePort != 0 {
		keys.Insert(nodePortClaim(svc.Spec.HealthCheckNodePort))
	}
	return keys
}

// releaseOf is what deleting the stored object obj releases.
func releaseOf(obj any) storage.Claims {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return storage.Claims{}
	}
	return storage.Claims{Release: sets.List(heldClaims(svc)), Owner: serviceOwner(svc)}
}

// allocatesNodePorts: ports without a node port get one.
func allocatesNodePorts(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeNodePort ||
		svc.Spec.Type == corev1.ServiceTypeLoadBalancer && ptr.Deref(svc.Spec.AllocateLoadBalancerNodePorts, true)
}

// serviceClaims is what a write of a Service takes and releases.
type serviceClaims struct {
	storage.Claims
	// asked name the field of each key asked for and not held yet; the
	// server picked the other keys taken, and picks again when one of
	// those was taken meanwhile.
	asked map[string]*field.Error
}

// claimedError is the answer to a write of svc that found a claim held by
// another Service: for a value asked for, kube-apiserver's 422 "provided
// ... is already allocated"; for one the server picked, storage.ErrConflict,
// which the update loop and createNamed retry.
func (c *serviceClaims) claimedError(svc *corev1.Service, err error) error {
	var ce *storage.ClaimedError
	if !errors.As(err, &ce) {
		return err
	}
	fe, ok := c.asked[ce.Key]
	if !ok {
		return storage.ErrConflict
	}
	e := *fe
	if strings.HasPrefix(ce.Key, clusterIPClaims) {
		e.Detail = fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", strings.TrimPrefix(ce.Key, clusterIPClaims))
	} else {
		e.Detail = "provided port is already allocated"
	}
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, field.ErrorList{&e})
}

// dryRun answers as the write of c would, without writing: a value asked
// for that another Service holds is refused.
func (c *serviceClaims) dryRun(ctx context.Context, s *Server, svc *corev1.Service) error {
	for key := range c.asked {
		_, err := s.store.Get(ctx, key)
		if err == nil {
			err = &storage.ClaimedError{Key: key}
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return c.claimedError(svc, err)
		}
	}
	return nil
}

// allocation is one allocateService.
type allocation struct {
	s    *Server
	ctx  context.Context
	held sets.Set[string] // what the stored Service holds
	want sets.Set[string] // what the new one will hold
	used sets.Set[string] // all claims, read at the first pick
	c    *serviceClaims
	errs field.ErrorList
	err  error
}

// allocateService gives svc the cluster IP, IP families and node ports it
// leaves to the server (old is the stored Service on an update, nil on a
// create) and returns the claims its write takes and releases. A value
// asked for outside its range, or an IP family the cluster has not, is a
// 422 as kube-apiserver's; a full range is a 500.
func (s *Server) allocateService(ctx context.Context, svc, old *corev1.Service) (*serviceClaims, error) {
	a := &allocation{s: s, ctx: ctx, held: sets.New[string](), want: sets.New[string](),
		c: &serviceClaims{Claims: storage.Claims{Owner: serviceOwner(svc)}, asked: map[string]*field.Error{}}}
	if old != nil {
		a.held = heldClaims(old)
	}
	if svc.Spec.Type != corev1.ServiceTypeExternalName {
		a.clusterIP(svc)
	}
	a.nodePorts(svc)
	if len(a.errs) > 0 {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, a.errs)
	}
	if a.err != nil {
		return nil, a.err
	}
	a.c.Take = sets.List(a.want.Difference(a.held))
	a.c.Release = sets.List(a.held.Difference(a.want))
	return a.c, nil
}

// ask records key, a value svc asks for in field fe.
func (a *allocation) ask(key string, fe *field.Error) {
	a.want.Insert(key)
	if !a.held.Has(key) {
		a.c.asked[key] = fe
	}
}

// pick chooses a free value among n (value i's key is prefix+at(i)),
// preferring those from static on: as kube-apiserver's allocators, the
// server leaves the low end of a range to values asked for. It reports
// false (with a.err set) when none is free.
func (a *allocation) pick(what, prefix string, n, static int, at func(int) string) (string, bool) {
	if a.err != nil {
		return "", false
	}
	if a.used == nil {
		keys, err := a.s.store.Keys(a.ctx, claimsPrefix)
		if err != nil {
			a.err = storageError(err, corev1.Resource("services"), "")
			return "", false
		}
		a.used = sets.New(keys...)
	}
	free := func(i int) bool { k := prefix + at(i); return !a.used.Has(k) && !a.want.Has(k) }
	i, ok := pickFree(n, static, free)
	if !ok {
		a.err = apierrors.NewInternalError(fmt.Errorf("failed to allocate a %s: range is full", what))
		return "", false
	}
	v := at(i)
	a.want.Insert(prefix + v)
	return v, true
}

// pickFree returns a random free i in [static, n), else the first free one
// in [0, static).
func pickFree(n, static int, free func(int) bool) (int, bool) {
	static = min(static, n)
	if span := n - static; span > 0 {
		start := rand.IntN(span)
		for j := range span {
			if i := static + (start+j)%span; free(i) {
				return i, true
			}
		}
	}
	for i := range static {
		if free(i) {
			return i, true
		}
	}
	return 0, false
}

// clusterIP gives svc its IP families and, unless it is headless or asks
// for one, a cluster IP.
func (a *allocation) clusterIP(svc *corev1.Service) {
	spec := &svc.Spec
	cidr := a.s.cfg.ServiceCIDR
	fam := corev1.IPv4Protocol
	if cidr.Addr().Is6() {
		fam = corev1.IPv6Protocol
	}
	p := field.NewPath("spec")
	const noDualStack = "this cluster is not configured for dual-stack services"
	for i, f := range spec.IPFamilies {
		if f != fam {
			a.errs = append(a.errs, field.Invalid(p.Child("ipFamilies").Index(i), f, "not configured on this cluster"))
		}
	}
	if spec.IPFamilyPolicy != nil && *spec.IPFamilyPolicy == corev1.IPFamilyPolicyRequireDualStack {
		a.errs = append(a.errs, field.Invalid(p.Child("ipFamilyPolicy"), *spec.IPFamilyPolicy, noDualStack))
	}
	if len(spec.ClusterIPs) > 1 {
		a.errs = append(a.errs, field.Invalid(p.Child("clusterIPs"), spec.ClusterIPs, noDualStack))
	}
	if len(a.errs) > 0 {
		return
	}
	spec.IPFamilies = []corev1.IPFamily{fam}
	if spec.IPFamilyPolicy == nil {
		spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	// Offsets 0 (the network) and, in IPv4, the last (broadcast) are
	// never handed out.
	size := 1 << (cidr.Addr().BitLen() - cidr.Bits())
	n := size - 1
	if fam == corev1.IPv4Protocol {
		n--
	}
	switch {
	case len(spec.ClusterIPs) == 0:
		at := func(i int) string { return addrAt(cidr, i+1).String() }
		if ip, ok := a.pick("serviceIP", clusterIPClaims, n, min(max(16, size/16), 256), at); ok {
			spec.ClusterIP, spec.ClusterIPs = ip, []string{ip}
		}
	case spec.ClusterIPs[0] == corev1.ClusterIPNone:
	default:
		ip, err := netip.ParseAddr(spec.ClusterIPs[0])
		if err != nil {
			return // validation refused it
		}
		key := clusterIPClaim(ip)
		if off := offsetOf(cidr, ip); !a.held.Has(key) && (off < 1 || off > n) {
			a.errs = append(a.errs, field.Invalid(p.Child("clusterIPs"), spec.ClusterIPs,
				fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", ip, cidr)))
			return
		}
		a.ask(key, field.Invalid(p.Child("clusterIPs"), spec.ClusterIPs, ""))
	}
}

// nodePorts gives svc's ports and health check their node ports.
func (a *allocation) nodePorts(svc *corev1.Service) {
	r := a.s.cfg.ServiceNodePortRange
	at := func(i int) string { return strconv.Itoa(r.Base + i) }
	pick := func() int32 {
		v, ok := a.pick("nodePort", nodePortClaims, r.Size, min(max(16, r.Size/32), 128), at)
		if !ok {
			return 0
		}
		port, _ := strconv.Atoi(v)
		return int32(port)
	}
	ask := func(port int32, p *field.Path) {
		key := nodePortClaim(port)
		if !a.held.Has(key) && (int(port) < r.Base || int(port) >= r.Base+r.Size) {
			a.errs = append(a.errs, field.Invalid(p, port,
				fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", r.Base, r.Base+r.Size-1)))
			return
		}
		a.ask(key, field.Invalid(p, port, ""))
	}
	if usesNodePorts(svc.Spec.Type) {
		// As kube-apiserver: one service port number, several protocols,
		// one node port.
		byPort := map[int32]int32{}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			switch np, ok := byPort[sp.Port]; {
			case sp.NodePort != 0:
				if !ok || np != sp.NodePort {
					ask(sp.NodePort, field.NewPath("spec", "ports").Index(i).Child("nodePort"))
				}
			case ok:
				sp.NodePort = np
			case allocatesNodePorts(svc):
				sp.NodePort = pick()
			}
			if sp.NodePort != 0 {
				byPort[sp.Port] = sp.NodePort
			}
		}
	}
	if usesHealthCheckNodePort(&svc.Spec) {
		if svc.Spec.HealthCheckNodePort == 0 {
			svc.Spec.HealthCheckNodePort = pick()
		} else {
			ask(svc.Spec.HealthCheckNodePort, field.NewPath("spec", "healthCheckNodePort"))
		}
	}
}

// addrAt is the address off after p's network address.
func addrAt(p netip.Prefix, off int) netip.Addr {
	b := p.Addr().As16()
	for i := 15; i >= 0 && off > 0; i-- {
		sum := int(b[i]) + off&0xff
		b[i] = byte(sum)
		off = off>>8 + sum>>8
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// offsetOf is ip's offset after p's network address, -1 outside p.
func offsetOf(p netip.Prefix, ip netip.Addr) int {
	if !p.Contains(ip) {
		return -1
	}
	a, b := p.Addr().As16(), ip.As16()
	off := 0
	for i := 16 - (MaxServiceCIDRBits+7)/8; i < 16; i++ {
		off = off<<8 | (int(b[i]) - int(a[i]))
	}
	return off
}

// claimsRepairInterval is how often the claims are checked against the
// Services, as kube-apiserver's allocator repair loops run.
const claimsRepairInterval = 3 * time.Minute

// repairClaims keeps Services' claims in line with the Services: every
// value a Service holds is claimed for it (Services stored before claims
// existed, or by another writer of etcd), and a claim whose Service is
// gone or holds the value no more is released. Each change is made only
// if the Service is still as read.
func (s *Server) repairClaims(ctx context.Context) error {
	res := s.reg.lookup(corev1.SchemeGroupVersion, "services")
	svcs, err := s.store.List(ctx, storage.Prefix("services", ""), storage.ListOptions{})
	if err != nil {
		return err
	}
	claims, err := s.store.List(ctx, claimsPrefix, storage.ListOptions{Rev: svcs.Rev})
	if err != nil {
		return err
	}
	holder := map[string]string{} // claim key → owner
	for _, c := range claims.Items {
		holder[c.Key] = string(c.Value)
	}
	type read struct {
		rev   int64
		owner string
		has   sets.Set[string]
	}
	byKey := map[string]read{}
	for _, so := range svcs.Items {
		obj, err := s.decode(res, so)
		if err != nil {
			s.log.Warn("claims repair: undecodable service", "key", so.Key, "err", err)
			continue
		}
		svc := obj.(*corev1.Service)
		owner, has := serviceOwner(svc), heldClaims(svc)
		byKey[so.Key] = read{so.Rev, owner, has}
		var take []string
		for k := range has {
			switch h, ok := holder[k]; {
			case !ok:
				take = append(take, k)
			case h != owner:
				s.log.Warn("claims repair: a service holds a value claimed by another", "service", so.Key, "claim", k, "holder", h)
			}
		}
		if len(take) > 0 {
			if _, err := s.store.RepairClaims(ctx, so.Key, so.Rev, storage.Claims{Take: take, Owner: owner}); err != nil {
				return err
			}
		}
	}
	for k, owner := range holder {
		// Released if the holder's Service (rev 0: none) is as read and
		// is another one or holds the value no more.
		key := serviceKeyOf(owner)
		r := byKey[key]
		if r.owner == owner && r.has.Has(k) {
			continue
		}
		if _, err := s.store.RepairClaims(ctx, key, r.rev, storage.Claims{Release: []string{k}, Owner: owner}); err != nil {
			return err
		}
	}
	return nil
}

// serviceKeyOf is the key of the Service a claim's owner names.
func serviceKeyOf(owner string) string {
	ns, rest, _ := strings.Cut(owner, "/")
	name, _, _ := strings.Cut(rest, "/")
	return storage.Key("services", ns, name)
}

// keepRepairingClaims runs repairClaims now and every claimsRepairInterval
// until ctx ends.
func (s *Server) keepRepairingClaims(ctx context.Context) {
	t := time.NewTicker(claimsRepairInterval)
	defer t.Stop()
	for {
		if err := s.repairClaims(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("claims repair", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EnsureKubernetesService creates the Service default/kubernetes
// (kubernetesService) or, as kube-apiserver's reconciler, sets its ports
// back when they differ (the API's port changed since).
func (s *Server) EnsureKubernetesService(ctx context.Context, apiPort int) error {
	want := s.kubernetesService(apiPort)
	info := &reqInfo{verb: "update", res: s.reg.lookup(corev1.SchemeGroupVersion, "services"), namespace: want.Namespace, name: want.Name, manager: "kube-apiserver"}
	_, err := s.update(ctx, info, func(cur runtime.Object, _ []byte) (runtime.Object, error) {
		svc := cur.(*corev1.Service)
		svc.Spec.Ports = want.Spec.Ports
		return svc, nil
	}, false)
	if apierrors.IsNotFound(err) {
		// (A create of a Service that exists is refused for its IP,
		// held already, before it is for its name, as in kube-apiserver.)
		return s.Ensure(ctx, want)
	}
	return err
}

// kubernetesService is the Service default/kubernetes that kube-apiserver
// keeps for in-cluster clients: the first address of the service CIDR,
// port 443 (https) to the API's port apiPort. It has no selector; its
// endpoints would be the API server's address (not served here).
func (s *Server) kubernetesService(apiPort int) *corev1.Service {
	ip := addrAt(s.cfg.ServiceCIDR, 1).String()
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt(apiPort)}},
		},
	}
}
