package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// show prints a command as the user would type it.
func (f *fleet) show(args ...string) {
	f.out.printf("$ %s\n", shellQuote(args))
}

// kubectl prints and runs a kubectl command, its output going to the
// console.
func (f *fleet) kubectl(ctx context.Context, args ...string) error {
	f.show(append([]string{"kubectl"}, args...)...)
	w := f.out.lines("", nil)
	defer w.Flush()
	return runCmd(ctx, f.o.repo, f.kubeEnv(), w, append([]string{f.o.kubectl}, args...)...)
}

func (f *fleet) kubeEnv() []string {
	return []string{"KUBECONFIG=" + f.kc, "KUBECACHEDIR=" + filepath.Join(f.dir, "kube-cache")}
}

// wasmfleetCmd prints and runs a wasmfleet command.
func (f *fleet) wasmfleetCmd(ctx context.Context, args ...string) error {
	f.show(append([]string{"wasmfleet"}, args...)...)
	w := f.out.lines("", nil)
	defer w.Flush()
	return runCmd(ctx, f.o.repo, nil, w, append([]string{f.bin}, args...)...)
}

// goBuild prints and runs go build.
func (f *fleet) goBuild(ctx context.Context, env []string, out, pkg string) error {
	f.show(append(append(slices.Clone(env), "go", "build", "-o"), out, pkg)...)
	w := f.out.lines("", nil)
	defer w.Flush()
	ctx, cancel := context.WithTimeoutCause(ctx, buildTimeout, fmt.Errorf("go build %s took more than %s", pkg, buildTimeout))
	defer cancel()
	return runCmd(ctx, f.o.repo, env, w, "go", "build", "-o", out, pkg)
}

func (f *fleet) build(ctx context.Context) error {
	bin := filepath.Join(f.dir, "bin")
	f.bin = f.o.wasmfleet
	if f.bin == "" {
		f.bin = filepath.Join(bin, "wasmfleet")
		if err := f.goBuild(ctx, nil, f.bin, "./cmd/wasmfleet"); err != nil {
			return err
		}
	}
	if err := f.goBuild(ctx, nil, filepath.Join(bin, "nats-subscriber"), "./examples/nats-subscriber"); err != nil {
		return err
	}
	v1 := filepath.Join(f.dir, "modules", "sensor-v1.wasm")
	if err := f.goBuild(ctx, []string{"GOOS=wasip1", "GOARCH=wasm"}, v1, "./examples/sensor"); err != nil {
		return err
	}
	// v2 runs the same code with a new configuration (sensor-v2.yaml); a
	// custom section makes it a module of its own, with its own digest.
	b, err := os.ReadFile(v1)
	if err != nil {
		return err
	}
	v2 := filepath.Join(f.dir, "modules", "sensor-v2.wasm")
	if err := os.WriteFile(v2, withVersionSection(b, "v2"), 0o644); err != nil {
		return err
	}
	f.out.printf("(sensor-v2.wasm is sensor-v1.wasm plus a custom section \"wasmfleet.demo.version\": same code, new digest)\n")
	f.out.printf("(wasmfleet below is %s)\n", f.bin)
	return nil
}

func (f *fleet) startServer(ctx context.Context) error {
	f.server = filepath.Join(f.dir, "server")
	f.kc = filepath.Join(f.server, "kubeconfig.yaml")
	addrs := make([]string, 4)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	args := []string{"server", "--data-dir", f.server,
		"--api-listen", addrs[0], "--nats-listen", addrs[1], "--etcd-client-listen", addrs[2], "--etcd-peer-listen", addrs[3],
		"--node-monitor-grace-period", f.t.grace.String(), "--default-toleration-seconds", fmt.Sprint(f.t.toleration)}
	if f.o.fast {
		args = append(args, "--etcd-unsafe-no-fsync")
	}
	f.show(append([]string{"wasmfleet"}, args...)...)
	logPath := filepath.Join(f.dir, "logs", "server.log")
	if _, err := f.start("server", logPath, nil, nil, append([]string{f.bin}, args...)...); err != nil {
		return err
	}
	err := poll(ctx, "the control plane to be ready (/readyz)", waitLong, func(ctx context.Context) (bool, error) {
		for _, name := range []string{"kubeconfig.yaml", "node-token", "nats-url"} {
			if _, err := os.Stat(filepath.Join(f.server, name)); err != nil {
				return false, err
			}
		}
		if f.client == nil {
			rc, err := clientcmd.BuildConfigFromFlags("", f.kc)
			if err != nil {
				return false, err
			}
			if f.client, err = kubernetes.NewForConfig(rc); err != nil {
				return false, err
			}
			f.apiURL = rc.Host
		}
		_, err := f.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, err
	})
	if err != nil {
		return err
	}
	f.out.printf("control plane up (log: %s); node monitor grace period %s, default toleration %ds\n\n", logPath, f.t.grace, f.t.toleration)
	f.out.printf("$ export KUBECONFIG=%s\n", f.kc)
	return nil
}

