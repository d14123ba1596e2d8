package validation

import (
	"strings"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// apimachinery checks names, label keys and label values with regular
// expressions, which took about a twentieth of the API server's CPU per pod
// create. The checks here accept by hand what those expressions accept and
// nothing else; only a string they refuse goes on to apimachinery, which
// then words the error exactly as Kubernetes does.

// isAlnum reports whether c is [a-z0-9] (lower) or [A-Za-z0-9].
func isAlnum(c byte, lower bool) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || !lower && c >= 'A' && c <= 'Z'
}

// dnsLabelBytes reports whether s is [a-z0-9]([-a-z0-9]*[a-z0-9])?.
func dnsLabelBytes(s string) bool {
	if len(s) == 0 || !isAlnum(s[0], true) || !isAlnum(s[len(s)-1], true) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; c != '-' && !isAlnum(c, true) {
			return false
		}
	}
	return true
}

// fastDNS1123Label accepts a DNS-1123 label of at most 63 bytes.
func fastDNS1123Label(s string) bool {
	return len(s) <= utilvalidation.DNS1123LabelMaxLength && dnsLabelBytes(s)
}

// fastDNS1123Subdomain accepts dot-separated DNS-1123 labels of at most 253
// bytes in all (apimachinery's expression does not limit each label).
func fastDNS1123Subdomain(s string) bool {
	if len(s) > utilvalidation.DNS1123SubdomainMaxLength {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if !dnsLabelBytes(part) {
			return false
		}
	}
	return true
}

// fastQualifiedNamePart accepts ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] of
// at most 63 bytes: a label value, or a label key's name.
func fastQualifiedNamePart(s string) bool {
	if len(s) == 0 || len(s) > utilvalidation.LabelValueMaxLength || !isAlnum(s[0], false) || !isAlnum(s[len(s)-1], false) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; c != '-' && c != '_' && c != '.' && !isAlnum(c, false) {
			return false
		}
	}
	return true
}

// fastQualifiedName accepts [prefix/]name with a DNS-1123 subdomain prefix.
func fastQualifiedName(s string) bool {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok {
		return fastQualifiedNamePart(s)
	}
	return fastDNS1123Subdomain(prefix) && fastQualifiedNamePart(name)
}

// fastPortName accepts an IANA service name: at most 15 bytes of [-a-z0-9]
// with a letter, no "--", no '-' at either end.
func fastPortName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	letter := false
	for i := range len(s) {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			letter = true
		case '0' <= c && c <= '9':
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return letter
}

// portNameErrors is apimachinery's IsValidPortName.
func portNameErrors(s string) []string {
	if fastPortName(s) {
		return nil
	}
	return utilvalidation.IsValidPortName(s)
}

// validateLabelName is apimachinery's ValidateLabelName.
func validateLabelName(name string, fldPath *field.Path) field.ErrorList {
	if fastQualifiedName(name) {
		return nil
	}
	return metav1validation.ValidateLabelName(name, fldPath)
}

// fastLabels accepts labels whose keys are qualified names and whose values
// are empty or qualified name parts.
func fastLabels(labels map[string]string) bool {
	for k, v := range labels {
		if !fastQualifiedName(k) || (v != "" && !fastQualifiedNamePart(v)) {
			return false
		}
	}
	return true
}

// nameIsDNSSubdomain is apimachinery's NameIsDNSSubdomain.
func nameIsDNSSubdomain(name string, prefix bool) []string {
	if !prefix && fastDNS1123Subdomain(name) {
		return nil
	}
	return apimachineryvalidation.NameIsDNSSubdomain(name, prefix)
}

// nameIsDNSLabel is apimachinery's NameIsDNSLabel.
func nameIsDNSLabel(name string, prefix bool) []string {
	if !prefix && fastDNS1123Label(name) {
		return nil
	}
	return apimachineryvalidation.NameIsDNSLabel(name, prefix)
}

// validateNamespaceName is apimachinery's ValidateNamespaceName.
func validateNamespaceName(name string, prefix bool) []string {
	if !prefix && fastDNS1123Label(name) {
		return nil
	}
	return apimachineryvalidation.ValidateNamespaceName(name, prefix)
}

// fastAnnotations accepts annotations whose keys are qualified names in
// any case and whose size is within Kubernetes' limit.
func fastAnnotations(annotations map[string]string) bool {
	for k := range annotations {
		if !fastQualifiedName(strings.ToLower(k)) {
			return false
		}
	}
	return apimachineryvalidation.ValidateAnnotationsSize(annotations) == nil
}

// checkedMeta hides an object's labels and annotations from apimachinery's
// ValidateObjectMetaAccessor once fastLabels and fastAnnotations have
// accepted them.
type checkedMeta struct{ metav1.Object }

func (checkedMeta) GetLabels() map[string]string      { return nil }
func (checkedMeta) GetAnnotations() map[string]string { return nil }

// apimachineryObjectMeta is apimachinery's ValidateObjectMeta.
func apimachineryObjectMeta(meta *metav1.ObjectMeta, namespaced bool, nameFn apimachineryvalidation.ValidateNameFunc, fldPath *field.Path) field.ErrorList {
	if !fastLabels(meta.Labels) || !fastAnnotations(meta.Annotations) {
		return apimachineryvalidation.ValidateObjectMeta(meta, namespaced, nameFn, fldPath)
	}
	return apimachineryvalidation.ValidateObjectMetaAccessor(checkedMeta{meta}, namespaced, nameFn, fldPath)
}

// validateLabels is metav1validation's ValidateLabels.
func validateLabels(labels map[string]string, fldPath *field.Path) field.ErrorList {
	if fastLabels(labels) {
		return nil
	}
	return metav1validation.ValidateLabels(labels, fldPath)
}
