package apiserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestDeploymentGenerationCountsAnnotations: as kube-apiserver's deployment
// strategy, a change of a Deployment's annotations bumps its generation
// (the controller copies them to the ReplicaSets, so observedGeneration
// must say when it has); labels do not, nor does anything through /status,
// and a ReplicaSet counts its spec only.
func TestDeploymentGenerationCountsAnnotations(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	deploys := c.client.AppsV1().Deployments(testNS)
	d, err := deploys.Create(ctx, semDeployment("gen"), metav1.CreateOptions{})
	must(t, err)
	step := func(what string, patch func() (metav1.Object, error), want int64) {
		t.Helper()
		obj, err := patch()
		must(t, err)
		if g := obj.GetGeneration(); g != want {
			t.Errorf("after %s: generation %d, want %d", what, g, want)
		}
	}
	mp := func(body string, sub ...string) func() (metav1.Object, error) {
		return func() (metav1.Object, error) {
			return deploys.Patch(ctx, d.Name, types.MergePatchType, []byte(body), metav1.PatchOptions{}, sub...)
		}
	}
	step("an annotation", mp(`{"metadata":{"annotations":{"a":"1"}}}`), 2)
	step("the same annotation", mp(`{"metadata":{"annotations":{"a":"1"}}}`), 2)
	step("a label", mp(`{"metadata":{"labels":{"l":"1"}}}`), 2)
	step("an annotation through /status", mp(`{"metadata":{"annotations":{"b":"1"}}}`, "status"), 2)
	step("an annotation removed", mp(`{"metadata":{"annotations":{"a":null}}}`), 3)

	sd := semDeployment("gen")
	rs, err := c.client.AppsV1().ReplicaSets(testNS).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: sd.ObjectMeta,
		Spec: appsv1.ReplicaSetSpec{Replicas: sd.Spec.Replicas, Selector: sd.Spec.Selector, Template: sd.Spec.Template}}, metav1.CreateOptions{})
	must(t, err)
	step("a ReplicaSet's annotation", func() (metav1.Object, error) {
		return c.client.AppsV1().ReplicaSets(testNS).Patch(ctx, rs.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"1"}}}`), metav1.PatchOptions{})
	}, 1)
}

// TestServiceReplaceKeepsAllocatedValues: as kube-apiserver, a Service
// replaced by a manifest that leaves out its cluster IPs, node ports or
// health check node port keeps those it has (kubectl replace -f of the
// YAML it was created from), while a change of them is still refused.
func TestServiceReplaceKeepsAllocatedValues(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	svcs := c.client.CoreV1().Services(testNS)
	create := func(svc *corev1.Service) *corev1.Service {
		t.Helper()
		out, err := svcs.Create(ctx, svc, metav1.CreateOptions{})
		must(t, err)
		return out
	}
	headless := create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless"}, Spec: corev1.ServiceSpec{
		ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "a"}, Ports: []corev1.ServicePort{{Port: 80}}}})
	lb := create(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.43.0.10", ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		HealthCheckNodePort: 30100, Selector: map[string]string{"app": "a"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30443}}}})

	// The manifests again, without what they were given.
	headless.Spec.ClusterIP, headless.Spec.ClusterIPs = "", nil
	out, err := svcs.Update(ctx, headless, metav1.UpdateOptions{})
	must(t, err)
	if out.Spec.ClusterIP != corev1.ClusterIPNone || len(out.Spec.ClusterIPs) != 1 || out.Spec.ClusterIPs[0] != corev1.ClusterIPNone {
		t.Errorf("headless service replaced: clusterIP %q clusterIPs %q", out.Spec.ClusterIP, out.Spec.ClusterIPs)
	}
	lb.Spec.ClusterIP, lb.Spec.ClusterIPs, lb.Spec.HealthCheckNodePort = "", nil, 0
	lb.Spec.Ports[0].NodePort, lb.Spec.Ports[1].NodePort = 0, 0
	lb.Spec.Ports[1].Port = 8443
	out, err = svcs.Update(ctx, lb, metav1.UpdateOptions{})
	must(t, err)
	if s := out.Spec; s.ClusterIP != "10.43.0.10" || len(s.ClusterIPs) != 1 || s.ClusterIPs[0] != "10.43.0.10" || s.HealthCheckNodePort != 30100 ||
		s.Ports[0].NodePort != 30080 || s.Ports[1].NodePort != 30443 || s.Ports[1].Port != 8443 {
		t.Errorf("load balancer replaced: %+v", s)
	}

	// A different cluster IP is still refused.
	out.Spec.ClusterIP, out.Spec.ClusterIPs = "10.43.0.11", nil
	if _, err := svcs.Update(ctx, out, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("cluster IP changed: %v, want Invalid", err)
	}
}

// TestServiceTypeChangeDropsItsFields: as kube-apiserver's service
// strategy, a service whose type alone changes loses what its new type
// does not use and it left as it was (node ports, external traffic
// policy, health check node port, the load balancer's settings and
// status), so the change is valid; a node port it adds is still refused.
func TestServiceTypeChangeDropsItsFields(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	svcs := c.client.CoreV1().Services(testNS)
	lb, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, HealthCheckNodePort: 30100,
		LoadBalancerClass: new("example.com/lb"), Selector: map[string]string{"app": "a"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}}}}, metav1.CreateOptions{})
	must(t, err)
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}
	_, err = svcs.UpdateStatus(ctx, lb, metav1.UpdateOptions{})
	must(t, err)

	out, err := svcs.Patch(ctx, "lb", types.MergePatchType, []byte(`{"spec":{"type":"NodePort"}}`), metav1.PatchOptions{})
	must(t, err)
	if s := out.Spec; s.HealthCheckNodePort != 0 || s.LoadBalancerClass != nil || s.AllocateLoadBalancerNodePorts != nil ||
		s.Ports[0].NodePort != 30080 || s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || len(out.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("LoadBalancer to NodePort: %+v %+v", s, out.Status)
	}
	// A node port added with the change is the user's: it stays, and a
	// ClusterIP service may not have one.
	out.Spec.Type = corev1.ServiceTypeClusterIP
	out.Spec.Ports = append(out.Spec.Ports, corev1.ServicePort{Name: "extra", Port: 81, NodePort: 30081})
	if _, err := svcs.Update(ctx, out, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("to ClusterIP with a new node port: %v, want Invalid", err)
	}
	out, err = svcs.Patch(ctx, "lb", types.MergePatchType, []byte(`{"spec":{"type":"ClusterIP"}}`), metav1.PatchOptions{})
	must(t, err)
	if s := out.Spec; s.Ports[0].NodePort != 0 || s.ExternalTrafficPolicy != "" {
		t.Errorf("NodePort to ClusterIP: %+v", s)
	}
}

// TestPatchFieldValidation: as kube-apiserver's patch handler, a patch
// whose result is not an object of the kind is 422 Invalid (cause field
// "patch"), and fieldValidation covers the patch itself (fields given
// twice, unknown fields of JSON patch operations) besides the unknown
// fields of the result: Strict refuses them with 422, Warn (the default)
// answers each with a Warning header, Ignore says nothing.
func TestPatchFieldValidation(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const cm = "/api/v1/namespaces/" + testNS + "/configmaps/fv"
	if code, b := rawDo(t, c, hc, http.MethodPost, "/api/v1/namespaces/"+testNS+"/configmaps", "application/json",
		strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv"},"data":{"k":"v"}}`), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	const (
		jp  = "application/json-patch+json"
		mp  = "application/merge-patch+json"
		smp = "application/strategic-merge-patch+json"
	)
	for _, tc := range []struct{ name, query, ct, body, msg string }{
		{"merge patch makes a wrong type", "", mp, `{"data":{"k":7}}`, "cannot unmarshal number"},
		{"JSON patch makes a wrong type", "", jp, `[{"op":"replace","path":"/data","value":[1,2]}]`, "cannot unmarshal array"},
		{"strategic patch makes a wrong type", "", smp, `{"data":{"k":true}}`, "cannot unmarshal bool"},
		{"merge patch unknown field", "?fieldValidation=Strict", mp, `{"dataa":{"k":"v"}}`, `strict decoding error: unknown field "dataa"`},
		{"strategic patch unknown field", "?fieldValidation=Strict", smp, `{"dataa":{"k":"v"}}`, `strict decoding error: unknown field "dataa"`},
		{"merge patch duplicate field", "?fieldValidation=Strict", mp, `{"data":{"k":"a","k":"b"}}`, `strict decoding error: duplicate field "data.k"`},
		{"strategic patch duplicate field", "?fieldValidation=Strict", smp, `{"data":{"k":"a","k":"b"}}`, `strict decoding error: duplicate field "data.k"`},
		{"JSON patch unknown operation field", "?fieldValidation=Strict", jp, `[{"op":"add","path":"/data/x","valu":"1"}]`, `strict decoding error: json patch unknown field "[0].valu"`},
		{"JSON patch duplicate operation field", "?fieldValidation=Strict", jp, `[{"op":"add","path":"/data/x","path":"/data/y","value":"1"}]`, `json patch duplicate field "[0].path"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := rejected(t, c, hc, http.MethodPatch, cm+tc.query, tc.ct, strings.NewReader(tc.body), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
			if !strings.Contains(st.Message, tc.msg) || !slices.Equal(causeFields(st), []string{"patch"}) {
				t.Errorf("message %q causes %v, want %q on field patch", st.Message, causeFields(st), tc.msg)
			}
		})
	}
	// Warn, also by default, writes and says why; Ignore only writes.
	for _, tc := range []struct {
		query string
		warns []string
	}{
		{"", []string{`duplicate field "data.k"`, `unknown field "dataa"`}},
		{"?fieldValidation=Warn", []string{`duplicate field "data.k"`, `unknown field "dataa"`}},
		{"?fieldValidation=Ignore", nil},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, c.url+cm+tc.query, strings.NewReader(`{"data":{"k":"a","k":"b"},"dataa":{}}`))
		must(t, err)
		req.Header.Set("Content-Type", mp)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"k":"b"`) {
			t.Errorf("%q: %d %s", tc.query, resp.StatusCode, b)
		}
		var warns []string
		for _, w := range resp.Header.Values("Warning") {
			warns = append(warns, w[strings.Index(w, `"`)+1:strings.LastIndex(w, `"`)])
		}
		for i := range warns {
			warns[i] = strings.ReplaceAll(warns[i], `\"`, `"`)
		}
		if !slices.Equal(warns, tc.warns) {
			t.Errorf("%q: warnings %q, want %q", tc.query, warns, tc.warns)
		}
	}
}

