package resourcequota_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/wasmfleet/wasmfleet/controlplane/controllers/resourcequota"
	"github.com/wasmfleet/wasmfleet/controlplane/quota"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func pod(name string, r corev1.ResourceRequirements) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "hello:v1", Resources: r}}}}
}

// waitUsed waits until quota ns/name's status says used (for every name
// of hard) and returns it.
func waitUsed(t *testing.T, client kubernetes.Interface, ns, name string, used corev1.ResourceList) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var q *corev1.ResourceQuota
	var err error
	for time.Now().Before(deadline) {
		q, err = client.CoreV1().ResourceQuotas(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && quota.Equal(q.Status.Used, used) && quota.Equal(q.Status.Hard, q.Spec.Hard) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("quota %s/%s: status %+v %v, want used %v", ns, name, q.Status, err, used)
}

func refused(t *testing.T, err error, want string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("got %v, want 403 %q", err, want)
	}
}

// TestResourceQuota: the controller counts what each quota limits, the
// API server charges new objects to it and refuses them beyond it, and
// deletions are released, as in Kubernetes.
func TestResourceQuota(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	ctx := context.Background()
	factory := informers.NewSharedInformerFactory(client, 0)
	ctrl := resourcequota.New(client, metadata.NewForConfigOrDie(c.RESTConfig(t)), factory, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	factory.Start(runCtx.Done())
	go func() { done <- ctrl.Run(runCtx, 2) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
		factory.Shutdown()
	})
	for _, ns := range []string{"q", "q2"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods := client.CoreV1().Pods("q")
	hard := list("pods", "2", "requests.memory", "256Mi", "limits.memory", "512Mi", "count/deployments.apps", "1")
	if _, err := client.CoreV1().ResourceQuotas("q").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "compute"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q", "compute", list("pods", "0", "requests.memory", "0", "limits.memory", "0", "count/deployments.apps", "0"))

	small := corev1.ResourceRequirements{Requests: list("memory", "100Mi"), Limits: list("memory", "200Mi")}
	if _, err := pods.Create(ctx, pod("a", small), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Charged at once, by the API server.
	q, err := client.CoreV1().ResourceQuotas("q").Get(ctx, "compute", metav1.GetOptions{})
	if err != nil || !quota.Equal(q.Status.Used, list("pods", "1", "requests.memory", "100Mi", "limits.memory", "200Mi", "count/deployments.apps", "0")) {
		t.Errorf("after the first pod: used %v %v", q.Status.Used, err)
	}
	// A create that fails after admission (the name is taken) is not
	// charged: the API server takes its charge back before it answers.
	if _, err := pods.Create(ctx, pod("a", small), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create of a: %v", err)
	}
	q, err = client.CoreV1().ResourceQuotas("q").Get(ctx, "compute", metav1.GetOptions{})
	if err != nil || !quota.Equal(q.Status.Used, list("pods", "1", "requests.memory", "100Mi", "limits.memory", "200Mi", "count/deployments.apps", "0")) {
		t.Errorf("after a failed create: used %v %v", q.Status.Used, err)
	}
	_, err = pods.Create(ctx, pod("bare", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	refused(t, err, `pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: main; requests.memory for: main`)
	if _, err := pods.Create(ctx, pod("b", small), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = pods.Create(ctx, pod("c", small), metav1.CreateOptions{})
	refused(t, err, `pods "c" is forbidden: exceeded quota: compute, requested: limits.memory=200Mi,pods=1,requests.memory=100Mi, used: limits.memory=400Mi,pods=2,requests.memory=200Mi, limited: limits.memory=512Mi,pods=2,requests.memory=256Mi`)
	// A dry run is checked, not charged.
	_, err = pods.Create(ctx, pod("c", small), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	refused(t, err, `pods "c" is forbidden: exceeded quota: compute, requested: limits.memory=200Mi,pods=1,requests.memory=100Mi, used: limits.memory=400Mi,pods=2,requests.memory=200Mi, limited: limits.memory=512Mi,pods=2,requests.memory=256Mi`)

	// A deletion is released by the controller's recount.
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q", "compute", list("pods", "1", "requests.memory", "100Mi", "limits.memory", "200Mi", "count/deployments.apps", "0"))
	if _, err := pods.Create(ctx, pod("c", small), metav1.CreateOptions{}); err != nil {
		t.Errorf("after the delete: %v", err)
	}

	// Objects of any resource, by count.
	deploy := func(name string) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod("x", small).Spec}}}
	}
	if _, err := client.AppsV1().Deployments("q").Create(ctx, deploy("one"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = client.AppsV1().Deployments("q").Create(ctx, deploy("two"), metav1.CreateOptions{})
	refused(t, err, `deployments.apps "two" is forbidden: exceeded quota: compute, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1`)
	if err := client.AppsV1().Deployments("q").Delete(ctx, "one", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q", "compute", list("pods", "2", "requests.memory", "200Mi", "limits.memory", "400Mi", "count/deployments.apps", "0"))

	// Scopes: a BestEffort quota counts only best-effort pods.
	if _, err := client.CoreV1().ResourceQuotas("q2").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "best-effort"},
		Spec: corev1.ResourceQuotaSpec{Hard: list("pods", "1"), Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q2", "best-effort", list("pods", "0"))
	for _, p := range []*corev1.Pod{pod("be", corev1.ResourceRequirements{}), pod("burstable", small)} {
		if _, err := client.CoreV1().Pods("q2").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = client.CoreV1().Pods("q2").Create(ctx, pod("be2", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	refused(t, err, `pods "be2" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1`)

	// A quota on limits only still needs every pod to name them.
	if _, err := client.CoreV1().ResourceQuotas("q2").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "limits"},
		Spec: corev1.ResourceQuotaSpec{Hard: list("limits.cpu", "2")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q2", "limits", list("limits.cpu", "0"))
	_, err = client.CoreV1().Pods("q2").Create(ctx, pod("no-cpu", small), metav1.CreateOptions{})
	refused(t, err, `pods "no-cpu" is forbidden: failed quota: limits: must specify limits.cpu for: main`)

	// A service's update is charged the node ports and load balancer its
	// new type adds.
	svcs := client.CoreV1().Services("q2")
	if _, err := client.CoreV1().ResourceQuotas("q2").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "services"},
		Spec: corev1.ResourceQuotaSpec{Hard: list("services.nodeports", "2", "services.loadbalancers", "0")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q2", "services", list("services.nodeports", "0", "services.loadbalancers", "0"))
	for name, ports := range map[string]int{"one": 1, "two": 2} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}}}
		for i := range ports {
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", i), Port: int32(80 + i)})
		}
		if _, err := svcs.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	retype := func(name string, typ corev1.ServiceType) error {
		svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Spec.Type = typ
		_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
		return err
	}
	if err := retype("two", corev1.ServiceTypeNodePort); err != nil {
		t.Fatal(err)
	}
	q, err = client.CoreV1().ResourceQuotas("q2").Get(ctx, "services", metav1.GetOptions{})
	if err != nil || !quota.Equal(q.Status.Used, list("services.nodeports", "2", "services.loadbalancers", "0")) {
		t.Errorf("after two became a NodePort service: used %v %v", q.Status.Used, err)
	}
	refused(t, retype("one", corev1.ServiceTypeNodePort), `services "one" is forbidden: exceeded quota: services, requested: services.nodeports=1, used: services.nodeports=2, limited: services.nodeports=2`)
	refused(t, retype("two", corev1.ServiceTypeLoadBalancer), `services "two" is forbidden: exceeded quota: services, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0`)
	// An update that adds nothing passes a full quota.
	if _, err := svcs.Patch(ctx, "two", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"web"}}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("labelling two: %v", err)
	}
	// What an update gives up is released by the controller's recount.
	if err := retype("two", corev1.ServiceTypeClusterIP); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, client, "q2", "services", list("services.nodeports", "0", "services.loadbalancers", "0"))
	if err := retype("one", corev1.ServiceTypeNodePort); err != nil {
		t.Errorf("one to NodePort after two gave its ports up: %v", err)
	}
}
