package job

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// This file holds what Indexed jobs add (indexed_job_utils.go in
// Kubernetes): completion indexes on pods, the compressed index lists of
// status.completedIndexes and status.failedIndexes, and the per-index
// failure counts of backoffLimitPerIndex.

const (
	// completionIndexEnv is the variable through which a pod's containers
	// learn their index (from the downward API).
	completionIndexEnv = "JOB_COMPLETION_INDEX"
	// completionIndexFieldPath is where the env var's value comes from,
	// Kubernetes' downward API reference.
	completionIndexFieldPath = "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"
	// noIndex is the index of a pod without a valid one.
	noIndex = -1
	// maxGeneratedNameLength is how long a generateName may be before the
	// API server's random suffix (names.MaxGeneratedNameLength).
	maxGeneratedNameLength = 63 - 5
)

func isIndexed(job *batchv1.Job) bool {
	return job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
}

func hasBackoffLimitPerIndex(job *batchv1.Job) bool {
	return isIndexed(job) && job.Spec.BackoffLimitPerIndex != nil
}

// completions is spec.completions of an Indexed job (validation makes it
// set); 0 for others.
func completions(job *batchv1.Job) int {
	if job.Spec.Completions == nil {
		return 0
	}
	return int(*job.Spec.Completions)
}

// podIndex is the pod's completion index from its annotation, or noIndex.
func podIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return noIndex
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return noIndex
	}
	return i
}

// validIndex returns p's index if it is one of job's (below completions).
func validIndex(job *batchv1.Job, p *corev1.Pod) (int, bool) {
	ix := podIndex(p)
	return ix, ix != noIndex && ix < completions(job)
}

// interval is the closed range of indexes [first, last].
type interval struct{ first, last int }

// intervals is a sorted list of disjoint, non-adjacent intervals: the
// compressed form of a set of indexes.
type intervals []interval

// parseIntervals reads the "1,3-5" format, ignoring malformed parts and
// indexes from completions on, as Kubernetes does.
func parseIntervals(s string, completions int) intervals {
	if s == "" {
		return nil
	}
	var out intervals
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, ranged := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		if first >= completions {
			break
		}
		last := first
		if ranged {
			if last, err = strconv.Atoi(hi); err != nil {
				continue
			}
			last = min(last, completions-1)
		}
		if n := len(out); n > 0 && out[n-1].last == first-1 {
			out[n-1].last = last
		} else {
			out = append(out, interval{first, last})
		}
	}
	return out
}

// String writes the compressed format: ranges of three or more as
// "first-last", two neighbours as "a,b".
func (iv intervals) String() string {
	var b strings.Builder
	for _, v := range iv {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(v.first))
		switch {
		case v.last == v.first+1:
			fmt.Fprintf(&b, ",%d", v.last)
		case v.last > v.first:
			fmt.Fprintf(&b, "-%d", v.last)
		}
	}
	return b.String()
}

// total is how many indexes iv holds.
func (iv intervals) total() int {
	n := 0
	for _, v := range iv {
		n += v.last - v.first + 1
	}
	return n
}

// has says whether ix is in iv.
func (iv intervals) has(ix int) bool {
	i := sort.Search(len(iv), func(i int) bool { return iv[i].last >= ix })
	return i < len(iv) && iv[i].first <= ix
}

// merge returns the union of iv and other.
func (iv intervals) merge(other intervals) intervals {
	all := append(append(intervals(nil), iv...), other...)
	sort.Slice(all, func(i, j int) bool { return all[i].first < all[j].first })
	var out intervals
	for _, v := range all {
		if n := len(out); n > 0 && v.first <= out[n-1].last+1 {
			out[n-1].last = max(out[n-1].last, v.last)
			continue
		}
		out = append(out, v)
	}
	return out
}

// with returns iv with the indexes added.
func (iv intervals) with(indexes sets.Set[int]) intervals {
	add := make(intervals, 0, indexes.Len())
	for _, ix := range sets.List(indexes) {
		add = append(add, interval{ix, ix})
	}
	return iv.merge(add)
}

// indexesOf is the set of valid indexes of pods.
func indexesOf(job *batchv1.Job, pods []*corev1.Pod) sets.Set[int] {
	out := sets.New[int]()
	for _, p := range pods {
		if ix, ok := validIndex(job, p); ok {
			out.Insert(ix)
		}
	}
	return out
}

// pendingIndexes returns up to count of the lowest indexes that are
// neither done (succeeded or failed) nor taken (by an active pod, or a
// terminating one when only failed pods are replaced).
func pendingIndexes(completions, count int, done intervals, taken sets.Set[int]) []int {
	busy := done.with(taken)
	var out []int
	next := 0
	for _, v := range busy {
		for ; next < v.first && next < completions && len(out) < count; next++ {
			out = append(out, next)
		}
		next = max(next, v.last+1)
	}
	for ; next < completions && len(out) < count; next++ {
		out = append(out, next)
	}
	return out
}