// TestOwnerReferencesDeduplicated: as kube-apiserver, an owner reference
// given twice is stored once, with a warning, whether it comes with a
// create, a replacement or a patch.
func TestOwnerReferencesDeduplicated(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const (
		cms  = "/api/v1/namespaces/" + testNS + "/configmaps"
		ref  = `{"apiVersion":"v1","kind":"Pod","name":"p","uid":"u1"}`
		ref2 = `{"apiVersion":"v1","kind":"Pod","name":"q","uid":"u2"}`
	)
	for _, tc := range []struct{ method, path, ct, body, warning string }{
		{http.MethodPost, cms, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"o","ownerReferences":[` + ref + `,` + ref + `]}}`,
			".metadata.ownerReferences contains duplicate entries; API server dedups owner references in 1.20+, and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: u1"},
		{http.MethodPut, cms + "/o", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"o","ownerReferences":[` + ref + `,` + ref2 + `,` + ref + `]}}`,
			".metadata.ownerReferences contains duplicate entries; API server dedups owner references in 1.20+, and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: u1"},
		{http.MethodPatch, cms + "/o", "application/json-patch+json", `[{"op":"add","path":"/metadata/ownerReferences/-","value":` + ref2 + `}]`,
			".metadata.ownerReferences contains duplicate entries after mutating admission happens; API server dedups owner references in 1.20+, and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: u2"},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, c.url+tc.path, strings.NewReader(tc.body))
		must(t, err)
		req.Header.Set("Content-Type", tc.ct)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s: %d %s", tc.method, resp.StatusCode, b)
		}
		var cm corev1.ConfigMap
		must(t, json.Unmarshal(b, &cm))
		var uids []string
		for _, r := range cm.OwnerReferences {
			uids = append(uids, string(r.UID))
		}
		if want := map[string][]string{http.MethodPost: {"u1"}}[tc.method]; want == nil && !slices.Equal(uids, []string{"u1", "u2"}) || want != nil && !slices.Equal(uids, want) {
			t.Errorf("%s: owner references %v", tc.method, uids)
		}
		if w := resp.Header.Values("Warning"); len(w) != 1 || !strings.Contains(w[0], tc.warning) {
			t.Errorf("%s: warnings %q, want %q", tc.method, w, tc.warning)
		}
	}
}

