package nodeagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/internal/embedded"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// cacheModule returns a valid wasm module of about size bytes: the header
// and a custom section "pad" whose bytes depend on seed.
func cacheModule(size int, seed byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	payload := max(size-len(b)-10, 0)
	content := []byte{3, 'p', 'a', 'd'}
	for i := range payload {
		content = append(content, seed+byte(i*7))
	}
	b = append(b, 0)
	for n := len(content); ; {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			b = append(b, c|0x80)
			continue
		}
		b = append(b, c)
		break
	}
	return append(b, content...)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// moduleStore starts NATS and returns an admin Store on it.
func moduleStore(t *testing.T) (*embedded.NATS, *modules.Store) {
	t.Helper()
	n := testenv.NATS(t)
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := modules.New(t.Context(), js, modules.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return n, s
}

func push(t *testing.T, s *modules.Store, ref string, mod []byte) string {
	t.Helper()
	d, _, err := s.Put(t.Context(), ref, bytes.NewReader(mod))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newCache(t *testing.T, dir string, s *modules.Store, client *http.Client, allowFiles bool) *ModuleCache {
	t.Helper()
	c, err := NewModuleCache(dir, s, client, allowFiles)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustFetch fetches image and checks the file's content.
func mustFetch(t *testing.T, c *ModuleCache, image string, want []byte) runtime.Module {
	t.Helper()
	m, err := c.Fetch(t.Context(), image)
	if err != nil {
		t.Fatalf("Fetch(%q): %v", image, err)
	}
	if m.Digest != sha(want) {
		t.Fatalf("Fetch(%q) digest %s, want %s", image, m.Digest, sha(want))
	}
	got, err := os.ReadFile(m.Path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Fetch(%q) file %s: %d bytes, err %v; want the module's %d bytes", image, m.Path, len(got), err, len(want))
	}
	return m
}

// fetchErr fetches image, expecting a PullError with reason and a message
// containing want.
func fetchErr(t *testing.T, c *ModuleCache, image, reason, want string) *PullError {
	t.Helper()
	m, err := c.Fetch(t.Context(), image)
	var pe *PullError
	if !errors.As(err, &pe) {
		t.Fatalf("Fetch(%q) = %+v, %v; want a *PullError", image, m, err)
	}
	if pe.Reason != reason || !strings.Contains(pe.Message, want) {
		t.Fatalf("Fetch(%q): reason %q message %q; want %q containing %q", image, pe.Reason, pe.Message, reason, want)
	}
	return pe
}

func TestModuleCacheStore(t *testing.T) {
	n, s := moduleStore(t)
	v1, v2 := cacheModule(300<<10, 1), cacheModule(1000, 2)
	d1 := push(t, s, "hello:v1", v1)
	push(t, s, "hello:latest", v1)

	dir := t.TempDir()
	c := newCache(t, dir, s, nil, false)
	c.ResolveTimeout = 300 * time.Millisecond

	m := mustFetch(t, c, "hello:v1", v1)
	if want := filepath.Join(dir, "sha256", strings.TrimPrefix(d1, "sha256:")+".wasm"); m.Path != want {
		t.Errorf("path %s, want %s", m.Path, want)
	}
	mustFetch(t, c, "other@"+d1, v1) // digests are global
	mustFetch(t, c, "hello:latest", v1)

	// Tags move: resolved on every fetch while the store is reachable.
	d2 := push(t, s, "hello:latest", v2)
	if m := mustFetch(t, c, "hello:latest", v2); m.Digest != d2 {
		t.Fatal(m)
	}
	// Concurrent fetches of a tag (which share its resolutions) all get
	// the module, and a tag moved after them is seen by the next fetch.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { mustFetch(t, c, "hello:latest", v2) })
	}
	wg.Wait()
	push(t, s, "hello:latest", v1)
	mustFetch(t, c, "hello:latest", v1)
	push(t, s, "hello:latest", v2)
	mustFetch(t, c, "hello:latest", v2)

	pe := fetchErr(t, c, "hello:nope", ReasonErrImagePull, "module not found")
	if !errors.Is(pe, modules.ErrNotFound) {
		t.Errorf("not found error does not wrap ErrNotFound: %v", pe)
	}
	fetchErr(t, c, "hello@sha256:"+strings.Repeat("0", 64), ReasonErrImagePull, "module not found")
	fetchErr(t, c, "Hello", ReasonErrImagePull, "invalid module reference")
	fetchErr(t, c, "ftp://x/y.wasm", ReasonErrImagePull, "unsupported scheme")

	// Without NATS: digests are served from the cache, tags fall back to
	// the digest they last resolved to.
	n.Close()
	mustFetch(t, c, "hello@"+d1, v1)
	mustFetch(t, c, "hello@"+d2, v2)
	start := time.Now()
	mustFetch(t, c, "hello:v1", v1)
	mustFetch(t, c, "hello:latest", v2)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("fallback took %v", el)
	}
	fetchErr(t, c, "hello:never", ReasonErrImagePull, "never resolved on this node")
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	var pe2 *PullError
	if _, err := c.Fetch(ctx, "hello@sha256:"+strings.Repeat("1", 64)); !errors.As(err, &pe2) || pe2.Reason != ReasonErrImagePull {
		t.Errorf("uncached digest without NATS: %v", err)
	}

	// A restarted agent without a link (no store at all) still has the
	// remembered tags and the cached modules.
	c2 := newCache(t, dir, nil, nil, false)
	mustFetch(t, c2, "hello:v1", v1)
	mustFetch(t, c2, "hello:latest", v2)
	mustFetch(t, c2, "x@"+d1, v1)
	pe = fetchErr(t, c2, "hello:never", ReasonErrImagePull, "no connection to the module store")
	if !errors.Is(pe, ErrNoModuleStore) {
		t.Error(pe)
	}
	fetchErr(t, c2, "x@sha256:"+strings.Repeat("2", 64), ReasonErrImagePull, "no connection to the module store")
}

// A remembered tag whose module is no longer cached is no fallback.
func TestModuleCacheTagFallbackNeedsModule(t *testing.T) {
	_, s := moduleStore(t)
	mod := cacheModule(100, 3)
	d := push(t, s, "app:v1", mod)
	dir := t.TempDir()
	mustFetch(t, newCache(t, dir, s, nil, false), "app:v1", mod)
	c := newCache(t, dir, nil, nil, false)
	if err := c.Evict(d); err != nil {
		t.Fatal(err)
	}
	fetchErr(t, c, "app:v1", ReasonErrImagePull, "which is not cached")
}

// httpsModules serves path → body over TLS and counts requests.
type httpsModules struct {
	srv   *httptest.Server
	hits  atomic.Int64
	delay time.Duration
	mu    sync.Mutex
	body  map[string][]byte
}

func newHTTPSModules(t *testing.T) *httpsModules {
	h := &httpsModules{body: map[string][]byte{}}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		time.Sleep(h.delay)
		h.mu.Lock()
		b, ok := h.body[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/wasm")
		w.Write(b)
	}))
	h.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *httpsModules) set(path string, b []byte) {
	h.mu.Lock()
	h.body[path] = b
	h.mu.Unlock()
}

