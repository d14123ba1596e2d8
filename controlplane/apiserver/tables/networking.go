package tables

import (
	"fmt"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var ingressColumns = []metav1.TableColumnDefinition{
	nameColumn(),
	{Name: "Class", Type: "string", Description: "The name of the IngressClass resource that should be used for additional configuration"},
	{Name: "Hosts", Type: "string", Description: "Hosts that incoming requests are matched against before the ingress rule"},
	{Name: "Address", Type: "string", Description: "Address is a list containing ingress points for the load-balancer"},
	{Name: "Ports", Type: "string", Description: "Ports of TLS configurations that open"},
	ageColumn(),
}

var ingressClassColumns = []metav1.TableColumnDefinition{
	nameColumn(),
	{Name: "Controller", Type: "string", Description: "Controller that is responsible for handling this class"},
	{Name: "Parameters", Type: "string", Description: "A reference to a resource with additional parameters"},
	ageColumn(),
}

// ingressCells is printIngress (wide: the addresses are not clipped).
func ingressCells(ing *networkingv1.Ingress, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	class := "<none>"
	if ing.Spec.IngressClassName != nil {
		class = *ing.Spec.IngressClassName
	}
	ports := "80"
	if len(ing.Spec.TLS) > 0 {
		ports = "80, 443"
	}
	in := ing.Status.LoadBalancer.Ingress
	addrs := loadBalancerAddresses(len(in), func(i int) (string, string) { return in[i].IP, in[i].Hostname })
	return []interface{}{ing.Name, class, ingressHosts(ing.Spec.Rules), strings.Join(addrs, ","), ports, since(ing.CreationTimestamp, now)}, nil
}

// ingressHosts lists the rules' hosts, up to three, "*" when none names
// one; as kube's formatHosts, what it says is "more" is the number of
// rules beyond three.
func ingressHosts(rules []networkingv1.IngressRule) string {
	const most = 3
	var hosts []string
	more := false
	for _, r := range rules {
		if len(hosts) == most {
			more = true
			break
		}
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
	}
	if len(hosts) == 0 {
		return "*"
	}
	out := strings.Join(hosts, ",")
	if more {
		out += fmt.Sprintf(" + %d more...", len(rules)-most)
	}
	return out
}

func ingressClassCells(ic *networkingv1.IngressClass, now time.Time) ([]interface{}, []metav1.TableRowCondition) {
	params := "<none>"
	if p := ic.Spec.Parameters; p != nil {
		params = p.Kind
		if p.APIGroup != nil {
			params += "." + *p.APIGroup
		}
		params += "/" + p.Name
	}
	return []interface{}{ic.Name, ic.Spec.Controller, params, since(ic.CreationTimestamp, now)}, nil
}
