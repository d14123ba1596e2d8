package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestEvictionRespectsDisruptionBudgets: as kube-apiserver's eviction, a
// running pod goes only when the PodDisruptionBudget that selects it
// allows a disruption, which the eviction takes from the budget's status
// (its own disruption controller's job to give back); else 429, which
// kubectl drain retries. Pending pods, unready pods under a healthy budget
// and pods of no budget go at once; a pod of two budgets gets 500.
func TestEvictionRespectsDisruptionBudgets(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	pods, pdbs := c.client.CoreV1().Pods(testNS), c.client.PolicyV1().PodDisruptionBudgets(testNS)
	// running creates a pod on a node, Running and Ready (or not).
	running := func(name string, ready bool, labels map[string]string) {
		t.Helper()
		p, err := pods.Create(ctx, pod(name, testNS, "edge-1", labels), metav1.CreateOptions{})
		must(t, err)
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		must(t, err)
	}
	// budget creates a budget on app=name and gives it the status its
	// controller would.
	budget := func(name string, allowed, healthy, desired int32) *policyv1.PodDisruptionBudget {
		t.Helper()
		pdb, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: new(intstr.FromInt32(desired)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}}, metav1.CreateOptions{})
		must(t, err)
		pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: allowed,
			CurrentHealthy: healthy, DesiredHealthy: desired, ExpectedPods: healthy}
		pdb, err = pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
		must(t, err)
		return pdb
	}
	evict := func(name string, dryRun bool) error {
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS}}
		if dryRun {
			ev.DeleteOptions = &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
		}
		return c.client.PolicyV1().Evictions(testNS).Evict(ctx, ev)
	}
	tooMany := func(err error, cause string) {
		t.Helper()
		st, ok := err.(apierrors.APIStatus)
		if !apierrors.IsTooManyRequests(err) || !ok || st.Status().Message != "Cannot evict pod as it would violate the pod's disruption budget." ||
			len(st.Status().Details.Causes) != 1 || st.Status().Details.Causes[0].Type != policyv1.DisruptionBudgetCause ||
			st.Status().Details.Causes[0].Message != cause {
			t.Errorf("got %v, want 429 with the cause %q", err, cause)
		}
	}
	deleting := func(name string) bool {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp != nil)
	}

	web := map[string]string{"app": "web"}
	running("web-1", true, web)
	running("web-2", true, web)
	budget("web", 1, 2, 1)
	// A dry run checks and takes nothing.
	must(t, evict("web-1", true))
	if got, _ := pdbs.Get(ctx, "web", metav1.GetOptions{}); got.Status.DisruptionsAllowed != 1 || len(got.Status.DisruptedPods) != 0 || deleting("web-1") {
		t.Errorf("after a dry run: %+v", got.Status)
	}
	must(t, evict("web-1", false))
	got, err := pdbs.Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	if _, ok := got.Status.DisruptedPods["web-1"]; got.Status.DisruptionsAllowed != 0 || !ok || !deleting("web-1") {
		t.Errorf("after evicting web-1: %+v, deleting %v", got.Status, deleting("web-1"))
	}
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Reason != policyv1.InsufficientPodsReason {
		t.Errorf("conditions after the last allowed disruption: %+v", got.Status.Conditions)
	}
	tooMany(evict("web-2", false), "The disruption budget web needs 1 healthy pods and has 2 currently")
	if deleting("web-2") {
		t.Error("a refused eviction deleted web-2")
	}
	// A budget its controller has not seen since its spec changed.
	got.Spec.MinAvailable = new(intstr.FromInt32(0))
	_, err = pdbs.Update(ctx, got, metav1.UpdateOptions{})
	must(t, err)
	tooMany(evict("web-2", false), "The disruption budget web is still being processed by the server.")

	// An unready pod goes when its budget is healthy without it, or says
	// AlwaysAllow; else it needs a disruption like any.
	db := map[string]string{"app": "db"}
	running("db-1", true, db)
	running("db-2", false, db)
	budget("db", 0, 1, 1)
	must(t, evict("db-2", false))
	pdb := budget("lone", 0, 0, 1)
	running("lone-1", false, map[string]string{"app": "lone"})
	tooMany(evict("lone-1", false), "The disruption budget lone needs 1 healthy pods and has 0 currently")
	pdb.Spec.UnhealthyPodEvictionPolicy = new(policyv1.AlwaysAllow)
	_, err = pdbs.Update(ctx, pdb, metav1.UpdateOptions{})
	must(t, err)
	must(t, evict("lone-1", false))

	// Pending pods, and pods no budget selects, go at once.
	_, err = pods.Create(ctx, pod("waiting", testNS, "", web), metav1.CreateOptions{})
	must(t, err)
	must(t, evict("waiting", false))
	running("free", true, map[string]string{"app": "free"})
	must(t, evict("free", false))

	// Two budgets: kube-apiserver does not choose.
	_, err = pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "db-again"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MaxUnavailable: new(intstr.FromString("50%")), Selector: &metav1.LabelSelector{MatchLabels: db}}}, metav1.CreateOptions{})
	must(t, err)
	err = evict("db-1", false)
	if st, ok := err.(apierrors.APIStatus); !ok || st.Status().Code != 500 ||
		!strings.Contains(st.Status().Message, "more than one PodDisruptionBudget") || deleting("db-1") {
		t.Errorf("a pod of two budgets: %v, want 500 and the pod kept", err)
	}
}