func (f *fleet) startDevices(ctx context.Context) error {
	token := filepath.Join(f.server, "node-token")
	for _, d := range fleetDevices() {
		args := []string{"agent", "--server", f.apiURL, "--token-file", token, "--node-name", d.name,
			"--data-dir", filepath.Join(f.dir, "devices", d.name), "--labels", "site=" + d.site + ",hw=" + d.hw,
			"--lease-renew-interval", f.t.renew.String(), "--lease-duration", f.t.lease.String()}
		f.show(append([]string{"wasmfleet"}, args...)...)
		p, err := f.start(d.name, filepath.Join(f.dir, "logs", d.name+".log"), nil, nil, append([]string{f.bin}, args...)...)
		if err != nil {
			return err
		}
		f.agents[d.name] = p
		if d.hw == sensorHW {
			f.res.SensorDevices = append(f.res.SensorDevices, d.name)
		}
	}
	err := poll(ctx, "five Ready nodes", waitLong, func(ctx context.Context) (bool, error) {
		nodes, err := f.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for i := range nodes.Items {
			if nodeReady(&nodes.Items[i]) == corev1.ConditionTrue {
				ready++
			}
		}
		return ready == len(fleetDevices()), fmt.Errorf("%d of %d nodes Ready", ready, len(fleetDevices()))
	})
	if err != nil {
		return err
	}
	f.out.printf("(agent logs: %s)\n", filepath.Join(f.dir, "logs", "<device>.log"))
	return f.kubectl(ctx, "get", "nodes", "-L", "site,hw")
}

func (f *fleet) pushModules(ctx context.Context) error {
	for _, m := range [][2]string{
		{"sensor:v1", filepath.Join(f.dir, "modules", "sensor-v1.wasm")},
		{"sensor:v2", filepath.Join(f.dir, "modules", "sensor-v2.wasm")},
		{"tiny:v1", "examples/tiny/tiny.wasm"},
	} {
		if err := f.wasmfleetCmd(ctx, "module", "push", m[0], m[1], "--kubeconfig", f.kc); err != nil {
			return err
		}
	}
	return f.wasmfleetCmd(ctx, "module", "ls", "--kubeconfig", f.kc)
}

// subscribe starts two NATS subscribers, for DaemonSet and for pod events,
// their lines prefixed and counted.
func (f *fleet) subscribe(ctx context.Context) error {
	natsURL, err := os.ReadFile(filepath.Join(f.server, "nats-url"))
	if err != nil {
		return err
	}
	for _, s := range []struct {
		subject, prefix string
		count           *atomic.Int32
	}{
		{"wasmfleet.events.daemonsets.>", "  [nats ds]   ", &f.dsEvents},
		{"wasmfleet.events.pods.default.>", "  [nats pods] ", &f.podEvents},
	} {
		// The URL carries the admin credentials; it is not printed.
		f.out.printf("$ nats-subscriber --url \"$(cat %s)\" --subject %s\n", filepath.Join(f.server, "nats-url"), shellQuote([]string{s.subject}))
		stdout := f.out.lines(s.prefix, func(string) { s.count.Add(1) })
		stderr := f.out.lines(s.prefix, func(line string) {
			if strings.HasPrefix(line, "subscribed to ") {
				f.subscribed.Add(1)
			}
		})
		argv := []string{filepath.Join(f.dir, "bin", "nats-subscriber"), "--url", strings.TrimSpace(string(natsURL)), "--subject", s.subject}
		if _, err := f.start("nats-subscriber "+s.subject, "", stdout, stderr, argv...); err != nil {
			return err
		}
	}
	f.out.printf("(nats-subscriber is examples/nats-subscriber, built in step 1; go run ./examples/nats-subscriber … is the same)\n")
	return poll(ctx, "the subscribers to subscribe", time.Minute, func(context.Context) (bool, error) {
		return f.subscribed.Load() == 2, nil
	})
}

func (f *fleet) deployV1(ctx context.Context) error {
	if err := f.kubectl(ctx, "apply", "-f", "examples/fleet-rollout/sensor-v1.yaml", "-f", "examples/fleet-rollout/tiny.yaml"); err != nil {
		return err
	}
	if err := f.kubectl(ctx, "rollout", "status", "ds/sensor", "--timeout=3m"); err != nil {
		return err
	}
	if err := f.kubectl(ctx, "rollout", "status", "deploy/tiny", "--timeout=3m"); err != nil {
		return err
	}
	images, err := f.waitSensorImage(ctx, "sensor:v1")
	if err != nil {
		return err
	}
	f.res.V1Images = images
	return f.kubectl(ctx, "get", "pods", "-o", "wide")
}

