package nodeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

const webManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
    - name: main
      image: hello:v1
`

func TestStaticPod(t *testing.T) {
	p, err := StaticPod([]byte(webManifest), "/m/web.yaml", "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web-edge-1" || p.Namespace != "default" || p.Spec.NodeName != "edge-1" {
		t.Errorf("identity: %s/%s on %q", p.Namespace, p.Name, p.Spec.NodeName)
	}
	if !isStaticUID(string(p.UID)) || p.Annotations[ConfigHashAnnotation] != string(p.UID) || p.Annotations[ConfigSourceAnnotation] != SourceFile {
		t.Errorf("uid %q, annotations %v", p.UID, p.Annotations)
	}
	if !IsStaticPod(p) || IsMirrorPod(p) || p.Labels["app"] != "web" {
		t.Errorf("static %v mirror %v labels %v", IsStaticPod(p), IsMirrorPod(p), p.Labels)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyAlways || p.Status.Phase != corev1.PodPending || p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("defaults: restartPolicy %q phase %q qos %q", p.Spec.RestartPolicy, p.Status.Phase, p.Status.QOSClass)
	}
	tolerates := false
	for _, tol := range p.Spec.Tolerations {
		tolerates = tolerates || (tol.Key == "" && tol.Operator == corev1.TolerationOpExists && tol.Effect == corev1.TaintEffectNoExecute)
	}
	if !tolerates {
		t.Errorf("tolerations %v", p.Spec.Tolerations)
	}

	// The UID is a pure function of the manifest, the node and the file.
	uid := func(manifest, path, node string) types.UID {
		t.Helper()
		p, err := StaticPod([]byte(manifest), path, node)
		if err != nil {
			t.Fatal(err)
		}
		return p.UID
	}
	if uid(webManifest, "/m/web.yaml", "edge-1") != p.UID {
		t.Error("same manifest, different UID")
	}
	for name, other := range map[string]types.UID{
		"edited":     uid(strings.Replace(webManifest, "hello:v1", "hello:v2", 1), "/m/web.yaml", "edge-1"),
		"other node": uid(webManifest, "/m/web.yaml", "edge-2"),
		"other file": uid(webManifest, "/m/web2.yaml", "edge-1"),
	} {
		if other == p.UID {
			t.Errorf("%s: same UID", name)
		}
	}
	// JSON is YAML; a namespace is kept.
	j, err := StaticPod([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"x:v1"}]}}`), "/m/j.json", "edge-1")
	if err != nil || j.Namespace != "kube-system" || j.Name != "j-edge-1" {
		t.Errorf("json manifest: %v %v", j, err)
	}

	for name, tc := range map[string]struct{ manifest, err string }{
		"not yaml":       {"{", "static pod"},
		"a deployment":   {strings.Replace(webManifest, "kind: Pod", "kind: Deployment", 1), "want one kind: Pod"},
		"no kind":        {strings.Replace(webManifest, "kind: Pod\n", "", 1), "want one kind: Pod"},
		"no name":        {strings.Replace(webManifest, "name: web\n", "", 1), "metadata.name is required"},
		"unknown field":  {strings.Replace(webManifest, "  containers:", "  bogus: 1\n  containers:", 1), "bogus"},
		"another node":   {strings.Replace(webManifest, "spec:\n", "spec:\n  nodeName: edge-2\n", 1), "this node is"},
		"invalid":        {strings.Replace(webManifest, "name: main", "name: Main_", 1), "spec.containers[0].name"},
		"no containers":  {"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n", "spec.containers"},
		"two documents?": {webManifest + "---\n" + webManifest, "static pod"},
	} {
		_, err := StaticPod([]byte(tc.manifest), "/m/x.yaml", "edge-1")
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.err)
		}
	}
}

func TestStaticPodsScan(t *testing.T) {
	dir := t.TempDir()
	s := &StaticPods{Dir: filepath.Join(dir, "manifests"), Node: "edge-1", Interval: time.Hour}
	if s.Scan() || len(s.Snapshot()) != 0 {
		t.Fatal("a missing directory has pods")
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		// A new modification time, whatever the file system's resolution.
		mt := time.Now().Add(time.Duration(len(content)) * time.Second)
		if err := os.Chtimes(filepath.Join(s.Dir, name), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	names := func() string {
		var out []string
		for _, p := range s.Snapshot() {
			out = append(out, p.Name+"@"+p.Spec.Containers[0].Image)
		}
		return strings.Join(out, " ")
	}
	other := strings.ReplaceAll(webManifest, "web", "api")
	write("web.yaml", webManifest)
	write("api.yml", other)
	write(".hidden.yaml", strings.ReplaceAll(webManifest, "web", "hidden"))
	write("notes.txt", strings.ReplaceAll(webManifest, "web", "notes"))
	write("broken.json", "{")
	write("dup.yaml", strings.Replace(webManifest, "hello:v1", "dup:v1", 1)) // web again: web.yaml comes later, dup.yaml wins
	if err := os.Mkdir(filepath.Join(s.Dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !s.Scan() {
		t.Fatal("first scan: no change")
	}
	select {
	case <-s.Changed():
	default:
		t.Error("Changed not signalled")
	}
	if got, want := names(), "api-edge-1@hello:v1 web-edge-1@dup:v1"; got != want {
		t.Fatalf("pods %q, want %q", got, want)
	}
	if s.Scan() {
		t.Error("a scan with nothing new changed the pods")
	}
	before := s.Snapshot()
	// An edit: a new pod (new UID).
	write("api.yml", strings.Replace(other, "hello:v1", "hello:v2", 1))
	if !s.Scan() || names() != "api-edge-1@hello:v2 web-edge-1@dup:v1" {
		t.Fatalf("after an edit: %q", names())
	}
	if s.Snapshot()[0].UID == before[0].UID {
		t.Error("an edited manifest kept its UID")
	}
	// A manifest that stops parsing keeps its pod.
	write("api.yml", "apiVersion: v1\nkind: Pod\nmetadata: {name: api")
	if s.Scan() || names() != "api-edge-1@hello:v2 web-edge-1@dup:v1" {
		t.Fatalf("after a broken edit: %q", names())
	}
	// Removing files removes their pods; the duplicate's turn comes.
	if err := os.Remove(filepath.Join(s.Dir, "dup.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Dir, "api.yml")); err != nil {
		t.Fatal(err)
	}
	if !s.Scan() || names() != "web-edge-1@hello:v1" {
		t.Fatalf("after removals: %q", names())
	}
}
