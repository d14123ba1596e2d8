package linkserver

import (
	"context"
	"io"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver"
	"github.com/wasmfleet/wasmfleet/controlplane/nodelink"
)

// PodLogs is apiserver.PodLogs over the node link: it asks the agent of
// the pod's node with a [nodelink.LogClient]. Safe for concurrent use.
type PodLogs struct {
	client *nodelink.LogClient
}

var _ apiserver.PodLogs = (*PodLogs)(nil)

// NewPodLogs checks cfg and returns the log source.
func NewPodLogs(cfg nodelink.LogClientConfig) (*PodLogs, error) {
	c, err := nodelink.NewLogClient(cfg)
	if err != nil {
		return nil, err
	}
	return &PodLogs{client: c}, nil
}

// OpenPodLogs implements apiserver.PodLogs (see nodelink.LogClient.Open
// for its errors).
func (p *PodLogs) OpenPodLogs(ctx context.Context, o apiserver.PodLogOptions) (io.ReadCloser, error) {
	return p.client.Open(ctx, o.Node, nodelink.LogRequest{
		Namespace: o.Namespace, Pod: o.Pod, UID: string(o.UID), Container: o.Container,
		Previous: o.Previous, Follow: o.Follow, Timestamps: o.Timestamps,
		TailLines: o.TailLines, SinceSeconds: o.SinceSeconds, SinceTime: o.SinceTime, LimitBytes: o.LimitBytes,
	})
}
