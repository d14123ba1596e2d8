package nodeagent

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPlanMirrors(t *testing.T) {
	static := func(name, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(uid),
			Annotations: map[string]string{ConfigSourceAnnotation: SourceFile, ConfigHashAnnotation: uid}}}
	}
	running := corev1.PodStatus{Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort}
	mirror := func(name, hash string, st corev1.PodStatus) *corev1.Pod {
		p := MirrorPod(static(name, hash), "node-uid")
		p.UID, p.Status = types.UID("m-"+name), st
		return p
	}
	deleting := func(p *corev1.Pod) *corev1.Pod {
		now := metav1.Now()
		p.DeletionTimestamp = &now
		return p
	}
	regular := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "taken", UID: "api"}}
	pending := corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}
	for _, tc := range []struct {
		name     string
		static   []*corev1.Pod
		statuses map[types.UID]corev1.PodStatus
		pods     []*corev1.Pod
		create   []string
		del      []string // names
		status   []string // names
	}{
		{name: "nothing"},
		{name: "create the missing mirror", static: []*corev1.Pod{static("a", "h1")}, create: []string{"a"}},
		{name: "in line", static: []*corev1.Pod{static("a", "h1")}, statuses: map[types.UID]corev1.PodStatus{"h1": running},
			pods: []*corev1.Pod{mirror("a", "h1", running)}},
		{name: "no status yet: nothing to write", static: []*corev1.Pod{static("a", "h1")},
			pods: []*corev1.Pod{mirror("a", "h1", pending)}},
		{name: "status to write", static: []*corev1.Pod{static("a", "h1")}, statuses: map[types.UID]corev1.PodStatus{"h1": running},
			pods: []*corev1.Pod{mirror("a", "h1", pending)}, status: []string{"a"}},
		{name: "the API's QoS class is kept", static: []*corev1.Pod{static("a", "h1")},
			statuses: map[types.UID]corev1.PodStatus{"h1": {Phase: corev1.PodRunning}},
			pods:     []*corev1.Pod{mirror("a", "h1", running)}},
		{name: "manifest changed: the outdated mirror goes", static: []*corev1.Pod{static("a", "h2")},
			pods: []*corev1.Pod{mirror("a", "h1", running)}, del: []string{"a"}},
		{name: "a user deleted the mirror: confirmed, made again later", static: []*corev1.Pod{static("a", "h1")},
			pods: []*corev1.Pod{deleting(mirror("a", "h1", running))}, del: []string{"a"}},
		{name: "manifest removed", pods: []*corev1.Pod{mirror("a", "h1", running), regular}, del: []string{"a"}},
		{name: "a regular pod holds the name", static: []*corev1.Pod{static("taken", "h1")}, pods: []*corev1.Pod{regular}},
		{name: "several", static: []*corev1.Pod{static("a", "h1"), static("b", "h2"), static("c", "h3")},
			statuses: map[types.UID]corev1.PodStatus{"h1": running, "h2": running},
			pods:     []*corev1.Pod{mirror("a", "h1", pending), mirror("b", "old", running), mirror("z", "h9", running)},
			create:   []string{"c"}, del: []string{"b", "z"}, status: []string{"a"}},
	} {
		plan := PlanMirrors(tc.static, tc.statuses, tc.pods)
		names := func(ps []*corev1.Pod) []string {
			var out []string
			for _, p := range ps {
				out = append(out, p.Name)
			}
			sort.Strings(out)
			return out
		}
		if got := names(plan.Create); !reflect.DeepEqual(got, tc.create) {
			t.Errorf("%s: create %v, want %v", tc.name, got, tc.create)
		}
		if got := names(plan.Delete); !reflect.DeepEqual(got, tc.del) {
			t.Errorf("%s: delete %v, want %v", tc.name, got, tc.del)
		}
		if got := names(plan.Status); !reflect.DeepEqual(got, tc.status) {
			t.Errorf("%s: status %v, want %v", tc.name, got, tc.status)
		}
		for _, p := range plan.Status {
			if p.UID != types.UID("m-"+p.Name) || p.Status.Phase != tc.statuses[types.UID(p.Annotations[MirrorAnnotation])].Phase {
				t.Errorf("%s: status write %s: uid %s, status %+v", tc.name, p.Name, p.UID, p.Status)
			}
		}
	}
}

func TestMirrorPod(t *testing.T) {
	s, err := StaticPod([]byte(webManifest), "/m/web.yaml", "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	m := MirrorPod(s, "node-uid")
	if m.UID != "" || m.Name != s.Name || m.Annotations[MirrorAnnotation] != string(s.UID) || !IsMirrorPod(m) || IsStaticPod(m) {
		t.Errorf("mirror %+v", m.ObjectMeta)
	}
	if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].Kind != "Node" || m.OwnerReferences[0].Name != "edge-1" || m.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("owner %+v", m.OwnerReferences)
	}
	if s.Annotations[MirrorAnnotation] != "" {
		t.Error("MirrorPod changed the static pod")
	}
}

