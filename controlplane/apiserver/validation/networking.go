package validation

import (
	"fmt"
	"net/netip"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Ingress and IngressClass validation, from
// k8s.io/kubernetes/pkg/apis/networking/validation (RelaxedServiceNameValidation
// off, its default).

// ingressClassAnnotation is the deprecated annotation that named an
// Ingress's class before spec.ingressClassName.
const ingressClassAnnotation = "kubernetes.io/ingress.class"

// ingressOptions relax, on update, the rules an Ingress stored before they
// existed may break.
type ingressOptions struct {
	invalidSecretName, invalidWildcardHostRule bool
}

func validateIngressCreate(ing *networkingv1.Ingress) field.ErrorList {
	errs := validateIngress(ing, ingressOptions{})
	if v, ok := ing.Annotations[ingressClassAnnotation]; ok && ing.Spec.IngressClassName != nil && v != *ing.Spec.IngressClassName {
		errs = append(errs, field.Invalid(field.NewPath("annotations").Child(ingressClassAnnotation), v, "must match `ingressClassName` when both are specified"))
	}
	return errs
}

func validateIngressUpdate(ing, old *networkingv1.Ingress) field.ErrorList {
	errs := validateObjectMetaUpdate(&ing.ObjectMeta, &old.ObjectMeta)
	opts := ingressOptions{}
	for _, tls := range old.Spec.TLS {
		opts.invalidSecretName = opts.invalidSecretName || len(tlsSecretNameErrors(tls.SecretName)) > 0
	}
	for _, r := range old.Spec.Rules {
		opts.invalidWildcardHostRule = opts.invalidWildcardHostRule ||
			strings.Contains(r.Host, "*") && len(validateIngressRuleValue(&r.IngressRuleValue, nil)) > 0
	}
	errs = append(errs, validateIngress(ing, opts)...)
	if !apiequality.Semantic.DeepEqual(ing.Status, old.Status) {
		errs = append(errs, validateIngressLoadBalancer(&ing.Status.LoadBalancer, &old.Status.LoadBalancer)...)
	}
	return errs
}

func validateIngress(ing *networkingv1.Ingress, opts ingressOptions) field.ErrorList {
	errs := validateObjectMeta(&ing.ObjectMeta, true, nameIsDNSSubdomain)
	spec := &ing.Spec
	p := field.NewPath("spec")
	if len(spec.Rules) == 0 && spec.DefaultBackend == nil {
		errs = append(errs, field.Invalid(p, spec.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if spec.DefaultBackend != nil {
		errs = append(errs, validateIngressBackend(spec.DefaultBackend, p.Child("defaultBackend"))...)
	}
	for i, r := range spec.Rules {
		rp := p.Child("rules").Index(i)
		wildcard := false
		if r.Host != "" {
			if _, err := netip.ParseAddr(r.Host); err == nil {
				errs = append(errs, field.Invalid(rp.Child("host"), r.Host, "must be a DNS name, not an IP address"))
			}
			if strings.Contains(r.Host, "*") {
				errs = append(errs, nameErrors(utilvalidation.IsWildcardDNS1123Subdomain(r.Host), rp.Child("host"), r.Host)...)
				wildcard = true
			} else {
				errs = append(errs, validateDNS1123Subdomain(r.Host, rp.Child("host"))...)
			}
		}
		if !wildcard || !opts.invalidWildcardHostRule {
			errs = append(errs, validateIngressRuleValue(&r.IngressRuleValue, rp)...)
		}
	}
	for i, tls := range spec.TLS {
		tp := p.Child("tls").Index(i)
		for j, host := range tls.Hosts {
			if strings.Contains(host, "*") {
				errs = append(errs, nameErrors(utilvalidation.IsWildcardDNS1123Subdomain(host), tp.Child("hosts").Index(j), host)...)
			} else {
				errs = append(errs, validateDNS1123Subdomain(host, tp.Child("hosts").Index(j))...)
			}
		}
		if !opts.invalidSecretName {
			errs = append(errs, nameErrors(tlsSecretNameErrors(tls.SecretName), tp.Child("secretName"), tls.SecretName)...)
		}
	}
	if spec.IngressClassName != nil {
		errs = append(errs, nameErrors(nameIsDNSSubdomain(*spec.IngressClassName, false), p.Child("ingressClassName"), *spec.IngressClassName)...)
	}
	return errs
}

func tlsSecretNameErrors(name string) []string {
	if name == "" {
		return nil
	}
	return nameIsDNSSubdomain(name, false)
}

// invalidPathSequences and invalidPathSuffixes may not appear in the path
// of an Exact or Prefix rule.
var (
	invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes  = []string{"/..", "/."}
)

func validateIngressRuleValue(rv *networkingv1.IngressRuleValue, fldPath *field.Path) field.ErrorList {
	if rv.HTTP == nil {
		return nil
	}
	hp := fldPath.Child("http")
	var errs field.ErrorList
	if len(rv.HTTP.Paths) == 0 {
		errs = append(errs, field.Required(hp.Child("paths"), ""))
	}
	for i := range rv.HTTP.Paths {
		errs = append(errs, validateHTTPIngressPath(&rv.HTTP.Paths[i], hp.Child("paths").Index(i))...)
	}
	return errs
}

func validateHTTPIngressPath(hp *networkingv1.HTTPIngressPath, fldPath *field.Path) field.ErrorList {
	if hp.PathType == nil {
		return field.ErrorList{field.Required(fldPath.Child("pathType"), "pathType must be specified")}
	}
	var errs field.ErrorList
	pp := fldPath.Child("path")
	switch *hp.PathType {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(hp.Path, "/") {
			errs = append(errs, field.Invalid(pp, hp.Path, "must be an absolute path"))
		}
		for _, seq := range invalidPathSequences {
			if strings.Contains(hp.Path, seq) {
				errs = append(errs, field.Invalid(pp, hp.Path, fmt.Sprintf("must not contain '%s'", seq)))
			}
		}
		for _, suffix := range invalidPathSuffixes {
			if strings.HasSuffix(hp.Path, suffix) {
				errs = append(errs, field.Invalid(pp, hp.Path, fmt.Sprintf("cannot end with '%s'", suffix)))
			}
		}
	case networkingv1.PathTypeImplementationSpecific:
		if hp.Path != "" && !strings.HasPrefix(hp.Path, "/") {
			errs = append(errs, field.Invalid(pp, hp.Path, "must be an absolute path"))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("pathType"), *hp.PathType,
			[]networkingv1.PathType{networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific, networkingv1.PathTypePrefix}))
	}
	return append(errs, validateIngressBackend(&hp.Backend, fldPath.Child("backend"))...)
}

func validateIngressBackend(b *networkingv1.IngressBackend, fldPath *field.Path) field.ErrorList {
	switch {
	case b.Resource != nil && b.Service != nil:
		return field.ErrorList{field.Invalid(fldPath, "", "cannot set both resource and service backends")}
	case b.Resource != nil:
		rp := fldPath.Child("resource")
		var errs field.ErrorList
		if b.Resource.APIGroup != nil {
			errs = append(errs, validateDNS1123Subdomain(*b.Resource.APIGroup, rp.Child("apiGroup"))...)
		}
		errs = append(errs, validatePathSegment(b.Resource.Kind, rp.Child("kind"))...)
		return append(errs, validatePathSegment(b.Resource.Name, rp.Child("name"))...)
	case b.Service != nil:
		sp := fldPath.Child("service")
		var errs field.ErrorList
		if b.Service.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		} else {
			errs = append(errs, nameErrors(apimachineryvalidation.NameIsDNS1035Label(b.Service.Name, false), sp.Child("name"), b.Service.Name)...)
		}
		port := b.Service.Port
		switch {
		case port.Name != "" && port.Number != 0:
			errs = append(errs, field.Invalid(fldPath, "", "cannot set both port name & port number"))
		case port.Name != "":
			errs = append(errs, nameErrors(utilvalidation.IsValidPortName(port.Name), sp.Child("port", "name"), port.Name)...)
		case port.Number != 0:
			for _, msg := range utilvalidation.IsValidPortNum(int(port.Number)) {
				errs = append(errs, field.Invalid(sp.Child("port", "number"), port.Number, msg))
			}
		default:
			errs = append(errs, field.Required(fldPath, "port name or number is required"))
		}
		return errs
	}
	return field.ErrorList{field.Invalid(fldPath, "", "resource or service backend is required")}
}

// validatePathSegment requires v and that it can be a segment of a URL
// path.
func validatePathSegment(v string, fldPath *field.Path) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return nameErrors(path.IsValidPathSegmentName(v), fldPath, v)
}

func validateIngressLoadBalancer(lb, old *networkingv1.IngressLoadBalancerStatus) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("status", "loadBalancer", "ingress")
	for i, in := range lb.Ingress {
		if in.IP != "" && !oldIngressIP(old, in.IP) {
			errs = append(errs, utilvalidation.IsValidIP(p.Index(i).Child("ip"), in.IP)...)
		}
		if in.Hostname != "" {
			errs = append(errs, validateDNS1123Subdomain(in.Hostname, p.Index(i).Child("hostname"))...)
			if _, err := netip.ParseAddr(in.Hostname); err == nil {
				errs = append(errs, field.Invalid(p.Index(i).Child("hostname"), in.Hostname, "must be a DNS name, not an IP address"))
			}
		}
	}
	return errs
}

