package apiserver

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metrics are the API server's Prometheus series, named as kube-apiserver
// names them.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// labels are kube-apiserver's, with its values: verb in capitals (POST,
// PUT, APPLY, LIST, WATCH, ...), scope resource, namespace or cluster,
// dry_run the request's dryRun ("All" or empty), component apiserver.
var (
	latencyLabels = []string{"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"}
	requestLabels = append(slices.Clone(latencyLabels), "code")
)

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "API requests by verb, dry run, group, version, resource, subresource, scope, component and HTTP code.",
		}, requestLabels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "API request latency by verb, dry run, group, version, resource, subresource, scope and component (watches: their whole duration).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60},
		}, latencyLabels),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe records r, a request for info (nil: not a resource's, counted
// under its HTTP method).
func (m *metrics) observe(info *reqInfo, r *http.Request, code int, d time.Duration) {
	values := []string{r.Method, "", "", "", "", "", "", "apiserver"}
	if info != nil {
		gvr := info.res.gvr
		values = []string{metricVerb(info, r), metricDryRun(r), gvr.Group, gvr.Version, gvr.Resource, info.subresource, metricScope(info), "apiserver"}
	}
	m.latency.WithLabelValues(values...).Observe(d.Seconds())
	m.requests.WithLabelValues(append(values, strconv.Itoa(code))...).Inc()
}

// metricVerb is kube-apiserver's verb label: the HTTP verb of a write
// (APPLY for a server-side apply), LIST and WATCH for reads of
// collections.
func metricVerb(info *reqInfo, r *http.Request) string {
	switch info.verb {
	case "create":
		return "POST"
	case "update":
		return "PUT"
	case "patch":
		if isApply(r) {
			return "APPLY"
		}
		return "PATCH"
	}
	return strings.ToUpper(info.verb)
}

// metricScope is kube-apiserver's scope label.
func metricScope(info *reqInfo) string {
	switch {
	case info.name != "" || info.verb == "create":
		return "resource"
	case info.namespace != "":
		return "namespace"
	}
	return "cluster"
}

// metricDryRun is kube-apiserver's dry_run label: "All", empty, or
// "invalid" (not the value: a label's values must stay few).
func metricDryRun(r *http.Request) string {
	switch v := r.URL.Query()["dryRun"]; {
	case len(v) == 0:
		return ""
	case !slices.ContainsFunc(v, func(s string) bool { return s != metav1.DryRunAll }):
		return metav1.DryRunAll
	}
	return "invalid"
}
