package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
	"github.com/wasmfleet/wasmfleet/runtime"
)

// Defaults of a ModuleCache's tunables.
const (
	// DefaultMaxFetchSize is the largest module the cache downloads or
	// copies. It is above the store's default push limit (128 MiB) so that
	// a store configured a little higher still works.
	DefaultMaxFetchSize = 256 << 20
	// DefaultResolveTimeout bounds resolving a tag in the module store;
	// past it the store counts as unreachable and the tag's last known
	// digest is used.
	DefaultResolveTimeout = 5 * time.Second
)

// PullError is a failed Fetch, classified for the pod's waiting state:
// Reason is ReasonErrImagePull (invalid reference, file modules disabled,
// missing module, unreachable source, HTTP error, digest mismatch, too
// large, local I/O) or ReasonInvalidModule (the bytes, verified against
// their digest, are not a WebAssembly core module). Message is for the
// user (the container status and the Event); Err is the cause, for
// errors.Is (modules.ErrNotFound, modules.ErrDigestMismatch, …).
type PullError struct {
	Reason  string
	Message string
	Err     error
}

func (e *PullError) Error() string { return e.Message }

func (e *PullError) Unwrap() error { return e.Err }

func pullError(reason, image string, err error) *PullError {
	return &PullError{Reason: reason, Message: fmt.Sprintf("pull %s: %v", image, err), Err: err}
}

// Errors wrapped by PullError.Err besides those of modules and the network.
var (
	// ErrNoModuleStore: a store reference, but the node has no link to
	// the module store and the module is not cached.
	ErrNoModuleStore = errors.New("no connection to the module store")
	// ErrModuleTooLarge: the module exceeds ModuleCache.MaxModuleSize.
	ErrModuleTooLarge = errors.New("module too large")
)

// ModuleCache fetches the modules wasm containers name and keeps them on
// local disk, content-addressed:
//
//	DIR/sha256/<hex>.wasm   a module whose sha256 is <hex> (read-only)
//	DIR/sha256/.tmp-*       downloads in progress (removed at start)
//	DIR/tags/<hex>          "NAME:TAG sha256:<hex>": the digest the tag
//	                        last resolved to; <hex> is sha256("NAME:TAG")
//
// A module is written to a temporary file in the same directory while it is
// hashed, synced and renamed into place only once its digest is verified,
// so a cache file is complete or absent. A digest already cached is never
// downloaded again, and concurrent Fetches of one digest download it once.
//
// Tags may move, so NAME:TAG is resolved in the store on every Fetch
// (Fetches that come while a resolution of the tag is on its way share
// it); when the store cannot be reached (no store, NATS down, timeout) the
// digest the tag last resolved to, remembered under DIR/tags, is used if
// that module is cached: a node without its link keeps starting the pods
// it ran before. A tag the store says does not exist is an error, not a
// fallback.
//
// Cache files are checked on first use: the first time a process serves a
// file it did not write itself it re-hashes it (once for concurrent
// Fetches), and it remembers the file's size and modification time; a
// later Fetch re-hashes only when those changed. A file that does not
// match its name is removed and fetched again. Runtimes check the digest
// once more when they compile a module; if one reports
// runtime.ErrDigestMismatch, the agent calls Evict.
//
// A ModuleCache is safe for concurrent use. The exported fields may be set
// before the first Fetch.
type ModuleCache struct {
	// MaxModuleSize is the largest module fetched; 0 means
	// DefaultMaxFetchSize.
	MaxModuleSize int64
	// ResolveTimeout bounds resolving a tag; 0 means DefaultResolveTimeout.
	ResolveTimeout time.Duration

	dir        string
	client     *http.Client
	allowFiles bool

	mu        sync.Mutex
	store     *modules.Store
	inflight  map[string]*fetchCall
	verified  map[string]fileStamp     // digest → stamp of the file last hashed
	hashing   map[string]chan struct{} // digest → closed when its hashing ends
	resolving map[string]*resolveCall  // NAME:TAG → its resolution on its way
}

