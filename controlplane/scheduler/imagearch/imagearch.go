// Package imagearch finds out which CPU architectures an OCI or Docker
// image is published for, by reading its manifest from the registry, for
// the scheduler's image architecture filter (scheduler.ImageArchitectures).
//
// A Resolver answers from its cache only and never blocks: an image it has
// not seen is looked up in the background (one lookup per image at a time,
// at most Options.Concurrency at once, each bounded by Options.Timeout),
// and the scheduler holds the pods that wait for a first lookup
// (scheduler.ImageLookups) instead of placing them blind. An image index
// (manifest list) answers with the architectures of its linux platforms; a
// single image manifest with its config's architecture. Names are in the
// node label kubernetes.io/arch's vocabulary (GOARCH: amd64, arm64, arm,
// 386, ppc64le, s390x, riscv64, ...); an arm variant (v6, v7) is just "arm",
// as node labels carry no variant.
//
// Registries are read anonymously. That is what public images need, and
// the scheduler holds no registry credentials: pull secrets belong to the
// pods' namespaces and are the node agent's business when it pulls. An
// image the scheduler cannot read (private, unreachable, air-gapped site)
// stays unknown, so every node passes the filter, as without a resolver.
package imagearch

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 4
	DefaultTTL         = time.Hour
	DefaultNegativeTTL = time.Minute
	DefaultMaxEntries  = 4096
)

