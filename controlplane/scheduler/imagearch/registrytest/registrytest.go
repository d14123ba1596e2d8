// Package registrytest serves an OCI registry in-process on loopback
// (go-containerregistry's pkg/registry on an httptest server) for tests
// of image lookups, with helpers to push single-platform images and
// multi-platform indexes, to count manifest reads and to hold them.
package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is an in-memory registry at Host (127.0.0.1:port, spoken to in
// plain HTTP) until the test ends. Safe for concurrent use.
type Registry struct {
	// Host is the registry's address, the first part of image references.
	Host string

	mu        sync.Mutex
	gets      map[string]int // manifest GETs by repository
	active    int            // manifest GETs being served
	maxActive int
	hold      chan struct{} // non-nil: manifest GETs wait for it to close
}

// Start serves a registry until t ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{gets: map[string]int{}}
	h := registry.New(registry.Logger(discardLogger()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if repo, ok := manifestRepo(req); ok && req.Method == http.MethodGet {
			r.mu.Lock()
			r.gets[repo]++
			r.active++
			r.maxActive = max(r.maxActive, r.active)
			hold := r.hold
			r.mu.Unlock()
			defer func() {
				r.mu.Lock()
				r.active--
				r.mu.Unlock()
			}()
			if hold != nil {
				select {
				case <-hold:
				case <-req.Context().Done():
					return
				}
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// manifestRepo returns the repository of a /v2/<repo>/manifests/<ref>
// request.
func manifestRepo(req *http.Request) (string, bool) {
	p, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(p, "/manifests/")
	if i < 0 {
		return "", false
	}
	return p[:i], true
}

// Ref is the reference of repoTag ("repo:tag" or "repo") on r.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// ManifestGets is how many times a manifest of repo was read.
func (r *Registry) ManifestGets(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets[repo]
}

// MaxConcurrentGets is the most manifest reads served at once so far.
func (r *Registry) MaxConcurrentGets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxActive
}

// ActiveGets is how many manifest reads are being served (or held) now.
func (r *Registry) ActiveGets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// Hold makes manifest reads wait (until their client gives up) until
// release is called; release may be called more than once.
func (r *Registry) Hold() (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.hold = ch
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if r.hold == ch {
				r.hold = nil
			}
			r.mu.Unlock()
			close(ch)
		})
	}
}

// Image returns a small random image whose config says platform p.
func Image(t testing.TB, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// PushImage pushes a single-platform image (a plain manifest, no index)
// as repoTag and returns its reference.
func (r *Registry) PushImage(t testing.TB, repoTag string, p v1.Platform) string {
	t.Helper()
	ref := r.Ref(repoTag)
	if err := remote.Write(parse(t, ref), Image(t, p)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// PushIndex pushes an OCI image index with one image per platform as
// repoTag and returns its reference.
func (r *Registry) PushIndex(t testing.TB, repoTag string, platforms ...v1.Platform) string {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, p := range platforms {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        Image(t, p),
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	ref := r.Ref(repoTag)
	if err := remote.WriteIndex(parse(t, ref), idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	return ref
}

// Linux is the linux platform of arch (and variant, optional).
func Linux(arch string, variant ...string) v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: arch}
	if len(variant) > 0 {
		p.Variant = variant[0]
	}
	return p
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func parse(t testing.TB, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