type fetchCall struct {
	done chan struct{}
	err  error
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// NewModuleCache returns a cache in dir (created if needed), reading store
// references from store (nil: the node has no link yet; see SetStore),
// https modules with httpClient (nil: http.DefaultClient) and file://
// modules only if allowFiles. Downloads a crashed agent left behind are
// removed.
func NewModuleCache(dir string, store *modules.Store, httpClient *http.Client, allowFiles bool) (*ModuleCache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	for _, d := range []string{filepath.Join(abs, "sha256"), filepath.Join(abs, "tags")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("module cache: %w", err)
		}
	}
	stale, _ := filepath.Glob(filepath.Join(abs, "sha256", ".tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &ModuleCache{
		dir:        abs,
		client:     httpClient,
		allowFiles: allowFiles,
		store:      store,
		inflight:   map[string]*fetchCall{},
		verified:   map[string]fileStamp{},
		hashing:    map[string]chan struct{}{},
		resolving:  map[string]*resolveCall{},
	}, nil
}

// SetStore replaces the module store connection (nil when the link is
// lost); Fetches already running keep the one they started with.
func (c *ModuleCache) SetStore(s *modules.Store) {
	c.mu.Lock()
	c.store = s
	c.mu.Unlock()
}

// Path is where the module with digest (sha256:<hex>) is cached, whether or
// not it is.
func (c *ModuleCache) Path(digest string) string {
	return filepath.Join(c.dir, "sha256", strings.TrimPrefix(digest, "sha256:")+".wasm")
}

// Evict removes a cached module, for example after a runtime found that
// the file does not match its digest; the next Fetch downloads it again.
func (c *ModuleCache) Evict(digest string) error {
	if err := modules.ValidateDigest(digest); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.verified, digest)
	c.mu.Unlock()
	if err := os.Remove(c.Path(digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Fetch returns the local file of the module image names, downloading it
// if it is not cached. Every error is a *PullError.
func (c *ModuleCache) Fetch(ctx context.Context, image string) (runtime.Module, error) {
	img, err := ParseImage(image, c.allowFiles)
	if err != nil {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	}
	c.mu.Lock()
	store := c.store
	c.mu.Unlock()

	var digest string
	var download func(ctx context.Context, w io.Writer) error
	switch img.Source {
	case FromFile:
		return c.fetchFile(image, img.URL)
	case FromHTTPS:
		digest = img.Digest
		download = func(ctx context.Context, w io.Writer) error { return c.downloadHTTPS(ctx, img.URL, w) }
	case FromStore:
		digest = img.Digest
		if img.Store.Tag != "" {
			if digest, err = c.resolveTag(ctx, store, img.Store); err != nil {
				return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
			}
		}
		download = func(ctx context.Context, w io.Writer) error { return c.downloadStore(ctx, store, digest, w) }
	default:
		return runtime.Module{}, pullError(ReasonErrImagePull, image, fmt.Errorf("unknown image source %d", img.Source))
	}
	m, err := c.fetchDigest(ctx, digest, download)
	if err != nil {
		var pe *PullError
		if errors.As(err, &pe) {
			return runtime.Module{}, &PullError{Reason: pe.Reason, Message: fmt.Sprintf("pull %s: %s", image, pe.Message), Err: pe.Err}
		}
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	}
	return m, nil
}

// resolveTag asks the store for the tag's digest and remembers it, or
// falls back to the remembered digest when the store cannot be reached and
// that module is cached.
func (c *ModuleCache) resolveTag(ctx context.Context, store *modules.Store, ref modules.Ref) (string, error) {
	var resolveErr error
	if store == nil {
		resolveErr = ErrNoModuleStore
	} else {
		digest, err, rememberErr := c.resolveShared(ctx, store, ref)
		if err == nil {
			if rememberErr != nil {
				return "", rememberErr
			}
			return digest, nil
		}
		if ctx.Err() != nil || errors.Is(err, modules.ErrNotFound) || errors.Is(err, modules.ErrInvalidRef) {
			return "", err // the caller gave up, or the store answered
		}
		resolveErr = fmt.Errorf("module store unreachable: %w", err)
	}
	digest, ok := c.rememberedTag(ref)
	if !ok {
		return "", fmt.Errorf("resolve tag %s: %w (and the tag was never resolved on this node)", ref, resolveErr)
	}
	if _, err := os.Stat(c.Path(digest)); err != nil {
		return "", fmt.Errorf("resolve tag %s: %w (it last resolved to %s, which is not cached)", ref, resolveErr, digest)
	}
	return digest, nil
}

// resolveCall is one resolution of a tag that concurrent Fetches share.
type resolveCall struct {
	store            *modules.Store
	done             chan struct{}
	digest           string
	err, rememberErr error
}

// resolveShared resolves ref in store and remembers the digest; callers
// that come while a resolution of ref in the same store is on its way
// share it (a burst of pods of one tag, or an agent restarting with many,
// asks the store once, not once per pod). The resolution runs on its own
// goroutine, bounded by ResolveTimeout; a caller whose ctx ends stops
// waiting for it. err is the store's, rememberErr the local disk's.
func (c *ModuleCache) resolveShared(ctx context.Context, store *modules.Store, ref modules.Ref) (digest string, err, rememberErr error) {
	key := ref.String()
	c.mu.Lock()
	call, ok := c.resolving[key]
	if !ok || call.store != store {
		call = &resolveCall{store: store, done: make(chan struct{})}
		if !ok {
			c.resolving[key] = call
		}
		go c.resolve(context.WithoutCancel(ctx), call, ref)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.digest, call.err, call.rememberErr
	case <-ctx.Done():
		return "", ctx.Err(), nil
	}
}

// resolve runs call: asks call.store for ref within ResolveTimeout and
// remembers the answer.
func (c *ModuleCache) resolve(ctx context.Context, call *resolveCall, ref modules.Ref) {
	timeout := c.ResolveTimeout
	if timeout <= 0 {
		timeout = DefaultResolveTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	call.digest, call.err = call.store.Resolve(ctx, ref.String())
	cancel()
	if call.err == nil {
		call.rememberErr = c.rememberTag(ref, call.digest)
	}
	c.mu.Lock()
	if c.resolving[ref.String()] == call {
		delete(c.resolving, ref.String())
	}
	c.mu.Unlock()
	close(call.done)
}

func (c *ModuleCache) tagFile(ref modules.Ref) string {
	sum := sha256.Sum256([]byte(ref.String()))
	return filepath.Join(c.dir, "tags", hex.EncodeToString(sum[:]))
}

func (c *ModuleCache) rememberedTag(ref modules.Ref) (string, bool) {
	b, err := os.ReadFile(c.tagFile(ref))
	if err != nil {
		return "", false
	}
	name, digest, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok || name != ref.String() || modules.ValidateDigest(digest) != nil {
		return "", false
	}
	return digest, true
}

func (c *ModuleCache) rememberTag(ref modules.Ref, digest string) error {
	if d, ok := c.rememberedTag(ref); ok && d == digest {
		return nil
	}
	path := c.tagFile(ref)
	err := writeAtomic(filepath.Dir(path), path, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s %s\n", ref, digest)
		return err
	})
	if err != nil {
		return fmt.Errorf("remember tag %s: %w", ref, err)
	}
	return nil
}

// fetchDigest returns the cached module digest, calling download (once
// across concurrent callers) to fill the cache.
func (c *ModuleCache) fetchDigest(ctx context.Context, digest string, download func(context.Context, io.Writer) error) (runtime.Module, error) {
	m := runtime.Module{Path: c.Path(digest), Digest: digest}
	for {
		if c.cached(digest) {
			return m, nil
		}
		c.mu.Lock()
		call, ok := c.inflight[digest]
		if !ok {
			call = &fetchCall{done: make(chan struct{})}
			c.inflight[digest] = call
			c.mu.Unlock()
			call.err = c.download(ctx, digest, download)
			c.mu.Lock()
			delete(c.inflight, digest)
			c.mu.Unlock()
			close(call.done)
			if call.err != nil {
				return runtime.Module{}, call.err
			}
			return m, nil
		}
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return runtime.Module{}, ctx.Err()
		}
		if call.err == nil {
			return m, nil
		}
		// The leader's download failed. If only because its caller gave up,
		// try again for this caller; otherwise share the error.
		if !errors.Is(call.err, context.Canceled) && !errors.Is(call.err, context.DeadlineExceeded) {
			return runtime.Module{}, call.err
		}
		if ctx.Err() != nil {
			return runtime.Module{}, ctx.Err()
		}
	}
}

// cached reports whether the module is on disk and matches its digest,
// re-hashing a file this process has not verified, or that changed since.
// Concurrent callers share one hashing of a digest (an agent restarting
// with many pods of one module would otherwise hash it once per pod).
func (c *ModuleCache) cached(digest string) bool {
	path := c.Path(digest)
	for {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
		stamp := fileStamp{size: fi.Size(), modTime: fi.ModTime()}
		c.mu.Lock()
		if known, ok := c.verified[digest]; ok && known == stamp {
			c.mu.Unlock()
			return true
		}
		if wait, ok := c.hashing[digest]; ok {
			c.mu.Unlock()
			<-wait
			continue // look again at what the other caller found
		}
		done := make(chan struct{})
		c.hashing[digest] = done
		c.mu.Unlock()
		got, err := hashFile(path)
		ok := err == nil && got == digest
		if !ok {
			os.Remove(path) // corrupt or unreadable: fetch it again
		}
		c.mu.Lock()
		if ok {
			c.verified[digest] = stamp
		}
		delete(c.hashing, digest)
		c.mu.Unlock()
		close(done)
		return ok
	}
}

// download writes a module into the cache: to a temporary file while
// hashing, verified against digest and the wasm header, synced, renamed.
func (c *ModuleCache) download(ctx context.Context, digest string, fetch func(context.Context, io.Writer) error) error {
	dir := filepath.Join(c.dir, "sha256")
	path := c.Path(digest)
	var invalid error
	err := writeAtomic(dir, path, func(w io.Writer) error {
		h := sha256.New()
		head := &headWriter{}
		lw := &limitWriter{w: io.MultiWriter(w, h, head), n: c.maxSize()}
		if err := fetch(ctx, lw); err != nil {
			return err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			return fmt.Errorf("%w: want %s, got %d bytes with %s", modules.ErrDigestMismatch, digest, lw.written, got)
		}
		if err := modules.CheckHeader(head.b); err != nil {
			invalid = err
			return err
		}
		return nil
	})
	switch {
	case invalid != nil:
		return &PullError{Reason: ReasonInvalidModule, Message: invalid.Error(), Err: invalid}
	case err != nil:
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.verified[digest] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	c.mu.Unlock()
	return nil
}

func (c *ModuleCache) maxSize() int64 {
	if c.MaxModuleSize > 0 {
		return c.MaxModuleSize
	}
	return DefaultMaxFetchSize
}

func (c *ModuleCache) downloadHTTPS(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/wasm, */*")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.ContentLength > c.maxSize() {
		return fmt.Errorf("%w: GET %s: %s, larger than the limit of %s", ErrModuleTooLarge, url, modules.FormatSize(resp.ContentLength), modules.FormatSize(c.maxSize()))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

func (c *ModuleCache) downloadStore(ctx context.Context, store *modules.Store, digest string, w io.Writer) error {
	if store == nil {
		return ErrNoModuleStore
	}
	r, size, err := store.Open(ctx, digest)
	if err != nil {
		return err
	}
	defer r.Close()
	if size > c.maxSize() {
		return fmt.Errorf("%w: %s is %s, larger than the limit of %s", ErrModuleTooLarge, digest, modules.FormatSize(size), modules.FormatSize(c.maxSize()))
	}
	_, err = io.Copy(w, r)
	return err
}

// fetchFile copies a local file into the cache, so that changing the file
// later does not change what running pods run; its digest is its content's.
func (c *ModuleCache) fetchFile(image, path string) (runtime.Module, error) {
	f, err := os.Open(path)
	if err != nil {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	} else if !fi.Mode().IsRegular() {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, fmt.Errorf("%s is not a regular file", path))
	}
	dir := filepath.Join(c.dir, "sha256")
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // no-op once renamed
	}()
	h := sha256.New()
	head := &headWriter{}
	lw := &limitWriter{w: io.MultiWriter(tmp, h, head), n: c.maxSize()}
	if _, err := io.Copy(lw, f); err != nil {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	}
	if err := modules.CheckHeader(head.b); err != nil {
		return runtime.Module{}, pullError(ReasonInvalidModule, image, err)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	m := runtime.Module{Path: c.Path(digest), Digest: digest}
	if c.cached(digest) {
		return m, nil
	}
	if err := commit(tmp, m.Path); err != nil {
		return runtime.Module{}, pullError(ReasonErrImagePull, image, err)
	}
	if fi, err := os.Stat(m.Path); err == nil {
		c.mu.Lock()
		c.verified[digest] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
		c.mu.Unlock()
	}
	return m, nil
}

// writeAtomic writes path through a temporary file in dir: write, sync,
// rename, sync dir. Nothing is left behind on error.
func writeAtomic(dir, path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // no-op once renamed
	}()
	if err := write(tmp); err != nil {
		return err
	}
	return commit(tmp, path)
}

// commit syncs tmp, makes it read-only, renames it to path and syncs the
// directory.
func commit(tmp *os.File, path string) error {
	if err := tmp.Chmod(0o444); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// limitWriter fails once more than n bytes are written.
type limitWriter struct {
	w       io.Writer
	n       int64
	written int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.written+int64(len(p)) > l.n {
		return 0, fmt.Errorf("%w: more than the limit of %s", ErrModuleTooLarge, modules.FormatSize(l.n))
	}
	n, err := l.w.Write(p)
	l.written += int64(n)
	return n, err
}

// headWriter keeps the first modules.HeaderSize bytes written.
type headWriter struct{ b []byte }

func (h *headWriter) Write(p []byte) (int, error) {
	if need := modules.HeaderSize - len(h.b); need > 0 {
		h.b = append(h.b, p[:min(need, len(p))]...)
	}
	return len(p), nil
}
