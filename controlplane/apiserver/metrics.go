package apiserver

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API server's Prometheus series, named as kube-apiserver
// names them.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "API requests by verb, group, resource, subresource and HTTP code.",
		}, []string{"verb", "group", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "API request latency by verb, group, resource and subresource (watches: their whole duration).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60},
		}, []string{"verb", "group", "resource", "subresource"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *metrics) observe(info *reqInfo, code int, d time.Duration) {
	verb, group, resource, sub := "other", "", "", ""
	if info != nil {
		verb, group, resource, sub = info.verb, info.res.gvr.Group, info.res.gvr.Resource, info.subresource
	}
	m.requests.WithLabelValues(verb, group, resource, sub, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(verb, group, resource, sub).Observe(d.Seconds())
}
