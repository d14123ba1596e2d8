package modules

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidRef is wrapped by every error about a malformed module
// reference, name, tag or digest.
var ErrInvalidRef = errors.New("invalid module reference")

// MaxNameLength is the longest module name accepted (as OCI registries).
const MaxNameLength = 255

var (
	// nameComponentRe is one path component of a name, as an OCI repository
	// name's: lowercase alphanumerics, separated by single '.', '_' or '-'.
	nameComponentRe = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	tagRe           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	digestRe        = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// refForms is appended to reference errors so a user sees what is expected.
const refForms = "want NAME:TAG or NAME@sha256:<64 hex digits>"

// Ref is a parsed module reference: Name with either Tag or Digest set.
type Ref struct {
	Name   string
	Tag    string
	Digest string
}

// String is the reference in its canonical form: NAME:TAG or NAME@DIGEST.
func (r Ref) String() string {
	if r.Digest != "" {
		return r.Name + "@" + r.Digest
	}
	return r.Name + ":" + r.Tag
}

// ParseRef parses NAME:TAG or NAME@sha256:<hex>. A reference without a tag
// or digest is an error (there is no implicit "latest"), and so is one with
// both. Errors wrap ErrInvalidRef and say what is wrong.
func ParseRef(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: empty reference: %s", ErrInvalidRef, refForms)
	}
	if name, digest, ok := strings.Cut(s, "@"); ok {
		if strings.Contains(name, ":") {
			return Ref{}, fmt.Errorf("%w %q: a tag and a digest together are not supported: %s", ErrInvalidRef, s, refForms)
		}
		if err := ValidateName(name); err != nil {
			return Ref{}, fmt.Errorf("%w %q: %w", ErrInvalidRef, s, unwrapInvalid(err))
		}
		if err := ValidateDigest(digest); err != nil {
			return Ref{}, fmt.Errorf("%w %q: %w", ErrInvalidRef, s, unwrapInvalid(err))
		}
		return Ref{Name: name, Digest: digest}, nil
	}
	name, tag, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("%w %q: no tag: %s", ErrInvalidRef, s, refForms)
	}
	if err := ValidateName(name); err != nil {
		return Ref{}, fmt.Errorf("%w %q: %w", ErrInvalidRef, s, unwrapInvalid(err))
	}
	if err := validateTag(tag); err != nil {
		return Ref{}, fmt.Errorf("%w %q: %w", ErrInvalidRef, s, unwrapInvalid(err))
	}
	return Ref{Name: name, Tag: tag}, nil
}

// ValidateName checks a module name: lowercase path components of
// [a-z0-9] with single '.', '_' or '-' between them, joined by '/', at most
// MaxNameLength bytes ("sensor", "acme/edge/sensor-v2").
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidRef)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: name is %d bytes long, the limit is %d", ErrInvalidRef, len(name), MaxNameLength)
	}
	for c := range strings.SplitSeq(name, "/") {
		if !nameComponentRe.MatchString(c) {
			return fmt.Errorf("%w: name %q: each /-separated component must be lowercase letters and digits with single '.', '_' or '-' between them (like \"acme/sensor-v2\")", ErrInvalidRef, name)
		}
	}
	return nil
}

func validateTag(tag string) error {
	if !tagRe.MatchString(tag) {
		return fmt.Errorf("%w: tag %q: want 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'", ErrInvalidRef, tag)
	}
	return nil
}

// ValidateDigest checks sha256:<64 lowercase hex digits>.
func ValidateDigest(d string) error {
	if !digestRe.MatchString(d) {
		return fmt.Errorf("%w: digest %q: want sha256:<64 lowercase hex digits>", ErrInvalidRef, d)
	}
	return nil
}

// unwrapInvalid strips the ErrInvalidRef prefix of a nested validation
// error so messages say "invalid module reference" once.
func unwrapInvalid(err error) error {
	msg := strings.TrimPrefix(err.Error(), ErrInvalidRef.Error()+": ")
	return errors.New(msg)
}
