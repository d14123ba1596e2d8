package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The pods/log subresource (`kubectl logs`): the API server checks the
// request as kube-apiserver does (options, pod, container) and then streams
// what the pod's node sends through Config.PodLogs (nodelink's log client
// over NATS), as text/plain, flushed as it arrives.

// PodLogOptions is a checked pods/log request: the pod, its node, the
// container (resolved when the request named none) and kubectl logs'
// options.
type PodLogOptions struct {
	Namespace, Pod string
	UID            types.UID
	Node           string
	Container      string
	Follow         bool
	Previous       bool
	Timestamps     bool
	// TailLines, SinceSeconds and LimitBytes are nil when not asked for;
	// at most one of SinceSeconds and SinceTime is set.
	TailLines    *int64
	SinceSeconds *int64
	SinceTime    *time.Time
	LimitBytes   *int64
}

// PodLogs fetches container logs from the nodes.
type PodLogs interface {
	// OpenPodLogs asks o.Node for the log. Its errors come before any data
	// and are API errors (apierrors.APIStatus) answered as a Status. The
	// stream ends with io.EOF at the log's end (or when ctx ends); Close
	// releases it and tells the node to stop. Safe for concurrent use.
	OpenPodLogs(ctx context.Context, o PodLogOptions) (io.ReadCloser, error)
}

// podLog serves GET pods/<name>/log.
func (s *Server) podLog(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	if s.cfg.PodLogs == nil {
		return notFound(r.URL.Path)
	}
	opts, err := parsePodLogOptions(info.name, r.URL.Query())
	if err != nil {
		return err
	}
	obj, _, err := s.load(r.Context(), &reqInfo{verb: "get", res: info.res, namespace: info.namespace, name: info.name})
	if err != nil {
		return err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return fmt.Errorf("pods/log of a %T", obj)
	}
	if opts.Container, err = logContainer(pod, opts.Container); err != nil {
		return err
	}
	if pod.Spec.NodeName == "" {
		// No node has a log yet: kube-apiserver's log location is then
		// none, which it answers with 204 (kubectl prints nothing).
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	opts.Namespace, opts.Pod, opts.UID, opts.Node = pod.Namespace, pod.Name, pod.UID, pod.Spec.NodeName
	rc, err := s.cfg.PodLogs.OpenPodLogs(r.Context(), opts)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	flush := http.NewResponseController(w).Flush
	flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the client went away
			}
			flush()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && r.Context().Err() == nil {
				// Too late for a Status: the answer just ends, as when
				// kube-apiserver loses its kubelet.
				s.log.Warn("pod log stream ended", "pod", opts.Namespace+"/"+opts.Pod, "container", opts.Container, "err", err)
			}
			return nil
		}
	}
}

// parsePodLogOptions reads the query of a pods/log request as
// kube-apiserver does (core/v1 PodLogOptions) and validates it.
func parsePodLogOptions(name string, q url.Values) (PodLogOptions, error) {
	var o PodLogOptions
	o.Container = q.Get("container")
	o.Follow, o.Previous, o.Timestamps = queryBool(q, "follow"), queryBool(q, "previous"), queryBool(q, "timestamps")
	for _, p := range []struct {
		key string
		dst **int64
	}{{"tailLines", &o.TailLines}, {"sinceSeconds", &o.SinceSeconds}, {"limitBytes", &o.LimitBytes}} {
		v := q.Get(p.key)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return o, badRequest("%s: invalid value %q: %v", p.key, v, err)
		}
		*p.dst = &n
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, badRequest("sinceTime: invalid value %q: want an RFC 3339 time", v)
		}
		o.SinceTime = &t
	}
	var errs field.ErrorList
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *o.TailLines, "must be greater than or equal to 0"))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *o.LimitBytes, "must be greater than 0"))
	}
	switch {
	case o.SinceSeconds != nil && o.SinceTime != nil:
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	case o.SinceSeconds != nil && *o.SinceSeconds < 1:
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *o.SinceSeconds, "must be greater than 0"))
	}
	if len(errs) > 0 {
		return o, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, name, errs)
	}
	return o, nil
}

// queryBool reads a boolean query parameter as Kubernetes does: absent,
// "0" and "false" are false, anything else true.
func queryBool(q url.Values, key string) bool {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return false
	}
	return v[0] != "0" && !strings.EqualFold(v[0], "false")
}

// logContainer resolves the container a log request is for, with
// kube-apiserver's errors: the only container when none is named.
func logContainer(pod *corev1.Pod, container string) (string, error) {
	if container == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			return pod.Spec.Containers[0].Name, nil
		case 0:
			return "", badRequest("a container name must be specified for pod %s", pod.Name)
		}
		var names []string
		for _, c := range pod.Spec.InitContainers {
			names = append(names, c.Name)
		}
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		for _, c := range pod.Spec.EphemeralContainers {
			names = append(names, c.Name)
		}
		return "", badRequest("a container name must be specified for pod %s, choose one of: %s", pod.Name, names)
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == container {
			return container, nil
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			return container, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == container {
			return container, nil
		}
	}
	return "", badRequest("container %s is not valid for pod %s", container, pod.Name)
}
