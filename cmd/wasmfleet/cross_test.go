package main

import (
	"bytes"
	"context"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestCrossBuildAndARM64Agent runs `go tool task build:cross`, checks the
// nine binaries (wasmfleet, the lean wasmfleet-agent and its helper
// wasmfleet-containerd for three machines) are static ELF files for their
// machines, then starts the linux/arm64
// wasmfleet-agent under qemu-aarch64-static as a node agent of a local
// control plane and sees a wasm pod (a module from the cluster's store)
// reach Running on it.
func TestCrossBuildAndARM64Agent(t *testing.T) {
	qemu := testenv.Tool(t, "qemu-aarch64-static")
	out := t.TempDir()
	build := exec.Command(testenv.Tool(t, "go"), "tool", "task", "build:cross", "OUT="+out)
	build.Dir = filepath.Join("..", "..")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build:cross: %v\n%s", err, b)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM} {
		for _, bin := range []string{"wasmfleet-linux-" + arch, "wasmfleet-agent-linux-" + arch, "wasmfleet-containerd-linux-" + arch, "wasmfleet-logger-linux-" + arch} {
			f, err := elf.Open(filepath.Join(out, bin))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != machine {
				t.Errorf("%s: machine %v, want %v", bin, f.Machine, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s: not static (%v program header)", bin, p.Type)
				}
			}
			f.Close()
		}
	}

	cp := testcluster.Start(t)
	ctx := context.Background()
	tiny, _ := filepath.Abs("../../examples/tiny/tiny.wasm")
	var pushOut, pushErr bytes.Buffer
	if code := run(ctx, []string{"module", "push", "tiny:v1", tiny, "--kubeconfig", cp.Kubeconfig()}, &pushOut, &pushErr); code != 0 {
		t.Fatalf("module push: %d %s", code, pushErr.String())
	}

	agentCtx, stopAgent := context.WithCancel(ctx)
	var agentLog bytes.Buffer
	agent := exec.CommandContext(agentCtx, qemu, filepath.Join(out, "wasmfleet-agent-linux-arm64"),
		"--server", cp.URL, "--token-file", cp.NodeToken(), "--node-name", "arm-1",
		"--data-dir", t.TempDir(), "--lease-renew-interval", "2s",
		// The guest host is the agent's executable started again: qemu-user
		// without binfmt_misc cannot exec an arm64 binary, so the guests
		// run in the agent's process here.
		"--guest-host=false")
	agent.Stdout, agent.Stderr = &agentLog, &agentLog
	agent.WaitDelay = 10 * time.Second
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopAgent()
		_ = agent.Wait()
		if t.Failed() {
			t.Logf("arm64 agent log:\n%s", agentLog.String())
		}
	})

	client := cp.Client(t)
	if _, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny-arm"},
		Spec:       corev1.PodSpec{NodeName: "arm-1", RuntimeClassName: ptrTo("wasm"), Containers: []corev1.Container{{Name: "main", Image: "tiny:v1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Emulation is slow (the agent and wazero's arm64 compiler run under
	// qemu), hence the generous deadline.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, errN := client.CoreV1().Nodes().Get(ctx, "arm-1", metav1.GetOptions{})
		p, errP := client.CoreV1().Pods("default").Get(ctx, "tiny-arm", metav1.GetOptions{})
		if errN == nil && errP == nil && n.Labels["kubernetes.io/arch"] == "arm64" && n.Status.NodeInfo.Architecture == "arm64" &&
			p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("arm64 node (%v) / pod (%v, %+v) not running after 5 minutes", errN, errP, p.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
