package imagearch

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wasmfleet/wasmfleet/controlplane/scheduler/imagearch/registrytest"
)

// clock is a settable time for the cache's expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start returns a resolver with opts and a settable clock, closed when the
// test ends.
func start(t *testing.T, opts Options) (*Resolver, *clock) {
	t.Helper()
	r := New(opts)
	c := &clock{t: time.Unix(1000, 0)}
	r.now = c.now
	t.Cleanup(r.Close)
	return r, c
}

// resolve asks for image, waits for the lookup it starts (if any) and
// returns the answer.
func resolve(t *testing.T, r *Resolver, image string) []string {
	t.Helper()
	if ch := r.Lookup(image); ch != nil {
		wait(t, ch, image)
	}
	return r.Architectures(image)
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("lookup of %s did not end within a minute", what)
	}
}

// inflight returns the channel of image's lookup in flight, or nil.
func inflight(r *Resolver, image string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[image]
}

func TestArchitectures(t *testing.T) {
	reg := registrytest.Start(t)
	multi := reg.PushIndex(t, "multi:1", registrytest.Linux("amd64"), registrytest.Linux("arm64", "v8"))
	armv7 := reg.PushImage(t, "armv7:1", registrytest.Linux("arm", "v7"))
	// Every kind of platform an index may list, and the ones to leave out.
	mixed := reg.PushIndex(t, "mixed:1",
		registrytest.Linux("arm", "v6"), registrytest.Linux("arm", "v7"), registrytest.Linux("s390x"),
		v1.Platform{OS: "windows", Architecture: "386"},
		v1.Platform{OS: "unknown", Architecture: "unknown"}, // an attestation manifest
	)
	reg.PushImage(t, "latest-only:latest", registrytest.Linux("riscv64"))
	windows := reg.PushImage(t, "windows:1", v1.Platform{OS: "windows", Architecture: "amd64"})
	r, _ := start(t, Options{})

	for _, tc := range []struct {
		image string
		want  []string
	}{
		{multi, []string{"amd64", "arm64"}},
		{armv7, []string{"arm"}},
		{mixed, []string{"arm", "s390x"}},
		{reg.Ref("latest-only"), []string{"riscv64"}}, // normalized to :latest
		{windows, nil},                                // nothing a linux node runs: unknown
	} {
		if got := resolve(t, r, tc.image); !slices.Equal(got, tc.want) {
			t.Errorf("Architectures(%s) = %v, want %v", tc.image, got, tc.want)
		}
	}
	// By digest, as a pod pinned to one would say.
	digest := resolveDigest(t, reg, "multi:1")
	if got := resolve(t, r, reg.Ref("multi@"+digest)); !slices.Equal(got, []string{"amd64", "arm64"}) {
		t.Errorf("by digest: %v", got)
	}
	// A known answer comes from memory: no new lookup, no registry read.
	gets := reg.ManifestGets("multi")
	for range 10 {
		if ch := r.Lookup(multi); ch != nil {
			t.Fatal("Lookup of a cached image returned a channel")
		}
		r.Architectures(multi)
	}
	if got := reg.ManifestGets("multi"); got != gets {
		t.Errorf("cached image read %d more times", got-gets)
	}
}