func (h *httpsModules) image(path string, b []byte) string {
	return h.srv.URL + path + "#sha256=" + strings.TrimPrefix(sha(b), "sha256:")
}

func TestModuleCacheHTTPS(t *testing.T) {
	h := newHTTPSModules(t)
	mod := cacheModule(200<<10, 4)
	h.set("/m.wasm", mod)
	dir := t.TempDir()
	c := newCache(t, dir, nil, h.srv.Client(), false)

	mustFetch(t, c, h.image("/m.wasm", mod), mod)
	mustFetch(t, c, h.image("/m.wasm", mod), mod)
	if got := h.hits.Load(); got != 1 {
		t.Errorf("%d requests for a cached module, want 1", got)
	}
	// The same digest from another URL, or in another process: cached.
	mustFetch(t, c, h.image("/elsewhere.wasm", mod), mod)
	mustFetch(t, newCache(t, dir, nil, h.srv.Client(), false), h.image("/m.wasm", mod), mod)
	if got := h.hits.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}

	// Wrong digest: the server's bytes are not the ones pinned.
	other := cacheModule(500, 5)
	pe := fetchErr(t, c, h.image("/m.wasm", other), ReasonErrImagePull, "digest mismatch")
	if !errors.Is(pe, modules.ErrDigestMismatch) {
		t.Error(pe)
	}
	if _, err := os.Stat(c.Path(sha(other))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mismatched download cached: %v", err)
	}

	fetchErr(t, c, h.image("/missing.wasm", other), ReasonErrImagePull, "404 Not Found")
	fetchErr(t, c, h.srv.URL+"/m.wasm", ReasonErrImagePull, "#sha256=")

	// Too large, by Content-Length and by a body longer than announced
	// (chunked: no Content-Length).
	big := cacheModule(64<<10, 6)
	h.set("/big.wasm", big)
	c.MaxModuleSize = 32 << 10
	fetchErr(t, c, h.image("/big.wasm", big), ReasonErrImagePull, "too large")
	chunked := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 1000 {
			w.Write(big[i:min(i+1000, len(big))])
			w.(http.Flusher).Flush()
		}
	}))
	defer chunked.Close()
	img := chunked.URL + "/big.wasm#sha256=" + strings.TrimPrefix(sha(big), "sha256:")
	cc := newCache(t, dir, nil, chunked.Client(), false)
	cc.MaxModuleSize = 32 << 10
	pe = fetchErr(t, cc, img, ReasonErrImagePull, "too large")
	if !errors.Is(pe, ErrModuleTooLarge) {
		t.Error(pe)
	}
	c.MaxModuleSize = 0
	mustFetch(t, c, h.image("/big.wasm", big), big)

	// Verified bytes that are not wasm: InvalidModule.
	html := []byte("<html>hello</html>")
	h.set("/page.wasm", html)
	fetchErr(t, c, h.image("/page.wasm", html), ReasonInvalidModule, "not a WebAssembly module")

	// An untrusted certificate is an ErrImagePull, not a crash.
	fetchErr(t, newCache(t, t.TempDir(), nil, nil, false), h.image("/m.wasm", mod), ReasonErrImagePull, "certificate")

	// Nothing left behind in the cache directory but modules.
	ents, _ := os.ReadDir(filepath.Join(dir, "sha256"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestModuleCacheConcurrentFetch(t *testing.T) {
	h := newHTTPSModules(t)
	h.delay = 200 * time.Millisecond
	mod := cacheModule(1<<20, 7)
	h.set("/m.wasm", mod)
	c := newCache(t, t.TempDir(), nil, h.srv.Client(), false)
	img := h.image("/m.wasm", mod)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			m, err := c.Fetch(context.Background(), img)
			if err == nil && m.Digest != sha(mod) {
				err = fmt.Errorf("digest %s", m.Digest)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := h.hits.Load(); got != 1 {
		t.Errorf("%d downloads for 20 concurrent fetches, want 1", got)
	}

	// A waiter whose leader gives up downloads for itself.
	h.hits.Store(0)
	mod2 := cacheModule(1000, 8)
	h.set("/m2.wasm", mod2)
	img2 := h.image("/m2.wasm", mod2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	leader := make(chan error, 1)
	go func() { _, err := c.Fetch(ctx, img2); leader <- err }()
	time.Sleep(20 * time.Millisecond)
	mustFetch(t, c, img2, mod2)
	if err := <-leader; err == nil {
		t.Error("leader with a 50ms deadline succeeded")
	}
	if got := h.hits.Load(); got != 2 {
		t.Errorf("%d requests, want 2 (the abandoned one and the retry)", got)
	}
}

func TestModuleCacheFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app.wasm")
	v1, v2 := cacheModule(5000, 9), cacheModule(6000, 10)
	if err := os.WriteFile(src, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, t.TempDir(), nil, nil, true)
	m1 := mustFetch(t, c, "file://"+src, v1)
	if m1.Path == src {
		t.Fatal("file module not copied into the cache")
	}
	// Changing the file gives a new module; the old copy is untouched.
	if err := os.WriteFile(src, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	mustFetch(t, c, "file://"+src, v2)
	if b, _ := os.ReadFile(m1.Path); !bytes.Equal(b, v1) {
		t.Error("cached copy changed with the source file")
	}
	mustFetch(t, c, "file://"+src, v2) // again, already cached

	pe := fetchErr(t, newCache(t, t.TempDir(), nil, nil, false), "file://"+src, ReasonErrImagePull, "not allowed")
	if !errors.Is(pe, ErrFileModulesDisabled) {
		t.Error(pe)
	}
	pe = fetchErr(t, c, "file://"+src+".missing", ReasonErrImagePull, "no such file")
	if !errors.Is(pe, os.ErrNotExist) {
		t.Error(pe)
	}
	fetchErr(t, c, "file://"+filepath.Dir(src), ReasonErrImagePull, "not a regular file")
	fetchErr(t, c, "file://relative/x.wasm", ReasonErrImagePull, "file:///absolute")

	text := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(text, []byte("not wasm"), 0o644)
	fetchErr(t, c, "file://"+text, ReasonInvalidModule, "not a WebAssembly module")

	c.MaxModuleSize = 1000
	fetchErr(t, c, "file://"+src+"", ReasonErrImagePull, "too large")
}

// Corrupt cache files are re-hashed and fetched again: in a new process
// always (first use), in a running one when size or mtime changed, and
// after Evict.
func TestModuleCacheCorruptFile(t *testing.T) {
	h := newHTTPSModules(t)
	mod := cacheModule(10000, 11)
	h.set("/m.wasm", mod)
	img := h.image("/m.wasm", mod)
	dir := t.TempDir()
	c := newCache(t, dir, nil, h.srv.Client(), false)
	m := mustFetch(t, c, img, mod)
	if fi, err := os.Stat(m.Path); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("cache file %v, %v: want read-only", fi.Mode(), err)
	}

	corrupt := func(b []byte) {
		t.Helper()
		os.Chmod(m.Path, 0o644)
		if err := os.WriteFile(m.Path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// A distinct mtime even on coarse-grained file systems.
		old := time.Now().Add(-time.Hour)
		os.Chtimes(m.Path, old, old)
	}

	// Same size, different bytes, new process.
	bad := bytes.Clone(mod)
	bad[len(bad)-1] ^= 0xff
	corrupt(bad)
	mustFetch(t, newCache(t, dir, nil, h.srv.Client(), false), img, mod)
	if got := h.hits.Load(); got != 2 {
		t.Errorf("%d requests, want 2", got)
	}

	// Truncated under a running cache.
	corrupt(mod[:100])
	mustFetch(t, c, img, mod)
	if got := h.hits.Load(); got != 3 {
		t.Errorf("%d requests, want 3", got)
	}

	// The runtime found a mismatch: Evict and fetch again.
	if err := c.Evict(m.Digest); err != nil {
		t.Fatal(err)
	}
	mustFetch(t, c, img, mod)
	if got := h.hits.Load(); got != 4 {
		t.Errorf("%d requests, want 4", got)
	}
	if err := c.Evict("nope"); err == nil {
		t.Error("Evict of an invalid digest succeeded")
	}

	// Stale temporary files are removed at start.
	stale := filepath.Join(dir, "sha256", ".tmp-123")
	os.WriteFile(stale, []byte("partial"), 0o644)
	newCache(t, dir, nil, nil, false)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: %v", err)
	}
}

// A new process's first Fetches of a cached module, all at once (an agent
// restarting with many pods of it), share one check of the file: a good
// file is served without a download, a corrupt one is fetched again once.
func TestModuleCacheConcurrentFirstUse(t *testing.T) {
	h := newHTTPSModules(t)
	mod := cacheModule(200000, 5)
	h.set("/m.wasm", mod)
	img := h.image("/m.wasm", mod)
	dir := t.TempDir()
	m := mustFetch(t, newCache(t, dir, nil, h.srv.Client(), false), img, mod)
	fetchAll := func(c *ModuleCache) {
		t.Helper()
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() { mustFetch(t, c, img, mod) })
		}
		wg.Wait()
	}
	fetchAll(newCache(t, dir, nil, h.srv.Client(), false))
	if got := h.hits.Load(); got != 1 {
		t.Errorf("%d requests, want 1 (the cached file is good)", got)
	}

	bad := bytes.Clone(mod)
	bad[len(bad)-1] ^= 0xff
	os.Chmod(m.Path, 0o644)
	if err := os.WriteFile(m.Path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	fetchAll(newCache(t, dir, nil, h.srv.Client(), false))
	if got := h.hits.Load(); got != 2 {
		t.Errorf("%d requests, want 2 (the corrupt file fetched again once)", got)
	}
}
