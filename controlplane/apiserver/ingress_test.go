package apiserver_test

import (
	"strings"
	"testing"
)

// TestKubectlIngresses drives Ingresses and IngressClasses with the real
// kubectl: the default class is set on Ingresses that name none, the
// tables are kube's, invalid rules and load balancer addresses are
// refused (422) with kube's messages, and spec changes bump generation.
func TestKubectlIngresses(t *testing.T) {
	c := startAPI(t)
	classes := `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: traefik
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec:
  controller: traefik.io/ingress-controller
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec:
  controller: k8s.io/ingress-nginx
  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: external-lb}
`
	mustContain(t, c.kubectl(t, classes, "apply", "-f", "-"), "ingressclass.networking.k8s.io/traefik created", "ingressclass.networking.k8s.io/nginx created")
	mustContain(t, c.kubectl(t, "", "get", "ingressclasses"),
		"traefik   traefik.io/ingress-controller   <none>", "nginx     k8s.io/ingress-nginx            IngressParameters.k8s.example.com/external-lb")
	// The parameters' scope is defaulted to Cluster.
	mustContain(t, c.kubectl(t, "", "get", "ingressclass", "nginx", "-o", "jsonpath={.spec.parameters.scope}"), "Cluster")

	mustContain(t, c.kubectl(t, "", "create", "ingress", "web", "--rule=foo.example.com/api*=api:80", "--rule=bar.example.com/=web:http,tls=web-cert"),
		"ingress.networking.k8s.io/web created")
	mustContain(t, c.kubectl(t, "", "create", "ingress", "other", "--class=nginx", "--default-backend=web:80"), "ingress.networking.k8s.io/other created")
	mustContain(t, c.kubectl(t, "", "get", "ingresses"),
		"web     traefik   foo.example.com,bar.example.com             80, 443",
		"other   nginx     *                                           80")
	mustContain(t, c.kubectl(t, "", "get", "ing", "web", "-o", "jsonpath={.metadata.generation} {.spec.rules[0].http.paths[0].pathType} {.spec.rules[1].http.paths[0].backend.service.port.name}"),
		"1 Prefix http")

	// Spec changes bump generation; the status subresource takes the load
	// balancer's address, which the table shows.
	c.kubectl(t, "", "patch", "ingress", "web", "--type=merge", "-p", `{"spec":{"tls":null}}`)
	c.kubectl(t, "", "patch", "ingress", "web", "--subresource=status", "--type=merge", "-p", `{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"},{"hostname":"lb.example.com"}]}}}`)
	mustContain(t, c.kubectl(t, "", "get", "ingress", "web"), "web    traefik   foo.example.com,bar.example.com   192.0.2.10,lb.example.com   80 ")
	mustContain(t, c.kubectl(t, "", "get", "ing", "web", "-o", "jsonpath={.metadata.generation}"), "2")

	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        []string
	}{
		{"bad rules", `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - path: /a//b
        pathType: Prefix
        backend: {service: {name: api, port: {name: http, number: 80}}}
      - path: /x
        backend: {service: {name: api, port: {number: 80}}}
  - host: "*.example.com"
    http:
      paths:
      - path: rel
        pathType: Exact
        backend: {service: {name: Api, port: {number: 70000}}}
  tls:
  - hosts: ["bad_host"]
    secretName: Bad_Secret
`, []string{"apply", "-f", "-"}, []string{
			`The Ingress "bad" is invalid`,
			`spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address`,
			`spec.rules[0].http.paths[0].path: Invalid value: "/a//b": must not contain '//'`,
			`spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set both port name & port number`,
			`spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified`,
			`spec.rules[1].http.paths[0].path: Invalid value: "rel": must be an absolute path`,
			`spec.rules[1].http.paths[0].backend.service.name: Invalid value: "Api"`,
			`spec.rules[1].http.paths[0].backend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive`,
			`spec.tls[0].hosts[0]: Invalid value: "bad_host"`,
			`spec.tls[0].secretName: Invalid value: "Bad_Secret"`,
		}},
		{"no backend", `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: empty, annotations: {kubernetes.io/ingress.class: nginx}}
spec: {ingressClassName: traefik}
`, []string{"apply", "-f", "-"}, []string{
			"spec: Invalid value: null: either `defaultBackend` or `rules` must be specified",
			"annotations.kubernetes.io/ingress.class: Invalid value: \"nginx\": must match `ingressClassName` when both are specified",
		}},
		{"bad address", "", []string{"patch", "ingress", "web", "--subresource=status", "--type=merge", "-p", `{"status":{"loadBalancer":{"ingress":[{"hostname":"192.0.2.11"}]}}}`}, []string{
			`status.loadBalancer.ingress[0].hostname: Invalid value: "192.0.2.11": must be a DNS name, not an IP address`,
		}},
	} {
		out, err := c.kubectlErr(t, tc.stdin, tc.args...)
		if err == nil {
			t.Errorf("%s: accepted: %s", tc.name, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", tc.name, w, out)
			}
		}
	}
	// An IngressClass's controller does not change.
	out, err := c.kubectlErr(t, "", "patch", "ingressclass", "nginx", "--type=merge", "-p", `{"spec":{"controller":"example.com/other"}}`)
	if err == nil || !strings.Contains(out, `spec.controller: Invalid value: "example.com/other": field is immutable`) {
		t.Errorf("controller changed: %v\n%s", err, out)
	}
}
