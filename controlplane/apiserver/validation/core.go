package validation

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file mirrors the Namespace, Node, ConfigMap, Secret, Event, Service and
// Binding parts of k8s.io/kubernetes/pkg/apis/core/validation.

// ---- Namespace

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	errs := validateObjectMeta(&ns.ObjectMeta, false, validateNamespaceName)
	for i, f := range ns.Spec.Finalizers {
		p := field.NewPath("spec", "finalizers").Index(i)
		errs = append(errs, apimachineryvalidation.ValidateFinalizerName(string(f), p)...)
		errs = append(errs, validateKubeFinalizerName(string(f), p)...)
	}
	return errs
}

func validateNamespaceUpdate(ns, old *corev1.Namespace) field.ErrorList {
	return append(validateObjectMetaUpdate(&ns.ObjectMeta, &old.ObjectMeta), validateNamespace(ns)...)
}

// ---- Node

func validateNode(node *corev1.Node) field.ErrorList {
	errs := validateObjectMeta(&node.ObjectMeta, false, nameIsDNSSubdomain)
	errs = append(errs, validateNodeTaints(node.Spec.Taints, field.NewPath("spec", "taints"))...)
	errs = append(errs, validateNodeResources(node)...)
	podCIDRs := field.NewPath("spec", "podCIDRs")
	for i, c := range node.Spec.PodCIDRs {
		errs = append(errs, utilvalidation.IsValidCIDR(podCIDRs.Index(i), c)...)
	}
	if len(node.Spec.PodCIDRs) > 2 {
		errs = append(errs, field.Invalid(podCIDRs, node.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	seen := sets.New[string]()
	for i, c := range node.Spec.PodCIDRs {
		if seen.Has(c) {
			errs = append(errs, field.Duplicate(podCIDRs.Index(i), c))
		}
		seen.Insert(c)
	}
	return errs
}

func validateNodeResources(node *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	for k, v := range node.Status.Capacity {
		errs = append(errs, validateResourceQuantity(k, v, field.NewPath("status", "capacity", string(k)))...)
	}
	for k, v := range node.Status.Allocatable {
		errs = append(errs, validateResourceQuantity(k, v, field.NewPath("status", "allocatable", string(k)))...)
	}
	return errs
}

// validateNodeTaints checks each taint and that they are unique by key and
// effect.
func validateNodeTaints(taints []corev1.Taint, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	unique := map[corev1.TaintEffect]sets.Set[string]{}
	for i, t := range taints {
		p := fldPath.Index(i)
		errs = append(errs, validateLabelName(t.Key, p.Child("key"))...)
		if msgs := utilvalidation.IsValidLabelValue(t.Value); len(msgs) != 0 {
			errs = append(errs, field.Invalid(p.Child("value"), t.Value, strings.Join(msgs, ";")))
		}
		errs = append(errs, validateTaintEffect(t.Effect, p.Child("effect"))...)
		if unique[t.Effect].Has(t.Key) {
			dup := field.Duplicate(p, t)
			dup.Detail = "taints must be unique by key and effect pair"
			errs = append(errs, dup)
			continue
		}
		if unique[t.Effect] == nil {
			unique[t.Effect] = sets.New[string]()
		}
		unique[t.Effect].Insert(t.Key)
	}
	return errs
}

// validateNodeUpdate allows status, labels, taints and unschedulable to
// change; podCIDRs and providerID only from unset to set.
func validateNodeUpdate(node, old *corev1.Node) field.ErrorList {
	errs := validateObjectMetaUpdate(&node.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateNode(node)...)
	addresses := map[corev1.NodeAddress]bool{}
	for i, a := range node.Status.Addresses {
		if addresses[a] {
			errs = append(errs, field.Duplicate(field.NewPath("status", "addresses").Index(i), a))
		}
		addresses[a] = true
	}
	if len(old.Spec.PodCIDRs) > 0 && !reflect.DeepEqual(old.Spec.PodCIDRs, node.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if old.Spec.ProviderID != "" && old.Spec.ProviderID != node.Spec.ProviderID {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	if node.Spec.DoNotUseExternalID != old.Spec.DoNotUseExternalID {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "externalID"), "may not be updated"))
	}
	return errs
}

// ---- ConfigMap and Secret

func validateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	errs := validateObjectMeta(&cm.ObjectMeta, true, nameIsDNSSubdomain)
	total := 0
	for key, value := range cm.Data {
		p := field.NewPath("data").Key(key)
		errs = append(errs, nameErrors(utilvalidation.IsConfigMapKey(key), p, key)...)
		if _, dup := cm.BinaryData[key]; dup {
			errs = append(errs, field.Invalid(p, key, "duplicate of key present in binaryData"))
		}
		total += len(value)
	}
	for key, value := range cm.BinaryData {
		errs = append(errs, nameErrors(utilvalidation.IsConfigMapKey(key), field.NewPath("binaryData").Key(key), key)...)
		total += len(value)
	}
	if total > corev1.MaxSecretSize {
		// The empty path means the whole object.
		errs = append(errs, field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
	return errs
}

func validateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	errs := validateObjectMetaUpdate(&cm.ObjectMeta, &old.ObjectMeta)
	if old.Immutable != nil && *old.Immutable {
		if cm.Immutable == nil || !*cm.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !reflect.DeepEqual(cm.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
		if !reflect.DeepEqual(cm.BinaryData, old.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, validateConfigMap(cm)...)
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := validateObjectMeta(&s.ObjectMeta, true, nameIsDNSSubdomain)
	dataPath := field.NewPath("data")
	total := 0
	for key, value := range s.Data {
		errs = append(errs, nameErrors(utilvalidation.IsConfigMapKey(key), dataPath.Key(key), key)...)
		total += len(value)
	}
	// stringData is merged into data by Default; check what is left anyway.
	for key, value := range s.StringData {
		errs = append(errs, nameErrors(utilvalidation.IsConfigMapKey(key), field.NewPath("stringData").Key(key), key)...)
		total += len(value)
	}
	if total > corev1.MaxSecretSize {
		errs = append(errs, field.TooLong(dataPath, "", corev1.MaxSecretSize))
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		errs = append(errs, validateJSONKey(s.Data, corev1.DockerConfigKey, dataPath)...)
	case corev1.SecretTypeDockerConfigJson:
		errs = append(errs, validateJSONKey(s.Data, corev1.DockerConfigJsonKey, dataPath)...)
	case corev1.SecretTypeBasicAuth:
		_, hasUser := s.Data[corev1.BasicAuthUsernameKey]
		_, hasPassword := s.Data[corev1.BasicAuthPasswordKey]
		if !hasUser && !hasPassword {
			errs = append(errs,
				field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(s.Data[corev1.SSHAuthPrivateKey]) == 0 {
			errs = append(errs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		if _, ok := s.Data[corev1.TLSCertKey]; !ok {
			errs = append(errs, field.Required(dataPath.Key(corev1.TLSCertKey), ""))
		}
		if _, ok := s.Data[corev1.TLSPrivateKeyKey]; !ok {
			errs = append(errs, field.Required(dataPath.Key(corev1.TLSPrivateKeyKey), ""))
		}
	}
	return errs
}

// validateJSONKey requires data[key] to be present and well-formed JSON.
func validateJSONKey(data map[string][]byte, key string, dataPath *field.Path) field.ErrorList {
	b, ok := data[key]
	if !ok {
		return field.ErrorList{field.Required(dataPath.Key(key), "")}
	}
	if err := json.Unmarshal(b, &map[string]any{}); err != nil {
		return field.ErrorList{field.Invalid(dataPath.Key(key), "<secret contents redacted>", err.Error())}
	}
	return nil
}

func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	errs := validateObjectMetaUpdate(&s.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, validateImmutable(s.Type, old.Type, field.NewPath("type"))...)
	if old.Immutable != nil && *old.Immutable {
		if s.Immutable == nil || !*s.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !reflect.DeepEqual(s.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
	}
	return append(errs, validateSecret(s)...)
}

// ---- Event

// Limits of the core/v1 Event fields.
const (
	eventReportingInstanceLengthLimit = 128
	eventActionLengthLimit            = 128
	eventReasonLengthLimit            = 128
	eventNoteLengthLimit              = 1024
)

// validateEvent is the legacy (core/v1) event validation plus object
// metadata. Kubernetes skips the metadata checks for core/v1 events; they are
// kept here because a valid name is needed to store the event at all.
func validateEvent(ev *corev1.Event) field.ErrorList {
	errs := validateObjectMeta(&ev.ObjectMeta, true, nameIsDNSSubdomain)
	return append(errs, validateEventFields(ev)...)
}

func validateEventFields(ev *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	involvedNS := field.NewPath("involvedObject", "namespace")
	if ev.EventTime.IsZero() {
		// Old-style event: its namespace must be the involved object's (or
		// "default" for cluster-scoped objects, for old clients).
		if ev.InvolvedObject.Namespace == "" {
			if ev.Namespace != metav1.NamespaceNone && ev.Namespace != metav1.NamespaceDefault {
				errs = append(errs, field.Invalid(involvedNS, ev.InvolvedObject.Namespace, "does not match event.namespace"))
			}
		} else if ev.Namespace != ev.InvolvedObject.Namespace {
			errs = append(errs, field.Invalid(involvedNS, ev.InvolvedObject.Namespace, "does not match event.namespace"))
		}
	} else {
		if ev.InvolvedObject.Namespace == "" && ev.Namespace != metav1.NamespaceDefault && ev.Namespace != metav1.NamespaceSystem {
			errs = append(errs, field.Invalid(involvedNS, ev.InvolvedObject.Namespace, "does not match event.namespace"))
		}
		if ev.ReportingController == "" {
			errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
		}
		errs = append(errs, validateQualifiedName(ev.ReportingController, field.NewPath("reportingController"))...)
		errs = append(errs, validateEventString(ev.ReportingInstance, "reportingInstance", eventReportingInstanceLengthLimit, true)...)
		errs = append(errs, validateEventString(ev.Action, "action", eventActionLengthLimit, true)...)
		errs = append(errs, validateEventString(ev.Reason, "reason", eventReasonLengthLimit, true)...)
		errs = append(errs, validateEventString(ev.Message, "message", eventNoteLengthLimit, false)...)
	}
	errs = append(errs, nameErrors(utilvalidation.IsDNS1123Subdomain(ev.Namespace), field.NewPath("namespace"), ev.Namespace)...)
	return errs
}

func validateEventString(v, name string, limit int, required bool) field.ErrorList {
	var errs field.ErrorList
	if required && v == "" {
		errs = append(errs, field.Required(field.NewPath(name), ""))
	}
	if len(v) > limit {
		errs = append(errs, field.Invalid(field.NewPath(name), "", fmt.Sprintf("can have at most %v characters", limit)))
	}
	return errs
}

// validateEventUpdate: core/v1 events may be updated freely (that is how
// their count and lastTimestamp move); only the metadata rules apply.
func validateEventUpdate(ev, old *corev1.Event) field.ErrorList {
	errs := validateObjectMetaUpdate(&ev.ObjectMeta, &old.ObjectMeta)
	return append(errs, validateEventFields(ev)...)
}

// ---- Binding

// validateBinding is ValidatePodBinding. The binding's name is the pod's and
// is checked against the request path by the API server.
func validateBinding(b *corev1.Binding) field.ErrorList {
	var errs field.ErrorList
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"}))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(field.NewPath("target", "name"), ""))
	}
	return errs
}

// ---- Service

func isHeadlessService(svc *corev1.Service) bool {
	return len(svc.Spec.ClusterIPs) == 1 && svc.Spec.ClusterIPs[0] == corev1.ClusterIPNone
}

// validateService is ValidateService without the parts that belong to IP and
// port allocation (healthCheckNodePort, IP family assignment).
func validateService(svc *corev1.Service) field.ErrorList {
	errs := validateObjectMeta(&svc.ObjectMeta, true, apimachineryvalidation.NameIsDNS1035Label)
	spec := &svc.Spec
	specPath := field.NewPath("spec")
	if len(spec.Ports) == 0 && !isHeadlessService(svc) && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(specPath.Child("ports"), ""))
	}
	switch spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if isHeadlessService(svc) {
			errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(0), spec.ClusterIPs[0], fmt.Sprintf("may not be set to 'None' for %s services", spec.Type)))
		}
	case corev1.ServiceTypeExternalName:
		if len(spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if spec.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(specPath.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		if cname := strings.TrimSuffix(spec.ExternalName, "."); cname != "" {
			errs = append(errs, validateDNS1123Subdomain(cname, specPath.Child("externalName"))...)
		} else {
			errs = append(errs, field.Required(specPath.Child("externalName"), ""))
		}
	}

	portsPath := specPath.Child("ports")
	names := sets.New[string]()
	ports := map[corev1.ServicePort]bool{}
	nodePorts := map[corev1.ServicePort]bool{}
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		p := portsPath.Index(i)
		errs = append(errs, validateServicePort(sp, len(spec.Ports) > 1, names, p)...)
		if spec.Type == corev1.ServiceTypeClusterIP && sp.NodePort != 0 {
			errs = append(errs, field.Forbidden(p.Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
		}
		if sp.NodePort != 0 {
			for _, msg := range utilvalidation.IsValidPortNum(int(sp.NodePort)) {
				errs = append(errs, field.Invalid(p.Child("nodePort"), sp.NodePort, msg))
			}
			key := corev1.ServicePort{Protocol: sp.Protocol, NodePort: sp.NodePort}
			if nodePorts[key] {
				errs = append(errs, field.Duplicate(p.Child("nodePort"), sp.NodePort))
			}
			nodePorts[key] = true
		}
		key := corev1.ServicePort{Protocol: sp.Protocol, Port: sp.Port}
		if ports[key] {
			errs = append(errs, field.Duplicate(p, key))
		}
		ports[key] = true
	}
	if spec.Selector != nil {
		errs = append(errs, validateLabels(spec.Selector, specPath.Child("selector"))...)
	}
	errs = append(errs, validateEnum(spec.SessionAffinity, specPath.Child("sessionAffinity"), corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone)...)
	switch spec.SessionAffinity {
	case corev1.ServiceAffinityClientIP:
		errs = append(errs, validateClientIPAffinityConfig(spec.SessionAffinityConfig, specPath.Child("sessionAffinityConfig"))...)
	case corev1.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil {
			errs = append(errs, field.Forbidden(specPath.Child("sessionAffinityConfig"), fmt.Sprintf("must not be set when session affinity is %s", corev1.ServiceAffinityNone)))
		}
	}
	errs = append(errs, validateServiceClusterIPs(svc)...)
	for i, ip := range spec.ExternalIPs {
		errs = append(errs, utilvalidation.IsValidIP(specPath.Child("externalIPs").Index(i), ip)...)
	}
	errs = append(errs, validateEnum(spec.Type, specPath.Child("type"),
		corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort)...)
	if len(spec.LoadBalancerSourceRanges) > 0 {
		p := specPath.Child("LoadBalancerSourceRanges")
		if spec.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(p, "may only be used when `type` is 'LoadBalancer'"))
		}
		for i, r := range spec.LoadBalancerSourceRanges {
			errs = append(errs, utilvalidation.IsValidCIDR(p.Index(i), strings.TrimSpace(r))...)
		}
	}
	if spec.AllocateLoadBalancerNodePorts != nil && spec.Type != corev1.ServiceTypeLoadBalancer {
		errs = append(errs, field.Forbidden(specPath.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		errs = append(errs, field.Required(field.NewPath("allocateLoadBalancerNodePorts"), ""))
	}
	if spec.LoadBalancerClass != nil {
		if spec.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(specPath.Child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"))
		} else {
			errs = append(errs, validateQualifiedName(*spec.LoadBalancerClass, specPath.Child("loadBalancerClass"))...)
		}
	}
	if !externallyAccessible(svc) {
		if spec.ExternalTrafficPolicy != "" {
			errs = append(errs, field.Invalid(specPath.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
		}
	} else {
		errs = append(errs, validateEnum(spec.ExternalTrafficPolicy, specPath.Child("externalTrafficPolicy"),
			corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal)...)
	}
	if spec.InternalTrafficPolicy == nil {
		switch spec.Type {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
			errs = append(errs, field.Required(specPath.Child("internalTrafficPolicy"), ""))
		}
	} else {
		errs = append(errs, validateEnum(*spec.InternalTrafficPolicy, specPath.Child("internalTrafficPolicy"),
			corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal)...)
	}
	return errs
}

func validateServicePort(sp *corev1.ServicePort, requireName bool, names sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if requireName && sp.Name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	} else if sp.Name != "" {
		errs = append(errs, validateDNS1123Label(sp.Name, fldPath.Child("name"))...)
		if names.Has(sp.Name) {
			errs = append(errs, field.Duplicate(fldPath.Child("name"), sp.Name))
		}
		names.Insert(sp.Name)
	}
	for _, msg := range utilvalidation.IsValidPortNum(int(sp.Port)) {
		errs = append(errs, field.Invalid(fldPath.Child("port"), sp.Port, msg))
	}
	errs = append(errs, validateEnum(sp.Protocol, fldPath.Child("protocol"), supportedPortProtocols...)...)
	errs = append(errs, validatePortNumOrName(sp.TargetPort, fldPath.Child("targetPort"))...)
	if sp.AppProtocol != nil {
		errs = append(errs, validateQualifiedName(*sp.AppProtocol, fldPath.Child("appProtocol"))...)
	}
	return errs
}

// maxClientIPServiceAffinitySeconds is the longest ClientIP session affinity
// (one day).
const maxClientIPServiceAffinitySeconds = 24 * 60 * 60

func validateClientIPAffinityConfig(c *corev1.SessionAffinityConfig, fldPath *field.Path) field.ErrorList {
	msg := fmt.Sprintf("when session affinity type is %s", corev1.ServiceAffinityClientIP)
	switch {
	case c == nil:
		return field.ErrorList{field.Required(fldPath, msg)}
	case c.ClientIP == nil:
		return field.ErrorList{field.Required(fldPath.Child("clientIP"), msg)}
	case c.ClientIP.TimeoutSeconds == nil:
		return field.ErrorList{field.Required(fldPath.Child("clientIP", "timeoutSeconds"), msg)}
	}
	if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPServiceAffinitySeconds {
		return field.ErrorList{field.Invalid(fldPath.Child("clientIP", "timeoutSeconds"), t,
			fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPServiceAffinitySeconds))}
	}
	return nil
}

// validateServiceClusterIPs checks that clusterIP and clusterIPs agree and
// hold valid addresses ("None" only alone).
func validateServiceClusterIPs(svc *corev1.Service) field.ErrorList {
	spec := &svc.Spec
	if spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var errs field.ErrorList
	p := field.NewPath("spec", "clusterIPs")
	if spec.ClusterIP != "" {
		if len(spec.ClusterIPs) == 0 {
			errs = append(errs, field.Required(p, ""))
		} else if spec.ClusterIPs[0] != spec.ClusterIP {
			errs = append(errs, field.Invalid(p, spec.ClusterIPs, "first value must match `clusterIP`"))
		}
	} else if len(spec.ClusterIPs) != 0 {
		errs = append(errs, field.Invalid(p, spec.ClusterIPs, "must be empty when `clusterIP` is not specified"))
	}
	for i, ip := range spec.ClusterIPs {
		if i == 0 && ip == corev1.ClusterIPNone {
			if len(spec.ClusterIPs) > 1 {
				errs = append(errs, field.Invalid(p, spec.ClusterIPs, "'None' must be the first and only value"))
			}
			continue
		}
		errs = append(errs, utilvalidation.IsValidIP(p.Index(i), ip)...)
	}
	if len(spec.ClusterIPs) > 2 {
		errs = append(errs, field.Invalid(p, spec.ClusterIPs, "may only hold up to 2 values"))
	}
	for i, fam := range spec.IPFamilies {
		if fam != corev1.IPv4Protocol && fam != corev1.IPv6Protocol {
			errs = append(errs, field.NotSupported(field.NewPath("spec", "ipFamilies").Index(i), fam, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}))
		}
	}
	if spec.IPFamilyPolicy != nil {
		errs = append(errs, validateEnum(*spec.IPFamilyPolicy, field.NewPath("spec", "ipFamilyPolicy"),
			corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack, corev1.IPFamilyPolicySingleStack)...)
	}
	return errs
}

// validateServiceUpdate: allocated cluster IPs may not change (unless the
// service moves to or from ExternalName), nor may loadBalancerClass.
func validateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	errs := validateObjectMetaUpdate(&svc.ObjectMeta, &old.ObjectMeta)
	if svc.Spec.Type != corev1.ServiceTypeExternalName && old.Spec.Type != corev1.ServiceTypeExternalName &&
		!(isHeadlessService(svc) && isHeadlessService(old)) {
		p := field.NewPath("spec", "clusterIPs")
		n := min(len(old.Spec.ClusterIPs), len(svc.Spec.ClusterIPs))
		if len(old.Spec.ClusterIPs) > 0 && len(svc.Spec.ClusterIPs) == 0 {
			errs = append(errs, field.Invalid(p.Index(0), svc.Spec.ClusterIPs, "primary clusterIP can not be unset"))
		}
		for i := 0; i < n; i++ {
			if old.Spec.ClusterIPs[i] != svc.Spec.ClusterIPs[i] {
				errs = append(errs, field.Invalid(p.Index(i), svc.Spec.ClusterIPs, "may not change once set"))
			}
		}
	}
	if old.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		!reflect.DeepEqual(old.Spec.LoadBalancerClass, svc.Spec.LoadBalancerClass) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "loadBalancerClass"), svc.Spec.LoadBalancerClass, "may not change once set"))
	}
	return append(errs, validateService(svc)...)
}
