package testenv

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specsgo "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultContainerdAddress is the socket .ci/run starts containerd on.
const DefaultContainerdAddress = "/run/containerd/containerd.sock"

// Containerd returns the address of a running containerd (CONTAINERD_ADDRESS,
// else DefaultContainerdAddress) after checking that containerd and runc are
// installed and the socket accepts connections. Without them the test is
// skipped, except under CI=true where it fails: .ci/run installs and starts
// containerd.
func Containerd(t testing.TB) string {
	t.Helper()
	Tool(t, "containerd")
	Tool(t, "runc")
	addr := os.Getenv("CONTAINERD_ADDRESS")
	if addr == "" {
		addr = DefaultContainerdAddress
	}
	c, err := net.DialTimeout("unix", addr, 5*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("containerd is not answering on %s (required when CI=true; .ci/run starts it): %v", addr, err)
		}
		t.Skipf("containerd is not answering on %s: %v", addr, err)
	}
	c.Close()
	return addr
}

// StaticGoBinary builds the Go package pkg (a path or import path) for
// linux/GOARCH with CGO_ENABLED=0, for a container image, and returns the
// binary's path in the test's temp dir.
func StaticGoBinary(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command(Tool(t, "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// OCIImage describes a one-layer image for OCIArchive.
type OCIImage struct {
	// Name is the full reference the archive gives the image, e.g.
	// "wasmfleet.test/app:v1" (annotation io.containerd.image.name).
	Name string
	// Files are the layer's regular files by absolute path, e.g.
	// {"/app": {Mode: 0o755, Data: bin}}. Their parent directories, /tmp
	// (mode 1777) and the mount points /proc, /sys and /dev are added.
	Files map[string]OCIFile
	// Entrypoint, Cmd and Env are the image config's.
	Entrypoint, Cmd, Env []string
}

// OCIFile is one file of an OCIImage.
type OCIFile struct {
	Mode int64
	Data []byte
}

// OCIArchive returns img as an OCI image archive (a tar holding oci-layout,
// index.json and blobs/sha256/…, the layer uncompressed) for the host's
// architecture, as `ctr images import` and containerd's Import read it.
func OCIArchive(t testing.TB, img OCIImage) []byte {
	t.Helper()
	layer, err := layerTar(img.Files)
	if err != nil {
		t.Fatal(err)
	}
	layerDigest := digest.FromBytes(layer)
	config := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH},
		Config:   ocispec.ImageConfig{Entrypoint: img.Entrypoint, Cmd: img.Cmd, Env: img.Env},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
	}
	configJSON := mustJSON(t, config)
	manifest := ocispec.Manifest{
		Versioned: specsgo.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, configJSON),
		Layers:    []ocispec.Descriptor{descriptor(ocispec.MediaTypeImageLayer, layer)},
	}
	manifestJSON := mustJSON(t, manifest)
	md := descriptor(ocispec.MediaTypeImageManifest, manifestJSON)
	md.Annotations = map[string]string{
		"io.containerd.image.name": img.Name,
		ocispec.AnnotationRefName:  img.Name,
	}
	md.Platform = &config.Platform
	index := ocispec.Index{
		Versioned: specsgo.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{md},
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add(ocispec.ImageLayoutFile, mustJSON(t, ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}))
	add("index.json", mustJSON(t, index))
	for _, b := range [][]byte{layer, configJSON, manifestJSON} {
		sum := sha256.Sum256(b)
		add("blobs/sha256/"+hex.EncodeToString(sum[:]), b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func descriptor(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layerTar writes files, their parent directories and the usual mount
// points as an uncompressed layer.
func layerTar(files map[string]OCIFile) ([]byte, error) {
	dirs := map[string]int64{"tmp": 0o1777, "proc": 0o555, "sys": 0o555, "dev": 0o755, "etc": 0o755}
	var names []string
	byName := map[string]OCIFile{}
	for p, f := range files {
		rel := filepath.Clean("/" + p)[1:]
		names = append(names, rel)
		byName[rel] = f
		for d := filepath.Dir(rel); d != "." && d != "/"; d = filepath.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	var dirNames []string
	for d := range dirs {
		dirNames = append(dirNames, d)
	}
	sort.Strings(dirNames)
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, d := range dirNames {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: dirs[d], Typeflag: tar.TypeDir, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		f := byName[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: f.Mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg, ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