// waitSensorImage waits until every sensor device runs exactly one live,
// Ready sensor pod of image, no other sensor pod is left, and returns the
// image per device.
func (f *fleet) waitSensorImage(ctx context.Context, image string) (map[string]string, error) {
	var images map[string]string
	err := poll(ctx, "a Ready "+image+" pod on every sensor device, and no other sensor pod", waitLong, func(ctx context.Context) (bool, error) {
		pods, err := f.pods(ctx, "app=sensor")
		if err != nil {
			return false, err
		}
		images = map[string]string{}
		ok := len(pods) == len(f.res.SensorDevices)
		for _, p := range pods {
			images[p.Spec.NodeName] = p.Spec.Containers[0].Image
			ok = ok && p.DeletionTimestamp == nil && podReady(&p) && p.Spec.Containers[0].Image == image
		}
		return ok && len(images) == len(f.res.SensorDevices), fmt.Errorf("sensor pods by device: %v", images)
	})
	return images, err
}

func (f *fleet) rolloutV2(ctx context.Context) error {
	w, err := startAvailabilityWatch(ctx, f.client, f.res.SensorDevices)
	if err != nil {
		return err
	}
	err = f.kubectl(ctx, "apply", "-f", "examples/fleet-rollout/sensor-v2.yaml")
	if err == nil {
		err = f.kubectl(ctx, "rollout", "status", "ds/sensor", "--timeout=3m")
	}
	if err == nil {
		f.res.V2Images, err = f.waitSensorImage(ctx, "sensor:v2")
	}
	w.stop()
	f.res.MaxUnavailable, f.res.Unavailable, f.res.WatchEvents = w.max, w.seen, w.events
	if err != nil {
		return err
	}
	if w.err != nil {
		return fmt.Errorf("watch sensor pods: %w", w.err)
	}
	f.out.printf("\nA pod watch saw %d events during the rollout; sensor devices without a Ready pod went %s (at most %d at once, maxUnavailable is 1)\n\n",
		w.events, joinInts(w.seen, " → "), w.max)
	if err := f.kubectl(ctx, "get", "pods", "-l", "app=sensor", "-o", "wide"); err != nil {
		return err
	}
	pods, err := f.pods(ctx, "app=sensor")
	if err != nil || len(pods) == 0 {
		return fmt.Errorf("list sensor pods: %v", err)
	}
	// The v2 reading carries the new metric (pressure); the log comes from
	// the device's agent over NATS.
	return f.kubectl(ctx, "logs", pods[0].Name, "--tail=1")
}

