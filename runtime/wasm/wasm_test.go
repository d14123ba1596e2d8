package wasm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

func TestInfo(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	info := r.Info()
	if info.Name != "wasm" || !strings.HasPrefix(info.Version, "wazero ") {
		t.Fatalf("info = %+v", info)
	}
	want := wasm.EngineInterpreter
	if goruntime.GOARCH == "amd64" || goruntime.GOARCH == "arm64" {
		want = wasm.EngineCompiler
	}
	if info.Mode != want {
		t.Fatalf("mode = %q on %s, want %q", info.Mode, goruntime.GOARCH, want)
	}
	ri := newRuntime(t, wasm.Config{Engine: wasm.EngineInterpreter})
	if got := ri.Info().Mode; got != wasm.EngineInterpreter {
		t.Fatalf("interpreter mode = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []wasm.Config{
		{Engine: "jit"},
		{DefaultMemoryLimit: -1},
		{IdleModules: -1},
		{CompileWorkers: -1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: Validate() = nil", cfg)
		}
		if _, err := wasm.New(context.Background(), cfg); err == nil {
			t.Errorf("%+v: New succeeded", cfg)
		}
	}
	if err := (wasm.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestHelloPrints(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	var out buffer
	st := run(t, r, runtime.ContainerSpec{
		Module: goGuest(t, "hello"),
		Args:   []string{"hello"},
		Env:    env("HELLO_COUNT", "3", "HELLO_INTERVAL", "1ms", "POD_NAME", "hello-abc", "NODE_NAME", "edge-1"),
		Stdout: &out, Stderr: &out,
		MemoryLimit: 32 << 20, // as in examples/hello/hello.yaml
	})
	wantExit(t, st, 0, runtime.ReasonCompleted)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("hello from wasmfleet #%d pod=hello-abc node=edge-1 time=", i+1)) {
			t.Fatalf("line %d: %q", i, l)
		}
	}
}

// TestHelloRunsUntilStopped starts hello as its Deployment does (no count)
// and stops it once it has printed.
func TestHelloRunsUntilStopped(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	var out buffer
	c := start(t, r, runtime.ContainerSpec{
		Module: goGuest(t, "hello"), Args: []string{"hello"},
		Env: env("HELLO_INTERVAL", "1ms"), Stdout: &out,
	})
	waitChan(t, out.waitFor("#5 "), "five lines")
	if _, ok := c.Exit(); ok {
		t.Fatal("exited before Stop")
	}
	if err := c.Stop(hangGuard); err != nil {
		t.Fatal(err)
	}
	st := wait(t, c)
	wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonError)
	if st.Message != "the guest was stopped" {
		t.Fatalf("message %q", st.Message)
	}
}

