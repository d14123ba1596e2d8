package apiserver_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInvalidObjectsAreRefused creates objects kube-apiserver refuses with
// 422 Invalid and checks that wasmfleet refuses them the same way, naming
// the field, and writes nothing.
func TestInvalidObjectsAreRefused(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	ns := "/api/v1/namespaces/default/"
	for _, tc := range []struct {
		name, path, body, cause string
	}{
		{"quota with a negative limit", ns + "resourcequotas",
			`{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"q"},"spec":{"hard":{"pods":"-1"}}}`, "spec.hard[pods]"},
		{"limit range with min above max", ns + "limitranges",
			`{"apiVersion":"v1","kind":"LimitRange","metadata":{"name":"l"},"spec":{"limits":[{"type":"Container","min":{"cpu":"2"},"max":{"cpu":"1"}}]}}`, "spec.limits[0].min[cpu]"},
		{"service account with an invalid name", ns + "serviceaccounts",
			`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"Bad_Name"}}`, "metadata.name"},
		{"NodePort service with a node port outside the range", ns + "services",
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":5}]}}`, "spec.ports[0].nodePort"},
		{"job with an unknown pod failure policy action", "/apis/batch/v1/namespaces/default/jobs",
			`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"podFailurePolicy":{"rules":[{"action":"Bogus","onExitCodes":{"operator":"In","values":[1]}}]},` +
				`"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"hello:v1"}]}}}}`, "spec.podFailurePolicy.rules[0].action"},
		{"indexed job whose success policy counts past its completions", "/apis/batch/v1/namespaces/default/jobs",
			`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"k"},"spec":{"completionMode":"Indexed","completions":3,"successPolicy":{"rules":[{"succeededCount":4}]},` +
				`"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"hello:v1"}]}}}}`, "spec.successPolicy.rules[0].succeededCount"},
		{"stateful set with volume claim templates", "/apis/apps/v1/namespaces/default/statefulsets",
			`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"selector":{"matchLabels":{"app":"db"}},` +
				`"volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}],` +
				`"template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"main","image":"db:v1"}]}}}}`, "spec.volumeClaimTemplates"},
		{"stateful set whose selector misses its template", "/apis/apps/v1/namespaces/default/statefulsets",
			`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"selector":{"matchLabels":{"app":"db"}},` +
				`"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"main","image":"db:v1"}]}}}}`, "spec.template.metadata.labels"},
		{"controller revision without data", "/apis/apps/v1/namespaces/default/controllerrevisions",
			`{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"r-1"},"revision":1}`, "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := rejected(t, c, hc, http.MethodPost, tc.path, "application/json", strings.NewReader(tc.body), nil,
				http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			if fs := causeFields(st); !slices.Contains(fs, tc.cause) {
				t.Errorf("causes %v lack %s", fs, tc.cause)
			}
		})
	}
}
