package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/wasmfleet/wasmfleet/runtime"
)

func TestInfo(t *testing.T) {
	r := newRuntime(t)
	info := r.Info()
	if info.Name != "runc" || !strings.HasPrefix(info.Version, "containerd://") || len(info.Version) == len("containerd://") {
		t.Fatalf("Info() = %+v, want Name runc and Version containerd://<version>", info)
	}
	if err := r.Prepare(context.Background(), runtime.Module{}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
}

func TestOutputAndCompleted(t *testing.T) {
	r := newRuntime(t)
	var stdout, stderr output
	before := time.Now()
	c := start(t, r, runtime.ContainerSpec{ID: "default/out/app/0", Args: []string{"out"}, Stdout: &stdout, Stderr: &stderr})
	if c.ID() != "default/out/app/0" {
		t.Errorf("ID() = %q", c.ID())
	}
	st := exit(t, c)
	if st.ExitCode != 0 || st.Reason != runtime.ReasonCompleted || st.Message != "" {
		t.Fatalf("exit = %+v, want 0 Completed", st)
	}
	if st.StartedAt.Before(before) || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("StartedAt %v FinishedAt %v, started after %v", st.StartedAt, st.FinishedAt, before)
	}
	if got := stdout.String(); got != "hello stdout\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := stderr.String(); got != "hello stderr\n" {
		t.Errorf("stderr = %q", got)
	}
	// The container, its task and its snapshot are gone.
	cid := c.(*container).cid
	if _, err := r.client.LoadContainer(r.ctx(context.Background()), cid); !errdefs.IsNotFound(err) {
		t.Errorf("LoadContainer(%s) after exit: %v, want not found", cid, err)
	}
	sn, err := r.client.SnapshotService(r.cfg.Snapshotter).Stat(r.ctx(context.Background()), cid)
	if !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s after exit: %+v, %v; want not found", cid, sn, err)
	}
	if st2, ok := c.Exit(); !ok || st2 != st {
		t.Errorf("second Exit() = %+v, %v", st2, ok)
	}
	if err := c.Stop(time.Second); err != nil {
		t.Errorf("Stop after exit: %v", err)
	}
}

func TestOneWriterForBoth(t *testing.T) {
	r := newRuntime(t)
	var out output
	st := exit(t, start(t, r, runtime.ContainerSpec{Args: []string{"out"}, Stdout: &out, Stderr: &out}))
	if st.Reason != runtime.ReasonCompleted {
		t.Fatalf("exit = %+v", st)
	}
	if got := out.String(); !strings.Contains(got, "hello stdout\n") || !strings.Contains(got, "hello stderr\n") {
		t.Errorf("output = %q", got)
	}
	// nil writers discard.
	if st := exit(t, start(t, r, runtime.ContainerSpec{Args: []string{"out"}})); st.Reason != runtime.ReasonCompleted {
		t.Errorf("nil writers: exit = %+v", st)
	}
}

func TestExitCodes(t *testing.T) {
	r := newRuntime(t)
	for _, tc := range []struct {
		name    string
		spec    runtime.ContainerSpec
		code    int32
		reason  string
		message string
	}{
		{name: "image CMD", spec: runtime.ContainerSpec{}, code: 0, reason: runtime.ReasonCompleted},
		{name: "exit 3", spec: runtime.ContainerSpec{Args: []string{"exit", "3"}}, code: 3, reason: runtime.ReasonError},
		{name: "command replaces entrypoint", spec: runtime.ContainerSpec{Command: []string{"/app", "exit"}, Args: []string{"5"}}, code: 5, reason: runtime.ReasonError},
		{name: "command alone", spec: runtime.ContainerSpec{Command: []string{"/app", "true"}}, code: 0, reason: runtime.ReasonCompleted},
		{name: "unknown subcommand", spec: runtime.ContainerSpec{Args: []string{"nope"}}, code: 2, reason: runtime.ReasonError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := exit(t, start(t, r, tc.spec))
			if st.ExitCode != tc.code || st.Reason != tc.reason || st.Message != tc.message {
				t.Fatalf("exit = %+v, want %d %s %q", st, tc.code, tc.reason, tc.message)
			}
		})
	}
}

