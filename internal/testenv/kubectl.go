package testenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// KubectlCmd returns the real kubectl (see Kubectl) set to use kubeconfig,
// with its HOME and discovery cache under dir (a new temp dir if empty);
// it is killed after a minute.
func KubectlCmd(t testing.TB, kubeconfig, dir string, args ...string) *exec.Cmd {
	t.Helper()
	bin := Kubectl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	if dir == "" {
		dir = t.TempDir()
	}
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HOME="+home, "KUBECACHEDIR="+filepath.Join(home, "cache"))
	return cmd
}

// RunKubectl runs kubectl with stdin and returns its combined output and
// its exit error; failing to run it at all fails the test.
func RunKubectl(t testing.TB, kubeconfig, dir, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := KubectlCmd(t, kubeconfig, dir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run kubectl: %v", err)
	}
	return out.String(), err
}

// MustKubectl is RunKubectl where a non-zero exit fails the test.
func MustKubectl(t testing.TB, kubeconfig, dir, stdin string, args ...string) string {
	t.Helper()
	out, err := RunKubectl(t, kubeconfig, dir, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