// resolveDigest returns the digest the registry serves for repoTag.
func resolveDigest(t *testing.T, reg *registrytest.Registry, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{
		"amd64": "amd64", "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"armhf": "arm", "armel": "arm", "arm": "arm", "i386": "386", "386": "386", "ppc64le": "ppc64le",
		"S390X": "s390x", "riscv64": "riscv64",
	} {
		if got := NormalizeArch(in); got != want {
			t.Errorf("NormalizeArch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMissingImageNegativeCache(t *testing.T) {
	reg := registrytest.Start(t)
	r, clock := start(t, Options{NegativeTTL: time.Minute, TTL: time.Hour})
	ref := reg.Ref("later:1")

	if got := r.Architectures(ref); got != nil {
		t.Fatalf("first ask = %v, want nil", got)
	}
	if got := resolve(t, r, ref); got != nil {
		t.Fatalf("missing image = %v, want nil", got)
	}
	gets := reg.ManifestGets("later")
	if gets == 0 {
		t.Fatal("the registry was not asked")
	}
	// The failure is remembered: asking again does not look again...
	reg.PushImage(t, "later:1", registrytest.Linux("arm64"))
	clock.step(time.Minute - time.Second)
	if ch := r.Lookup(ref); ch != nil {
		t.Fatal("Lookup of a negatively cached image returned a channel")
	}
	if got := r.Architectures(ref); got != nil || inflight(r, ref) != nil {
		t.Fatalf("within the negative TTL: %v, lookup in flight %v", got, inflight(r, ref) != nil)
	}
	if got := reg.ManifestGets("later"); got != gets {
		t.Fatalf("within the negative TTL the registry was read %d more times", got-gets)
	}
	// ...until the negative TTL has passed.
	clock.step(time.Second)
	if got := r.Architectures(ref); got != nil {
		t.Fatalf("expired negative answer = %v, want nil", got)
	}
	if ch := inflight(r, ref); ch != nil {
		wait(t, ch, ref)
	}
	if got := r.Architectures(ref); !slices.Equal(got, []string{"arm64"}) {
		t.Fatalf("after the image was pushed = %v, want [arm64]", got)
	}
}

func TestRefreshAfterTTL(t *testing.T) {
	reg := registrytest.Start(t)
	ref := reg.PushIndex(t, "app:1", registrytest.Linux("amd64"), registrytest.Linux("arm64"))
	r, clock := start(t, Options{TTL: time.Hour})
	if got := resolve(t, r, ref); !slices.Equal(got, []string{"amd64", "arm64"}) {
		t.Fatalf("got %v", got)
	}
	reg.PushIndex(t, "app:1", registrytest.Linux("amd64"), registrytest.Linux("arm64"), registrytest.Linux("arm", "v7"))
	clock.step(59 * time.Minute)
	if got := r.Architectures(ref); !slices.Equal(got, []string{"amd64", "arm64"}) || inflight(r, ref) != nil {
		t.Fatalf("within the TTL: %v, refreshing %v", got, inflight(r, ref) != nil)
	}
	clock.step(time.Minute)
	// Expired: the old answer still comes at once (a pod is not held)
	// while a refresh runs. The registry holds the refresh's read, so the
	// refresh cannot have ended before the answer is read.
	release := reg.Hold()
	if ch := r.Lookup(ref); ch != nil {
		release()
		t.Fatal("Lookup of an expired answer returned a channel")
	}
	got := r.Architectures(ref)
	release()
	if !slices.Equal(got, []string{"amd64", "arm64"}) {
		t.Fatalf("stale answer %v", got)
	}
	if ch := inflight(r, ref); ch != nil {
		wait(t, ch, ref)
	}
	if got := r.Architectures(ref); !slices.Equal(got, []string{"amd64", "arm", "arm64"}) {
		t.Fatalf("refreshed answer %v", got)
	}
}

// TestUnreachableRegistry: a registry nobody listens on answers nothing;
// Architectures and Lookup never wait for it.
func TestUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r, _ := start(t, Options{Timeout: 2 * time.Second})
	ref := addr + "/gone:1"
	if got := r.Architectures(ref); got != nil {
		t.Fatalf("got %v", got)
	}
	if got := resolve(t, r, ref); got != nil {
		t.Fatalf("unreachable registry = %v, want nil", got)
	}
	if ch := r.Lookup(ref); ch != nil {
		t.Fatal("the failure was not cached")
	}
}

// TestTimeout: a registry that never answers is given up after Timeout,
// while Architectures keeps answering (nil) from memory.
func TestTimeout(t *testing.T) {
	reg := registrytest.Start(t)
	ref := reg.PushImage(t, "slow:1", registrytest.Linux("arm64"))
	release := reg.Hold()
	defer release()
	r, _ := start(t, Options{Timeout: 300 * time.Millisecond})

	ch := r.Lookup(ref)
	if ch == nil {
		t.Fatal("no lookup started")
	}
	// The registry holds the read, so the lookup is in flight; asking
	// again answers at once (a blocking call would hang here).
	waitFor(t, "the manifest read to reach the registry", func() bool { return reg.ActiveGets() == 1 })
	if got := r.Architectures(ref); got != nil {
		t.Fatalf("during the lookup: %v", got)
	}
	if again := r.Lookup(ref); again != ch {
		t.Fatal("a second Lookup did not join the one in flight")
	}
	wait(t, ch, ref)
	if got := r.Architectures(ref); got != nil {
		t.Fatalf("after the timeout: %v", got)
	}
	if r.Lookup(ref) != nil {
		t.Fatal("the timeout was not cached")
	}
}

// TestConcurrentLookupsDeduplicated: many asks for one image while it is
// looked up make one registry read; lookups of different images run at
// most Concurrency at once.
func TestConcurrentLookupsDeduplicated(t *testing.T) {
	reg := registrytest.Start(t)
	const images = 6
	refs := make([]string, images)
	for i := range refs {
		refs[i] = reg.PushImage(t, fmt.Sprintf("img%d:1", i), registrytest.Linux("arm64"))
	}
	release := reg.Hold()
	defer release()
	r, _ := start(t, Options{Concurrency: 2})

	var wg sync.WaitGroup
	chans := make([][]<-chan struct{}, images)
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for i, ref := range refs {
				r.Architectures(ref)
				ch := r.Lookup(ref)
				mu.Lock()
				chans[i] = append(chans[i], ch)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, cs := range chans {
		for _, ch := range cs {
			if ch == nil || ch != cs[0] {
				t.Fatalf("image %d: asks did not share one lookup", i)
			}
		}
	}
	waitFor(t, "two lookups at the registry", func() bool { return reg.ActiveGets() == 2 })
	release()
	for i, cs := range chans {
		wait(t, cs[0], refs[i])
	}
	for i, ref := range refs {
		if got := r.Architectures(ref); !slices.Equal(got, []string{"arm64"}) {
			t.Errorf("%s = %v", ref, got)
		}
		if n := reg.ManifestGets(fmt.Sprintf("img%d", i)); n != 1 {
			t.Errorf("%s read %d times, want 1", ref, n)
		}
	}
	if n := reg.MaxConcurrentGets(); n > 2 {
		t.Errorf("%d manifest reads at once, want at most Concurrency = 2", n)
	}
}

func TestCacheBounded(t *testing.T) {
	reg := registrytest.Start(t)
	a := reg.PushImage(t, "a:1", registrytest.Linux("amd64"))
	b := reg.PushImage(t, "b:1", registrytest.Linux("arm64"))
	c := reg.PushImage(t, "c:1", registrytest.Linux("arm"))
	r, _ := start(t, Options{MaxEntries: 2})
	resolve(t, r, a)
	resolve(t, r, b)
	r.Architectures(a) // a is now the most recently asked
	resolve(t, r, c)   // evicts b
	r.mu.Lock()
	n := r.lru.Len()
	_, hasA := r.entries[a]
	_, hasB := r.entries[b]
	r.mu.Unlock()
	if n != 2 || !hasA || hasB {
		t.Fatalf("cache holds %d entries, a %v, b %v; want 2 with a and without b", n, hasA, hasB)
	}
	if ch := r.Lookup(b); ch == nil {
		t.Fatal("an evicted image did not start a new lookup")
	} else {
		wait(t, ch, b)
	}
}

// TestClose: Close cancels the lookups in flight (a held registry read
// does not keep it waiting) and no lookups start after it.
func TestClose(t *testing.T) {
	reg := registrytest.Start(t)
	ref := reg.PushImage(t, "held:1", registrytest.Linux("arm64"))
	release := reg.Hold()
	defer release()
	r := New(Options{Timeout: time.Hour})
	ch := r.Lookup(ref)
	if ch == nil {
		t.Fatal("no lookup started")
	}
	waitFor(t, "the manifest read to reach the registry", func() bool { return reg.ActiveGets() == 1 })
	r.Close()
	wait(t, ch, ref) // closed by now
	if got, again := r.Architectures(ref), r.Lookup(ref); got != nil || again != nil {
		t.Fatalf("after Close: %v, %v", got, again)
	}
	r.Close()
}

func TestInvalidReference(t *testing.T) {
	r, _ := start(t, Options{})
	ref := "Not A Reference"
	if got := resolve(t, r, ref); got != nil {
		t.Fatalf("got %v", got)
	}
	if r.Lookup(ref) != nil {
		t.Fatal("an invalid reference is looked up again")
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