// Options configures a Resolver; zero values take the defaults.
type Options struct {
	// Timeout bounds one lookup: connecting, the registry's token dance,
	// the manifest and (for a single image) its config (DefaultTimeout).
	Timeout time.Duration
	// Concurrency is how many lookups talk to registries at once
	// (DefaultConcurrency); more wait their turn.
	Concurrency int
	// TTL is how long found architectures are trusted (DefaultTTL). After
	// that they are still answered while a new lookup refreshes them.
	TTL time.Duration
	// NegativeTTL is how long an image stays unknown after a failed or
	// inconclusive lookup before it is tried again (DefaultNegativeTTL).
	NegativeTTL time.Duration
	// MaxEntries bounds the cache; the least recently asked images go
	// first (DefaultMaxEntries).
	MaxEntries int
	// Transport carries the registry requests (default
	// remote.DefaultTransport, which honours HTTP(S)_PROXY). Registries on
	// localhost, loopback, *.local and private addresses are spoken to in
	// plain HTTP, as go-containerregistry does; all others in HTTPS.
	Transport http.RoundTripper
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Transport == nil {
		o.Transport = remote.DefaultTransport
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Resolver caches the architectures of images and looks them up in the
// background. Its methods are safe for concurrent use. It works from New
// until Close, which stops its lookups.
type Resolver struct {
	opts   Options
	log    *slog.Logger
	sem    chan struct{} // a token per lookup talking to a registry
	now    func() time.Time
	ctx    context.Context // of the lookups, cancelled by Close
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	entries  map[string]*list.Element
	lru      list.List // of *entry, most recently asked first
	inflight map[string]chan struct{}
	wg       sync.WaitGroup // lookups
}

// entry is what is known of one image.
type entry struct {
	image   string
	archs   []string // nil: unknown
	expires time.Time
}

// New returns a Resolver, ready to look images up; Close it when done.
func New(opts Options) *Resolver {
	opts.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Resolver{
		opts:     opts,
		log:      opts.Logger.With("component", "imagearch"),
		sem:      make(chan struct{}, opts.Concurrency),
		now:      time.Now,
		ctx:      ctx,
		cancel:   cancel,
		entries:  map[string]*list.Element{},
		inflight: map[string]chan struct{}{},
	}
}

// Close cancels the lookups in flight (their channels close) and waits for
// them; the cache still answers, but misses are no longer looked up. It may
// be called more than once.
func (r *Resolver) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// Architectures returns the architectures image is published for, sorted,
// or nil when they are not known (yet). It answers from the cache and never
// blocks: an image it has not seen, or whose answer has expired, is looked
// up in the background (an expired answer is still returned meanwhile).
// The returned slice is shared: do not modify it.
func (r *Resolver) Architectures(image string) []string {
	archs, _ := r.get(image)
	return archs
}

// Lookup returns nil when Architectures has an answer for image (known
// architectures, known to be unknown, or a stale answer being refreshed),
// else a channel that is closed when the lookup of image now in flight
// ends, starting it if needed. It also returns nil when no lookup can
// start (after Close). It never blocks. It makes Resolver a
// scheduler.ImageLookups.
func (r *Resolver) Lookup(image string) <-chan struct{} {
	_, pending := r.get(image)
	return pending
}

// get returns image's cached architectures or, when nothing is cached, the
// channel of its lookup; it starts a lookup for a miss or an expired entry.
func (r *Resolver) get(image string) ([]string, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[image]; ok {
		r.lru.MoveToFront(el)
		e := el.Value.(*entry)
		if !r.now().Before(e.expires) {
			r.startLocked(image)
		}
		return e.archs, nil
	}
	return nil, r.startLocked(image)
}

// startLocked starts image's lookup unless one is in flight, and returns
// its channel (nil when none can start: closed, or MaxEntries lookups
// already started and not ended, when a miss stays unknown for now). r.mu
// is held.
func (r *Resolver) startLocked(image string) chan struct{} {
	if ch, ok := r.inflight[image]; ok {
		return ch
	}
	if r.closed || len(r.inflight) >= r.opts.MaxEntries {
		return nil
	}
	ch := make(chan struct{})
	r.inflight[image] = ch
	r.wg.Add(1)
	go r.lookup(r.ctx, image, ch)
	return ch
}

// lookup finds image's architectures, caches them and closes done.
func (r *Resolver) lookup(ctx context.Context, image string, done chan struct{}) {
	defer r.wg.Done()
	var (
		archs []string
		err   error
	)
	select {
	case r.sem <- struct{}{}:
		archs, err = r.fetch(ctx, image)
		<-r.sem
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	defer close(done)
	delete(r.inflight, image)
	if ctx.Err() != nil {
		return // closing: the answer may be a cancelled one
	}
	var invalid *invalidError
	switch {
	case err == nil && archs != nil:
		r.storeLocked(image, archs, r.opts.TTL)
		r.log.Debug("image architectures", "image", image, "architectures", archs)
	case errors.As(err, &invalid):
		// The reference will not parse next time either.
		r.storeLocked(image, nil, r.opts.TTL)
		r.log.Info("image architectures unknown", "image", image, "err", err)
	default:
		if err == nil {
			err = errors.New("no linux platform with an architecture")
		}
		if el, ok := r.entries[image]; ok && el.Value.(*entry).archs != nil {
			// A refresh failed: keep what we knew, and try again soon.
			archs = el.Value.(*entry).archs
		}
		r.storeLocked(image, archs, r.opts.NegativeTTL)
		r.log.Info("image architectures unknown", "image", image, "err", err, "retryIn", r.opts.NegativeTTL)
	}
}

// storeLocked caches image's archs for ttl, evicting the least recently
// asked images past MaxEntries. r.mu is held.
func (r *Resolver) storeLocked(image string, archs []string, ttl time.Duration) {
	expires := r.now().Add(ttl)
	if el, ok := r.entries[image]; ok {
		e := el.Value.(*entry)
		e.archs, e.expires = archs, expires
		r.lru.MoveToFront(el)
		return
	}
	r.entries[image] = r.lru.PushFront(&entry{image: image, archs: archs, expires: expires})
	for r.lru.Len() > r.opts.MaxEntries {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.entries, old.Value.(*entry).image)
	}
}

// invalidError is an image reference that does not parse.
type invalidError struct{ err error }

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

// fetch reads image's manifest (and, for a single image, its config) from
// its registry. References are normalized as containerd and Docker do:
// "busybox" is docker.io/library/busybox:latest.
func (r *Resolver) fetch(ctx context.Context, image string) ([]string, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, &invalidError{fmt.Errorf("parse image reference %q: %w", image, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	desc, err := remote.Get(ref,
		remote.WithContext(ctx),
		remote.WithAuth(authn.Anonymous),
		remote.WithTransport(r.opts.Transport),
		remote.WithUserAgent("wasmfleet-scheduler"),
	)
	if err != nil {
		return nil, fmt.Errorf("get manifest of %s: %w", ref, err)
	}
	archs, err := descriptorArchitectures(desc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	return archs, nil
}

// descriptorArchitectures reads the architectures out of a fetched
// manifest: an index's linux platforms, or a single image's config.
func descriptorArchitectures(desc *remote.Descriptor) ([]string, error) {
	switch mt := desc.MediaType; {
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return nil, err
		}
		var archs []string
		for _, m := range im.Manifests {
			if m.Platform != nil {
				archs = addArch(archs, m.Platform.OS, m.Platform.Architecture)
			}
		}
		return archs, nil
	case mt.IsSchema1():
		var m struct {
			Architecture string `json:"architecture"`
		}
		if err := json.Unmarshal(desc.Manifest, &m); err != nil {
			return nil, err
		}
		return addArch(nil, "", m.Architecture), nil
	default:
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		return addArch(nil, cf.OS, cf.Architecture), nil
	}
}

// addArch adds the GOARCH name of a linux (or unspecified) platform's
// architecture to the sorted set archs. Other OSes and the "unknown"
// platform of attestation manifests are left out.
func addArch(archs []string, os, arch string) []string {
	if os != "" && os != "linux" {
		return archs
	}
	a := NormalizeArch(arch)
	if a == "" || a == "unknown" {
		return archs
	}
	if i, found := slices.BinarySearch(archs, a); !found {
		archs = slices.Insert(archs, i, a)
	}
	return archs
}

// NormalizeArch maps an image platform's architecture to GOARCH as
// containerd's platforms.Normalize does (x86_64 → amd64, aarch64 → arm64,
// armhf and armel → arm, i386 → 386); others are lower-cased as they are.
func NormalizeArch(arch string) string {
	switch a := strings.ToLower(arch); a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "armhf", "armel":
		return "arm"
	case "i386":
		return "386"
	default:
		return a
	}
}