func TestEnvAndArgs(t *testing.T) {
	r := newRuntime(t)
	var out output
	st := exit(t, start(t, r, runtime.ContainerSpec{
		Args:     []string{"env", "two words", "x=y"},
		Env:      []runtime.EnvVar{{Name: "GREETING", Value: "hello world"}, {Name: "FROM_IMAGE", Value: "overridden"}, {Name: "EMPTY", Value: ""}},
		Hostname: "web-0",
		Stdout:   &out,
	}))
	if st.Reason != runtime.ReasonCompleted {
		t.Fatalf("exit = %+v", st)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var args []string
	env := map[string]string{}
	hostname := ""
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "hostname="):
			hostname = strings.TrimPrefix(l, "hostname=")
		case strings.HasPrefix(l, "arg="):
			args = append(args, strings.TrimPrefix(l, "arg="))
		case strings.HasPrefix(l, "env="):
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "env="), "=")
			env[k] = v
		}
	}
	if want := []string{"/app", "env", "two words", "x=y"}; !reflect.DeepEqual(args, want) {
		t.Errorf("argv = %q, want %q", args, want)
	}
	if hostname != "web-0" {
		t.Errorf("hostname %q, want the spec's web-0", hostname)
	}
	for k, want := range map[string]string{"GREETING": "hello world", "FROM_IMAGE": "overridden", "EMPTY": "", "PATH": "/"} {
		if got, ok := env[k]; !ok || got != want {
			t.Errorf("env %s = %q (set %v), want %q; all: %v", k, got, ok, want, env)
		}
	}
}

func TestMounts(t *testing.T) {
	r := newRuntime(t)
	ro, rw := t.TempDir(), t.TempDir()
	mounts := []runtime.Mount{
		{HostPath: ro, GuestPath: "/config", ReadOnly: true},
		{HostPath: rw, GuestPath: "/data/scratch"},
	}
	var out output
	st := exit(t, start(t, r, runtime.ContainerSpec{Args: []string{"write", "/config/x"}, Mounts: mounts, Stderr: &out}))
	if st.ExitCode != 4 || st.Reason != runtime.ReasonError {
		t.Fatalf("writing a read-only mount: exit = %+v (stderr %q), want 4 Error", st, out.String())
	}
	if !strings.Contains(out.String(), "read-only file system") {
		t.Errorf("stderr = %q, want EROFS", out.String())
	}
	if _, err := os.Stat(filepath.Join(ro, "x")); !os.IsNotExist(err) {
		t.Errorf("file on the read-only host dir: %v", err)
	}
	st = exit(t, start(t, r, runtime.ContainerSpec{Args: []string{"write", "/data/scratch/y"}, Mounts: mounts}))
	if st.Reason != runtime.ReasonCompleted {
		t.Fatalf("writing a read-write mount: exit = %+v", st)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "y")); err != nil || string(b) != "x" {
		t.Errorf("host file = %q, %v", b, err)
	}

	_, err := r.Start(context.Background(), runtime.ContainerSpec{ID: "missing-mount", Image: testImage,
		Mounts: []runtime.Mount{{HostPath: filepath.Join(ro, "nope"), GuestPath: "/nope"}}})
	if err == nil || !strings.Contains(err.Error(), "/nope") {
		t.Errorf("missing mount directory: err = %v", err)
	}
}