// surplusIndexedPods splits active pods of an Indexed job into those to
// remove whatever the parallelism — pods without a valid index and all but
// one pod of a repeated index (keeping the one furthest along) — and the
// rest.
func surplusIndexedPods(job *batchv1.Job, pods []*corev1.Pod) (rm, keep []*corev1.Pod) {
	byIndex := map[int][]*corev1.Pod{}
	for _, p := range pods {
		ix, ok := validIndex(job, p)
		if !ok {
			rm = append(rm, p)
			continue
		}
		byIndex[ix] = append(byIndex[ix], p)
	}
	ixs := make([]int, 0, len(byIndex))
	for ix := range byIndex {
		ixs = append(ixs, ix)
	}
	sort.Ints(ixs)
	for _, ix := range ixs {
		same := byIndex[ix]
		if len(same) > 1 {
			// Removal order puts the pod to keep last.
			same = activePodsForRemoval(same, len(same))
			rm = append(rm, same[:len(same)-1]...)
		}
		keep = append(keep, same[len(same)-1])
	}
	return rm, keep
}

// generateNameForIndex is "<job>-<index>-", with the job name cut so the
// API server can append its random suffix.
func generateNameForIndex(job string, ix int) string {
	suffix := "-" + strconv.Itoa(ix) + "-"
	if len(job)+len(suffix) > maxGeneratedNameLength {
		job = job[:maxGeneratedNameLength-len(suffix)]
	}
	return job + suffix
}

// setCompletionIndex makes pod the one of index ix: annotation and label,
// hostname <job>-<ix>, generateName <job>-<ix>-, and JOB_COMPLETION_INDEX
// in every container (from the annotation through the downward API, as
// Kubernetes injects it) unless the template sets it.
func setCompletionIndex(pod *corev1.Pod, job *batchv1.Job, ix int) {
	v := strconv.Itoa(ix)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[batchv1.JobCompletionIndexAnnotation] = v
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[batchv1.JobCompletionIndexAnnotation] = v
	pod.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, ix)
	pod.GenerateName = generateNameForIndex(job.Name, ix)
	addEnv := func(c *corev1.Container) {
		for _, e := range c.Env {
			if e.Name == completionIndexEnv {
				return
			}
		}
		c.Env = append(c.Env, corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: completionIndexFieldPath},
		}})
	}
	for i := range pod.Spec.InitContainers {
		addEnv(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		addEnv(&pod.Spec.Containers[i])
	}
}

// annotationCount reads a non-negative int32 annotation; 0 when it is
// missing or invalid.
func annotationCount(p *corev1.Pod, key string) int32 {
	v, ok := p.Annotations[key]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0
	}
	return int32(n)
}

// indexFailures is how many earlier pods of p's index failed (counted
// against backoffLimitPerIndex), from its job-index-failure-count
// annotation.
func indexFailures(p *corev1.Pod) int32 {
	return annotationCount(p, batchv1.JobIndexFailureCountAnnotation)
}

// indexAllFailures adds the failures the pod failure policy ignored.
func indexAllFailures(p *corev1.Pod) int32 {
	return indexFailures(p) + annotationCount(p, batchv1.JobIndexIgnoredFailureCountAnnotation)
}

// setIndexFailureCounts annotates a replacement pod with the failure
// counts of its index: those of the pod it replaces plus that pod's
// failure (counted, or ignored by the pod failure policy).
func setIndexFailureCounts(pod *corev1.Pod, job *batchv1.Job, replaced *corev1.Pod) {
	var failures, ignored int32
	if replaced != nil {
		failures, ignored = indexFailures(replaced), annotationCount(replaced, batchv1.JobIndexIgnoredFailureCountAnnotation)
		if matchPodFailurePolicy(job.Spec.PodFailurePolicy, replaced).count {
			failures++
		} else {
			ignored++
		}
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[batchv1.JobIndexFailureCountAnnotation] = strconv.Itoa(int(failures))
	if ignored > 0 {
		pod.Annotations[batchv1.JobIndexIgnoredFailureCountAnnotation] = strconv.Itoa(int(ignored))
	}
}

// indexFailed says whether a pod's failure fails its index: the pod
// failure policy says FailIndex, or the failure counts and the index used
// up backoffLimitPerIndex.
func indexFailed(job *batchv1.Job, p *corev1.Pod) bool {
	if !isPodFailed(p, job) {
		return false
	}
	m := matchPodFailurePolicy(job.Spec.PodFailurePolicy, p)
	if m.action == batchv1.PodFailurePolicyActionFailIndex {
		return true
	}
	return m.count && indexFailures(p) >= *job.Spec.BackoffLimitPerIndex
}

// delayedDeletions picks, per index that has neither succeeded, failed nor
// an active pod, the failed pod that a replacement must learn the failure
// counts from; its finalizer stays (so it stays) until the replacement
// exists.
func delayedDeletions(job *batchv1.Job, pods []*corev1.Pod, eligible func(*corev1.Pod) bool, succeeded, failed intervals, active sets.Set[int]) map[int]*corev1.Pod {
	out := map[int]*corev1.Pod{}
	for _, p := range pods {
		if !eligible(p) || !isPodFailed(p, job) {
			continue
		}
		ix, ok := validIndex(job, p)
		if !ok || succeeded.has(ix) || failed.has(ix) || active.Has(ix) {
			continue
		}
		if last, ok := out[ix]; !ok || (indexAllFailures(last) <= indexAllFailures(p) && !finishedTime(p).Before(finishedTime(last))) {
			out[ix] = p
		}
	}
	return out
}

// indexBackoff is the back-off of an index whose last failed pod is
// lastFailed (nil: none): its failures so far, and when the last one was.
func indexBackoff(lastFailed *corev1.Pod) backoffRecord {
	if lastFailed == nil {
		return backoffRecord{}
	}
	t := finishedTime(lastFailed)
	return backoffRecord{failuresAfterLastSuccess: indexAllFailures(lastFailed) + 1, lastFailureTime: &t}
}
