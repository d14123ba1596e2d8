package apiserver_test

import (
	"strings"
	"testing"
)

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  runtimeClassName: wasm
  containers:
  - name: main
    image: hello:v1
`

func TestKubectlBasics(t *testing.T) {
	c := startAPI(t)
	out := c.kubectl(t, podYAML, "create", "-f", "-")
	if !strings.Contains(out, "pod/hello created") {
		t.Fatalf("create: %s", out)
	}
	out = c.kubectl(t, "", "get", "pods")
	t.Log(out)
	if !strings.HasPrefix(out, "NAME    READY   STATUS    RESTARTS   AGE\nhello   0/1     Pending   0          ") {
		t.Fatalf("get pods:\n%s", out)
	}
	out = c.kubectl(t, "", "get", "ns")
	t.Log(out)
	out = c.kubectl(t, "", "api-resources")
	t.Log(out)
	out = c.kubectl(t, "", "explain", "pods.spec.runtimeClassName")
	t.Log(out)
}