func TestSensorReadsMountedConfigAndEnv(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	cfgDir := t.TempDir()
	const cfg = `{"interval": "1ms", "metrics": [
		{"name": "temperature", "unit": "celsius", "min": 18, "max": 26},
		{"name": "humidity", "unit": "percent", "min": 35, "max": 65}]}`
	if err := os.WriteFile(filepath.Join(cfgDir, "sensor.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut buffer
	before := time.Now().Add(-time.Second)
	st := run(t, r, runtime.ContainerSpec{
		Module: goGuest(t, "sensor"), Args: []string{"sensor"},
		Env:    env("SENSOR_ID", "sensor-1", "SENSOR_LOCATION", "greenhouse-2", "SENSOR_COUNT", "5"),
		Mounts: []runtime.Mount{{HostPath: cfgDir, GuestPath: "/etc/sensor", ReadOnly: true}},
		Stdout: &out, Stderr: &errOut,
	})
	wantExit(t, st, 0, runtime.ReasonCompleted)
	type reading struct {
		Time     time.Time          `json:"time"`
		Sensor   string             `json:"sensor"`
		Location string             `json:"location"`
		Seq      int                `json:"seq"`
		Values   map[string]float64 `json:"values"`
		Units    map[string]string  `json:"units"`
	}
	var readings []reading
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var rd reading
		if err := json.Unmarshal(sc.Bytes(), &rd); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		readings = append(readings, rd)
	}
	if len(readings) != 5 {
		t.Fatalf("%d readings; stdout:\n%s\nstderr:\n%s", len(readings), out.String(), errOut.String())
	}
	distinct := map[float64]bool{}
	for i, rd := range readings {
		if rd.Sensor != "sensor-1" || rd.Location != "greenhouse-2" || rd.Seq != i+1 {
			t.Fatalf("reading %d: %+v", i, rd)
		}
		// The real clock, not wazero's fake one (which starts in 2022 and
		// ticks by a millisecond per call).
		if rd.Time.Before(before) || rd.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("reading %d at %v, want about now", i, rd.Time)
		}
		if v := rd.Values["temperature"]; v < 18 || v > 26 || rd.Units["temperature"] != "celsius" {
			t.Fatalf("reading %d: %+v", i, rd)
		}
		if v := rd.Values["humidity"]; v < 35 || v > 65 {
			t.Fatalf("reading %d: %+v", i, rd)
		}
		distinct[rd.Values["temperature"]] = true
	}
	if len(distinct) < 2 {
		t.Fatalf("temperature never changed: %+v", readings)
	}
}

func TestSensorWithoutConfigFails(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	var errOut buffer
	st := run(t, r, runtime.ContainerSpec{
		Module: goGuest(t, "sensor"), Args: []string{"sensor"}, Stderr: &errOut,
	})
	wantExit(t, st, 1, runtime.ReasonError)
	if !strings.Contains(errOut.String(), "/etc/sensor/sensor.json") {
		t.Fatalf("stderr: %q", errOut.String())
	}
}