// oldIngressIP reports whether ip was already in old: a value stored before
// the IP checks were strict stays allowed.
func oldIngressIP(old *networkingv1.IngressLoadBalancerStatus, ip string) bool {
	for _, in := range old.Ingress {
		if in.IP == ip {
			return true
		}
	}
	return false
}

// maxIngressClassControllerLen bounds spec.controller.
const maxIngressClassControllerLen = 250

func validateIngressClass(ic *networkingv1.IngressClass) field.ErrorList {
	errs := validateObjectMeta(&ic.ObjectMeta, false, nameIsDNSSubdomain)
	p := field.NewPath("spec")
	switch c := ic.Spec.Controller; {
	case c == "":
		errs = append(errs, field.Required(p.Child("controller"), ""))
	case len(c) > maxIngressClassControllerLen:
		errs = append(errs, field.TooLong(p.Child("controller"), "", maxIngressClassControllerLen))
		fallthrough
	default:
		errs = append(errs, utilvalidation.IsDomainPrefixedPath(p.Child("controller"), c)...)
	}
	if params := ic.Spec.Parameters; params != nil {
		pp := p.Child("parameters")
		if params.APIGroup != nil {
			errs = append(errs, validateDNS1123Subdomain(*params.APIGroup, pp.Child("apiGroup"))...)
		}
		errs = append(errs, validatePathSegment(params.Kind, pp.Child("kind"))...)
		errs = append(errs, validatePathSegment(params.Name, pp.Child("name"))...)
		switch {
		case params.Scope == nil:
			errs = append(errs, field.Required(pp.Child("scope"), ""))
		case *params.Scope == networkingv1.IngressClassParametersReferenceScopeNamespace:
			if params.Namespace == nil {
				errs = append(errs, field.Required(pp.Child("namespace"), "`parameters.scope` is set to 'Namespace'"))
			} else {
				errs = append(errs, nameErrors(apimachineryvalidation.ValidateNamespaceName(*params.Namespace, false), pp.Child("namespace"), *params.Namespace)...)
			}
		case *params.Scope == networkingv1.IngressClassParametersReferenceScopeCluster:
			if params.Namespace != nil {
				errs = append(errs, field.Forbidden(pp.Child("namespace"), "`parameters.scope` is set to 'Cluster'"))
			}
		default:
			errs = append(errs, field.NotSupported(pp.Child("scope"), *params.Scope, []string{
				networkingv1.IngressClassParametersReferenceScopeCluster, networkingv1.IngressClassParametersReferenceScopeNamespace}))
		}
	}
	return errs
}

func validateIngressClassUpdate(ic, old *networkingv1.IngressClass) field.ErrorList {
	errs := validateObjectMetaUpdate(&ic.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateImmutable(ic.Spec.Controller, old.Spec.Controller, field.NewPath("spec", "controller"))...)
	return append(errs, validateIngressClass(ic)...)
}

// defaultIngressClass is the v1 defaulting of an IngressClass: parameters
// without a scope are cluster-scoped.
func defaultIngressClass(ic *networkingv1.IngressClass) {
	if p := ic.Spec.Parameters; p != nil && p.Scope == nil {
		p.Scope = new(networkingv1.IngressClassParametersReferenceScopeCluster)
	}
}
