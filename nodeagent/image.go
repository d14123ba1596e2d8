package nodeagent

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
)

// ImageSource says where a wasm container's module comes from.
type ImageSource int

// The module sources DESIGN.md names.
const (
	FromStore ImageSource = iota // NAME:TAG or NAME@sha256:<hex> in the module store
	FromHTTPS                    // https://…/x.wasm#sha256=<hex>, verified by the agent
	FromFile                     // file:///… where the agent allows local files
)

// Image is a parsed wasm container image.
type Image struct {
	Source ImageSource
	// Store is the module store reference (FromStore).
	Store modules.Ref
	// URL is the https URL without its fragment, or the file path.
	URL string
	// Digest is the expected sha256:<hex>: required for https, given for
	// NAME@sha256 references, empty otherwise (known after resolving).
	Digest string
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ErrFileModulesDisabled refuses file:// images on agents that do not allow
// local files.
var ErrFileModulesDisabled = errors.New("file:// modules are not allowed on this node (allow-file-modules is off)")

// ParseImage reads a wasm container's image field. The errors say what is
// expected; the agent reports them with reason ErrImagePull.
func ParseImage(image string, allowFiles bool) (Image, error) {
	switch {
	case strings.HasPrefix(image, "https://"):
		u, err := url.Parse(image)
		if err != nil {
			return Image{}, fmt.Errorf("image %q: %w", image, err)
		}
		d, ok := strings.CutPrefix(u.Fragment, "sha256=")
		if !ok || !hexDigest.MatchString(d) {
			return Image{}, fmt.Errorf("image %q: an https module needs its digest as #sha256=<64 lowercase hex>", image)
		}
		u.Fragment = ""
		return Image{Source: FromHTTPS, URL: u.String(), Digest: "sha256:" + d}, nil
	case strings.HasPrefix(image, "file://"):
		if !allowFiles {
			return Image{}, ErrFileModulesDisabled
		}
		u, err := url.Parse(image)
		if err != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return Image{}, fmt.Errorf("image %q: want file:///absolute/path.wasm", image)
		}
		return Image{Source: FromFile, URL: u.Path}, nil
	case strings.Contains(image, "://"):
		return Image{}, fmt.Errorf("image %q: unsupported scheme; use NAME:TAG, NAME@sha256:<hex>, https://…#sha256=<hex> or file:///…", image)
	}
	ref, err := modules.ParseRef(image)
	if err != nil {
		return Image{}, err
	}
	return Image{Source: FromStore, Store: ref, Digest: ref.Digest}, nil
}
