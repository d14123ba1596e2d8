package job

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/nodeagent"
)

func TestIntervals(t *testing.T) {
	tests := []struct {
		in          string
		completions int
		want        string
		total       int
	}{
		{in: "", completions: 5, want: ""},
		{in: "0", completions: 5, want: "0", total: 1},
		{in: "1,3-5", completions: 10, want: "1,3-5", total: 4},
		{in: "0,1", completions: 5, want: "0,1", total: 2},
		{in: "0-1", completions: 5, want: "0,1", total: 2},
		{in: "0,1,2", completions: 5, want: "0-2", total: 3},
		{in: "1-2,3-4,7", completions: 10, want: "1-4,7", total: 5},
		{in: "1,3-9,12", completions: 6, want: "1,3-5", total: 4},
		{in: "x,2,y-3,4", completions: 6, want: "2,4", total: 2},
	}
	for _, tt := range tests {
		iv := parseIntervals(tt.in, tt.completions)
		if got := iv.String(); got != tt.want || iv.total() != tt.total {
			t.Errorf("parseIntervals(%q, %d) = %q (total %d), want %q (total %d)", tt.in, tt.completions, got, iv.total(), tt.want, tt.total)
		}
	}
	iv := parseIntervals("1,3-5", 10)
	for ix, want := range map[int]bool{0: false, 1: true, 2: false, 3: true, 5: true, 6: false} {
		if iv.has(ix) != want {
			t.Errorf("has(%d) = %v", ix, !want)
		}
	}
	if got := iv.with(sets.New(0, 2, 8)).String(); got != "0-5,8" {
		t.Errorf("with = %q", got)
	}
	if got := iv.merge(parseIntervals("6,7,9", 10)).String(); got != "1,3-7,9" {
		t.Errorf("merge = %q", got)
	}
}

func TestPendingIndexes(t *testing.T) {
	tests := []struct {
		name               string
		completions, count int
		done               string
		taken              []int
		want               []int
	}{
		{name: "fresh", completions: 5, count: 2, want: []int{0, 1}},
		{name: "gaps", completions: 8, count: 3, done: "0,2-3", taken: []int{1, 5}, want: []int{4, 6, 7}},
		{name: "fewer than count", completions: 4, count: 5, done: "1", taken: []int{3}, want: []int{0, 2}},
		{name: "all done", completions: 3, count: 2, done: "0-2"},
	}
	for _, tt := range tests {
		got := pendingIndexes(tt.completions, tt.count, parseIntervals(tt.done, tt.completions), sets.New(tt.taken...))
		if fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("%s: pendingIndexes = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSurplusIndexedPods(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: new(int32(3)), CompletionMode: new(batchv1.IndexedCompletion)}}
	pod := func(name, ix string, ready bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		if ix != "" {
			p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: ix}
		}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	pods := []*corev1.Pod{
		pod("a", "0", true), pod("b", "1", false), pod("c", "1", true), pod("d", "", true), pod("e", "7", true), pod("f", "x", true), pod("g", "2", false),
	}
	rm, keep := surplusIndexedPods(job, pods)
	names := func(ps []*corev1.Pod) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(rm); got != "d,e,f,b" {
		t.Errorf("rm = %s, want d,e,f,b (no index, out of range, bad index, the not-ready twin)", got)
	}
	if got := names(keep); got != "a,c,g" {
		t.Errorf("keep = %s", got)
	}
	if got := names(podsForRemoval(job, pods, 5)); !strings.HasPrefix(got, "d,e,f,b,") {
		t.Errorf("podsForRemoval = %s", got)
	}
}

// TestStoppedPodsDoNotFailTheirIndex: the pods a failing job stopped were
// counted when their finalizers were removed; a cache that shows one of
// them failed before it shows the finalizer gone does not make its index
// fail.
func TestStoppedPodsDoNotFailTheirIndex(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{Completions: new(int32(4)), CompletionMode: new(batchv1.IndexedCompletion),
		BackoffLimitPerIndex: new(int32(0)), MaxFailedIndexes: new(int32(0))}}
	job.Status.FailedIndexes = new("2")
	var pods []*corev1.Pod
	for ix := range 4 {
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{UID: types.UID(strconv.Itoa(ix)), Finalizers: []string{batchv1.JobTrackingFinalizer},
				Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: strconv.Itoa(ix), batchv1.JobIndexFailureCountAnnotation: "0"}},
			Status: corev1.PodStatus{Phase: corev1.PodFailed},
		})
	}
	// The cache shows every pod with its finalizer, but only pod 3 (which
	// failed on its own) still holds it: the others' removals are not
	// seen yet.
	s := &jobState{job: job, pods: pods, withFin: sets.New[types.UID]("3")}
	(&Controller{}).failedIndexes(s)
	if got := s.failedIdx.String(); got != "2,3" {
		t.Errorf("failed indexes %s, want 2,3", got)
	}
}

