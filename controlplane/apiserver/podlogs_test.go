package apiserver

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParsePodLogOptions(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		query string
		want  PodLogOptions
		code  int32 // expected error code (0: none)
		msg   string
	}{
		{query: "", want: PodLogOptions{}},
		{query: "container=a&follow=true&previous=1&timestamps=true&tailLines=10&limitBytes=5&sinceSeconds=60",
			want: PodLogOptions{Container: "a", Follow: true, Previous: true, Timestamps: true, TailLines: i64(10), LimitBytes: i64(5), SinceSeconds: i64(60)}},
		{query: "follow=false&previous=0&timestamps=FALSE", want: PodLogOptions{}},
		{query: "sinceTime=2026-01-02T03:04:05Z", want: PodLogOptions{SinceTime: &since}},
		{query: "tailLines=0", want: PodLogOptions{TailLines: i64(0)}},
		{query: "tailLines=x", code: 400, msg: `tailLines: invalid value "x"`},
		{query: "sinceTime=yesterday", code: 400, msg: `sinceTime: invalid value "yesterday": want an RFC 3339 time`},
		{query: "tailLines=-1", code: 422, msg: `PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0`},
		{query: "limitBytes=0", code: 422, msg: `PodLogOptions "p" is invalid: limitBytes: Invalid value: 0: must be greater than 0`},
		{query: "sinceSeconds=0", code: 422, msg: `PodLogOptions "p" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0`},
		{query: "sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z", code: 422, msg: "at most one of `sinceTime` or `sinceSeconds` may be specified"},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := parsePodLogOptions("p", q)
		if tc.code != 0 {
			se, ok := err.(apierrors.APIStatus)
			if !ok || se.Status().Code != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%q: got %v, want %d %q", tc.query, err, tc.code, tc.msg)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v %v, want %+v", tc.query, got, err, tc.want)
		}
	}
}

func TestLogContainer(t *testing.T) {
	pod := func(names ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
		for _, n := range names {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n})
		}
		return p
	}
	withInit := pod("a", "b")
	withInit.Spec.InitContainers = []corev1.Container{{Name: "init"}}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		container string
		want      string
		err       string
	}{
		{name: "only container", pod: pod("main"), want: "main"},
		{name: "named", pod: pod("a", "b"), container: "b", want: "b"},
		{name: "init container", pod: withInit, container: "init", want: "init"},
		{name: "none", pod: pod(), err: "a container name must be specified for pod p"},
		{name: "ambiguous", pod: pod("a", "b"), err: "a container name must be specified for pod p, choose one of: [a b]"},
		{name: "ambiguous with init", pod: withInit, err: "a container name must be specified for pod p, choose one of: [init a b]"},
		{name: "unknown", pod: pod("a"), container: "x", err: "container x is not valid for pod p"},
	} {
		got, err := logContainer(tc.pod, tc.container)
		if tc.err != "" {
			if !apierrors.IsBadRequest(err) || err.Error() != tc.err {
				t.Errorf("%s: got %q %v, want 400 %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}