func (f *fleet) offline(ctx context.Context) error {
	sensors, err := f.pods(ctx, "app=sensor")
	if err != nil {
		return err
	}
	tinies, err := f.pods(ctx, "app=tiny")
	if err != nil {
		return err
	}
	var sensor, tiny *corev1.Pod
	for _, d := range f.res.SensorDevices {
		sensor, tiny = podOn(sensors, d), podOn(tinies, d)
		if sensor != nil && tiny != nil {
			f.res.Offline = d
			break
		}
	}
	if f.res.Offline == "" {
		return fmt.Errorf("no device runs both a sensor pod and a tiny pod")
	}
	off := f.res.Offline
	f.res.OfflineSensorPod, f.res.EvictedPod = sensor.Name, tiny.Name
	f.out.printf("%s runs the sensor pod %s and the Deployment pod %s. The Deployment's pod tolerates an unreachable node for %ds:\n",
		off, sensor.Name, tiny.Name, f.t.toleration)
	if err := f.kubectl(ctx, "get", "pod", tiny.Name, "-o", "jsonpath={range .spec.tolerations[*]}{.key} {.effect} tolerationSeconds={.tolerationSeconds}{\"\\n\"}{end}"); err != nil {
		return err
	}
	f.out.printf("while the DaemonSet's pod tolerates it for ever (no tolerationSeconds):\n")
	if err := f.kubectl(ctx, "get", "pod", sensor.Name, "-o", "jsonpath={range .spec.tolerations[?(@.key==\"node.kubernetes.io/unreachable\")]}{.key} {.effect} tolerationSeconds={.tolerationSeconds}{\"\\n\"}{end}"); err != nil {
		return err
	}

	agent := f.agents[off]
	f.out.printf("\n%s loses power: its agent (pid %d) is SIGKILLed.\n", off, agent.pid())
	f.show("kill", "-9", fmt.Sprint(agent.pid()))
	agent.kill()

	f.out.printf("Waiting for the control plane to notice (node monitor grace period %s)…\n", f.t.grace)
	err = poll(ctx, off+" Unknown and tainted unreachable", waitLong, func(ctx context.Context) (bool, error) {
		n, err := f.client.CoreV1().Nodes().Get(ctx, off, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		tainted := slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeUnreachable && t.Effect == corev1.TaintEffectNoExecute
		})
		return nodeReady(n) == corev1.ConditionUnknown && tainted, fmt.Errorf("ready %s, taints %v", nodeReady(n), n.Spec.Taints)
	})
	if err != nil {
		return err
	}
	f.res.OfflineNodeUnknown = true
	if err := f.kubectl(ctx, "get", "nodes", "-L", "site,hw"); err != nil {
		return err
	}
	if err := f.kubectl(ctx, "get", "node", off, "-o", "jsonpath={range .spec.taints[*]}{.key}:{.effect}{\"\\n\"}{end}"); err != nil {
		return err
	}

	f.out.printf("\nWaiting for the Deployment's pod to be evicted after %ds and replaced on another device…\n", f.t.toleration)
	err = poll(ctx, "deployment tiny available again, off "+off, waitLong, func(ctx context.Context) (bool, error) {
		d, err := f.client.AppsV1().Deployments("default").Get(ctx, "tiny", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pods, err := f.pods(ctx, "app=tiny")
		if err != nil {
			return false, err
		}
		live := map[string]string{}
		for _, p := range pods {
			if p.DeletionTimestamp == nil && podReady(&p) {
				live[p.Name] = p.Spec.NodeName
			}
		}
		f.res.TinyPods, f.res.TinyAvailable = live, d.Status.AvailableReplicas
		_, evictedLive := live[tiny.Name]
		return !evictedLive && len(live) == tinyReplicas && d.Status.AvailableReplicas == tinyReplicas,
			fmt.Errorf("available %d, live pods %v", d.Status.AvailableReplicas, live)
	})
	if err != nil {
		return err
	}
	p, err := f.client.CoreV1().Pods("default").Get(ctx, sensor.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	all, err2 := f.pods(ctx, "app=sensor")
	if err2 != nil {
		return err2
	}
	f.res.OfflineSensorPodStayed = err == nil && p.UID == sensor.UID && p.Spec.NodeName == off && p.DeletionTimestamp == nil &&
		len(all) == len(f.res.SensorDevices)
	if err := f.kubectl(ctx, "get", "pods", "-o", "wide"); err != nil {
		return err
	}
	f.out.printf("\n%s (DaemonSet) is still bound to %s: it will run again there when the device comes back.\n", sensor.Name, off)
	for pod, node := range f.res.TinyPods {
		if !slices.ContainsFunc(tinies, func(p corev1.Pod) bool { return p.Name == pod }) {
			f.res.Replacement = pod
			f.out.printf("%s (Deployment) was evicted; its replacement %s runs on %s.\n", tiny.Name, pod, node)
		}
	}
	return nil
}

func (f *fleet) summary(ctx context.Context) error {
	err := poll(ctx, "DaemonSet and pod events from the NATS subscribers", time.Minute, func(context.Context) (bool, error) {
		return f.dsEvents.Load() > 0 && f.podEvents.Load() > 0, nil
	})
	f.res.DaemonSetEvents, f.res.PodEvents = int(f.dsEvents.Load()), int(f.podEvents.Load())
	if err != nil {
		return err
	}
	r := f.res
	mark := func(ok bool) string {
		if ok {
			return "ok  "
		}
		return "FAIL"
	}
	allV2 := len(r.V2Images) == len(r.SensorDevices)
	for _, d := range r.SensorDevices {
		allV2 = allV2 && r.V2Images[d] == "sensor:v2"
	}
	f.out.printf("%s sensor:v2 on every hw=pi4 device (%s)\n", mark(allV2), strings.Join(r.SensorDevices, ", "))
	f.out.printf("%s at most 1 sensor device unavailable at once during the rollout (the pod watch saw at most %d)\n", mark(r.MaxUnavailable <= 1 && r.WatchEvents > 0), r.MaxUnavailable)
	f.out.printf("%s %s turned Unknown and tainted unreachable\n", mark(r.OfflineNodeUnknown), r.Offline)
	f.out.printf("%s sensor pod %s stayed on %s\n", mark(r.OfflineSensorPodStayed), r.OfflineSensorPod, r.Offline)
	f.out.printf("%s deployment tiny: %d/%d available, off %s (%s replaced)\n", mark(r.TinyAvailable == tinyReplicas), r.TinyAvailable, tinyReplicas, r.Offline, r.EvictedPod)
	f.out.printf("%s NATS: %d DaemonSet events, %d pod events printed\n", mark(r.DaemonSetEvents > 0 && r.PodEvents > 0), r.DaemonSetEvents, r.PodEvents)
	return nil
}

func (f *fleet) pods(ctx context.Context, selector string) ([]corev1.Pod, error) {
	l, err := f.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}
