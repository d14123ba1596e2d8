package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// probeUserAgent is the User-Agent of httpGet probes, as the kubelet's
// kube-probe/<major>.<minor>.
const probeUserAgent = "kube-probe/1.37"

// netProbe runs a tcpSocket, httpGet or grpc probe of container c from
// inside its network namespace: a connection must open; a GET must answer
// 200 to 399 (redirects are not followed); the gRPC health service must
// answer SERVING.
func netProbe(ctx context.Context, c *corev1.Container, p *corev1.Probe, ctr runtime.Networked) (string, bool) {
	nsPath, err := ctr.NetNS(ctx)
	if err != nil {
		return err.Error(), false
	}
	var host string
	var portSpec intstr.IntOrString
	switch {
	case p.TCPSocket != nil:
		host, portSpec = p.TCPSocket.Host, p.TCPSocket.Port
	case p.HTTPGet != nil:
		host, portSpec = p.HTTPGet.Host, p.HTTPGet.Port
	default:
		portSpec = intstr.FromInt32(p.GRPC.Port)
	}
	port, err := probePort(portSpec, c)
	if err != nil {
		return err.Error(), false
	}
	if host == "" {
		host = "127.0.0.1" // the pod has no IP: its loopback
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return dialInNetNS(ctx, nsPath, addr) }
	switch {
	case p.TCPSocket != nil:
		conn, err := dial(ctx, "", "")
		if err != nil {
			return err.Error(), false
		}
		conn.Close()
		return "", true
	case p.GRPC != nil:
		return grpcProbe(ctx, p.GRPC, time.Duration(max(p.TimeoutSeconds, 1))*time.Second, addr, dial)
	}
	g := p.HTTPGet
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	u := url.URL{Scheme: scheme, Host: addr, Path: g.Path}
	if i := strings.IndexByte(g.Path, '?'); i >= 0 {
		u.Path, u.RawQuery = g.Path[:i], g.Path[i+1:]
	}
	tr := &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err.Error(), false
	}
	req.Header.Set("User-Agent", probeUserAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error(), false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, runtime.MaxExecOutput))
	if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusBadRequest {
		return fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode), false
	}
	return "", true
}

// probePort is port as a number: itself, or the container's port of that
// name.
func probePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("the container has no port named %q", port.StrVal)
}

// grpcProbe asks the gRPC health service at addr (plaintext, as the
// kubelet) about the probe's service, with the kubelet's messages.
func grpcProbe(ctx context.Context, g *corev1.GRPCAction, timeout time.Duration, addr string, dial func(context.Context, string, string) (net.Conn, error)) (string, bool) {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, "", "") }),
		grpc.WithUserAgent(probeUserAgent))
	if err != nil {
		return err.Error(), false
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	switch {
	case status.Code(err) == codes.DeadlineExceeded:
		return fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), false
	case err != nil:
		return fmt.Sprintf("error: health rpc probe failed: %v", err), false
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), false
	}
	return "", true
}