// TestPodDisruptionBudgetValidation: as Kubernetes, at most one of
// minAvailable and maxUnavailable, each a count or a percentage up to 100%,
// a known unhealthyPodEvictionPolicy, status counts never negative, and a
// generation that counts spec changes.
func TestPodDisruptionBudgetValidation(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	pdbs := c.client.PolicyV1().PodDisruptionBudgets(testNS)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	for _, tc := range []struct {
		name   string
		spec   policyv1.PodDisruptionBudgetSpec
		fields []string
	}{
		{"both", policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(1)), MaxUnavailable: new(intstr.FromInt32(1)), Selector: sel}, []string{"spec"}},
		{"negative", policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(-1)), Selector: sel}, []string{"spec.minAvailable"}},
		{"over 100%", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromString("150%")), Selector: sel}, []string{"spec.maxUnavailable"}},
		{"policy", policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(1)), Selector: sel,
			UnhealthyPodEvictionPolicy: new(policyv1.UnhealthyPodEvictionPolicyType("Sometimes"))}, []string{"spec.unhealthyPodEvictionPolicy"}},
	} {
		_, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: tc.spec}, metav1.CreateOptions{})
		st, ok := err.(apierrors.APIStatus)
		if !apierrors.IsInvalid(err) || !ok || len(st.Status().Details.Causes) != len(tc.fields) || st.Status().Details.Causes[0].Field != tc.fields[0] {
			t.Errorf("%s: %v, want 422 on %v", tc.name, err, tc.fields)
		}
	}
	pdb, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "ok"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromString("25%")), Selector: sel}}, metav1.CreateOptions{})
	must(t, err)
	if pdb.Generation != 1 {
		t.Errorf("generation %d, want 1", pdb.Generation)
	}
	pdb.Status.DisruptionsAllowed = -1
	if _, err := pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("negative disruptionsAllowed: %v, want 422", err)
	}
	pdb.Status.DisruptionsAllowed = 0
	pdb.Status.Conditions = []metav1.Condition{{Type: policyv1.DisruptionAllowedCondition, Status: "Maybe"}}
	if _, err := pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("a malformed condition: %v, want 422", err)
	}
	// As Kubernetes: the name need only be a path segment.
	_, err = pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "Web_1"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromInt32(1)), Selector: sel}}, metav1.CreateOptions{})
	must(t, err)
	pdb.Spec.MaxUnavailable = new(intstr.FromInt32(2))
	pdb.Status = policyv1.PodDisruptionBudgetStatus{}
	if pdb, err = pdbs.Update(ctx, pdb, metav1.UpdateOptions{}); err != nil || pdb.Generation != 2 {
		t.Errorf("spec change: generation %d, %v; want 2", pdb.Generation, err)
	}
}

// TestKubectlDisruptionBudgets: kubectl creates, lists and explains
// budgets, and kubectl drain stops at one that allows no disruption.
func TestKubectlDisruptionBudgets(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	mustContain(t, c.kubectl(t, "", "create", "pdb", "web", "--selector=app=web", "--min-available=1"), "poddisruptionbudget.policy/web created")
	out := c.kubectl(t, "", "get", "pdb")
	if !strings.HasPrefix(out, "NAME   MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE\nweb    1               N/A               0                     ") {
		t.Errorf("get pdb:\n%s", out)
	}
	mustContain(t, c.kubectl(t, "", "explain", "pdb.spec.unhealthyPodEvictionPolicy"), "FIELD: unhealthyPodEvictionPolicy <string>")

	_, err := c.client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}}, metav1.CreateOptions{})
	must(t, err)
	p, err := c.client.CoreV1().Pods(testNS).Create(ctx, pod("web-1", testNS, "edge-1", map[string]string{"app": "web"}), metav1.CreateOptions{})
	must(t, err)
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	_, err = c.client.CoreV1().Pods(testNS).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	must(t, err)
	pdb, err := c.client.PolicyV1().PodDisruptionBudgets(testNS).Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	// What the disruption controller would say of one pod and minAvailable 1.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	_, err = c.client.PolicyV1().PodDisruptionBudgets(testNS).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	must(t, err)
	out, err = c.kubectlErr(t, "", "drain", "edge-1", "--force", "--timeout=2s")
	if err == nil || !strings.Contains(out, `error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.`) {
		t.Errorf("drain past a budget: %v\n%s", err, out)
	}
	if p, err := c.client.CoreV1().Pods(testNS).Get(ctx, "web-1", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("the drain deleted web-1: %v", err)
	}
}

// TestEvictionRaceAndEmptySelector: a budget with an empty selector
// guards every pod of its namespace (policy/v1), and of two evictions
// racing for its one allowed disruption exactly one wins.
func TestEvictionRaceAndEmptySelector(t *testing.T) {
	c := startAPI(t)
	ctx := context.Background()
	pods := c.client.CoreV1().Pods(testNS)
	for _, name := range []string{"a", "b"} {
		p, err := pods.Create(ctx, pod(name, testNS, "edge-1", map[string]string{"app": name}), metav1.CreateOptions{})
		must(t, err)
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		_, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		must(t, err)
	}
	pdbs := c.client.PolicyV1().PodDisruptionBudgets(testNS)
	pdb, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "every"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{}}}, metav1.CreateOptions{})
	must(t, err)
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: 1, CurrentHealthy: 2, DesiredHealthy: 1, ExpectedPods: 2}
	_, err = pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	must(t, err)
	errs := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		go func() {
			errs <- c.client.PolicyV1().Evictions(testNS).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS}})
		}()
	}
	var won, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			won++
		case apierrors.IsTooManyRequests(err):
			refused++
		default:
			t.Errorf("eviction: %v", err)
		}
	}
	if won != 1 || refused != 1 {
		t.Errorf("%d evictions won and %d got 429, want one each", won, refused)
	}
	if got, err := pdbs.Get(ctx, "every", metav1.GetOptions{}); err != nil || got.Status.DisruptionsAllowed != 0 || len(got.Status.DisruptedPods) != 1 {
		t.Errorf("budget after the race: %+v %v", got.Status, err)
	}
}
