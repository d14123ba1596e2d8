package validation

import (
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// imageReference matches a container image reference,
// name[:tag][@digest], with the grammar of
// github.com/distribution/reference (which Kubernetes uses to pick the
// default pull policy). Submatches: 1 tag, 2 digest.
var imageReference = regexp.MustCompile(`^` +
	// optional registry host: domain name or [IPv6], optional port
	`(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?` +
	// repository path components
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::([\w][\w.-]{0,127}))?` +
	`(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$`)

// defaultPullPolicy is the imagePullPolicy Kubernetes gives a container with
// this image: Always for the :latest tag or no tag and no digest,
// IfNotPresent otherwise, including for strings that are not image references
// (such as wasm module URLs).
func defaultPullPolicy(image string) corev1.PullPolicy {
	// A tag other than latest, or a digest, means IfNotPresent whether or
	// not image is a valid reference: the expression is only needed to
	// tell a valid untagged or :latest reference from an invalid one.
	name, digest, _ := strings.Cut(image, "@")
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		tag = name[i+1:]
	}
	if tag != "latest" && (tag != "" || digest != "") {
		return corev1.PullIfNotPresent
	}
	m := imageReference.FindStringSubmatch(image)
	if m == nil {
		return corev1.PullIfNotPresent
	}
	tag, digest = m[1], m[2]
	if tag == "latest" || (tag == "" && digest == "") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}
