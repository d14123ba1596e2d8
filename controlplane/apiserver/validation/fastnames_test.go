package validation

import (
	"math/rand/v2"
	"strings"
	"testing"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// The fast checks must accept exactly what apimachinery's expressions
// accept: tried on hand-picked edge cases and on random strings over an
// alphabet that mixes valid and invalid bytes, at lengths around the limits.
func TestFastNamesMatchApimachinery(t *testing.T) {
	checks := []struct {
		name string
		fast func(string) bool
		slow func(string) []string
	}{
		{"DNS-1123 label", fastDNS1123Label, utilvalidation.IsDNS1123Label},
		{"DNS-1123 subdomain", fastDNS1123Subdomain, utilvalidation.IsDNS1123Subdomain},
		{"qualified name", fastQualifiedName, utilvalidation.IsQualifiedName},
		{"label value", func(s string) bool { return s == "" || fastQualifiedNamePart(s) }, utilvalidation.IsValidLabelValue},
		{"port name", fastPortName, utilvalidation.IsValidPortName},
	}
	edge := []string{"", "a", "A", "-", "a-", "-a", "a.b", "a..b", ".a", "a.", "a_b", "a/b", "/b", "a/", "a/b/c",
		"example.com/name", "Example.com/name", "example.com/Na_me.x", "1", "1a", "a1", "a--b", "a__b",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 253), strings.Repeat("a", 254),
		strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 127) + "a", strings.Repeat("b", 253) + "/x",
		"é", "a b", "a\x00", "kubernetes.io/hostname", "app.kubernetes.io/name", "node-role.kubernetes.io/edge",
		"http", "metrics-9100", "h2c", "a-b-c", "abcdefghijklmno", "abcdefghijklmnop", "123", "1-2", "1-a", "a--1", "-http", "http-"}
	rnd := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab0Z-._/ é"
	var random []string
	for range 200000 {
		n := rnd.IntN(8)
		if rnd.IntN(10) == 0 {
			n = 60 + rnd.IntN(200)
		}
		var b strings.Builder
		for range n {
			if rnd.IntN(3) == 0 {
				b.WriteByte(alphabet[rnd.IntN(len(alphabet))])
			} else {
				b.WriteByte("abc019"[rnd.IntN(6)])
			}
		}
		random = append(random, b.String())
	}
	for _, c := range checks {
		for _, s := range append(edge, random...) {
			if fast, slow := c.fast(s), len(c.slow(s)) == 0; fast != slow {
				t.Errorf("%s %q: fast check %v, apimachinery %v", c.name, s, fast, slow)
			}
		}
	}
}

// Labels and annotations the fast path accepts get no errors; others get
// apimachinery's.
func TestObjectMetaFastPath(t *testing.T) {
	p := testPod()
	p.Labels = map[string]string{"app.kubernetes.io/name": "sensor", "tier": ""}
	p.Annotations = map[string]string{"Example.com/Rollout": "v2"}
	Default(p)
	if errs := ValidateCreate(p); len(errs) > 0 {
		t.Fatalf("valid pod: %v", errs)
	}
	p.Labels["bad key!"] = "x"
	p.Labels["ok"] = "-bad value"
	p.Annotations["also bad!"] = ""
	errs := ValidateCreate(p)
	for _, want := range []string{"metadata.labels: Invalid value: \"bad key!\"", "metadata.labels: Invalid value: \"-bad value\"", "metadata.annotations: Invalid value: \"also bad!\""} {
		if !strings.Contains(errs.ToAggregate().Error(), want) {
			t.Errorf("errors %v lack %s", errs, want)
		}
	}
}
