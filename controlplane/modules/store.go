package modules

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names in NATS. See the package documentation for the layout.
const (
	// Bucket is the JetStream object store holding the modules.
	Bucket = "WASMFLEET_MODULES"
	// Stream is the JetStream stream behind Bucket.
	Stream = "OBJ_" + Bucket
	// TagPrefix starts the name of every tag object: tags/NAME:TAG is a
	// link to the object named by the module's digest.
	TagPrefix = "tags/"
)

// DefaultMaxModuleSize is the largest module a Store accepts unless
// Options.MaxModuleSize says otherwise.
const DefaultMaxModuleSize = 128 << 20

var (
	// ErrNotFound is wrapped when a tag or digest is not in the store.
	ErrNotFound = errors.New("module not found")
	// ErrTooLarge is wrapped when a module exceeds the store's size limit.
	ErrTooLarge = errors.New("module too large")
	// ErrDigestMismatch is wrapped when stored content does not hash to
	// the digest it is stored under.
	ErrDigestMismatch = errors.New("module digest mismatch")
)

// Module is one entry of the store: a tag and the module it points to, or
// (Name and Tag empty) a stored module no tag points to any more.
type Module struct {
	Name   string `json:"name"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Created is when the tag was last set (for an untagged module: when
	// it was stored).
	Created time.Time `json:"created,omitzero"`
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// MaxModuleSize is the largest module Put accepts, in bytes; 0 means
	// DefaultMaxModuleSize.
	MaxModuleSize int64
	// TempDir is where Put spools a module while hashing it (the digest,
	// and so the object's name, is known only at the end); "" means
	// os.TempDir(). Prefer a disk-backed directory: /tmp may be memory.
	TempDir string
	// Replicas is the bucket's JetStream replication factor (New only);
	// 0 means 1.
	Replicas int
}

// Store is the cluster's module store. It is safe for concurrent use and
// holds no goroutines; operations are bounded by their context.
type Store struct {
	obs     jetstream.ObjectStore
	max     int64
	tempDir string
}

// New creates the bucket, or updates its configuration, and returns a
// Store on it. The control plane calls it; see Bind for readers.
func New(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      Bucket,
		Description: "wasmfleet modules: objects named sha256:<hex>, tags as links named tags/NAME:TAG",
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		Compression: true,
	})
	if err != nil {
		return nil, fmt.Errorf("module store: create bucket %s: %w", Bucket, err)
	}
	return newStore(obs, opts), nil
}

// Bind returns a Store on the existing bucket without creating or
// changing it, for clients that may only read (node agents).
func Bind(ctx context.Context, js jetstream.JetStream, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("module store: bind bucket %s: %w", Bucket, err)
	}
	return newStore(obs, opts), nil
}

func (o *Options) validate() error {
	if o.MaxModuleSize != 0 && o.MaxModuleSize < HeaderSize {
		return fmt.Errorf("module store: MaxModuleSize %d is smaller than a module header (%d bytes)", o.MaxModuleSize, HeaderSize)
	}
	if o.Replicas < 0 || o.Replicas > 5 {
		return fmt.Errorf("module store: Replicas %d: want 1 to 5", o.Replicas)
	}
	return nil
}

func newStore(obs jetstream.ObjectStore, opts Options) *Store {
	s := &Store{obs: obs, max: opts.MaxModuleSize, tempDir: opts.TempDir}
	if s.max == 0 {
		s.max = DefaultMaxModuleSize
	}
	return s
}

// MaxModuleSize is the largest module Put accepts.
func (s *Store) MaxModuleSize() int64 { return s.max }

// Put stores the module read from r and points the tag ref (NAME:TAG) at
// it, returning its digest (sha256:<hex>) and size. r is streamed through a
// temporary file, never held in memory. Content that is not a WebAssembly
// core module (ErrNotWasm) or is larger than the limit (ErrTooLarge) is
// rejected before anything is written to NATS. Storing bytes already stored
// uploads nothing; tagging moves the tag if it pointed elsewhere (the old
// module stays, reachable by digest).
func (s *Store) Put(ctx context.Context, ref string, r io.Reader) (string, int64, error) {
	rf, err := ParseRef(ref)
	if err != nil {
		return "", 0, err
	}
	if rf.Tag == "" {
		return "", 0, fmt.Errorf("%w %q: a module is pushed to NAME:TAG, not to a digest", ErrInvalidRef, ref)
	}
	if s.tempDir != "" {
		if err := os.MkdirAll(s.tempDir, 0o700); err != nil {
			return "", 0, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	f, err := os.CreateTemp(s.tempDir, "module-upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("push %s: %w", ref, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	sum, size, err := s.spool(f, r)
	if err != nil {
		return "", 0, fmt.Errorf("push %s: %w", ref, err)
	}
	digest := "sha256:" + hex.EncodeToString(sum)

	info, err := s.obs.GetInfo(ctx, digest)
	switch {
	case err == nil && sameDigest(info.Digest, sum) && int64(info.Size) == size:
		// Already stored: content addressing makes the push idempotent.
	case err == nil || errors.Is(err, jetstream.ErrObjectNotFound):
		// New, or stored content that does not hash to its name: (re)write.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", 0, fmt.Errorf("push %s: %w", ref, err)
		}
		info, err = s.obs.Put(ctx, jetstream.ObjectMeta{Name: digest}, f)
		if err != nil {
			return "", 0, fmt.Errorf("push %s: store %s: %w", ref, digest, err)
		}
		if !sameDigest(info.Digest, sum) || int64(info.Size) != size {
			return "", 0, fmt.Errorf("push %s: %w: stored %d bytes with %s, spooled %d bytes", ref, ErrDigestMismatch, info.Size, info.Digest, size)
		}
	default:
		return "", 0, fmt.Errorf("push %s: look up %s: %w", ref, digest, err)
	}
	if _, err := s.obs.AddLink(ctx, tagObject(rf), info); err != nil {
		return "", 0, fmt.Errorf("push %s: tag %s: %w", ref, digest, err)
	}
	return digest, size, nil
}

// spool copies r to w, checking the wasm header and the size limit and
// hashing as it goes.
func (s *Store) spool(w io.Writer, r io.Reader) ([]byte, int64, error) {
	head := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read module: %w", err)
	}
	if err := CheckHeader(head[:n]); err != nil {
		return nil, 0, err
	}
	h := sha256.New()
	mw := io.MultiWriter(w, h)
	if _, err := mw.Write(head); err != nil {
		return nil, 0, fmt.Errorf("spool module: %w", err)
	}
	// Read one byte past the limit to tell "exactly the limit" from "more".
	rest, err := io.Copy(mw, io.LimitReader(r, s.max-HeaderSize+1))
	size := HeaderSize + rest
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, 0, fmt.Errorf("spool module: %w", err)
		}
		return nil, 0, fmt.Errorf("read module: %w", err)
	}
	if size > s.max {
		return nil, 0, fmt.Errorf("%w: it is larger than the limit of %s", ErrTooLarge, FormatSize(s.max))
	}
	return h.Sum(nil), size, nil
}

// Resolve returns the digest a reference names: the digest a tag points to
// for NAME:TAG, the digest itself for NAME@sha256:<hex> if that module is
// stored. Digests are global: NAME in a digest reference is informational.
// Errors wrap ErrInvalidRef or ErrNotFound.
func (s *Store) Resolve(ctx context.Context, ref string) (string, error) {
	m, err := s.Stat(ctx, ref)
	if err != nil {
		return "", err
	}
	return m.Digest, nil
}

// Stat is Resolve with the module's size and the tag's time.
func (s *Store) Stat(ctx context.Context, ref string) (Module, error) {
	rf, err := ParseRef(ref)
	if err != nil {
		return Module{}, err
	}
	m := Module{Name: rf.Name, Tag: rf.Tag, Digest: rf.Digest}
	if rf.Tag != "" {
		link, err := s.obs.GetInfo(ctx, tagObject(rf))
		if err != nil {
			return Module{}, notFound(err, ref)
		}
		if link.Opts == nil || link.Opts.Link == nil || ValidateDigest(link.Opts.Link.Name) != nil {
			return Module{}, fmt.Errorf("resolve %s: %s is not a link to a module digest", ref, tagObject(rf))
		}
		m.Digest, m.Created = link.Opts.Link.Name, link.ModTime
	}
	info, err := s.obs.GetInfo(ctx, m.Digest)
	if err != nil {
		return Module{}, notFound(err, m.Name+"@"+m.Digest)
	}
	m.Size = int64(info.Size)
	if m.Created.IsZero() {
		m.Created = info.ModTime
	}
	return m, nil
}

// Open returns the module stored under digest (sha256:<hex>) and its size.
// The reader hashes what it returns: at the end it fails with
// ErrDigestMismatch instead of io.EOF if the content does not match the
// digest, so a caller must read to io.EOF before trusting the bytes. ctx
// bounds the whole read; Close releases the NATS subscription.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	if err := ValidateDigest(digest); err != nil {
		return nil, 0, err
	}
	res, err := s.obs.Get(ctx, digest)
	if err != nil {
		return nil, 0, notFound(err, digest)
	}
	info, err := res.Info()
	if err != nil {
		res.Close()
		return nil, 0, fmt.Errorf("open %s: %w", digest, err)
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	size := int64(info.Size)
	return &verifyingReader{r: res, h: sha256.New(), want: want, size: size, digest: digest}, size, nil
}

// List returns every tag with the module it points to, and every stored
// module no tag points to (Name and Tag empty), sorted by name and tag,
// untagged modules last.
func (s *Store) List(ctx context.Context) ([]Module, error) {
	infos, err := s.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	objects := map[string]*jetstream.ObjectInfo{}
	for _, info := range infos {
		if info.Opts == nil || info.Opts.Link == nil {
			objects[info.Name] = info
		}
	}
	tagged := map[string]bool{}
	var out []Module
	for _, info := range infos {
		if info.Opts == nil || info.Opts.Link == nil || !strings.HasPrefix(info.Name, TagPrefix) {
			continue
		}
		rf, err := ParseRef(strings.TrimPrefix(info.Name, TagPrefix))
		if err != nil || rf.Tag == "" {
			continue // not written by a Store
		}
		m := Module{Name: rf.Name, Tag: rf.Tag, Digest: info.Opts.Link.Name, Created: info.ModTime}
		if obj, ok := objects[m.Digest]; ok {
			m.Size = int64(obj.Size)
		}
		tagged[m.Digest] = true
		out = append(out, m)
	}
	for name, obj := range objects {
		if !tagged[name] && ValidateDigest(name) == nil {
			out = append(out, Module{Digest: name, Size: int64(obj.Size), Created: obj.ModTime})
		}
	}
	slices.SortFunc(out, func(a, b Module) int {
		if (a.Name == "") != (b.Name == "") {
			if a.Name == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.Digest, b.Digest))
	})
	return out, nil
}

// tagObject is the name of the link object for a tag reference.
func tagObject(rf Ref) string { return TagPrefix + rf.Name + ":" + rf.Tag }

func notFound(err error, what string) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// verifyingReader checks size and digest of what it reads.
type verifyingReader struct {
	r      io.ReadCloser
	h      hash.Hash
	want   []byte
	size   int64
	n      int64
	digest string
	err    error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case v.n > v.size:
		v.err = fmt.Errorf("%w: %s: more than the %d bytes stored", ErrDigestMismatch, v.digest, v.size)
	case errors.Is(err, io.EOF):
		if got := v.h.Sum(nil); v.n != v.size || !bytes.Equal(got, v.want) {
			v.err = fmt.Errorf("%w: %s: read %d bytes hashing to sha256:%x", ErrDigestMismatch, v.digest, v.n, got)
		} else {
			v.err = io.EOF
		}
	case errors.Is(err, jetstream.ErrDigestMismatch):
		v.err = fmt.Errorf("%w: %s: %w", ErrDigestMismatch, v.digest, err)
	case err != nil:
		v.err = fmt.Errorf("read %s: %w", v.digest, err)
	}
	if v.err != nil && v.err != io.EOF {
		return n, v.err
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// sameDigest reports whether a NATS object digest ("SHA-256=<base64>")
// is sum.
func sameDigest(natsDigest string, sum []byte) bool {
	b, err := jetstream.DecodeObjectDigest(natsDigest)
	return err == nil && bytes.Equal(b, sum)
}

// FormatSize renders a byte count for people: 812B, 1.5KiB, 128MiB.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + string("KMGTP"[exp]) + "iB"
}
