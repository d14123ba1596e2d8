package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestFleetRollout runs the demo (--fast) end to end with real processes
// (the wasmfleet binary as server and five agents, the NATS subscribers,
// the real kubectl), then runs it twice more and stops it half-way: once as
// Ctrl-C does, once by killing the control plane under it. Each time every
// process it started must be gone when it returns.
func TestFleetRollout(t *testing.T) {
	kubectl := testenv.Tool(t, "kubectl")
	bin := testenv.Wasmfleet(t)

	t.Run("end to end", func(t *testing.T) {
		var out testenv.Buffer
		res, err := demo(context.Background(), options{dir: t.TempDir(), wasmfleet: bin, kubectl: kubectl, fast: true}, &out)
		defer dumpOnFailure(t, &out, res)
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
		if err := res.Check(); err != nil {
			t.Errorf("checks: %v", err)
		}
		assertStopped(t, res.PIDs, 8) // server, five agents, two subscribers

		if len(res.SensorDevices) != 4 || len(res.V1Images) != 4 {
			t.Errorf("sensor devices %v, v1 pods %v: want the four hw=pi4 devices", res.SensorDevices, res.V1Images)
		}
		for d, img := range res.V1Images {
			if img != "sensor:v1" || res.V2Images[d] != "sensor:v2" {
				t.Errorf("%s: %s then %s, want sensor:v1 then sensor:v2", d, img, res.V2Images[d])
			}
		}
		if _, ok := res.V2Images["gw-south"]; ok {
			t.Errorf("a sensor pod on gw-south (hw=nuc)")
		}
		// Each of the four devices was without its pod once, one at a time.
		if res.MaxUnavailable != 1 || strings.Count(joinInts(res.Unavailable, " "), "1") != 4 {
			t.Errorf("unavailable sensor devices during the rollout went %v, want 0 1 0 1 0 1 0 1 0", res.Unavailable)
		}
		if !res.OfflineNodeUnknown || !res.OfflineSensorPodStayed || res.Replacement == "" || res.TinyPods[res.Replacement] == res.Offline {
			t.Errorf("offline device %s: %+v", res.Offline, res)
		}
		s := out.String()
		for _, want := range []string{
			"$ kubectl rollout status ds/sensor --timeout=3m",
			`daemon set "sensor" successfully rolled out`,
			"[nats ds]   MODIFIED ",
			"[nats pods] DELETED ",
			"$ kill -9 ",
			`"pressure":`, // kubectl logs of a v2 pod: the new configuration
			"node.kubernetes.io/unreachable:NoExecute",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})

	t.Run("Ctrl-C", func(t *testing.T) {
		var out testenv.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		o := options{dir: t.TempDir(), wasmfleet: bin, kubectl: kubectl, fast: true,
			beforeStep: func(step int, _ []int) {
				if step == 6 { // everything runs: the server, the agents, the subscribers
					cancel()
				}
			}}
		res, err := demo(ctx, o, &out)
		defer dumpOnFailure(t, &out, res)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("demo: %v, want context.Canceled", err)
		}
		assertStopped(t, res.PIDs, 8)
	})

	t.Run("control plane dies", func(t *testing.T) {
		var out testenv.Buffer
		o := options{dir: t.TempDir(), wasmfleet: bin, kubectl: kubectl, fast: true,
			beforeStep: func(step int, pids []int) {
				if step == 6 {
					syscall.Kill(pids[0], syscall.SIGKILL) // the server
					// Until the demo has reaped it: so the step fails on
					// the exit, not on kubectl finding no server.
					for syscall.Kill(pids[0], 0) == nil {
						time.Sleep(10 * time.Millisecond)
					}
				}
			}}
		res, err := demo(context.Background(), o, &out)
		defer dumpOnFailure(t, &out, res)
		if err == nil || !strings.Contains(err.Error(), "server exited unexpectedly") {
			t.Errorf("demo: %v, want the server's unexpected exit", err)
		}
		assertStopped(t, res.PIDs, 8)
	})
}

// assertStopped checks that want processes were started and none of them
// still exists.
func assertStopped(t *testing.T, pids []int, want int) {
	t.Helper()
	if len(pids) != want {
		t.Errorf("%d processes started, want %d", len(pids), want)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after the demo returned (kill 0: %v)", pid, err)
		}
	}
}

// dumpOnFailure logs the demo's output and its processes' logs when the
// test failed.
func dumpOnFailure(t *testing.T, out *testenv.Buffer, res *Result) {
	if !t.Failed() {
		return
	}
	t.Logf("demo output:\n%s", out.String())
	if res == nil {
		return
	}
	for _, l := range res.Logs {
		b, _ := os.ReadFile(l)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		t.Logf("%s (tail):\n%s", l, b)
	}
}