func TestJobCompletes(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	var out buffer
	st := run(t, r, runtime.ContainerSpec{
		Module: goGuest(t, "job"), Args: []string{"pi", "-digits", "200"}, Stdout: &out,
	})
	wantExit(t, st, 0, runtime.ReasonCompleted)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	const pi50 = "3.14159265358979323846264338327950288419716939937510"
	if last := lines[len(lines)-1]; len(last) != 202 || !strings.HasPrefix(last, pi50) {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestArgsEnvClockRandom(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	m := goGuest(t, "guest")
	randoms := map[string]bool{}
	for i := range 2 {
		var out buffer
		st := run(t, r, runtime.ContainerSpec{
			ID: fmt.Sprint(i), Module: m,
			Args:   []string{"guest", "env", "two words"},
			Env:    env("A", "1", "B", "x=y"),
			Stdout: &out,
		})
		wantExit(t, st, 0, runtime.ReasonCompleted)
		got := out.String()
		for _, want := range []string{"args=guest,env,two words\n", "env A=1\n", "env B=x=y\n"} {
			if !strings.Contains(got, want) {
				t.Fatalf("output lacks %q:\n%s", want, got)
			}
		}
		fields := map[string]string{}
		for _, l := range strings.Split(got, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				fields[k] = v
			}
		}
		now, err := time.Parse(time.RFC3339Nano, fields["now"])
		if err != nil || time.Since(now).Abs() > time.Minute {
			t.Fatalf("guest's now = %q, want about %v", fields["now"], time.Now())
		}
		// A real sleep: wazero's default is a no-op with a fake clock.
		if slept, err := time.ParseDuration(fields["slept"]); err != nil || slept < 20*time.Millisecond {
			t.Fatalf("guest slept %q, want >= 20ms", fields["slept"])
		}
		randoms[fields["rand"]] = true
	}
	if len(randoms) != 2 {
		t.Fatalf("two runs drew the same random bytes %v: randomness is not real", randoms)
	}
}

func TestExitCodes(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	m := goGuest(t, "guest")
	wantExit(t, run(t, r, runtime.ContainerSpec{Module: m, Args: []string{"guest", "exit", "0"}}), 0, runtime.ReasonCompleted)
	st := run(t, r, runtime.ContainerSpec{Module: m, Args: []string{"guest", "exit", "3"}})
	wantExit(t, st, 3, runtime.ReasonError)
	if st.Message != "" {
		t.Fatalf("message %q for a plain exit", st.Message)
	}
}

func TestTrapIsError(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	var out buffer
	st := run(t, r, runtime.ContainerSpec{Module: watModule(t, "trap"), Args: []string{"trap"}, Stdout: &out})
	wantExit(t, st, runtime.ExitCodeTrap, runtime.ReasonError)
	if !strings.Contains(st.Message, "unreachable") {
		t.Fatalf("message %q", st.Message)
	}
	if out.String() != "about to trap\n" {
		t.Fatalf("stdout %q", out.String())
	}
}

func TestGoPanicIsError(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	var errOut buffer
	st := run(t, r, runtime.ContainerSpec{Module: goGuest(t, "guest"), Args: []string{"guest", "panic"}, Stderr: &errOut})
	wantExit(t, st, 2, runtime.ReasonError) // Go's runtime exits 2 after printing the panic
	if !strings.Contains(errOut.String(), "panic: boom") {
		t.Fatalf("stderr %q", errOut.String())
	}
}

func TestStopEndsRunawayGuests(t *testing.T) {
	for _, engine := range []string{wasm.EngineAuto, wasm.EngineInterpreter} {
		r := newRuntime(t, wasm.Config{Engine: engine})
		cases := []struct {
			name    string
			module  func(t testing.TB) runtime.Module
			args    []string
			started string // stdout that shows the guest is busy
		}{
			{"wat-spin", func(t testing.TB) runtime.Module { return watModule(t, "spin") }, nil, ""},
			{"wat-start-section-loop", func(t testing.TB) runtime.Module { return watModule(t, "startloop") }, nil, ""},
			{"go-loop", func(t testing.TB) runtime.Module { return goGuest(t, "guest") }, []string{"guest", "loop"}, "looping\n"},
			{"go-sleep", func(t testing.TB) runtime.Module { return goGuest(t, "guest") }, []string{"guest", "sleep"}, "sleeping\n"},
		}
		for _, tc := range cases {
			if engine == wasm.EngineInterpreter && strings.HasPrefix(tc.name, "go-") {
				continue // the interpreter runs Go guests too, just slowly
			}
			t.Run(tc.name+"/"+r.Info().Mode, func(t *testing.T) {
				var out buffer
				c := start(t, r, runtime.ContainerSpec{Module: tc.module(t), Args: tc.args, Stdout: &out})
				if tc.started != "" {
					waitChan(t, out.waitFor(tc.started), tc.started)
				}
				if _, ok := c.Exit(); ok {
					t.Fatal("exited before Stop")
				}
				if err := c.Stop(hangGuard); err != nil {
					t.Fatal(err)
				}
				st, ok := c.Exit()
				if !ok {
					t.Fatal("Stop returned nil but the guest has not exited")
				}
				wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonError)
				// Stopping again is harmless and changes nothing.
				if err := c.Stop(time.Second); err != nil {
					t.Fatal(err)
				}
				if st2, _ := c.Exit(); st2 != st {
					t.Fatalf("exit changed from %+v to %+v", st, st2)
				}
			})
		}
	}
}

func TestStopWithoutGraceDoesNotWait(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	c := start(t, r, runtime.ContainerSpec{Module: watModule(t, "spin")})
	if err := c.Stop(0); err != nil {
		t.Fatal(err)
	}
	wantExit(t, wait(t, c), runtime.ExitCodeKilled, runtime.ReasonError)
}

