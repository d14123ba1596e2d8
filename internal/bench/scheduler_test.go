package bench

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestSchedulerSmoke runs `wasmfleet bench scheduler` with tiny counts
// against the real binary. It asserts what was measured, never how fast.
func TestSchedulerSmoke(t *testing.T) {
	bin := testenv.Wasmfleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := RunScheduler(ctx, SchedOptions{
		Binary: bin, Nodes: 20, Pods: 30, DeploymentReplicas: 10, Clients: 4,
		LeaseRenewInterval: time.Second, // several renewals per lease in the run
		PhaseTimeout:       2 * time.Minute,
		TempDir:            t.TempDir(), Progress: &progress,
	})
	if err != nil {
		t.Fatalf("RunScheduler: %v\nprogress:\n%s", err, progress.String())
	}
	for name, p := range map[string]BindPhase{"backlog": res.Backlog, "concurrent": res.Concurrent} {
		if p.Pods != 30 || p.FirstBound.Before(p.Start) || p.LastBound.Before(p.FirstBound) || p.AllCreated.IsZero() {
			t.Errorf("%s: %d pods, start %v, first bound %v, last bound %v, all created %v", name, p.Pods, p.Start, p.FirstBound, p.LastBound, p.AllCreated)
		}
	}
	if d := res.Deployment; d.Pods != 10 || d.LastBound.Before(d.Start) || d.AllCreated.Before(d.Start) {
		t.Errorf("deployment: %d pods, start %v, all created %v, last bound %v", d.Pods, d.Start, d.AllCreated, d.LastBound)
	}
	if n := len(res.Concurrent.CreateToBound); n != 30 {
		t.Errorf("concurrent: %d create → bound samples, want 30", n)
	}
	if res.Backlog.Created != res.Backlog.Start || !res.Concurrent.Created.After(res.Concurrent.Start) {
		t.Errorf("created: backlog %v (start %v), concurrent %v (start %v)", res.Backlog.Created, res.Backlog.Start, res.Concurrent.Created, res.Concurrent.Start)
	}
	if !slices.ContainsFunc(res.Backlog.Server, func(r RequestStat) bool {
		return r.Verb == "POST" && r.Resource == "pods" && r.Subresource == "binding" && r.Count >= 30
	}) {
		t.Errorf("backlog: no 30 bindings in the server's metrics: %+v", res.Backlog.Server)
	}
	for name, p := range map[string]phaseResult{"raw create": res.RawCreate, "raw update": res.RawUpdate, "backlog creates": res.BacklogCreates} {
		if p.Ops != 30 || p.Rate() <= 0 || len(p.Latencies) != 30 {
			t.Errorf("%s: %d ops at %.0f/s with %d latencies", name, p.Ops, p.Rate(), len(p.Latencies))
		}
	}
	if res.CorePods != 30 || res.CoreElapsed <= 0 || res.PodBytes <= 0 || res.TakeOver <= 0 {
		t.Errorf("core %d pods in %v, pod %d bytes, take-over %v", res.CorePods, res.CoreElapsed, res.PodBytes, res.TakeOver)
	}
	if res.NodesReady != 20 || res.Leases.Renewals < 20 || res.Leases.Errors != 0 {
		t.Errorf("nodes: %d ready; leases %+v", res.NodesReady, res.Leases)
	}
	md := res.Markdown()
	for _, want := range []string{"## Targets", "## Binding throughput", "## Baselines", "## Where the server's time goes", "POST pods/binding", "Deployment of 10 replicas"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "| PASS |") + strings.Count(md, "| FAIL |"); n != len(res.Checks()) {
		t.Errorf("report shows %d verdicts, want %d:\n%s", n, len(res.Checks()), md)
	}
}

func TestPerSecond(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name string
		in   []time.Time
		want []int
	}{
		{"none", nil, nil},
		{"under a second", []time.Time{at(0), at(500)}, []int{}},
		{"partial last second dropped", []time.Time{at(0), at(10), at(999), at(1000), at(1500), at(2100)}, []int{3, 2}},
		{"empty second", []time.Time{at(0), at(2000)}, []int{1, 0}},
	} {
		if got := perSecond(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: perSecond = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRequestStats(t *testing.T) {
	before := promSums{
		`apiserver_request_duration_seconds{verb="POST",resource="pods",subresource="binding"}`: {sum: 1, count: 10},
		`apiserver_request_duration_seconds{verb="GET",resource="nodes",subresource=""}`:        {sum: 1, count: 5},
		`etcd_request_duration_seconds{operation="update"}`:                                     {sum: 1, count: 10},
	}
	after := promSums{
		`apiserver_request_duration_seconds{verb="POST",resource="pods",subresource="binding"}`: {sum: 3, count: 110},
		`apiserver_request_duration_seconds{verb="GET",resource="nodes",subresource=""}`:        {sum: 1, count: 5},
		`apiserver_request_duration_seconds{verb="POST",resource="events",subresource=""}`:      {sum: 0.5, count: 50},
		`etcd_request_duration_seconds{operation="update"}`:                                     {sum: 2, count: 110},
	}
	reqs, ops := requestStats(before, after)
	want := []RequestStat{
		{Verb: "POST", Resource: "pods", Subresource: "binding", Count: 100, Mean: 20 * time.Millisecond},
		{Verb: "POST", Resource: "events", Count: 50, Mean: 10 * time.Millisecond},
	}
	if !slices.Equal(reqs, want) {
		t.Errorf("requests = %+v, want %+v", reqs, want)
	}
	if len(ops) != 1 || ops[0].Op != "update" || ops[0].PerCreate != 100 || ops[0].Mean != 10*time.Millisecond {
		t.Errorf("etcd = %+v", ops)
	}
}

func TestNodeReadyUntainted(t *testing.T) {
	ready := simNode(0)
	tainted := simNode(1)
	tainted.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}}
	unknown := simNode(2)
	unknown.Status.Conditions[0].Status = corev1.ConditionUnknown
	noCond := simNode(3)
	noCond.Status.Conditions = nil
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want bool
	}{{"ready", ready, true}, {"tainted", tainted, false}, {"unknown", unknown, false}, {"no conditions", noCond, false}} {
		if got := nodeReadyUntainted(tc.node); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSchedValidate(t *testing.T) {
	for _, o := range []SchedOptions{{Nodes: -1}, {Pods: 2_000_000}, {LeaseRenewInterval: time.Minute}} {
		if o.Validate() == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := SchedDefaults().Validate(); err != nil {
		t.Error(err)
	}
}