func TestGenerateNameForIndex(t *testing.T) {
	if got := generateNameForIndex("batch", 12); got != "batch-12-" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("x", 60)
	if got := generateNameForIndex(long, 3); len(got) != maxGeneratedNameLength || !strings.HasSuffix(got, "x-3-") {
		t.Errorf("got %q (%d)", got, len(got))
	}
}

func indexedJob(name string, completions, parallelism int32) *batchv1.Job {
	job := newJob(name, new(completions), new(parallelism))
	job.Spec.CompletionMode = new(batchv1.IndexedCompletion)
	return job
}

// attempts counts the pods the test agent started per completion index.
type attempts struct {
	mu sync.Mutex
	n  map[string]int
}

// next returns how many pods of p's job and index started before p.
func (a *attempts) next(p *corev1.Pod) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	ix := p.Labels[batchv1.JobNameLabel] + "/" + p.Annotations[batchv1.JobCompletionIndexAnnotation]
	a.n[ix]++
	return a.n[ix] - 1
}

func TestIndexedJob(t *testing.T) {
	var tries attempts
	c, cs := startCluster(t, func(p *corev1.Pod) agentPlan {
		plan := agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, FinishAfter: 200 * time.Millisecond}
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "2" && tries.next(p) == 0 {
			plan.Finish, plan.ExitCode = corev1.PodFailed, 7
		}
		return plan
	})
	startController(t, cs)
	w := watchPods(t, cs, "idx")
	job := indexedJob("idx", 5, 2)
	job.Spec.Template.Spec.Subdomain = "workers"
	job.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "init:1"}}
	createJob(t, cs, job)

	// Progress is reported while the job runs: index 2 failed, others done.
	testenv.Poll(t, "index 2 failed once", func() (bool, string) {
		j := getJob(t, cs, "idx")
		return j.Status.Failed == 1 && j.Status.CompletedIndexes != "", fmt.Sprintf("%+v", j.Status)
	})
	j := waitCondition(t, cs, "idx", batchv1.JobComplete)
	st := j.Status
	if st.CompletedIndexes != "0-4" || st.Succeeded != 5 || st.Failed != 1 || st.Active != 0 || st.FailedIndexes != nil {
		t.Errorf("status: %+v", st)
	}
	if c := condition(j, batchv1.JobComplete); c.Reason != batchv1.JobReasonCompletionsReached {
		t.Errorf("Complete = %+v", c)
	}
	if maxActive, seen := w.get(); maxActive > 2 || seen != 6 {
		t.Errorf("max %d active (parallelism 2), %d pods (5 indexes and one replacement)", maxActive, seen)
	}

	succeeded := map[string]int{}
	failed := map[string]int{}
	for _, p := range jobPods(t, cs, "idx") {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		if _, err := strconv.Atoi(ix); err != nil {
			t.Fatalf("pod %s has no index: %v", p.Name, p.Annotations)
		}
		if p.Labels[batchv1.JobCompletionIndexAnnotation] != ix {
			t.Errorf("pod %s index label %q, annotation %q", p.Name, p.Labels[batchv1.JobCompletionIndexAnnotation], ix)
		}
		if !strings.HasPrefix(p.Name, "idx-"+ix+"-") || len(p.Name) != len("idx-"+ix+"-")+5 {
			t.Errorf("pod name %q, want idx-%s-<random>", p.Name, ix)
		}
		if p.Spec.Hostname != "idx-"+ix || p.Spec.Subdomain != "workers" {
			t.Errorf("pod %s hostname %q subdomain %q", p.Name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		// What the node agent gives each container, wasm or runc alike.
		for _, c := range append(append([]corev1.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
			env, err := nodeagent.Env(&p, &c, nil)
			if err != nil {
				t.Fatalf("env of %s/%s: %v", p.Name, c.Name, err)
			}
			got := ""
			for _, e := range env {
				if e.Name == completionIndexEnv {
					got = e.Value
				}
			}
			if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == completionIndexEnv }); i < 0 ||
				c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
				t.Errorf("%s/%s: %s is not Kubernetes' reference to the annotation: %v", p.Name, c.Name, completionIndexEnv, c.Env)
			}
			if got != ix {
				t.Errorf("%s/%s: %s=%q, want %q (env %v)", p.Name, c.Name, completionIndexEnv, got, ix, c.Env)
			}
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			succeeded[ix]++
		case corev1.PodFailed:
			failed[ix]++
		}
	}
	if len(succeeded) != 5 || len(failed) != 1 || failed["2"] != 1 {
		t.Errorf("succeeded per index %v, failed per index %v", succeeded, failed)
	}
	for ix, n := range succeeded {
		if n != 1 {
			t.Errorf("index %s succeeded %d times", ix, n)
		}
	}
	waitNoFinalizers(t, cs, "idx")

	// kubectl finds an index's pods by its label and shows their names.
	out := testenv.MustKubectl(t, c.Kubeconfig(), t.TempDir(), "", "-n", ns, "get", "pods",
		"-l", batchv1.JobCompletionIndexAnnotation+"=2", "-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase", "--no-headers", "--sort-by=.status.phase")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "idx-2-") || !strings.HasSuffix(lines[0], "Failed") ||
		!strings.HasPrefix(lines[1], "idx-2-") || !strings.HasSuffix(lines[1], "Succeeded") {
		t.Errorf("kubectl get pods of index 2:\n%s", out)
	}
}

