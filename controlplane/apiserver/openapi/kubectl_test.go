package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"sigs.k8s.io/yaml"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// These tests run the real kubectl against Documents served next to a
// minimal discovery (plain JSON, as a server without aggregated discovery
// answers) and a deployments endpoint that records what kubectl sends.

// kubectlBinary finds kubectl: missing, the test is skipped, except in CI
// (CI=true) where it fails.
func kubectlBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kubectl not on PATH (CI=true): %v", err)
		}
		t.Skipf("kubectl not on PATH: %v", err)
	}
	return path
}

type recordedRequest struct {
	Method, Path, Query, ContentType string
	Body                             []byte
}

// fakeAPIServer serves the documents, discovery, and deployments in
// namespace default, keeping them in memory.
type fakeAPIServer struct {
	t    *testing.T
	docs *Documents
	srv  *httptest.Server

	mu       sync.Mutex
	requests []recordedRequest
	objects  map[string][]byte // URL path → JSON object
}

func newFakeAPIServer(t *testing.T, docs *Documents) *fakeAPIServer {
	f := &fakeAPIServer{t: t, docs: docs, objects: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Listener.Close()
	f.srv.Listener = ln
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) recorded() []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedRequest(nil), f.requests...)
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recordedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), body})
	f.mu.Unlock()

	if strings.HasPrefix(r.URL.Path, "/openapi/") {
		f.docs.ServeHTTP(w, r)
		return
	}
	writeJSON := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if err := json.NewEncoder(w).Encode(v); err != nil {
			f.t.Errorf("encode response: %v", err)
		}
	}
	notFound := func() {
		writeJSON(http.StatusNotFound, metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
			Message: fmt.Sprintf("%s not found", r.URL.Path),
		})
	}
	const deployments = "/apis/apps/v1/namespaces/default/deployments"
	switch p := r.URL.Path; {
	case p == "/version":
		writeJSON(200, version.Info{Major: "1", Minor: "32", GitVersion: "v1.32.0", Platform: "linux/amd64"})
	case p == "/api":
		writeJSON(200, metav1.APIVersions{
			TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
			Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
				{ClientCIDR: "0.0.0.0/0", ServerAddress: f.srv.Listener.Addr().String()},
			},
		})
	case p == "/apis":
		gv := metav1.GroupVersionForDiscovery{GroupVersion: "apps/v1", Version: "v1"}
		writeJSON(200, metav1.APIGroupList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups:   []metav1.APIGroup{{Name: "apps", Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}},
		})
	case p == "/api/v1":
		writeJSON(200, resourceList("v1", kubectlResources()))
	case p == "/apis/apps/v1":
		writeJSON(200, resourceList("apps/v1", kubectlResources()))
	case strings.HasPrefix(p, deployments+"/"):
		f.mu.Lock()
		stored, ok := f.objects[p]
		f.mu.Unlock()
		switch {
		case !ok:
			notFound()
		case r.Method == http.MethodGet || r.Method == http.MethodPatch:
			// A PATCH answers the stored object: what matters here is the
			// request kubectl sent.
			w.Header().Set("Content-Type", "application/json")
			w.Write(stored)
		default:
			http.Error(w, "unexpected", http.StatusMethodNotAllowed)
		}
	case p == deployments && r.Method == http.MethodPost:
		var d appsv1.Deployment
		if err := json.Unmarshal(body, &d); err != nil {
			writeJSON(http.StatusBadRequest, metav1.Status{Status: metav1.StatusFailure, Code: 400, Message: err.Error()})
			return
		}
		d.UID, d.ResourceVersion, d.Namespace = "0a5c7d6e-1111-2222-3333-444455556666", "1", "default"
		writeJSON(http.StatusCreated, d)
	default:
		notFound()
	}
}

// resourceList is the discovery document of group-version gv.
func resourceList(gv string, rs []Resource) metav1.APIResourceList {
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
	for _, r := range rs {
		if (schemaGV(r.Group, r.Version)) != gv {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.Plural, Namespaced: r.Namespaced, Kind: r.Kind, Verbs: r.Verbs,
			SingularName: strings.ToLower(r.Kind),
		})
		for _, s := range r.Subresources {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.Plural + "/" + s.Name, Namespaced: r.Namespaced, Kind: r.Kind, Verbs: s.Verbs,
			})
		}
	}
	return list
}