func TestMemoryLimitOOMKilled(t *testing.T) {
	r := newRuntime(t)
	var out output
	st := exit(t, start(t, r, runtime.ContainerSpec{Args: []string{"alloc", "1024"}, MemoryLimit: 32 << 20, Stdout: &out}))
	if st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonOOMKilled || !strings.Contains(st.Message, "memory limit") {
		t.Fatalf("exit = %+v (stdout %q), want 137 OOMKilled", st, out.String())
	}
	// Under the limit the same program completes.
	st = exit(t, start(t, r, runtime.ContainerSpec{Args: []string{"alloc", "8"}, MemoryLimit: 64 << 20, Stdout: &out}))
	if st.Reason != runtime.ReasonCompleted {
		t.Fatalf("within the limit: exit = %+v", st)
	}
}

func TestStopTrappedSIGTERM(t *testing.T) {
	r := newRuntime(t)
	var out output
	c := start(t, r, runtime.ContainerSpec{Args: []string{"trap", "7"}, Stdout: &out})
	out.waitFor(t, "ready")
	if err := c.Stop(time.Minute); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, ok := c.Exit()
	if !ok || st.ExitCode != 7 || st.Reason != runtime.ReasonError {
		t.Fatalf("exit = %+v, %v; want the guest's own 7", st, ok)
	}
	if !strings.Contains(out.String(), "got SIGTERM") {
		t.Errorf("stdout = %q", out.String())
	}
}

