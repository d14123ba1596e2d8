package nodeagent

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelperPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "my-helper")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := helperPath(exe); err != nil || p != exe {
		t.Errorf("helperPath(%s) = %q, %v", exe, p, err)
	}
	t.Setenv("PATH", dir)
	if p, err := helperPath("my-helper"); err != nil || p != exe {
		t.Errorf("helperPath(my-helper) on $PATH = %q, %v", p, err)
	}
	// Beside the executable (this test binary) comes before $PATH.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	beside := filepath.Join(filepath.Dir(self), "my-helper")
	if err := os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(beside) })
	if p, err := helperPath("my-helper"); err != nil || p != beside {
		t.Errorf("helperPath(my-helper) beside the executable = %q, %v", p, err)
	}
	// A relative path comes back absolute: containerd's shim runs the
	// logger from a directory of its own.
	t.Chdir(dir)
	if p, err := findExecutable("containerd-logger", "./my-helper"); err != nil || p != exe {
		t.Errorf("findExecutable(./my-helper) = %q, %v: want %s", p, err, exe)
	}
	cfg := Defaults()
	cfg.ContainerdLogger = "no-such-logger"
	if p := ContainerdLogger(cfg, slog.New(slog.DiscardHandler)); p != "" {
		t.Errorf("ContainerdLogger of a missing logger = %q", p)
	}
	for _, name := range []string{"", "no-such-helper", filepath.Join(dir, "missing")} {
		if _, err := helperPath(name); err == nil || !strings.Contains(err.Error(), "containerd-helper") {
			t.Errorf("helperPath(%q): %v: want an error naming containerd-helper", name, err)
		}
	}
}