// TestResourceVersionZeroIsUnconditional: kube-apiserver reads a
// resourceVersion of "0" in an update as none (its versioner parses it to
// 0): a PUT or patch naming it replaces whatever is stored, where the kind
// allows unconditional updates, and is refused as one without a version
// where it does not (leases).
func TestResourceVersionZeroIsUnconditional(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	const cms = "/api/v1/namespaces/" + testNS + "/configmaps"
	if code, b := rawDo(t, c, hc, http.MethodPost, cms, "application/json", strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z"}}`), nil); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	if code, b := rawDo(t, c, hc, http.MethodPut, cms+"/z", "application/json",
		strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z","resourceVersion":"0"},"data":{"k":"put"}}`), nil); code != http.StatusOK || !strings.Contains(string(b), `"k":"put"`) {
		t.Errorf("PUT with resourceVersion 0: %d %s", code, b)
	}
	if code, b := rawDo(t, c, hc, http.MethodPatch, cms+"/z", "application/merge-patch+json",
		strings.NewReader(`{"metadata":{"resourceVersion":"0"},"data":{"k":"patch"}}`), nil); code != http.StatusOK || !strings.Contains(string(b), `"k":"patch"`) {
		t.Errorf("patch with resourceVersion 0: %d %s", code, b)
	}
	const leases = "/apis/coordination.k8s.io/v1/namespaces/" + testNS + "/leases"
	if code, b := rawDo(t, c, hc, http.MethodPost, leases, "application/json", strings.NewReader(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"z"}}`), nil); code != http.StatusCreated {
		t.Fatalf("create lease: %d %s", code, b)
	}
	rejected(t, c, hc, http.MethodPut, leases+"/z", "application/json",
		strings.NewReader(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"z","resourceVersion":"0"},"spec":{"holderIdentity":"a"}}`), nil,
		http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
}

// TestApplyWithUIDCreatesNothing: as kube-apiserver, an apply that names
// a uid is a precondition on an existing object: with none to apply to it
// is 409 Conflict, not a create under a new uid.
func TestApplyWithUIDCreatesNothing(t *testing.T) {
	c := startAPI(t)
	hc := rawClient(t, c, true)
	st := rejected(t, c, hc, http.MethodPatch, "/api/v1/namespaces/"+testNS+"/configmaps/gone?fieldManager=test", "application/apply-patch+yaml",
		strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"gone","uid":"0b4c5a4e-1111-4c9f-9d2e-5d8c1f0e2a77"},"data":{"k":"v"}}`), nil,
		http.StatusConflict, metav1.StatusReasonConflict)
	if !strings.Contains(st.Message, "uid mismatch: the provided object specified uid 0b4c5a4e-1111-4c9f-9d2e-5d8c1f0e2a77, and no existing object was found") {
		t.Errorf("message %q", st.Message)
	}
}
