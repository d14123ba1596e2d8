package subjects

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Subject prefixes, stream defaults and header names of the scheme described
// in the package comment.
const (
	// EventsPrefix starts the subject of every object change.
	EventsPrefix = "wasmfleet.events"
	// NodesPrefix starts the per-node copies of bound pods.
	NodesPrefix = "wasmfleet.nodes"
	// ClusterScoped is the namespace token of cluster-scoped objects.
	ClusterScoped = "_"
	// GapSubject carries gap markers: revisions the publisher could not
	// publish because etcd had compacted them.
	GapSubject = EventsPrefix + "._gap"

	// DefaultStream is the JetStream stream that captures all subjects.
	DefaultStream = "WASMFLEET_EVENTS"

	// HeaderType is ADDED, MODIFIED, DELETED, or GAP for a gap marker.
	HeaderType = "Wasmfleet-Type"
	// HeaderRevision is the etcd revision of the change, in decimal. For a
	// gap marker it is the first revision published after the gap.
	HeaderRevision = "Wasmfleet-Revision"
	// HeaderKey is the etcd key of the object, exactly (left out when
	// longer than the headers may be, or when a header would alter it;
	// see the package comment).
	HeaderKey = "Wasmfleet-Key"
	// HeaderGapFrom, on a gap marker, is the first revision that may be
	// missing.
	HeaderGapFrom = "Wasmfleet-Gap-From"
	// HeaderMsgID is JetStream's de-duplication header (see the package
	// comment for its format).
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderPayloadOmitted is set ("too-large") on a message published
	// without its payload because the object exceeds the NATS server's
	// max_payload; read the object from the API server instead.
	HeaderPayloadOmitted = "Wasmfleet-Payload-Omitted"

	// TypeGap is the HeaderType of a gap marker.
	TypeGap = "GAP"
)

// EncodeToken makes s usable as one NATS subject token, reversibly: '.'
// becomes '~', ASCII letters, digits, '-' and ':' stay, and every other byte
// (including '~', '%', '_', '*', '>' and whitespace) becomes %XX. Kubernetes
// DNS names therefore only change their dots: "node-1.example.com" encodes as
// "node-1~example~com". s must not be empty.
func EncodeToken(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !verbatim(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case verbatim(c):
			b.WriteByte(c)
		case c == '.':
			b.WriteByte('~')
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xF])
		}
	}
	return b.String()
}

func verbatim(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == ':'
}

// DecodeToken reverses EncodeToken. For a digested token (see
// MaxTokenLen) it returns an error wrapping ErrDigestedToken.
func DecodeToken(t string) (string, error) {
	if !strings.ContainsAny(t, "~%") {
		return t, nil
	}
	if strings.Contains(t, digestMark) {
		return "", fmt.Errorf("decode subject token %q: %w", t, ErrDigestedToken)
	}
	b := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '~':
			b = append(b, '.')
		case '%':
			if i+2 >= len(t) {
				return "", fmt.Errorf("decode subject token %q: truncated escape", t)
			}
			hi, ok1 := unhex(t[i+1])
			lo, ok2 := unhex(t[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("decode subject token %q: bad escape %q", t, t[i:i+3])
			}
			b = append(b, hi<<4|lo)
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// MaxTokenLen bounds the length of a token in the subjects of this
// scheme. A name whose encoding is longer (names of RBAC objects need only
// be path segments, of any length) gets a digested token instead: the
// first bytes of its encoding, "%%", and the hex SHA-256 of the name.
// Without the bound, such a subject could exceed the NATS server's
// max_control_line (4096 bytes by default), and the server would close the
// publisher's connection at every attempt.
const MaxTokenLen = 255

// digestPrefixLen is how much of the encoding a digested token keeps.
const digestPrefixLen = MaxTokenLen - len(digestMark) - 2*sha256.Size

// digestMark separates a digested token's prefix from its digest;
// EncodeToken never produces it ('%' is always followed by two hex digits).
const digestMark = "%%"

// ErrDigestedToken is returned by DecodeToken and ParseSubject for a
// digested token (see MaxTokenLen): the name is not in the subject, only
// in the Wasmfleet-Key header.
var ErrDigestedToken = errors.New("subject token is a digest of a long name")

// subjectToken is EncodeToken(s), or its digested form when that is longer
// than MaxTokenLen.
func subjectToken(s string) string {
	enc := EncodeToken(s)
	if len(enc) <= MaxTokenLen {
		return enc
	}
	cut := digestPrefixLen
	// Do not split an escape: '%' and its two hex digits stay together.
	if i := strings.LastIndexByte(enc[:cut], '%'); i >= 0 && i > cut-3 {
		cut = i
	}
	sum := sha256.Sum256([]byte(s))
	return enc[:cut] + digestMark + hex.EncodeToString(sum[:])
}

func namespaceToken(ns string) string {
	if ns == "" {
		return ClusterScoped
	}
	return subjectToken(ns)
}

// ObjectSubject is the subject of every change of an object:
// wasmfleet.events.<resource>.<namespace>.<name>, with "_" as the namespace
// of cluster-scoped objects (namespace ""). resource is the plural resource
// name used in the etcd key ("pods", "deployments", "leases").
func ObjectSubject(resource, namespace, name string) string {
	return EventsPrefix + "." + subjectToken(resource) + "." + namespaceToken(namespace) + "." + subjectToken(name)
}

// NodePodSubject is the subject of the node copy of a pod bound to node:
// wasmfleet.nodes.<node>.pods.<namespace>.<name>.
func NodePodSubject(node, namespace, name string) string {
	return NodesPrefix + "." + subjectToken(node) + ".pods." + namespaceToken(namespace) + "." + subjectToken(name)
}

// ResourceFilter matches the changes of every object of resource:
// wasmfleet.events.<resource>.>.
func ResourceFilter(resource string) string {
	return EventsPrefix + "." + subjectToken(resource) + ".>"
}

// NodeFilter matches everything published for node: wasmfleet.nodes.<node>.>.
// A NATS permission on it confines a node to its own pods.
func NodeFilter(node string) string {
	return NodesPrefix + "." + subjectToken(node) + ".>"
}

// Subject is a parsed object subject.
type Subject struct {
	Resource  string
	Namespace string // "" when cluster-scoped
	Name      string
	Node      string // set for node copies (NodePodSubject)
}

// ErrNotObjectSubject is returned by ParseSubject for subjects outside the
// scheme, including GapSubject.
var ErrNotObjectSubject = errors.New("not an object subject")

// ParseSubject reverses ObjectSubject and NodePodSubject.
func ParseSubject(subject string) (Subject, error) {
	t := strings.Split(subject, ".")
	var s Subject
	var res, ns, name string
	switch {
	case len(t) == 5 && t[0]+"."+t[1] == EventsPrefix:
		res, ns, name = t[2], t[3], t[4]
	case len(t) == 6 && t[0]+"."+t[1] == NodesPrefix && t[3] == "pods":
		node, err := DecodeToken(t[2])
		if err != nil {
			return Subject{}, err
		}
		s.Node = node
		res, ns, name = "pods", t[4], t[5]
	default:
		return Subject{}, fmt.Errorf("%w: %q", ErrNotObjectSubject, subject)
	}
	var err error
	if s.Resource, err = DecodeToken(res); err != nil {
		return Subject{}, err
	}
	if ns != ClusterScoped {
		if s.Namespace, err = DecodeToken(ns); err != nil {
			return Subject{}, err
		}
	}
	if s.Name, err = DecodeToken(name); err != nil {
		return Subject{}, err
	}
	return s, nil
}