// TestIndexedJobDuplicateIndex: a second pod of an index is removed, and
// the index counts once.
func TestIndexedJobDuplicateIndex(t *testing.T) {
	gate := make(chan struct{})
	_, cs := startCluster(t, func(*corev1.Pod) agentPlan {
		return agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, Gate: gate}
	})
	stop := startController(t, cs)
	job := createJob(t, cs, indexedJob("dup", 2, 2))
	testenv.Poll(t, "2 pods running", func() (bool, string) {
		j := getJob(t, cs, "dup")
		return j.Status.Active == 2 && j.Status.Ready != nil && *j.Status.Ready == 2, fmt.Sprintf("%+v", j.Status)
	})
	stop()
	// A second pod for index 0, as a stale controller might leave.
	var zero *corev1.Pod
	for _, p := range jobPods(t, cs, "dup") {
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" {
			zero = p.DeepCopy()
		}
	}
	twin := newPod(job, 0)
	twin.Spec.Hostname = zero.Spec.Hostname
	if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), twin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startController(t, cs)
	// The controller removes the extra pod of index 0.
	testenv.Poll(t, "one pod per index", func() (bool, string) {
		n := 0
		for _, p := range jobPods(t, cs, "dup") {
			if p.DeletionTimestamp == nil && p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" {
				n++
			}
		}
		return n == 1, fmt.Sprintf("%d pods of index 0", n)
	})
	close(gate)
	j := waitCondition(t, cs, "dup", batchv1.JobComplete)
	if j.Status.CompletedIndexes != "0,1" || j.Status.Succeeded != 2 {
		t.Errorf("status: %+v", j.Status)
	}
}