func schemaGV(group, version string) string {
	return groupVersion{group, version}.String()
}

// kubectlEnv is a kubeconfig for the fake server and a private HOME and
// cache, so runs do not share cached discovery or OpenAPI.
type kubectlEnv struct {
	bin, kubeconfig, home string
}

func newKubectlEnv(t *testing.T, serverURL string) kubectlEnv {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
users:
- name: test
  user: {}
current-context: test
`, serverURL)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubectlEnv{bin: kubectlBinary(t), kubeconfig: kubeconfig, home: dir}
}

// run runs kubectl with args and stdin; it returns stdout and stderr and
// fails the test when kubectl exits non-zero.
func (e kubectlEnv) run(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(),
		"HOME="+e.home,
		"KUBECONFIG="+e.kubeconfig,
		"KUBECACHEDIR="+filepath.Join(e.home, "cache"),
	)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// unwrapped undoes kubectl explain's line wrapping, so a description can be
// found in its output.
func unwrapped(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func TestKubectlExplain(t *testing.T) {
	docs := mustBuild(t, kubectlResources())
	f := newFakeAPIServer(t, docs)
	env := newKubectlEnv(t, f.srv.URL)

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{
			args: []string{"explain", "pods.spec.runtimeClassName"},
			want: []string{"KIND: Pod", "VERSION: v1", "FIELD: runtimeClassName <string>",
				corev1.PodSpec{}.SwaggerDoc()["runtimeClassName"]},
		},
		{
			args: []string{"explain", "deployments.spec.strategy", "--api-version=apps/v1"},
			// For a field that is a $ref, kubectl prints the description of
			// the referenced type, then its fields.
			want: []string{"GROUP: apps", "KIND: Deployment", "FIELD: strategy <DeploymentStrategy>",
				appsv1.DeploymentStrategy{}.SwaggerDoc()[""],
				"rollingUpdate <RollingUpdateDeployment>", appsv1.DeploymentStrategy{}.SwaggerDoc()["rollingUpdate"]},
		},
		{
			args: []string{"explain", "deployments.spec", "--api-version=apps/v1"},
			want: []string{"strategy <DeploymentStrategy>", appsv1.DeploymentSpec{}.SwaggerDoc()["strategy"],
				"selector <LabelSelector> -required-", "template <PodTemplateSpec> -required-"},
		},
		{
			args: []string{"explain", "pods.spec.containers"},
			want: []string{"FIELD: containers <[]Container>", "name <string> -required-", "resources <ResourceRequirements>"},
		},
		{
			args: []string{"explain", "configmaps"},
			want: []string{"KIND: ConfigMap", corev1.ConfigMap{}.SwaggerDoc()[""], "data <map[string]string>",
				"metadata <ObjectMeta>"},
		},
	} {
		stdout, _ := env.run(t, "", tc.args...)
		got := unwrapped(stdout)
		for _, want := range tc.want {
			if !strings.Contains(got, unwrapped(want)) {
				t.Errorf("kubectl %s: output lacks %q:\n%s", strings.Join(tc.args, " "), want, stdout)
			}
		}
	}

	var sawIndex, sawDoc bool
	for _, r := range f.recorded() {
		sawIndex = sawIndex || r.Path == "/openapi/v3"
		sawDoc = sawDoc || (r.Path == "/openapi/v3/api/v1" && strings.HasPrefix(r.Query, "hash="))
	}
	if !sawIndex || !sawDoc {
		t.Errorf("kubectl did not fetch the v3 index and the hashed api/v1 document: %+v", f.recorded())
	}
}

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      runtimeClassName: wasm
      containers:
      - name: app
        image: %s
`

// TestKubectlApplyCreate checks that apply passes client-side validation
// on the strength of the documents: kubectl finds fieldValidation on the
// PATCH operation of the kind and sends fieldValidation=Strict, leaving
// validation to the server. Without it, kubectl would fall back to
// OpenAPI v2 and fail.
func TestKubectlApplyCreate(t *testing.T) {
	docs := mustBuild(t, kubectlResources())
	f := newFakeAPIServer(t, docs)
	env := newKubectlEnv(t, f.srv.URL)

	stdout, stderr := env.run(t, fmt.Sprintf(deploymentYAML, "hello:v1"), "apply", "-f", "-")
	if !strings.Contains(stdout, "deployment.apps/web created") {
		t.Errorf("apply: stdout %q, stderr %q", stdout, stderr)
	}
	var post *recordedRequest
	for _, r := range f.recorded() {
		t.Logf("kubectl sent %s %s?%s", r.Method, r.Path, r.Query)
		if strings.HasPrefix(r.Path, "/openapi/v2") {
			t.Errorf("kubectl fell back to OpenAPI v2: %s %s", r.Method, r.Path)
		}
		if r.Method == http.MethodPost {
			post = &r
		}
	}
	if post == nil {
		t.Fatalf("no POST recorded: %+v", f.recorded())
	}
	if post.Path != "/apis/apps/v1/namespaces/default/deployments" ||
		!strings.Contains(post.Query, "fieldValidation=Strict") ||
		!strings.Contains(post.Query, "fieldManager=kubectl-client-side-apply") {
		t.Errorf("POST %s?%s: want fieldValidation=Strict and fieldManager=kubectl-client-side-apply", post.Path, post.Query)
	}

	// Server-side dry run takes the same path with dryRun=All.
	env.run(t, fmt.Sprintf(deploymentYAML, "hello:v1"), "apply", "--dry-run=server", "-f", "-")
	reqs := f.recorded()
	last := reqs[len(reqs)-1]
	if last.Method != http.MethodPost || !strings.Contains(last.Query, "dryRun=All") || !strings.Contains(last.Query, "fieldValidation=Strict") {
		t.Errorf("dry-run apply sent %s %s?%s", last.Method, last.Path, last.Query)
	}
}

// TestKubectlApplyPatch checks that kubectl computes the strategic merge
// patch of a changed object from our schemas (not its compiled-in types):
// the PATCH operation offers strategic-merge-patch+json, the Deployment
// schema carries the GVK, and the containers list its merge key.
func TestKubectlApplyPatch(t *testing.T) {
	docs := mustBuild(t, kubectlResources())
	f := newFakeAPIServer(t, docs)
	env := newKubectlEnv(t, f.srv.URL)

	// The object as a previous apply left it.
	var d appsv1.Deployment
	old := fmt.Sprintf(deploymentYAML, "hello:v1")
	lastApplied, err := yaml.YAMLToJSON([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lastApplied, &d); err != nil {
		t.Fatal(err)
	}
	d.UID, d.ResourceVersion = "0a5c7d6e-1111-2222-3333-444455556666", "7"
	d.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(lastApplied) + "\n"}
	stored, _ := json.Marshal(d)
	f.objects["/apis/apps/v1/namespaces/default/deployments/web"] = stored

	changed := fmt.Sprintf(deploymentYAML, "hello:v2") + "      - name: sidecar\n        image: proxy:v1\n"
	_, stderr := env.run(t, changed, "apply", "-f", "-", "-v=5")
	for _, bad := range []string{"error calculating patch from openapi v3", "OpenAPI V3 path does not", "warning:"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("kubectl did not build the patch from OpenAPI v3 (%q):\n%s", bad, stderr)
		}
	}
	var patch *recordedRequest
	for _, r := range f.recorded() {
		if r.Method == http.MethodPatch {
			patch = &r
		}
	}
	if patch == nil {
		t.Fatalf("no PATCH recorded; stderr:\n%s", stderr)
	}
	if patch.ContentType != "application/strategic-merge-patch+json" || !strings.Contains(patch.Query, "fieldValidation=Strict") {
		t.Errorf("PATCH Content-Type %q, query %q", patch.ContentType, patch.Query)
	}
	// With the merge key, containers are merged by name and their order
	// recorded; without it, the list would be replaced wholesale.
	for _, want := range []string{`"$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}]`, `"image":"hello:v2"`} {
		if !strings.Contains(string(patch.Body), want) {
			t.Errorf("patch lacks %s:\n%s", want, patch.Body)
		}
	}
}
