package nodeagent

// Static pods, as the kubelet has them: Pod manifests in a directory of the
// node (Config.StaticPodPath, default DATA_DIR/manifests) that the agent runs
// on its own, with or without a control plane, through the same Pods as the
// pods the API binds to the node. Once the API is reachable the agent
// publishes each as a mirror pod (mirror.go), which carries its status.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
)

// Annotations of static and mirror pods, as the kubelet writes them.
const (
	// ConfigSourceAnnotation says where a pod came from: "file" for a
	// static pod ("api" pods carry none).
	ConfigSourceAnnotation = "kubernetes.io/config.source"
	// ConfigHashAnnotation is a static pod's hash: its UID, derived from
	// the manifest, the node and the file.
	ConfigHashAnnotation = "kubernetes.io/config.hash"
	// MirrorAnnotation marks a mirror pod; its value is the hash of the
	// static pod it mirrors.
	MirrorAnnotation = corev1.MirrorPodAnnotationKey
	// SourceFile is ConfigSourceAnnotation's value for static pods.
	SourceFile = "file"
)

// IsStaticPod reports whether pod came from a manifest file on this node.
func IsStaticPod(pod *corev1.Pod) bool {
	return pod.Annotations[ConfigSourceAnnotation] == SourceFile && pod.Annotations[MirrorAnnotation] == ""
}

// IsMirrorPod reports whether pod is the API's mirror of a static pod.
func IsMirrorPod(pod *corev1.Pod) bool { return pod.Annotations[MirrorAnnotation] != "" }

// StaticPod turns a manifest (YAML or JSON, one Pod) read from path into the
// static pod node runs, as the kubelet's file source does: namespace
// "default" unless set, name suffixed with "-<node>", spec.nodeName set,
// the UID a hash of the manifest, the node and the path (so an edit gives
// a new pod), config.source=file and config.hash=<uid> annotations, a
// toleration of every NoExecute taint, then the API's defaults and
// validation. It is pure.
func StaticPod(manifest []byte, path, node string) (*corev1.Pod, error) {
	if n := yamlDocuments(manifest); n > 1 {
		return nil, fmt.Errorf("static pod %s: %d YAML documents; one Pod per file", path, n)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(manifest, &pod); err != nil {
		return nil, fmt.Errorf("static pod %s: %w", path, err)
	}
	if pod.Kind != "Pod" || (pod.APIVersion != "v1" && pod.APIVersion != "") {
		return nil, fmt.Errorf("static pod %s: want one kind: Pod (apiVersion v1), got %q %q", path, pod.APIVersion, pod.Kind)
	}
	if pod.Name == "" {
		return nil, fmt.Errorf("static pod %s: metadata.name is required", path)
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node {
		return nil, fmt.Errorf("static pod %s: spec.nodeName is %q, but this node is %q", path, pod.Spec.NodeName, node)
	}
	canonical, err := json.Marshal(&pod)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(canonical)
	fmt.Fprintf(h, "host:%s", node)
	fmt.Fprintf(h, "file:%s", path)
	uid := hex.EncodeToString(h.Sum(nil))[:32]

	if pod.Namespace == "" {
		pod.Namespace = corev1.NamespaceDefault
	}
	pod.Name += "-" + node
	pod.UID = types.UID(uid)
	pod.ResourceVersion, pod.GenerateName, pod.OwnerReferences = "", "", nil
	pod.Spec.NodeName = node
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	delete(pod.Annotations, MirrorAnnotation)
	pod.Annotations[ConfigSourceAnnotation] = SourceFile
	pod.Annotations[ConfigHashAnnotation] = uid
	tolerateAll := corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	found := false
	for _, t := range pod.Spec.Tolerations {
		found = found || (t.Key == "" && t.Operator == tolerateAll.Operator && t.Effect == tolerateAll.Effect)
	}
	if !found {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, tolerateAll)
	}
	pod.Status = corev1.PodStatus{}
	validation.Default(&pod)
	if errs := validation.ValidateCreate(&pod); len(errs) > 0 {
		return nil, fmt.Errorf("static pod %s: %w", path, errs.ToAggregate())
	}
	return &pod, nil
}

// yamlDocuments counts the documents of a YAML stream that hold more than
// comments (sigs.k8s.io/yaml would read the first and drop the others).
func yamlDocuments(b []byte) int {
	n, content := 0, false
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(line, "---") && (len(t) == 3 || t[3] == ' ' || t[3] == '#') {
			if content {
				n++
			}
			content = false
			continue
		}
		if t != "" && !strings.HasPrefix(t, "#") {
			content = true
		}
	}
	if content {
		n++
	}
	return n
}