func TestPodState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "uid")
	if st, err := loadPodState(dir); err != nil || len(st.Containers) != 0 {
		t.Fatalf("no state: %+v %v", st, err)
	}
	start := metav1.NewTime(t0.Add(-time.Hour))
	w := stateWriter{dir: dir}
	err := w.save(podState{StartTime: &start, Containers: map[string]ContainerRecord{
		"run":  {Name: "run", Running: true, StartedAt: t0.Add(-time.Minute), Restarts: 2, ImageID: "sha256:x"},
		"done": {Name: "done", Last: exited(0, time.Second)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The other file was created too, empty, and reads as no record.
	if fi, err := os.Stat(filepath.Join(dir, stateFiles[0])); err != nil || fi.Size() != 0 {
		t.Errorf("the first save did not create %s empty: %v", stateFiles[0], err)
	}
	if err := os.Rename(filepath.Join(dir, stateFiles[1]), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if st, err := loadPodState(dir); err != nil || len(st.Containers) != 0 {
		t.Fatalf("only the empty file: %+v %v", st, err)
	}
	if err := os.Rename(filepath.Join(dir, "moved"), filepath.Join(dir, stateFiles[1])); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	st, err := loadPodState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.StartTime == nil || !st.StartTime.Equal(&start) {
		t.Errorf("start time %v", st.StartTime)
	}
	run := st.Containers["run"]
	if !run.Running {
		t.Fatalf("the running container's record says it ended: %+v", run)
	}
	run.lost(later)
	if run.Running || run.Restarts != 2 || run.ImageID != "sha256:x" || run.Last == nil ||
		run.Last.Reason != ReasonContainerStatusUnknown || run.Last.ExitCode != 137 || !run.Last.FinishedAt.Equal(later) || !run.Last.StartedAt.Equal(t0.Add(-time.Minute)) {
		t.Errorf("the running container: %+v %+v", run, run.Last)
	}
	if restart, notBefore := Restart(corev1.RestartPolicyAlways, run); !restart || notBefore.After(later) {
		t.Errorf("restart %v not before %v", restart, notBefore)
	}
	if done := st.Containers["done"]; done.Running || done.Last == nil || done.Last.ExitCode != 0 || done.Last.Reason != "Completed" {
		t.Errorf("the finished container: %+v", done)
	}
	if err := removePodDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("pod directory not removed: %v", err)
	}
	if err := removePodDir(dir); err != nil {
		t.Errorf("removing twice: %v", err)
	}
}

// TestPodStateWrites: records alternate between the two files in place; a
// torn newest record falls back to the one before; an earlier agent's plain
// state.json is read, and kept until the second write.
func TestPodStateWrites(t *testing.T) {
	dir := t.TempDir()
	restarts := func(n int32) podState {
		return podState{Containers: map[string]ContainerRecord{"c": {Restarts: n}}}
	}
	legacy, _ := json.Marshal(restarts(7))
	if err := os.WriteFile(filepath.Join(dir, stateFiles[0]), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := loadPodState(dir)
	if err != nil || st.Containers["c"].Restarts != 7 || st.gen != 0 {
		t.Fatalf("legacy state: %+v %v", st, err)
	}
	w := stateWriter{dir: dir, gen: st.gen}
	if err := w.save(restarts(8)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, stateFiles[0])); !bytes.Equal(b, legacy) {
		t.Fatal("the first write replaced the legacy file")
	}
	ino := func(name string) uint64 {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	inodes := [2]uint64{ino(stateFiles[0]), ino(stateFiles[1])}
	for n := int32(9); n <= 12; n++ {
		if err := w.save(restarts(n)); err != nil {
			t.Fatal(err)
		}
		if st, err := loadPodState(dir); err != nil || st.Containers["c"].Restarts != n || st.gen != w.gen {
			t.Fatalf("after writing %d: %+v %v", n, st, err)
		}
	}
	if inodes != [2]uint64{ino(stateFiles[0]), ino(stateFiles[1])} {
		t.Error("a write made a new file")
	}

	// Generation 5 (12 restarts) is in stateFiles[1]: tear it.
	newest := filepath.Join(dir, stateFiles[w.gen%2])
	b, _ := os.ReadFile(newest)
	torn := bytes.Replace(b, []byte(`"Restarts":12`), []byte(`"Restarts":99`), 1)
	if bytes.Equal(torn, b) {
		t.Fatalf("no restarts in %s", b)
	}
	if err := os.WriteFile(newest, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := loadPodState(dir); err != nil || st.Containers["c"].Restarts != 11 {
		t.Fatalf("torn newest record: %+v %v", st, err)
	}
	// A shorter record over a longer one whose truncation did not happen.
	if err := os.WriteFile(newest, append(b, `, "containers":{}}`...), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := loadPodState(dir); err != nil || st.Containers["c"].Restarts != 12 {
		t.Fatalf("record with trailing bytes: %+v %v", st, err)
	}
	// Both unreadable: an error and no records.
	for _, name := range stateFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := loadPodState(dir); err == nil || len(st.Containers) != 0 {
		t.Fatalf("both files broken: %+v %v", st, err)
	}
}