func TestStopIgnoredSIGTERMIsKilled(t *testing.T) {
	r := newRuntime(t)
	var out output
	c := start(t, r, runtime.ContainerSpec{Args: []string{"ignore"}, Stdout: &out})
	out.waitFor(t, "ready")
	if err := c.Stop(500 * time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, ok := c.Exit()
	if !ok || st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError || !strings.Contains(st.Message, "stopped") {
		t.Fatalf("exit = %+v, %v; want 137 Error stopped", st, ok)
	}
	if err := c.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopWithoutGraceDoesNotWait(t *testing.T) {
	r := newRuntime(t)
	var out output
	c := start(t, r, runtime.ContainerSpec{Args: []string{"trap", "0"}, Stdout: &out})
	out.waitFor(t, "ready")
	if err := c.Stop(0); err != nil {
		t.Fatalf("Stop(0): %v", err)
	}
	st := exit(t, c)
	if st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError {
		t.Fatalf("exit = %+v, want 137 Error (SIGKILL, no trap)", st)
	}
	if strings.Contains(out.String(), "got SIGTERM") {
		t.Errorf("Stop(0) sent SIGTERM: %q", out.String())
	}
}

func TestCloseStopsRunningContainers(t *testing.T) {
	r := newRuntime(t)
	var cs []runtime.Container
	for i := 0; i < 3; i++ {
		var out output
		c := start(t, r, runtime.ContainerSpec{ID: fmt.Sprintf("default/sleep/app/%d", i), Args: []string{"ignore"}, Stdout: &out})
		out.waitFor(t, "ready")
		cs = append(cs, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range cs {
		st, ok := c.Exit()
		if !ok || st.ExitCode != runtime.ExitCodeKilled || st.Reason != runtime.ReasonError {
			t.Errorf("%s after Close: %+v, %v", c.ID(), st, ok)
		}
	}
	if _, err := r.Start(ctx, runtime.ContainerSpec{ID: "late", Image: testImage}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Start after Close: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Nothing of this runtime is left in containerd.
	other := newRuntime(t)
	left, err := other.client.Containers(other.ctx(ctx), fmt.Sprintf("labels.%q==%q", LabelOwner, r.cfg.Owner))
	if err != nil || len(left) != 0 {
		t.Errorf("containers left after Close: %d, %v", len(left), err)
	}
}

func TestConcurrentStarts(t *testing.T) {
	r := newRuntime(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out output
			c, err := r.Start(context.Background(), runtime.ContainerSpec{
				ID: fmt.Sprintf("default/many/app/%d", i), Image: testImage,
				Args: []string{"exit", fmt.Sprint(i)}, Stdout: &out,
			})
			if err != nil {
				errs <- err
				return
			}
			select {
			case <-c.Done():
			case <-time.After(2 * time.Minute):
				errs <- fmt.Errorf("%d did not exit", i)
				return
			}
			if st, _ := c.Exit(); st.ExitCode != int32(i) {
				errs <- fmt.Errorf("container %d exited %+v", i, st)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMissingImage(t *testing.T) {
	r := newRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct{ image, want string }{
		// A registry on a closed loopback port: the pull fails at once.
		{"127.0.0.1:1/nope/missing:v1", "127.0.0.1:1/nope/missing:v1"},
		{"Not A Reference", "Not A Reference"},
	} {
		_, err := r.Start(ctx, runtime.ContainerSpec{ID: "default/missing/app/0", Image: tc.image})
		if !errors.Is(err, runtime.ErrImagePull) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%q): %v, want ErrImagePull naming the image", tc.image, err)
		}
		if err := r.Pull(ctx, tc.image); !errors.Is(err, runtime.ErrImagePull) {
			t.Errorf("Pull(%q): %v, want ErrImagePull", tc.image, err)
		}
	}
	if err := r.Pull(ctx, testImage); err != nil {
		t.Errorf("Pull of an imported image: %v", err)
	}
	if _, err := r.Start(ctx, runtime.ContainerSpec{ID: "x"}); err == nil {
		t.Error("Start without an image succeeded")
	}
}

func TestNewRemovesLeftoversOfItsOwner(t *testing.T) {
	crashed := newRuntime(t)
	var out output
	c := start(t, crashed, runtime.ContainerSpec{Args: []string{"ignore"}, Stdout: &out})
	out.waitFor(t, "ready")
	// The agent restarts without having closed its runtime: a new Runtime
	// with the same owner removes the old container.
	r, err := New(context.Background(), crashed.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	st := exit(t, c)
	if st.ExitCode != runtime.ExitCodeKilled {
		t.Errorf("leftover exited %+v", st)
	}
	left, err := r.client.Containers(r.ctx(context.Background()), fmt.Sprintf("labels.%q==%q", LabelOwner, r.cfg.Owner))
	if err != nil || len(left) != 0 {
		t.Errorf("containers left: %d, %v", len(left), err)
	}
}

func TestNewFailsWithoutContainerd(t *testing.T) {
	_, err := New(context.Background(), Config{Address: filepath.Join(t.TempDir(), "no.sock"), Timeout: time.Second})
	if err == nil {
		t.Fatal("New on a missing socket succeeded")
	}
	if err := (Config{Namespace: "bad/ns"}).Validate(); err == nil {
		t.Error("Validate accepted namespace bad/ns")
	}
}

func TestContainerID(t *testing.T) {
	for _, tc := range []struct{ spec, prefix string }{
		{"default/web-1/app/0", "default-web-1-app-0-"},
		{"ns//pod..x/", "ns-pod-x-"},
		{"---", ""},
		{strings.Repeat("a", 100), strings.Repeat("a", 58) + "-"},
	} {
		id := containerID(tc.spec)
		if !strings.HasPrefix(id, tc.prefix) || len(id) > 76 || !identifier.MatchString(id) {
			t.Errorf("containerID(%q) = %q, want prefix %q and a containerd identifier", tc.spec, id, tc.prefix)
		}
	}
	if containerID("a") == containerID("a") {
		t.Error("containerID is not unique per call")
	}
}

func TestBindMounts(t *testing.T) {
	got := bindMounts([]runtime.Mount{{HostPath: "/h/a", GuestPath: "/a", ReadOnly: true}, {HostPath: "/h/b", GuestPath: "/b"}})
	if got[0].Type != "bind" || got[0].Source != "/h/a" || got[0].Destination != "/a" || !reflect.DeepEqual(got[0].Options, []string{"rbind", "rprivate", "ro"}) {
		t.Errorf("read-only mount = %+v", got[0])
	}
	if !reflect.DeepEqual(got[1].Options, []string{"rbind", "rprivate", "rw"}) {
		t.Errorf("read-write mount = %+v", got[1])
	}
}