// isStaticUID reports whether s has the form of a static pod's UID (so it
// is safe as a directory name).
func isStaticUID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// isManifestFile: the kubelet reads every file but dotfiles; wasmfleet
// also requires a manifest's extension, so editors' backups are ignored.
func isManifestFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// StaticPods watches the manifest directory by polling it every Interval
// (no file-system notifications) and keeps the node's static pods, one per
// file. A file that stops parsing keeps the pod it last described (an
// editor may be half-way through writing it); a removed file removes its
// pod; of two files naming the same pod the first in name order wins. A
// missing directory is an empty one. Run it once; Snapshot and Changed are
// safe from any goroutine.
type StaticPods struct {
	Dir      string
	Node     string
	Interval time.Duration
	Log      *slog.Logger

	once    sync.Once
	mu      sync.Mutex
	files   map[string]staticFile // by path
	pods    []*corev1.Pod
	changed chan struct{}
}

type staticFile struct {
	modTime time.Time
	size    int64
	pod     *corev1.Pod // nil: never parsed
	err     string      // the last error reported for this version
}

func (s *StaticPods) init() {
	s.once.Do(func() {
		s.files, s.changed = map[string]staticFile{}, make(chan struct{}, 1)
	})
}

// Changed signals (coalesced) that the set of static pods changed.
func (s *StaticPods) Changed() <-chan struct{} { s.init(); return s.changed }

// Snapshot returns copies of the static pods, sorted by namespace and name.
func (s *StaticPods) Snapshot() []*corev1.Pod {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*corev1.Pod, len(s.pods))
	for i, p := range s.pods {
		out[i] = p.DeepCopy()
	}
	return out
}

// Run scans the directory at once and then every Interval until ctx ends.
func (s *StaticPods) Run(ctx context.Context) error {
	s.init()
	if s.Interval <= 0 {
		return errors.New("static pods: the interval must be positive")
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		s.Scan()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Scan reads the directory once and reports whether the pods changed.
func (s *StaticPods) Scan() bool {
	s.init()
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("static pods: read directory", "dir", s.Dir, "err", err)
		return false // keep what we have
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !isManifestFile(e.Name()) {
			continue
		}
		path := filepath.Join(s.Dir, e.Name())
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		seen[path] = true
		f := s.files[path]
		if f.modTime.Equal(info.ModTime()) && f.size == info.Size() && (f.pod != nil || f.err != "") {
			continue
		}
		f.modTime, f.size = info.ModTime(), info.Size()
		b, err := os.ReadFile(path)
		var pod *corev1.Pod
		if err == nil {
			pod, err = StaticPod(b, path, s.Node)
		}
		if err != nil {
			if f.err != err.Error() {
				log.Warn("static pods: manifest ignored", "file", path, "err", err)
			}
			f.err = err.Error()
		} else {
			f.pod, f.err = pod, ""
		}
		s.files[path] = f
	}
	for path := range s.files {
		if !seen[path] {
			delete(s.files, path)
		}
	}
	paths := make([]string, 0, len(s.files))
	for path, f := range s.files {
		if f.pod != nil {
			paths = append(paths, path)
		}
	}
	sort.Strings(paths)
	byName := map[string]string{}
	var pods []*corev1.Pod
	for _, path := range paths {
		p := s.files[path].pod
		key := podKey(p.Namespace, p.Name)
		if other, dup := byName[key]; dup {
			log.Warn("static pods: manifest ignored: another file names the same pod", "file", path, "pod", key, "other", other)
			continue
		}
		byName[key] = path
		pods = append(pods, p)
	}
	sort.Slice(pods, func(i, j int) bool {
		return podKey(pods[i].Namespace, pods[i].Name) < podKey(pods[j].Namespace, pods[j].Name)
	})
	if sameUIDs(s.pods, pods) {
		return false
	}
	s.pods = pods
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return true
}

// sameUIDs: static pods' UIDs hash their whole manifest.
func sameUIDs(a, b []*corev1.Pod) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UID != b[i].UID {
			return false
		}
	}
	return true
}
