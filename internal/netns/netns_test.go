//go:build linux

package netns

import (
	"os"
	"testing"
)

// TestRun: fn runs in a new namespace, or in the one at a path; the caller
// stays where it was. Needs CAP_SYS_ADMIN (root), as the agent does.
func TestRun(t *testing.T) {
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	here := func() string {
		ns, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			t.Error(err)
		}
		return ns
	}
	var inNew, inOwn string
	if err := Run("", func() error { inNew = here(); return nil }); err != nil {
		t.Fatal(err)
	}
	if inNew == "" || inNew == own {
		t.Errorf("a new namespace: fn ran in %q, the process is in %q", inNew, own)
	}
	if err := Run("/proc/self/ns/net", func() error { inOwn = here(); return nil }); err != nil {
		t.Fatal(err)
	}
	if inOwn != own {
		t.Errorf("the process's namespace: fn ran in %q, want %q", inOwn, own)
	}
	if err := Run("/nonexistent", func() error { return nil }); err == nil {
		t.Error("a missing namespace was entered")
	}
	if now, _ := os.Readlink("/proc/self/ns/net"); now != own {
		t.Errorf("the process moved from %q to %q", own, now)
	}
}
