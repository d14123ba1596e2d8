package apiserver_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
)

// TestKubeCompat: answers kube-apiserver gives and clients rely on, found
// by probing this server with kubectl and curl beside the Kubernetes
// sources.
func TestKubeCompat(t *testing.T) {
	c := startAPI(t)
	ctx := t.Context()
	hc := rawClient(t, c, true)
	cms := c.client.CoreV1().ConfigMaps(testNS)
	nss := c.client.CoreV1().Namespaces()

	t.Run("system namespaces may not be deleted", func(t *testing.T) {
		for _, ns := range []string{"default", "kube-system", "kube-public"} {
			st := rejected(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+ns, "", nil, nil, http.StatusForbidden, metav1.StatusReasonForbidden)
			if want := `namespaces "` + ns + `" is forbidden: this namespace may not be deleted`; st.Message != want {
				t.Errorf("message %q, want %q", st.Message, want)
			}
		}
	})

	t.Run("a namespace's finalizers change only through /finalize", func(t *testing.T) {
		_, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{})
		must(t, err)
		_, err = nss.Patch(ctx, "kept", types.MergePatchType, []byte(`{"spec":{"finalizers":[]},"metadata":{"labels":{"kubernetes.io/metadata.name":"other"}}}`), metav1.PatchOptions{})
		must(t, err)
		ns, err := nss.Get(ctx, "kept", metav1.GetOptions{})
		must(t, err)
		if !slices.Equal(ns.Spec.Finalizers, []corev1.FinalizerName{corev1.FinalizerKubernetes}) {
			t.Errorf("finalizers %v after a patch, want [kubernetes]", ns.Spec.Finalizers)
		}
		if got := ns.Labels[corev1.LabelMetadataName]; got != "kept" {
			t.Errorf("label %s = %q, want the name", corev1.LabelMetadataName, got)
		}
		ns.Spec.Finalizers = nil
		ns, err = nss.Finalize(ctx, ns, metav1.UpdateOptions{})
		must(t, err)
		if len(ns.Spec.Finalizers) != 0 {
			t.Errorf("finalizers %v after /finalize, want none", ns.Spec.Finalizers)
		}
	})

	t.Run("a replaced manifest is defaulted", func(t *testing.T) {
		manifest := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"plain"},"spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},` +
			`"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`
		const deploys = "/apis/apps/v1/namespaces/" + testNS + "/deployments"
		if code, b := rawDo(t, c, hc, http.MethodPost, deploys, "application/json", strings.NewReader(manifest), nil); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, b)
		}
		code, b := rawDo(t, c, hc, http.MethodPut, deploys+"/plain", "application/json", strings.NewReader(manifest), nil)
		if code != http.StatusOK {
			t.Fatalf("replace with the same manifest: %d %s", code, b)
		}
		var d appsv1.Deployment
		must(t, json.Unmarshal(b, &d))
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
			t.Errorf("replaced deployment not defaulted: strategy %q restartPolicy %q", d.Spec.Strategy.Type, d.Spec.Template.Spec.RestartPolicy)
		}
		// A pod gets its default tolerations again, which it may not lose.
		pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"plain"},"spec":{"runtimeClassName":"wasm","containers":[{"name":"c","image":"x:1"}]}}`
		const pods = "/api/v1/namespaces/" + testNS + "/pods"
		if code, b := rawDo(t, c, hc, http.MethodPost, pods, "application/json", strings.NewReader(pod), nil); code != http.StatusCreated {
			t.Fatalf("create pod: %d %s", code, b)
		}
		if code, b := rawDo(t, c, hc, http.MethodPut, pods+"/plain", "application/json", strings.NewReader(pod), nil); code != http.StatusOK {
			t.Errorf("replace pod with the same manifest: %d %s", code, b)
		}
	})

	t.Run("a failed JSON patch test is 422 Invalid", func(t *testing.T) {
		_, err := cms.Create(ctx, semConfigMap("tested"), metav1.CreateOptions{})
		must(t, err)
		st := rejected(t, c, hc, http.MethodPatch, "/api/v1/namespaces/"+testNS+"/configmaps/tested", "application/json-patch+json",
			strings.NewReader(`[{"op":"test","path":"/data/n","value":"9"},{"op":"replace","path":"/data/n","value":"1"}]`), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if !strings.Contains(st.Message, "the patch could not be applied") {
			t.Errorf("message %q", st.Message)
		}
	})

	t.Run("a replacement's uid is a precondition", func(t *testing.T) {
		cm, err := cms.Create(ctx, semConfigMap("reborn"), metav1.CreateOptions{})
		must(t, err)
		stale := cm.DeepCopy()
		must(t, cms.Delete(ctx, "reborn", metav1.DeleteOptions{}))
		_, err = cms.Create(ctx, semConfigMap("reborn"), metav1.CreateOptions{})
		must(t, err)
		stale.ResourceVersion = ""
		stale.Data = map[string]string{"n": "stale"}
		_, err = cms.Update(ctx, stale, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "Precondition failed: UID in precondition: "+string(cm.UID)) {
			t.Errorf("update of a recreated object with the old uid: %v, want 409 Precondition failed", err)
		}
	})

	t.Run("delete options", func(t *testing.T) {
		pods := c.client.CoreV1().Pods(testNS)
		bound := func(name string) {
			p := semPod(name)
			p.Spec.NodeName = "edge-1"
			_, err := pods.Create(ctx, p, metav1.CreateOptions{})
			must(t, err)
		}
		// A pending deletion answers 200, 202 only with orphanDependents=false.
		bound("graceful")
		if code := deleteCode(t, c, "pods", "graceful", metav1.DeleteOptions{}); code != http.StatusOK {
			t.Errorf("graceful delete answered %d, want 200", code)
		}
		bound("accepted")
		if code := deleteCode(t, c, "pods", "accepted", metav1.DeleteOptions{OrphanDependents: ptr.To(false)}); code != http.StatusAccepted {
			t.Errorf("graceful delete with orphanDependents=false answered %d, want 202", code)
		}
		// A negative grace period is 1s.
		bound("hasty")
		deleteCode(t, c, "pods", "hasty", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](-3)})
		p, err := pods.Get(ctx, "hasty", metav1.GetOptions{})
		must(t, err)
		if g := p.DeletionGracePeriodSeconds; g == nil || *g != 1 {
			t.Errorf("deletionGracePeriodSeconds %v after a delete with -3, want 1", g)
		}
		// The body's options, when there is a body; else the query's.
		bound("bodied")
		body, _ := json.Marshal(metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](7)})
		if code, b := rawDo(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+testNS+"/pods/bodied?gracePeriodSeconds=0", "application/json", strings.NewReader(string(body)), nil); code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, b)
		}
		p, err = pods.Get(ctx, "bodied", metav1.GetOptions{})
		if err != nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 7 {
			t.Errorf("after a delete with grace 7 in the body and 0 in the query: %v %v, want pending with 7", err, p.DeletionGracePeriodSeconds)
		}
		// orphanDependents, the old form of propagationPolicy, in the body
		// and in the query.
		for _, name := range []string{"orphan-body", "orphan-query"} {
			_, err := cms.Create(ctx, semConfigMap(name), metav1.CreateOptions{})
			must(t, err)
		}
		deleteCode(t, c, "configmaps", "orphan-body", metav1.DeleteOptions{OrphanDependents: ptr.To(true)})
		if code, b := rawDo(t, c, hc, http.MethodDelete, "/api/v1/namespaces/"+testNS+"/configmaps/orphan-query?orphanDependents=true", "", nil, nil); code != http.StatusOK {
			t.Fatalf("delete: %d %s", code, b)
		}
		for _, name := range []string{"orphan-body", "orphan-query"} {
			cm, err := cms.Get(ctx, name, metav1.GetOptions{})
			if err != nil || !slices.Contains(cm.Finalizers, metav1.FinalizerOrphanDependents) {
				t.Errorf("%s after an orphaning delete: %v, want kept with the orphan finalizer", name, err)
			}
		}
		// The first deletion bumps a generation.
		d, err := c.client.AppsV1().Deployments(testNS).Create(ctx, semDeployment("gen"), metav1.CreateOptions{})
		must(t, err)
		must(t, c.client.AppsV1().Deployments(testNS).Delete(ctx, "gen", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}))
		after, err := c.client.AppsV1().Deployments(testNS).Get(ctx, "gen", metav1.GetOptions{})
		must(t, err)
		if after.Generation != d.Generation+1 {
			t.Errorf("generation %d after a foreground delete, want %d", after.Generation, d.Generation+1)
		}
	})

	t.Run("generateName is cut to fit", func(t *testing.T) {
		in := semConfigMap("")
		in.GenerateName = strings.Repeat("g", 100)
		cm, err := cms.Create(ctx, in, metav1.CreateOptions{})
		must(t, err)
		if len(cm.Name) != 63 || !strings.HasPrefix(cm.Name, strings.Repeat("g", 58)) {
			t.Errorf("generated name %q (%d characters), want 58 of the prefix and 5 more", cm.Name, len(cm.Name))
		}
	})

	t.Run("a generated name that is taken is generated again", func(t *testing.T) {
		// The suffixes the server will draw, known by seeding its source
		// (nothing else in this package's servers draws from it).
		const seed = 20261127
		rand.Seed(seed)
		var taken []string
		for range apiserver.GenerateNameAttempts - 1 {
			taken = append(taken, "taken-"+rand.String(5))
		}
		for _, name := range taken {
			_, err := cms.Create(ctx, semConfigMap(name), metav1.CreateOptions{})
			must(t, err)
		}
		in := semConfigMap("")
		in.GenerateName = "taken-"
		rand.Seed(seed)
		cm, err := cms.Create(ctx, in, metav1.CreateOptions{})
		if err != nil || slices.Contains(taken, cm.Name) || !strings.HasPrefix(cm.Name, "taken-") {
			t.Fatalf("create with %d generated names taken: %v %v, want a new name", len(taken), cm.GetName(), err)
		}
		// Now every name drawn from the seed is taken: 409 AlreadyExists.
		rand.Seed(seed)
		if _, err := cms.Create(ctx, in, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
			t.Errorf("create with all %d generated names taken: %v, want 409 AlreadyExists", apiserver.GenerateNameAttempts, err)
		}
	})

	t.Run("continue with a resourceVersion", func(t *testing.T) {
		l, err := cms.List(ctx, metav1.ListOptions{Limit: 1})
		must(t, err)
		if l.Continue == "" {
			t.Fatalf("no continue token with %d configmaps", len(l.Items))
		}
		st := rejected(t, c, hc, http.MethodGet, "/api/v1/namespaces/"+testNS+"/configmaps?limit=1&resourceVersion=5&continue="+l.Continue, "", nil, nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
		if st.Message != "specifying resource version is not allowed when using continue" {
			t.Errorf("message %q", st.Message)
		}
	})

	t.Run("unknown fields warn by default", func(t *testing.T) {
		const path = "/api/v1/namespaces/" + testNS + "/configmaps"
		for _, tc := range []struct {
			query string
			warns bool
		}{{"", true}, {"?fieldValidation=Warn", true}, {"?fieldValidation=Ignore", false}} {
			name := "warned" + strings.ToLower(strings.TrimPrefix(tc.query, "?fieldValidation="))
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path+tc.query, strings.NewReader(`{"metadata":{"name":"`+name+`"},"bogus":1}`))
			must(t, err)
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			must(t, err)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("POST%s: %d, want 201", tc.query, resp.StatusCode)
			}
			ws, errs := utilnet.ParseWarningHeaders(resp.Header.Values("Warning"))
			if len(errs) > 0 {
				t.Errorf("POST%s: Warning headers %q: %v", tc.query, resp.Header.Values("Warning"), errs)
			}
			got := len(ws) == 1 && ws[0].Code == 299 && ws[0].Text == `unknown field "bogus"`
			if got != tc.warns {
				t.Errorf("POST%s: warnings %+v, want one unknown-field warning: %v", tc.query, ws, tc.warns)
			}
		}
	})

	t.Run("field selectors kube-apiserver serves", func(t *testing.T) {
		for _, q := range []string{
			"/api/v1/namespaces?fieldSelector=status.phase%3DActive",
			"/apis/apps/v1/replicasets?fieldSelector=status.replicas%3D0",
			"/api/v1/replicationcontrollers?fieldSelector=status.replicas%3D0",
			"/apis/batch/v1/jobs?fieldSelector=status.successful%3D0",
			"/api/v1/services?fieldSelector=spec.type%3DClusterIP,spec.clusterIP!%3DNone",
		} {
			if code, b := rawDo(t, c, hc, http.MethodGet, q, "", nil, nil); code != http.StatusOK {
				t.Errorf("GET %s: %d %.200s", q, code, b)
			}
		}
		l, err := nss.List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Active"})
		must(t, err)
		if len(l.Items) == 0 {
			t.Errorf("no Active namespace")
		}
	})

	t.Run("impersonation", func(t *testing.T) {
		const pods = "/api/v1/namespaces/" + testNS + "/pods"
		as := func(user string, groups ...string) http.Header {
			return http.Header{"Impersonate-User": {user}, "Impersonate-Group": groups}
		}
		// An admin acting as someone without rights gets what they would.
		// The messages are kube-apiserver's, with the scope.
		st := rejected(t, c, hc, http.MethodGet, pods, "", nil, as("nobody"), http.StatusForbidden, metav1.StatusReasonForbidden)
		if want := `pods is forbidden: User "nobody" cannot list resource "pods" in API group "" in the namespace "` + testNS + `"`; st.Message != want {
			t.Errorf("message %q, want %q", st.Message, want)
		}
		st = rejected(t, c, hc, http.MethodGet, "/api/v1/nodes", "", nil, as("nobody"), http.StatusForbidden, metav1.StatusReasonForbidden)
		if want := `nodes is forbidden: User "nobody" cannot list resource "nodes" in API group "" at the cluster scope`; st.Message != want {
			t.Errorf("message %q, want %q", st.Message, want)
		}
		if code, b := rawDo(t, c, hc, http.MethodGet, pods, "", nil, as("someone", "system:masters")); code != http.StatusOK {
			t.Errorf("as a member of system:masters: %d %.200s", code, b)
		}
		// kubectl auth can-i --as asks a SelfSubjectAccessReview as the user.
		rc := rest.CopyConfig(c.rest)
		rc.Impersonate = rest.ImpersonationConfig{UserName: "nobody"}
		cs, err := kubernetes.NewForConfig(rc)
		must(t, err)
		rev, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "delete", Resource: "nodes"}}}, metav1.CreateOptions{})
		must(t, err)
		if rev.Status.Allowed || rev.Status.Reason != "" {
			// No reason, as kube's RBAC without a matching rule: kubectl
			// prints "no" alone.
			t.Errorf("nobody deleting nodes: %+v", rev.Status)
		}
		// kubectl auth whoami and auth can-i --list.
		who, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		must(t, err)
		if u := who.Status.UserInfo; u.Username != "nobody" || !slices.Equal(u.Groups, []string{"system:authenticated"}) {
			t.Errorf("whoami as nobody: %+v", u)
		}
		rules, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: testNS}}, metav1.CreateOptions{})
		must(t, err)
		if len(rules.Status.ResourceRules) != 0 {
			t.Errorf("nobody's rules: %+v", rules.Status.ResourceRules)
		}
		rules, err = c.client.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: testNS}}, metav1.CreateOptions{})
		must(t, err)
		if r := rules.Status.ResourceRules; len(r) != 1 || !slices.Equal(r[0].Verbs, []string{"*"}) || !slices.Equal(r[0].Resources, []string{"*"}) {
			t.Errorf("admin's rules: %+v", r)
		}
		// Only admins impersonate; groups alone name no one.
		rejected(t, c, hc, http.MethodGet, pods, "", nil, http.Header{"Authorization": {"Bearer " + testNodeToken}, "Impersonate-User": {"admin"}, "Impersonate-Group": {"system:masters"}},
			http.StatusForbidden, metav1.StatusReasonForbidden)
		rejected(t, c, hc, http.MethodGet, pods, "", nil, http.Header{"Impersonate-Group": {"system:masters"}}, http.StatusBadRequest, metav1.StatusReasonBadRequest)
	})

	t.Run("create on update", func(t *testing.T) {
		const leases = "/apis/coordination.k8s.io/v1/namespaces/" + testNS + "/leases/"
		lease := `{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"put"},"spec":{"holderIdentity":"a"}}`
		if code, b := rawDo(t, c, hc, http.MethodPut, leases+"put", "application/json", strings.NewReader(lease), nil); code != http.StatusCreated {
			t.Errorf("PUT of a missing lease: %d %.300s, want 201", code, b)
		}
		// A lease is replaced only knowing what it replaces.
		st := rejected(t, c, hc, http.MethodPut, leases+"put", "application/json", strings.NewReader(lease), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		if !strings.Contains(st.Message, "metadata.resourceVersion: Invalid value: \"\": must be specified for an update") {
			t.Errorf("message %q", st.Message)
		}
		// Nor may a patch drop the version it was applied to.
		rejected(t, c, hc, http.MethodPatch, leases+"put", "application/merge-patch+json",
			strings.NewReader(`{"metadata":{"resourceVersion":null},"spec":{"holderIdentity":"b"}}`), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		// RuntimeClasses too (kube-apiserver's strategy allows neither
		// an unconditional update), and a PUT creates them.
		const rcs = "/apis/node.k8s.io/v1/runtimeclasses/"
		rc := `{"apiVersion":"node.k8s.io/v1","kind":"RuntimeClass","metadata":{"name":"put","labels":{"a":"b"}},"handler":"put"}`
		if code, b := rawDo(t, c, hc, http.MethodPut, rcs+"put", "application/json", strings.NewReader(rc), nil); code != http.StatusCreated {
			t.Errorf("PUT of a missing runtime class: %d %.300s, want 201", code, b)
		}
		rejected(t, c, hc, http.MethodPut, rcs+"put", "application/json", strings.NewReader(rc), nil, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid)
		// Most kinds are not created by a PUT.
		rejected(t, c, hc, http.MethodPut, "/api/v1/namespaces/"+testNS+"/configmaps/put", "application/json",
			strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"put"}}`), nil, http.StatusNotFound, metav1.StatusReasonNotFound)
	})

	t.Run("exec, attach and port-forward say they are not supported", func(t *testing.T) {
		for _, sub := range []string{"exec?command=ls", "attach", "portforward"} {
			st := rejected(t, c, hc, http.MethodPost, "/api/v1/namespaces/"+testNS+"/pods/plain/"+sub, "", nil, nil, http.StatusBadRequest, metav1.StatusReasonBadRequest)
			if !strings.Contains(st.Message, "is not supported") {
				t.Errorf("%s: message %q", sub, st.Message)
			}
		}
	})

	t.Run("an object to create may not carry a resource version", func(t *testing.T) {
		// As kube-apiserver: a plain 500 with its words, for a POST and
		// for an apply that would create (operators hit it; kubectl
		// clears the version before it creates).
		const msg = "resourceVersion should not be set on objects to be created"
		cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"saved","resourceVersion":"5"}}`
		st := rejected(t, c, hc, http.MethodPost, "/api/v1/namespaces/"+testNS+"/configmaps", "application/json", strings.NewReader(cm), nil, http.StatusInternalServerError, metav1.StatusReasonUnknown)
		if st.Message != msg {
			t.Errorf("POST: message %q, want %q", st.Message, msg)
		}
		st = rejected(t, c, hc, http.MethodPatch, "/api/v1/namespaces/"+testNS+"/configmaps/saved?fieldManager=test", "application/apply-patch+yaml", strings.NewReader(cm), nil, http.StatusInternalServerError, metav1.StatusReasonUnknown)
		if st.Message != msg {
			t.Errorf("apply: message %q, want %q", st.Message, msg)
		}
		c.kubectl(t, cm, "-n", testNS, "create", "-f", "-")
	})

	t.Run("kubectl debug says ephemeral containers are not served", func(t *testing.T) {
		// kubectl reads the 404's details without checking for nil.
		c.kubectl(t, "", "-n", testNS, "run", "debugged", "--image=hello:1", "--restart=Never")
		out, err := c.kubectlErr(t, "", "-n", testNS, "debug", "debugged", "--image=busybox")
		if err == nil || !strings.Contains(out, "ephemeral containers are disabled for this cluster") || strings.Contains(out, "panic") {
			t.Errorf("kubectl debug: %v\n%s", err, out)
		}
	})

	t.Run("content negotiation", func(t *testing.T) {
		const cm = "/api/v1/namespaces/" + testNS + "/configmaps/tested"
		code, b := rawDo(t, c, hc, http.MethodGet, cm, "", nil, http.Header{"Accept": {"application/yaml"}})
		if code != http.StatusOK || !strings.HasPrefix(string(b), "apiVersion: v1\n") || !strings.Contains(string(b), "\nkind: ConfigMap\n") {
			t.Errorf("GET as YAML: %d %.300s", code, b)
		}
		code, b = rawDo(t, c, hc, http.MethodGet, "/api/v1/namespaces/"+testNS+"/configmaps", "", nil, http.Header{"Accept": {"application/yaml"}})
		if code != http.StatusOK || !strings.Contains(string(b), "kind: ConfigMapList\n") {
			t.Errorf("LIST as YAML: %d %.300s", code, b)
		}
		rejected(t, c, hc, http.MethodGet, cm, "", nil, http.Header{"Accept": {"text/html"}}, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable)
		rejected(t, c, hc, http.MethodGet, "/api/v1/namespaces/"+testNS+"/configmaps?watch=true", "", nil, http.Header{"Accept": {"application/yaml"}}, http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable)
		// What browsers and curl send is served as JSON.
		for _, accept := range []string{"*/*", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json, */*"} {
			if code, b := rawDo(t, c, hc, http.MethodGet, cm, "", nil, http.Header{"Accept": {accept}}); code != http.StatusOK || !strings.HasPrefix(string(b), "{") {
				t.Errorf("Accept %q: %d %.100s", accept, code, b)
			}
		}
	})

	t.Run("methods a path does not serve are 405", func(t *testing.T) {
		body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}`
		for _, q := range []struct{ method, path string }{
			{http.MethodPut, "/api/v1/namespaces/" + testNS + "/configmaps"},
			{http.MethodPatch, "/api/v1/namespaces/" + testNS + "/configmaps"},
			{http.MethodPost, "/api/v1/configmaps"},
			{http.MethodDelete, "/api/v1/configmaps"},
		} {
			rejected(t, c, hc, q.method, q.path, "application/merge-patch+json", strings.NewReader(body), nil, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed)
		}
	})
}
