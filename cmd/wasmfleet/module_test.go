package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

// wasmFile writes a valid module of the header plus a custom section of
// about extra bytes and returns its path and digest.
func wasmFile(t *testing.T, extra int, seed byte) (string, string) {
	t.Helper()
	b := []byte("\x00asm\x01\x00\x00\x00")
	if extra > 0 {
		content := append(uleb(3), "pad"...)
		for i := 0; len(content) < extra; i++ {
			content = append(content, seed+byte(i*13))
		}
		b = append(b, 0)
		b = append(b, uleb(len(content))...)
		b = append(b, content...)
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("m%d-%d.wasm", extra, seed))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, "sha256:" + hex.EncodeToString(sum[:])
}

func uleb(n int) []byte {
	var out []byte
	for {
		c := byte(n & 0x7f)
		if n >>= 7; n == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestModulePushAndList pushes modules with the CLI to a real control
// plane and lists them; bad pushes fail clearly and store nothing.
func TestModulePushAndList(t *testing.T) {
	dir := testcluster.Start(t).DataDir
	kc := filepath.Join(dir, server.KubeconfigFile)

	// Bigger than the API's 3 MiB object limit: the module endpoint streams.
	big, bigDigest := wasmFile(t, 5<<20, 1)
	code, stdout, stderr := runCLI(t, "module", "push", "acme/sensor:v1", big, "--kubeconfig", kc)
	if code != 0 {
		t.Fatalf("push: code %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if got := lastLine(stdout); got != bigDigest {
		t.Fatalf("push printed %q last, want %s", got, bigDigest)
	}
	if !strings.Contains(stderr, "Pushing") || !strings.Contains(stderr, "50%") || !strings.Contains(stderr, "Pushed acme/sensor:v1 "+bigDigest) {
		t.Fatalf("push progress on stderr:\n%s", stderr)
	}

	// $KUBECONFIG is the default.
	small, smallDigest := wasmFile(t, 0, 0)
	t.Setenv("KUBECONFIG", kc)
	code, stdout, stderr = runCLI(t, "module", "push", "hello:v1", small)
	if code != 0 || lastLine(stdout) != smallDigest {
		t.Fatalf("push with $KUBECONFIG: code %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// Re-pushing is idempotent; pushing to another tag adds the tag.
	code, stdout, _ = runCLI(t, "module", "push", "hello:latest", small)
	if code != 0 || lastLine(stdout) != smallDigest {
		t.Fatalf("re-push: code %d, %s", code, stdout)
	}

	code, stdout, stderr = runCLI(t, "module", "ls")
	if code != 0 {
		t.Fatalf("ls: code %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "NAME TAG DIGEST SIZE AGE" {
		t.Fatalf("ls:\n%s", stdout)
	}
	for i, want := range [][]string{
		{"acme/sensor", "v1", bigDigest, "5MiB"},
		{"hello", "latest", smallDigest, "8B"},
		{"hello", "v1", smallDigest, "8B"},
	} {
		f := strings.Fields(lines[i+1])
		if len(f) != 5 || f[0] != want[0] || f[1] != want[1] || f[2] != want[2] || f[3] != want[3] || !strings.HasSuffix(f[4], "s") {
			t.Errorf("ls line %d = %q, want %v and an age", i+1, lines[i+1], want)
		}
	}

	// Bad pushes through the CLI: clear errors, before any upload.
	notWasm := filepath.Join(t.TempDir(), "script.sh")
	os.WriteFile(notWasm, []byte("#!/bin/sh\necho hello\n"), 0o644)
	msgs := moduleStoreWrites(t, dir)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"module", "push", "hello:v2", notWasm}, "not a WebAssembly module"},
		{[]string{"module", "push", "Hello:v2", small}, "invalid module reference"},
		{[]string{"module", "push", "hello", small}, "no tag"},
		{[]string{"module", "push", "hello:v2", filepath.Join(dir, "missing.wasm")}, "no such file"},
		{[]string{"module", "push", "hello:v2", small, "--kubeconfig", filepath.Join(dir, "nope.yaml")}, "kubeconfig"},
		{[]string{"module", "ls", "--kubeconfig", filepath.Join(dir, "nope.yaml")}, "kubeconfig"},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code == 0 || stdout != "" || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want failure mentioning %q", tc.args, code, stdout, stderr, tc.msg)
		}
	}

	// The HTTP endpoint itself.
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	put := func(rc *rest.Config, ref string, body []byte) (int, metav1.Status) {
		t.Helper()
		hc, err := rest.HTTPClientFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, rc.Host+modules.CollectionPath+"/"+ref, bytes.NewReader(body))
		req.Header.Set("Content-Type", modules.MediaType)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var st metav1.Status
		json.Unmarshal(b, &st)
		return resp.StatusCode, st
	}
	smallBytes, _ := os.ReadFile(small)
	anon := rest.AnonymousClientConfig(rc)
	if code, st := put(anon, "hello:v2", smallBytes); code != 401 || st.Kind != "Status" || st.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("unauthenticated PUT: %d %+v", code, st)
	}
	wrong := rest.CopyConfig(rc)
	wrong.BearerToken = "not-the-token"
	if code, st := put(wrong, "hello:v2", smallBytes); code != 401 || st.Reason != metav1.StatusReasonUnauthorized {
		t.Errorf("PUT with a wrong token: %d %+v", code, st)
	}
	if code, st := put(rc, "hello:v2", []byte("#!/bin/sh\necho hello\n")); code != 400 || st.Kind != "Status" || !strings.Contains(st.Message, "not a WebAssembly module") {
		t.Errorf("PUT of a shell script: %d %+v", code, st)
	}
	if code, st := put(rc, "Hello:v2", smallBytes); code != 400 || !strings.Contains(st.Message, "invalid module reference") {
		t.Errorf("PUT to a bad name: %d %+v", code, st)
	}
	if got := msgs(); got != 0 {
		t.Errorf("%d messages written to the module store by failed pushes", got)
	}
	code, stdout, _ = runCLI(t, "module", "ls")
	if code != 0 || strings.Contains(stdout, "v2") || len(strings.Split(strings.TrimSpace(stdout), "\n")) != 4 {
		t.Errorf("ls after failed pushes:\n%s", stdout)
	}
}

// moduleStoreWrites connects to the control plane's NATS as its admin and returns a
// function counting the module store messages written since.
func moduleStoreWrites(t *testing.T, dir string) func() uint64 {
	t.Helper()
	u, err := os.ReadFile(filepath.Join(dir, server.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(strings.TrimSpace(string(u)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	count := func() uint64 {
		st, err := js.Stream(t.Context(), modules.Stream)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.LastSeq
	}
	start := count()
	return func() uint64 { return count() - start }
}
