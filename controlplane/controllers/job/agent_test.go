package job

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// agentPlan is what the test node agent does with one pod: after
// ReadyAfter it reports the pod Running and Ready; with Finish set it then
// reports that terminal phase FinishAfter later (exit code 0 for
// Succeeded, ExitCode or 1 for Failed, or per container ExitCodes), with
// Conditions (as True) added, and not before Gate (if set) is closed.
type agentPlan struct {
	ReadyAfter  time.Duration
	Finish      corev1.PodPhase
	FinishAfter time.Duration
	ExitCode    int32
	ExitCodes   map[string]int32
	Conditions  []corev1.PodConditionType
	Gate        <-chan struct{}
}

// testAgent plays every node agent: it drives the status of pods bound to
// a node (spec.nodeName set) through the API, as the real agent would, and
// finishes graceful deletions (marks the pod Failed, then deletes it with
// grace period 0). No scheduler runs in the tests, so it also plays the
// scheduler: it binds unbound pods to node bindTo through pods/binding.
// Stopped and waited for when the test ends.
type testAgent struct {
	client kubernetes.Interface
	bindTo string
	policy func(*corev1.Pod) agentPlan
	ctx    context.Context
	wg     sync.WaitGroup

	mu       sync.Mutex
	started  map[types.UID]bool
	deleting map[types.UID]bool
	bound    map[types.UID]bool
}

func startAgent(t *testing.T, client kubernetes.Interface, bindTo string, policy func(*corev1.Pod) agentPlan) *testAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &testAgent{client: client, bindTo: bindTo, policy: policy, ctx: ctx,
		started: map[types.UID]bool{}, deleting: map[types.UID]bool{}, bound: map[types.UID]bool{}}
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    a.observe,
		UpdateFunc: func(_, cur any) { a.observe(cur) },
	})
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		// Under mu: observe starts no work after this, so that Wait does
		// not race with an Add of an event still being handled.
		a.mu.Lock()
		cancel()
		a.mu.Unlock()
		a.wg.Wait()
		factory.Shutdown()
	})
	return a
}

func (a *testAgent) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return
	}
	if pod.Spec.NodeName == "" {
		if pod.DeletionTimestamp == nil && !a.bound[pod.UID] {
			a.bound[pod.UID] = true
			a.wg.Go(func() { a.bind(pod) })
		}
		return
	}
	if pod.DeletionTimestamp != nil {
		if !a.deleting[pod.UID] {
			a.deleting[pod.UID] = true
			a.wg.Go(func() { a.finishDeletion(pod) })
		}
		return
	}
	if !a.started[pod.UID] && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		a.started[pod.UID] = true
		plan := a.policy(pod)
		a.wg.Go(func() { a.run(pod, plan) })
	}
}

func (a *testAgent) bind(pod *corev1.Pod) {
	err := a.client.CoreV1().Pods(pod.Namespace).Bind(a.ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.bindTo},
	}, metav1.CreateOptions{})
	_ = err // a pod deleted meanwhile cannot be bound
}

func (a *testAgent) sleep(d time.Duration) bool {
	select {
	case <-a.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (a *testAgent) run(pod *corev1.Pod, plan agentPlan) {
	if !a.sleep(plan.ReadyAfter) {
		return
	}
	started := metav1.Now()
	if !a.setStatus(pod, func(p *corev1.Pod) bool {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return false
		}
		setRunning(p, started)
		return true
	}) {
		return
	}
	if plan.Finish == "" {
		return
	}
	if plan.Gate != nil {
		select {
		case <-a.ctx.Done():
			return
		case <-plan.Gate:
		}
	}
	if !a.sleep(plan.FinishAfter) {
		return
	}
	code := int32(0)
	if plan.Finish == corev1.PodFailed {
		code = plan.ExitCode
		if code == 0 {
			code = 1
		}
	}
	a.setStatus(pod, func(p *corev1.Pod) bool {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return false
		}
		setTerminated(p, plan.Finish, code, started)
		for _, c := range p.Status.ContainerStatuses {
			if code, ok := plan.ExitCodes[c.Name]; ok {
				c.State.Terminated.ExitCode = code
			}
		}
		for _, typ := range plan.Conditions {
			setPodCondition(p, typ, corev1.ConditionTrue, metav1.Now())
		}
		return true
	})
}

func (a *testAgent) finishDeletion(pod *corev1.Pod) {
	a.setStatus(pod, func(p *corev1.Pod) bool {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return false
		}
		setTerminated(p, corev1.PodFailed, 143, metav1.Now())
		return true
	})
	zero := int64(0)
	err := a.client.CoreV1().Pods(pod.Namespace).Delete(a.ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	_ = err // NotFound or Conflict: already gone or replaced
}

// setStatus applies mutate to the live pod and writes its status,
// retrying on conflicts; false when the pod is gone or mutate declined.
func (a *testAgent) setStatus(pod *corev1.Pod, mutate func(*corev1.Pod) bool) bool {
	for a.ctx.Err() == nil {
		p, err := a.client.CoreV1().Pods(pod.Namespace).Get(a.ctx, pod.Name, metav1.GetOptions{})
		if err != nil || p.UID != pod.UID {
			return false
		}
		if !mutate(p) {
			return false
		}
		_, err = a.client.CoreV1().Pods(p.Namespace).UpdateStatus(a.ctx, p, metav1.UpdateOptions{})
		if err == nil {
			return true
		}
		if !apierrors.IsConflict(err) {
			return false
		}
	}
	return false
}

func setPodCondition(p *corev1.Pod, typ corev1.PodConditionType, status corev1.ConditionStatus, now metav1.Time) {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == typ {
			if c.Status != status {
				c.Status = status
				c.LastTransitionTime = now
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: now})
}

func setRunning(p *corev1.Pod, started metav1.Time) {
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &started
	setPodCondition(p, corev1.PodScheduled, corev1.ConditionTrue, now)
	setPodCondition(p, corev1.PodInitialized, corev1.ConditionTrue, now)
	setPodCondition(p, corev1.ContainersReady, corev1.ConditionTrue, now)
	setPodCondition(p, corev1.PodReady, corev1.ConditionTrue, now)
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: new(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		})
	}
}

func setTerminated(p *corev1.Pod, phase corev1.PodPhase, code int32, started metav1.Time) {
	now := metav1.Now()
	p.Status.Phase = phase
	if p.Status.StartTime == nil {
		p.Status.StartTime = &started
	}
	setPodCondition(p, corev1.ContainersReady, corev1.ConditionFalse, now)
	setPodCondition(p, corev1.PodReady, corev1.ConditionFalse, now)
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Started: new(false),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: now,
			}},
		})
	}
}