func TestBackoffLimitPerIndex(t *testing.T) {
	var tries attempts
	_, cs := startCluster(t, func(p *corev1.Pod) agentPlan {
		plan := agentPlan{ReadyAfter: 20 * time.Millisecond, Finish: corev1.PodSucceeded, FinishAfter: 100 * time.Millisecond}
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		switch job := p.Labels[batchv1.JobNameLabel]; {
		case job == "perindex" && ix == "1":
			tries.next(p)
			plan.Finish = corev1.PodFailed
		case job == "maxfailed" && ix == "2":
			plan.Finish = corev1.PodFailed
		case job == "maxfailed":
			plan.Finish = "" // runs until deleted
		}
		return plan
	})
	startController(t, cs)

	// Index 1 fails twice (backoffLimitPerIndex 1): the index fails, the
	// others complete, and the job fails with FailedIndexes.
	job := indexedJob("perindex", 4, 4)
	job.Spec.BackoffLimitPerIndex = new(int32(1))
	job.Spec.MaxFailedIndexes = new(int32(1))
	createJob(t, cs, job)
	// And one whose first failed index exceeds maxFailedIndexes 0.
	job = indexedJob("maxfailed", 4, 4)
	job.Spec.BackoffLimitPerIndex = new(int32(0))
	job.Spec.MaxFailedIndexes = new(int32(0))
	createJob(t, cs, job)

	j := waitCondition(t, cs, "maxfailed", batchv1.JobFailed)
	if c := condition(j, batchv1.JobFailed); c.Reason != batchv1.JobReasonMaxFailedIndexesExceeded || c.Message != "Job has exceeded the specified maximal number of failed indexes" {
		t.Errorf("Failed = %+v", c)
	}
	if ft := condition(j, batchv1.JobFailureTarget); ft == nil || ft.Reason != batchv1.JobReasonMaxFailedIndexesExceeded {
		t.Errorf("FailureTarget = %+v", ft)
	}
	// Index 2 failed; the three others were stopped and count as failed pods.
	if st := j.Status; st.FailedIndexes == nil || *st.FailedIndexes != "2" || st.Failed != 4 || st.Succeeded != 0 || st.Active != 0 || st.CompletedIndexes != "" {
		t.Errorf("status: %+v (failedIndexes %v)", st, ptrString(st.FailedIndexes))
	}
	if n := len(jobPods(t, cs, "maxfailed")); n != 1 {
		t.Errorf("%d pods left, want only the failed one", n)
	}

	j = waitCondition(t, cs, "perindex", batchv1.JobFailed)
	if c := condition(j, batchv1.JobFailed); c.Reason != batchv1.JobReasonFailedIndexes || c.Message != "Job has failed indexes" {
		t.Errorf("Failed = %+v", c)
	}
	if st := j.Status; st.FailedIndexes == nil || *st.FailedIndexes != "1" || st.CompletedIndexes != "0,2,3" || st.Succeeded != 3 || st.Failed != 2 {
		t.Errorf("status: %+v (failedIndexes %v)", st, ptrString(st.FailedIndexes))
	}
	var first, second *corev1.Pod
	for _, p := range jobPods(t, cs, "perindex") {
		want := "0"
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "1" {
			switch p.Annotations[batchv1.JobIndexFailureCountAnnotation] {
			case "0":
				first = &p
			case "1":
				second = &p
			default:
				t.Errorf("pod %s annotations %v", p.Name, p.Annotations)
			}
			continue
		}
		if got := p.Annotations[batchv1.JobIndexFailureCountAnnotation]; got != want {
			t.Errorf("pod %s failure count %q, want %q", p.Name, got, want)
		}
	}
	if first == nil || second == nil {
		t.Fatalf("index 1 pods: first %v, second %v", first != nil, second != nil)
	}
	if gap := second.CreationTimestamp.Sub(finishedTime(first)); gap < DefaultPodFailureBackOff-time.Second {
		t.Errorf("index 1 replaced %v after its failure; back-off is %v", gap, DefaultPodFailureBackOff)
	}
	waitNoFinalizers(t, cs, "perindex")
	waitNoFinalizers(t, cs, "maxfailed")
}

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func TestIndexFailureCounts(t *testing.T) {
	policy := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		exitCodeRule(batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyOnExitCodesOpIn, 1),
		exitCodeRule(batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyOnExitCodesOpIn, 2),
	}}
	job := &batchv1.Job{Spec: batchv1.JobSpec{
		Completions: new(int32(4)), CompletionMode: new(batchv1.IndexedCompletion),
		BackoffLimitPerIndex: new(int32(2)), PodFailurePolicy: policy,
	}}
	failed := func(ix, failures, ignored string, code int32, finished time.Time) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: ix + "-" + failures + "-" + ignored, Annotations: map[string]string{
			batchv1.JobCompletionIndexAnnotation:   ix,
			batchv1.JobIndexFailureCountAnnotation: failures,
		}}, Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "work",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.NewTime(finished)}}}}}}
		if ignored != "" {
			p.Annotations[batchv1.JobIndexIgnoredFailureCountAnnotation] = ignored
		}
		return p
	}
	counts := func(replaced *corev1.Pod) string {
		p := &corev1.Pod{}
		setIndexFailureCounts(p, job, replaced)
		return p.Annotations[batchv1.JobIndexFailureCountAnnotation] + "/" + p.Annotations[batchv1.JobIndexIgnoredFailureCountAnnotation]
	}
	for name, tt := range map[string]struct {
		replaced *corev1.Pod
		want     string
	}{
		"first pod":         {want: "0/"},
		"counted failure":   {replaced: failed("0", "1", "", 3, t0), want: "2/"},
		"ignored failure":   {replaced: failed("0", "1", "", 1, t0), want: "1/1"},
		"ignored before":    {replaced: failed("0", "0", "2", 3, t0), want: "1/2"},
		"garbage count":     {replaced: failed("0", "x", "-1", 3, t0), want: "1/"},
		"ignored and again": {replaced: failed("0", "0", "2", 1, t0), want: "0/3"},
	} {
		if got := counts(tt.replaced); got != tt.want {
			t.Errorf("%s: counts %s, want %s", name, got, tt.want)
		}
	}
	for name, tt := range map[string]struct {
		pod  *corev1.Pod
		want bool
	}{
		"within the limit":          {pod: failed("0", "1", "", 3, t0)},
		"at the limit":              {pod: failed("0", "2", "", 3, t0), want: true},
		"ignored at the limit":      {pod: failed("0", "2", "", 1, t0)},
		"FailIndex below the limit": {pod: failed("0", "0", "", 2, t0), want: true},
	} {
		if got := indexFailed(job, tt.pod); got != tt.want {
			t.Errorf("%s: indexFailed = %v", name, got)
		}
	}

	// The pod a replacement learns from: per pending index, the failed pod
	// with the most failures, the last to finish among equals.
	older, newer := failed("1", "1", "", 3, t0), failed("1", "1", "", 3, t0.Add(time.Second))
	pods := []*corev1.Pod{
		failed("0", "0", "", 3, t0), // index 0 succeeded since
		newer, older,
		failed("2", "0", "", 3, t0), // index 2 runs again
		failed("3", "0", "", 3, t0), // index 3 failed
	}
	got := delayedDeletions(job, pods, func(*corev1.Pod) bool { return true }, parseIntervals("0", 4), parseIntervals("3", 4), sets.New(2))
	if len(got) != 1 || got[1] != newer {
		t.Errorf("delayed = %v", got)
	}
	if left := indexBackoff(newer).remaining(t0.Add(time.Second + 15*time.Second)); left != 5*time.Second {
		t.Errorf("index back-off after 2 failures: %v left after 15s, want 5s", left)
	}
}