func TestStopAfterExit(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	c := start(t, r, runtime.ContainerSpec{Module: goGuest(t, "guest"), Args: []string{"guest", "exit", "4"}})
	st := wait(t, c)
	if err := c.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if st2, _ := c.Exit(); st2 != st || st.ExitCode != 4 {
		t.Fatalf("exit %+v, after Stop %+v", st, st2)
	}
}

func TestMemoryLimit(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	guest := goGuest(t, "guest")
	t.Run("go-bomb-past-16MiB", func(t *testing.T) {
		var errOut buffer
		st := run(t, r, runtime.ContainerSpec{
			Module: guest, Args: []string{"guest", "bomb", "32"},
			MemoryLimit: 16 << 20, Stderr: &errOut,
		})
		wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonOOMKilled)
		if !strings.Contains(st.Message, "16 MiB") {
			t.Fatalf("message %q", st.Message)
		}
		if !strings.Contains(errOut.String(), "out of memory") {
			t.Fatalf("stderr %q", errOut.String())
		}
	})
	t.Run("go-bomb-within-limit", func(t *testing.T) {
		var out buffer
		st := run(t, r, runtime.ContainerSpec{
			Module: guest, Args: []string{"guest", "bomb", "24"}, MemoryLimit: 64 << 20, Stdout: &out,
		})
		wantExit(t, st, 0, runtime.ReasonCompleted)
		if out.String() != "allocated 24 MiB\n" {
			t.Fatalf("stdout %q", out.String())
		}
	})
	t.Run("default-limit", func(t *testing.T) {
		rd := newRuntime(t, wasm.Config{DefaultMemoryLimit: 16 << 20})
		st := run(t, rd, runtime.ContainerSpec{Module: guest, Args: []string{"guest", "bomb", "32"}})
		wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonOOMKilled)
	})
	t.Run("wat-trap-after-refused-grow", func(t *testing.T) {
		st := run(t, r, runtime.ContainerSpec{Module: watModule(t, "growtrap"), MemoryLimit: 1 << 20})
		wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonOOMKilled)
		if !strings.Contains(st.Message, "trapped") {
			t.Fatalf("message %q", st.Message)
		}
	})
	t.Run("wat-copes-with-refused-grow", func(t *testing.T) {
		// A guest that survives a refused memory.grow was not killed.
		st := run(t, r, runtime.ContainerSpec{Module: watModule(t, "growok"), MemoryLimit: 1 << 20})
		wantExit(t, st, 0, runtime.ReasonCompleted)
	})
	t.Run("initial-memory-over-limit", func(t *testing.T) {
		st := run(t, r, runtime.ContainerSpec{Module: guest, Args: []string{"guest", "exit", "0"}, MemoryLimit: 64 << 10})
		wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonOOMKilled)
		if !strings.Contains(st.Message, "initial memory") {
			t.Fatalf("message %q", st.Message)
		}
	})
	t.Run("unexported-initial-memory-over-limit", func(t *testing.T) {
		st := run(t, r, runtime.ContainerSpec{Module: watModule(t, "bigmin"), MemoryLimit: 1 << 20})
		wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonOOMKilled)
	})
}

