package modules_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// wasmModule returns a valid module of exactly size bytes (at least 8):
// the header and, past 8 bytes, a custom section named "pad" filled with
// bytes derived from seed.
func wasmModule(size int, seed byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	if size <= len(b) {
		return b
	}
	// Section: id 0, LEB128 content size, content = name ("pad") + payload.
	for k := 1; k <= 5; k++ {
		c := size - len(b) - 1 - k
		if c < 4 || len(uleb(c)) != k {
			continue
		}
		b = append(b, 0)
		b = append(b, uleb(c)...)
		b = append(b, uleb(3)...)
		b = append(b, "pad"...)
		for i := 0; len(b) < size; i++ {
			b = append(b, seed+byte(i*7))
		}
		return b
	}
	panic(fmt.Sprintf("no module of %d bytes", size))
}

func uleb(n int) []byte {
	var out []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// newStore returns a Store on a fresh in-process NATS, and the JetStream
// handle to look under it.
func newStore(t *testing.T, opts modules.Options) (*modules.Store, jetstream.JetStream) {
	t.Helper()
	n := testenv.NATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	s, err := modules.New(t.Context(), js, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func readAll(t *testing.T, s *modules.Store, digest string) ([]byte, int64, error) {
	t.Helper()
	rc, size, err := s.Open(t.Context(), digest)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, size, err
}

func TestPutResolveOpenList(t *testing.T) {
	s, _ := newStore(t, modules.Options{})
	ctx := t.Context()
	small := wasmModule(0, 0)
	big := wasmModule(700<<10, 1) // several object-store chunks

	before := time.Now().Add(-time.Second)
	d1, n1, err := s.Put(ctx, "hello:v1", bytes.NewReader(small))
	if err != nil {
		t.Fatal(err)
	}
	if d1 != digestOf(small) || n1 != int64(len(small)) {
		t.Fatalf("put small: %s %d, want %s %d", d1, n1, digestOf(small), len(small))
	}
	d2, n2, err := s.Put(ctx, "acme/edge/sensor-v2:1.0.0_rc.1", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	if d2 != digestOf(big) || n2 != int64(len(big)) {
		t.Fatalf("put big: %s %d", d2, n2)
	}

	for ref, want := range map[string]string{
		"hello:v1":                       d1,
		"hello@" + d1:                    d1,
		"acme/edge/sensor-v2:1.0.0_rc.1": d2,
		"other-name@" + d2:               d2, // digests are global
	} {
		got, err := s.Resolve(ctx, ref)
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %s, %v; want %s", ref, got, err, want)
		}
	}
	for _, ref := range []string{"hello:v2", "nope:v1", "hello@" + digestOf([]byte("x"))} {
		if _, err := s.Resolve(ctx, ref); !errors.Is(err, modules.ErrNotFound) {
			t.Errorf("Resolve(%s): %v, want ErrNotFound", ref, err)
		}
	}

	for digest, want := range map[string][]byte{d1: small, d2: big} {
		got, size, err := readAll(t, s, digest)
		if err != nil || !bytes.Equal(got, want) || size != int64(len(want)) {
			t.Errorf("Open(%s): %d bytes (size %d), %v; want %d bytes", digest, len(got), size, err, len(want))
		}
	}
	if _, _, err := s.Open(ctx, digestOf([]byte("missing"))); !errors.Is(err, modules.ErrNotFound) {
		t.Errorf("Open(missing): %v, want ErrNotFound", err)
	}
	if _, _, err := s.Open(ctx, "sha256:XYZ"); !errors.Is(err, modules.ErrInvalidRef) {
		t.Errorf("Open(bad digest): %v, want ErrInvalidRef", err)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List: %+v", list)
	}
	want := []modules.Module{
		{Name: "acme/edge/sensor-v2", Tag: "1.0.0_rc.1", Digest: d2, Size: n2},
		{Name: "hello", Tag: "v1", Digest: d1, Size: n1},
	}
	for i, m := range list {
		created := m.Created
		m.Created = time.Time{}
		if m != want[i] {
			t.Errorf("List[%d] = %+v, want %+v", i, m, want[i])
		}
		if created.Before(before) || created.After(time.Now().Add(time.Second)) {
			t.Errorf("List[%d].Created = %v", i, created)
		}
	}

	m, err := s.Stat(ctx, "hello:v1")
	if err != nil || m.Digest != d1 || m.Size != n1 || m.Name != "hello" || m.Tag != "v1" || m.Created.IsZero() {
		t.Errorf("Stat: %+v, %v", m, err)
	}
}

func TestEmptyStoreLists(t *testing.T) {
	s, _ := newStore(t, modules.Options{})
	list, err := s.List(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("List on an empty store: %+v, %v", list, err)
	}
}

// TestRepushIsIdempotent: the same bytes again upload nothing (the object
// keeps its NATS identity) and give the same digest.
func TestRepushIsIdempotent(t *testing.T) {
	s, js := newStore(t, modules.Options{})
	ctx := t.Context()
	mod := wasmModule(300<<10, 3)
	d, _, err := s.Put(ctx, "app:v1", bytes.NewReader(mod))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, modules.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	before, err := obs.GetInfo(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"app:v1", "app:latest"} {
		d2, _, err := s.Put(ctx, ref, bytes.NewReader(mod))
		if err != nil || d2 != d {
			t.Fatalf("re-push as %s: %s, %v", ref, d2, err)
		}
	}
	after, err := obs.GetInfo(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if after.NUID != before.NUID {
		t.Fatalf("re-push rewrote the object: NUID %s → %s", before.NUID, after.NUID)
	}
	list, _ := s.List(ctx)
	if len(list) != 2 || list[0].Tag != "latest" || list[1].Tag != "v1" || list[0].Digest != d || list[1].Digest != d {
		t.Fatalf("List: %+v", list)
	}
}

// TestRetag: pushing other bytes to a tag moves it; the old module stays
// reachable by digest and is listed untagged.
func TestRetag(t *testing.T) {
	s, _ := newStore(t, modules.Options{})
	ctx := t.Context()
	a, b := wasmModule(100, 1), wasmModule(200, 2)
	da, _, err := s.Put(ctx, "app:stable", bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	db, _, err := s.Put(ctx, "app:stable", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Resolve(ctx, "app:stable"); got != db {
		t.Fatalf("app:stable → %s, want %s", got, db)
	}
	if got, err := s.Resolve(ctx, "app@"+da); got != da || err != nil {
		t.Fatalf("old digest: %s, %v", got, err)
	}
	if got, _, err := readAll(t, s, da); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("old module: %v", err)
	}
	list, _ := s.List(ctx)
	if len(list) != 2 || list[0].Digest != db || list[0].Tag != "stable" || list[1].Name != "" || list[1].Digest != da || list[1].Size != int64(len(a)) {
		t.Fatalf("List: %+v", list)
	}
	// Back again: the tag follows.
	if _, _, err := s.Put(ctx, "app:stable", bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Resolve(ctx, "app:stable"); got != da {
		t.Fatalf("app:stable → %s, want %s", got, da)
	}
}

func TestNotWasmRejected(t *testing.T) {
	s, js := newStore(t, modules.Options{})
	ctx := t.Context()
	for name, tc := range map[string]struct {
		body []byte
		msg  string
	}{
		"empty":     {nil, "empty"},
		"elf":       {[]byte("\x7fELF\x02\x01\x01\x00rest of a binary"), `"\x7fELF"`},
		"text":      {[]byte("hello world"), `"hell"`},
		"short":     {[]byte("\x00asm\x01"), "only 5 bytes"},
		"magic":     {[]byte("\x00as"), "only 3 bytes"},
		"component": {[]byte("\x00asm\x0d\x00\x01\x00"), "component"},
		"version 2": {[]byte("\x00asm\x02\x00\x00\x00"), "version 2"},
	} {
		_, _, err := s.Put(ctx, "bad:"+strings.ReplaceAll(name, " ", "-"), bytes.NewReader(tc.body))
		if !errors.Is(err, modules.ErrNotWasm) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want ErrNotWasm mentioning %q", name, err, tc.msg)
		}
	}
	assertNothingStored(t, s, js)
}

func assertNothingStored(t *testing.T, s *modules.Store, js jetstream.JetStream) {
	t.Helper()
	list, err := s.List(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("store not empty after rejected pushes: %+v, %v", list, err)
	}
	st, err := js.Stream(t.Context(), modules.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d messages in %s after rejected pushes", n, modules.Stream)
	}
}

func TestInvalidRefs(t *testing.T) {
	d := digestOf([]byte("x"))
	for ref, msg := range map[string]string{
		"":                                  "empty reference",
		"hello":                             "no tag",
		"Hello:v1":                          `name "Hello"`,
		"hello world:v1":                    "name",
		"-hello:v1":                         "name",
		"hello-:v1":                         "name",
		"hel..lo:v1":                        "name",
		"a//b:v1":                           "name",
		"/a:v1":                             "name",
		"a/:v1":                             "name",
		"hello:":                            "tag",
		"hello:.v1":                         "tag",
		"hello:-v1":                         "tag",
		"hello:v1/x":                        "tag",
		"hello:v:1":                         "tag",
		"hello:" + strings.Repeat("t", 129): "tag",
		strings.Repeat("a", 256) + ":v1":    "limit is 255",
		"hello@sha256:abc":                  "digest",
		"hello@md5:" + d[7:]:                "digest",
		"hello@" + strings.ToUpper(d):       "digest",
		"hello:v1@" + d:                     "tag and a digest",
		"@" + d:                             "empty name",
	} {
		_, err := modules.ParseRef(ref)
		if !errors.Is(err, modules.ErrInvalidRef) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseRef(%q): %v, want ErrInvalidRef mentioning %q", ref, err, msg)
		}
		if strings.Count(fmt.Sprint(err), "invalid module reference") != 1 {
			t.Errorf("ParseRef(%q): %v says 'invalid module reference' more than once", ref, err)
		}
	}
	for _, ref := range []string{"a:b", "a0.b_c-d/e9:_", "hello:" + strings.Repeat("t", 128), "x@" + d, "a/b/c:V1.2-rc_3"} {
		if _, err := modules.ParseRef(ref); err != nil {
			t.Errorf("ParseRef(%q): %v", ref, err)
		}
	}

	s, js := newStore(t, modules.Options{})
	ctx := t.Context()
	for _, ref := range []string{"Hello:v1", "hello", "hello@" + digestOf(wasmModule(0, 0))} {
		if _, _, err := s.Put(ctx, ref, bytes.NewReader(wasmModule(0, 0))); !errors.Is(err, modules.ErrInvalidRef) {
			t.Errorf("Put(%q): %v, want ErrInvalidRef", ref, err)
		}
		if _, err := s.Resolve(ctx, strings.ToUpper(ref)); !errors.Is(err, modules.ErrInvalidRef) {
			t.Errorf("Resolve(%q): %v, want ErrInvalidRef", strings.ToUpper(ref), err)
		}
	}
	assertNothingStored(t, s, js)
}

func TestSizeLimit(t *testing.T) {
	const limit = 64 << 10
	tmp := t.TempDir()
	s, js := newStore(t, modules.Options{MaxModuleSize: limit, TempDir: tmp})
	ctx := t.Context()
	if _, _, err := s.Put(ctx, "big:v1", bytes.NewReader(wasmModule(limit+1, 0))); !errors.Is(err, modules.ErrTooLarge) || !strings.Contains(err.Error(), "64KiB") {
		t.Fatalf("one byte over: %v, want ErrTooLarge naming the limit", err)
	}
	// A stream that never ends is cut off at the limit.
	endless := io.MultiReader(bytes.NewReader(wasmModule(0, 0)), zeros{})
	if _, _, err := s.Put(ctx, "big:v2", endless); !errors.Is(err, modules.ErrTooLarge) {
		t.Fatalf("endless: %v, want ErrTooLarge", err)
	}
	assertNothingStored(t, s, js)
	exact := wasmModule(limit, 0)
	if len(exact) != limit {
		t.Fatalf("test module is %d bytes", len(exact))
	}
	if _, n, err := s.Put(ctx, "big:v3", bytes.NewReader(exact)); err != nil || n != limit {
		t.Fatalf("exactly the limit: %d, %v", n, err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if _, err := modules.New(ctx, js, modules.Options{MaxModuleSize: 7}); err == nil {
		t.Fatal("MaxModuleSize below the header size accepted")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestCorruptObject replaces an object's content behind the store's back:
// Open fails at the end instead of returning the wrong bytes, and a
// re-push of the right bytes repairs it.
func TestCorruptObject(t *testing.T) {
	s, js := newStore(t, modules.Options{})
	ctx := t.Context()
	good := wasmModule(200<<10, 5)
	d, _, err := s.Put(ctx, "app:v1", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, modules.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 0xff
	if _, err := obs.PutBytes(ctx, d, bad); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, s, d); !errors.Is(err, modules.ErrDigestMismatch) {
		t.Fatalf("reading a corrupted object: %v, want ErrDigestMismatch", err)
	}
	if _, err := obs.PutBytes(ctx, d, good[:len(good)-10]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, s, d); !errors.Is(err, modules.ErrDigestMismatch) {
		t.Fatalf("reading a truncated object: %v, want ErrDigestMismatch", err)
	}
	if _, _, err := s.Put(ctx, "app:v1", bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if got, _, err := readAll(t, s, d); err != nil || !bytes.Equal(got, good) {
		t.Fatalf("after repair: %v", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, _ := newStore(t, modules.Options{})
	ctx := t.Context()
	var wg sync.WaitGroup
	digests := make([]string, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			// Two writers per module, each to its own tag.
			digests[i], _, errs[i] = s.Put(ctx, fmt.Sprintf("m%d:t%d", i/2, i%2), bytes.NewReader(wasmModule(50<<10, byte(i/2))))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for i := range 4 {
		for tag := range 2 {
			d, err := s.Resolve(ctx, fmt.Sprintf("m%d:t%d", i, tag))
			if err != nil || d != digests[2*i] {
				t.Fatalf("m%d:t%d → %s, %v", i, tag, d, err)
			}
			got, _, err := readAll(t, s, d)
			if err != nil || !bytes.Equal(got, wasmModule(50<<10, byte(i))) {
				t.Fatalf("m%d: %v", i, err)
			}
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 8: "8B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 128 << 20: "128MiB", 3 << 30: "3GiB"} {
		if got := modules.FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", n, got, want)
		}
	}
}
