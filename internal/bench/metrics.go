package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// promSums are the _sum and _count of Prometheus histograms, by series
// name and labels as they appear in the text format (without the suffix).
type promSums map[string]struct{ sum, count float64 }

// sub returns the change from before to s.
func (s promSums) sub(before promSums) promSums {
	out := promSums{}
	for k, v := range s {
		b := before[k]
		v.sum -= b.sum
		v.count -= b.count
		out[k] = v
	}
	return out
}

// add returns s plus t.
func (s promSums) add(t promSums) promSums {
	out := promSums{}
	for _, m := range []promSums{s, t} {
		for k, v := range m {
			e := out[k]
			e.sum += v.sum
			e.count += v.count
			out[k] = e
		}
	}
	return out
}

// scrape reads the server's /metrics and keeps the histograms named in
// families.
func scrape(ctx context.Context, hc *http.Client, host string, families ...string) (promSums, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	out := promSums{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		for _, f := range families {
			if !strings.HasPrefix(series, f+"_") {
				continue
			}
			name, labels, _ := strings.Cut(series, "{")
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				continue
			}
			key := f + "{" + labels
			e := out[key]
			switch strings.TrimPrefix(name, f) {
			case "_sum":
				e.sum = v
			case "_count":
				e.count = v
			default:
				continue
			}
			out[key] = e
		}
	}
	return out, sc.Err()
}

// ServerTimes is what the server's own metrics say about a phase.
type ServerTimes struct {
	// Handler is the mean time the API server spent on a create request
	// (apiserver_request_duration_seconds, from the handler's start to
	// its end: no TLS or HTTP/2 framing).
	Handler time.Duration
	// Etcd are the API server's etcd operations during the phase
	// (etcd_request_duration_seconds), by operation name.
	Etcd  []EtcdOp
	Valid bool
}

// EtcdOp is one kind of etcd operation the API server made.
type EtcdOp struct {
	Op        string
	Mean      time.Duration
	PerCreate float64
}

const (
	metricRequest = "apiserver_request_duration_seconds"
	metricEtcd    = "etcd_request_duration_seconds"
)

// serverTimes computes the phase's ServerTimes from two scrapes.
func serverTimes(before, after promSums, resource string) ServerTimes {
	delta := func(key string) (mean time.Duration, n float64) {
		a, b := after[key], before[key]
		n = a.count - b.count
		if n <= 0 {
			return 0, 0
		}
		return time.Duration((a.sum - b.sum) / n * float64(time.Second)), n
	}
	var st ServerTimes
	var creates float64
	for key := range after {
		if strings.HasPrefix(key, metricRequest+"{") && strings.Contains(key, `resource="`+resource+`"`) &&
			strings.Contains(key, `verb="POST"`) && strings.Contains(key, `subresource=""`) {
			st.Handler, creates = delta(key)
		}
	}
	if creates <= 0 {
		return st
	}
	st.Valid = true
	for key := range after {
		op, ok := strings.CutPrefix(key, metricEtcd+`{operation="`)
		if !ok {
			continue
		}
		op = strings.TrimSuffix(op, `"}`)
		if mean, n := delta(key); n > 0 {
			st.Etcd = append(st.Etcd, EtcdOp{Op: op, Mean: mean, PerCreate: n / creates})
		}
	}
	slices.SortFunc(st.Etcd, func(a, b EtcdOp) int { return strings.Compare(a.Op, b.Op) })
	return st
}
