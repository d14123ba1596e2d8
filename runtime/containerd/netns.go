package containerd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
)

// DefaultNetNSDir is where pods' network namespaces are kept (as `ip
// netns` keeps its own in /run/netns).
const DefaultNetNSDir = "/run/wasmfleet/netns"

// LabelNetwork holds a container's ContainerSpec.NetworkGroup.
const LabelNetwork = "io.wasmfleet.network"

// netNSPath is the file that keeps the network namespace of group:
// NetNSDir/<namespace>/<owner>/<group>, each part made a file name.
func (r *Runtime) netNSPath(group string) string {
	return filepath.Join(r.netNSDir(), fileName(group))
}

// netNSDir holds the network namespaces of this Runtime's owner.
func (r *Runtime) netNSDir() string {
	return filepath.Join(r.cfg.NetNSDir, fileName(r.cfg.Namespace), fileName(r.cfg.Owner))
}

func fileName(s string) string {
	s = strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			return c
		}
		return '_'
	}, s)
	if s == "" || s == "." || s == ".." {
		return "_" + s
	}
	return s
}

// networkOf reads the network group of cntr (before it is deleted).
func networkOf(ctx context.Context, cntr containerd.Container) string {
	info, err := cntr.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return ""
	}
	return info.Labels[LabelNetwork]
}

// releaseNetwork removes the network namespace of group once no container
// of this owner in it is left.
func (r *Runtime) releaseNetwork(ctx context.Context, group string) error {
	if group == "" {
		return nil
	}
	r.nsMu.Lock()
	defer r.nsMu.Unlock()
	cs, err := r.client.Containers(r.ctx(ctx), fmt.Sprintf("labels.%q==%q,labels.%q==%q", LabelOwner, r.cfg.Owner, LabelNetwork, group))
	if err != nil {
		return fmt.Errorf("list the containers of network %s: %w", group, err)
	}
	if len(cs) > 0 {
		return nil
	}
	if err := removeNetNS(r.netNSPath(group)); err != nil {
		return fmt.Errorf("remove network namespace of %s: %w", group, err)
	}
	return nil
}

// pruneNetworks removes this owner's network namespaces that no container
// is in any more: their groups' last containers were removed while no
// Runtime of the owner ran.
func (r *Runtime) pruneNetworks(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(r.netNSDir(), "*"))
	if err != nil || len(files) == 0 {
		return err
	}
	r.nsMu.Lock()
	defer r.nsMu.Unlock()
	cs, err := r.client.Containers(r.ctx(ctx), fmt.Sprintf("labels.%q==%q", LabelOwner, r.cfg.Owner))
	if err != nil {
		return fmt.Errorf("list containers of %s: %w", r.cfg.Owner, err)
	}
	inUse := map[string]bool{}
	for _, c := range cs {
		if g := networkOf(r.ctx(ctx), c); g != "" {
			inUse[r.netNSPath(g)] = true
		}
	}
	var errs []error
	for _, f := range files {
		if !inUse[f] {
			errs = append(errs, removeNetNS(f))
		}
	}
	return errors.Join(errs...)
}