func TestInvalidModules(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	cases := []struct {
		name   string
		module func(t testing.TB) runtime.Module
		want   []string
	}{
		{"text", func(t testing.TB) runtime.Module { return bytesModule(t, []byte("#!/bin/sh\necho hello\n")) },
			[]string{"not a WebAssembly binary"}},
		{"empty-file", func(t testing.TB) runtime.Module { return bytesModule(t, nil) },
			[]string{"not a WebAssembly binary"}},
		{"component", func(t testing.TB) runtime.Module { return bytesModule(t, []byte("\x00asm\x0d\x00\x01\x00")) },
			[]string{"component"}},
		{"truncated", func(t testing.TB) runtime.Module {
			b, err := os.ReadFile(filepath.Join("testdata", "trap.wasm"))
			if err != nil {
				t.Fatal(err)
			}
			return bytesModule(t, b[:len(b)-10])
		}, nil},
		{"imports-env-nope", func(t testing.TB) runtime.Module { return watModule(t, "nope") },
			[]string{"env.nope", "does not provide", "wasi_snapshot_preview1"}},
		{"wrong-wasi-signature", func(t testing.TB) runtime.Module { return watModule(t, "badsig") },
			[]string{"wasi_snapshot_preview1.proc_exit", "func(i64)", "func(i32)"}},
		{"no-start", func(t testing.TB) runtime.Module { return bytesModule(t, []byte("\x00asm\x01\x00\x00\x00")) },
			[]string{"no _start"}},
		{"start-with-params", func(t testing.TB) runtime.Module { return watModule(t, "badstart") },
			[]string{"_start has type func(i32)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.module(t)
			err := r.Prepare(context.Background(), m)
			var inv *runtime.InvalidModuleError
			if !errors.As(err, &inv) || inv.Digest != m.Digest {
				t.Fatalf("Prepare = %v, want an InvalidModuleError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			t.Log(err)
			// Start gives the same error, and starts nothing.
			if _, err := r.Start(context.Background(), runtime.ContainerSpec{ID: "x", Module: m}); !errors.As(err, &inv) {
				t.Fatalf("Start = %v, want an InvalidModuleError", err)
			}
		})
	}
}

func TestModuleFileProblems(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	m := watModule(t, "spin")

	bad := m
	bad.Digest = digest([]byte("something else"))
	err := r.Prepare(context.Background(), bad)
	var inv *runtime.InvalidModuleError
	if !errors.Is(err, runtime.ErrDigestMismatch) || errors.As(err, &inv) {
		t.Fatalf("wrong digest: %v", err)
	}

	missing := runtime.Module{Path: filepath.Join(t.TempDir(), "gone.wasm"), Digest: m.Digest}
	if err := r.Prepare(context.Background(), missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}

	for _, d := range []string{"", "sha256:abc", "md5:" + strings.Repeat("0", 64), strings.ToUpper(m.Digest)} {
		if err := r.Prepare(context.Background(), runtime.Module{Path: m.Path, Digest: d}); err == nil {
			t.Errorf("digest %q accepted", d)
		}
	}
	// The good module still prepares after all that.
	if err := r.Prepare(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func TestStartSpecErrors(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	m := watModule(t, "spin")
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, spec := range map[string]runtime.ContainerSpec{
		"no-id":          {Module: m},
		"missing-mount":  {ID: "x", Module: m, Mounts: []runtime.Mount{{HostPath: filepath.Join(dir, "nope"), GuestPath: "/data"}}},
		"file-mount":     {ID: "x", Module: m, Mounts: []runtime.Mount{{HostPath: file, GuestPath: "/data"}}},
		"relative-guest": {ID: "x", Module: m, Mounts: []runtime.Mount{{HostPath: dir, GuestPath: "data"}}},
		"env-name-eq":    {ID: "x", Module: m, Env: env("A=B", "c")},
		"env-empty-name": {ID: "x", Module: m, Env: env("", "c")},
		"arg-nul":        {ID: "x", Module: m, Args: []string{"a\x00b"}},
		"negative-limit": {ID: "x", Module: m, MemoryLimit: -1},
	} {
		if c, err := r.Start(context.Background(), spec); err == nil {
			_ = c.Stop(time.Minute)
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestMounts(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	guest := goGuest(t, "guest")

	t.Run("read-only-refuses-every-write", func(t *testing.T) {
		dir := t.TempDir()
		existing := filepath.Join(dir, "existing.txt")
		if err := os.WriteFile(existing, []byte("original\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var out buffer
		st := run(t, r, runtime.ContainerSpec{
			Module: guest, Args: []string{"guest", "vandal", "/config"}, Stdout: &out,
			Mounts: []runtime.Mount{{HostPath: dir, GuestPath: "/config", ReadOnly: true}},
		})
		wantExit(t, st, 0, runtime.ReasonCompleted)
		if !strings.Contains(out.String(), "refused 8\n") {
			t.Fatalf("some writes went through:\n%s", out.String())
		}
		if !strings.Contains(strings.ToLower(out.String()), "create: open /config/new.txt: read-only file system") {
			t.Fatalf("want EROFS for a create:\n%s", out.String())
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			t.Fatalf("host dir has %v (%v)", entries, err)
		}
		if b, _ := os.ReadFile(existing); string(b) != "original\n" {
			t.Fatalf("existing.txt is now %q", b)
		}
	})

	t.Run("writable-emptydir", func(t *testing.T) {
		dir := t.TempDir()
		var out, errOut buffer
		st := run(t, r, runtime.ContainerSpec{
			Module: guest, Args: []string{"guest", "write", "/data"}, Stdout: &out, Stderr: &errOut,
			Mounts: []runtime.Mount{{HostPath: dir, GuestPath: "/data"}},
		})
		wantExit(t, st, 0, runtime.ReasonCompleted)
		if b, err := os.ReadFile(filepath.Join(dir, "new.txt")); err != nil || string(b) != "written by guest\n" {
			t.Fatalf("new.txt: %q %v; stderr %s", b, err, errOut.String())
		}
	})

	t.Run("no-escape-from-writable-mount", func(t *testing.T) {
		dir := t.TempDir()
		var out buffer
		st := run(t, r, runtime.ContainerSpec{
			Module: guest, Args: []string{"guest", "escape", "/data"}, Stdout: &out,
			Mounts: []runtime.Mount{{HostPath: dir, GuestPath: "/data"}},
		})
		if st.ExitCode != 0 {
			t.Fatalf("guest escaped its mount (exit %d):\n%s", st.ExitCode, out.String())
		}
		if _, err := os.Lstat(filepath.Join(dir, "etc")); err == nil {
			t.Fatal("the guest created a symlink on the host")
		}
	})

	t.Run("several-mounts-and-nested-paths", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		if err := os.WriteFile(filepath.Join(a, "x"), []byte("from a"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b, "x"), []byte("from b"), 0o644); err != nil {
			t.Fatal(err)
		}
		mounts := []runtime.Mount{{HostPath: a, GuestPath: "/etc/app", ReadOnly: true}, {HostPath: b, GuestPath: "/etc/app/secret", ReadOnly: true}}
		for path, want := range map[string]string{"/etc/app/x": "from a", "/etc/app/secret/x": "from b"} {
			var out buffer
			st := run(t, r, runtime.ContainerSpec{Module: guest, Args: []string{"guest", "cat", path}, Stdout: &out, Mounts: mounts})
			wantExit(t, st, 0, runtime.ReasonCompleted)
			if out.String() != want {
				t.Fatalf("%s = %q, want %q", path, out.String(), want)
			}
		}
	})
}

// TestManyTinyInstances runs 200 instances of examples/tiny at once, all
// sharing one compiled module, and stops them.
func TestManyTinyInstances(t *testing.T) {
	const n = 200
	r := newRuntime(t, wasm.Config{})
	m := tinyModule(t)
	outs := make([]buffer, n)
	cs := make([]runtime.Container, n)
	for i := range cs {
		cs[i] = start(t, r, runtime.ContainerSpec{ID: fmt.Sprint("tiny-", i), Module: m, Stdout: &outs[i], MemoryLimit: 1 << 20})
	}
	for i := range cs {
		waitChan(t, outs[i].waitFor("tiny: up, sleeping now.\n"), cs[i].ID()+" output")
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		if _, ok := c.Exit(); ok {
			t.Fatalf("%s exited on its own", c.ID())
		}
		wg.Go(func() {
			if err := c.Stop(hangGuard); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, c := range cs {
		wantExit(t, wait(t, c), runtime.ExitCodeKilled, runtime.ReasonError)
	}
}

func TestCloseStopsGuests(t *testing.T) {
	r, err := wasm.New(context.Background(), wasm.Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	var out buffer
	c := start(t, r, runtime.ContainerSpec{Module: goGuest(t, "guest"), Args: []string{"guest", "sleep"}, Stdout: &out})
	spin := start(t, r, runtime.ContainerSpec{Module: watModule(t, "spin")})
	waitChan(t, out.waitFor("sleeping"), "guest to sleep")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []runtime.Container{c, spin} {
		st, ok := c.Exit()
		if !ok {
			t.Fatal("Close returned before the guest exited")
		}
		wantExit(t, st, runtime.ExitCodeKilled, runtime.ReasonError)
		if !strings.Contains(st.Message, "closed") {
			t.Fatalf("message %q", st.Message)
		}
	}
	if _, err := r.Start(context.Background(), runtime.ContainerSpec{ID: "late", Module: watModule(t, "spin")}); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	if err := r.Prepare(context.Background(), watModule(t, "spin")); err == nil {
		t.Fatal("Prepare after Close succeeded")
	}
	if err := r.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCompilationCacheOnDisk shows that a second runtime (as after an agent
// restart) loads the compiled code from the cache directory instead of
// compiling again: compiling would write the cache entry anew. (The
// benchmarks measure the same with the hello module.)
func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	m := tinyModule(t)
	ctx := context.Background()

	r1, err := wasm.New(ctx, wasm.Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Info().Mode != wasm.EngineCompiler {
		t.Skip("the interpreter does not use the compilation cache")
	}
	if err := r1.Prepare(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	before := cacheFiles(t, dir)
	if len(before) == 0 {
		t.Fatal("no compilation cache written")
	}

	r2 := newRuntime(t, wasm.Config{CacheDir: dir})
	var out buffer
	c := start(t, r2, runtime.ContainerSpec{Module: m, Stdout: &out})
	waitChan(t, out.waitFor("tiny: up"), "tiny's line")
	if err := c.Stop(hangGuard); err != nil {
		t.Fatal(err)
	}
	after := cacheFiles(t, dir)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("cache changed: the module was compiled again\nbefore %v\nafter  %v", before, after)
	}
}

// cacheFiles lists the files under dir with size and modification time.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, fmt.Sprintf("%s:%d:%d", p, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestConcurrentStartsOfOneModule starts one module from many goroutines at
// once, as an agent does when a Deployment scales up.
func TestConcurrentStartsOfOneModule(t *testing.T) {
	r := newRuntime(t, wasm.Config{})
	m := goGuest(t, "guest")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c, err := r.Start(context.Background(), runtime.ContainerSpec{ID: fmt.Sprint(i), Module: m, Args: []string{"guest", "exit", fmt.Sprint(i)}})
			if err != nil {
				t.Error(err)
				return
			}
			<-c.Done()
			if st, _ := c.Exit(); st.ExitCode != int32(i) {
				t.Errorf("container %d exited %d", i, st.ExitCode)
			}
		})
	}
	wg.Wait()
}

// TestInterpreterRunsGo runs a Go guest on the interpreter, the engine of
// platforms without wazero's compiler (linux/arm).
func TestInterpreterRunsGo(t *testing.T) {
	r := newRuntime(t, wasm.Config{Engine: wasm.EngineInterpreter})
	var out buffer
	st := run(t, r, runtime.ContainerSpec{
		Module: goGuest(t, "hello"), Args: []string{"hello"}, Env: env("HELLO_COUNT", "1"), Stdout: &out,
	})
	wantExit(t, st, 0, runtime.ReasonCompleted)
	if !strings.HasPrefix(out.String(), "hello from wasmfleet #1 time=") {
		t.Fatalf("output %q", out.String())
	}
}
