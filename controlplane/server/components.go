package server

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/rest"

	"github.com/wasmfleet/wasmfleet/controlplane/leaderelection"
)

// Component is a part of the control plane that is an API client like any
// other (the scheduler, the controller manager): Run uses rc, HTTPS to this
// server with admin credentials, until ctx ends. The server cannot import
// them (their tests run a server); controlplane/components provides them.
type Component struct {
	Name string
	Run  func(ctx context.Context, rc *rest.Config, log *slog.Logger) error
}

// ValidateComponents reports invalid settings of the scheduler and the
// controller manager (what `wasmfleet scheduler` and `wasmfleet
// controller-manager` read; Validate includes it).
func (c *Config) ValidateComponents() []error {
	var errs []error
	if c.LeaderElectRetryPeriod <= 0 || c.LeaderElectRenewDeadline <= c.LeaderElectRetryPeriod || c.LeaderElectLeaseDuration <= c.LeaderElectRenewDeadline {
		errs = append(errs, fmt.Errorf("leader election needs lease-duration (%s) > renew-deadline (%s) > retry-period (%s) > 0",
			c.LeaderElectLeaseDuration, c.LeaderElectRenewDeadline, c.LeaderElectRetryPeriod))
	}
	if c.NodeMonitorGracePeriod <= 0 {
		errs = append(errs, fmt.Errorf("node-monitor-grace-period must be positive, got %s", c.NodeMonitorGracePeriod))
	}
	if c.DefaultTolerationSeconds < 0 {
		errs = append(errs, fmt.Errorf("default-toleration-seconds must not be negative, got %d", c.DefaultTolerationSeconds))
	}
	return errs
}

// LeaderElection is the Lease timing of the scheduler and the controller
// manager.
func (c *Config) LeaderElection() leaderelection.Config {
	return leaderelection.Config{
		LeaseDuration: c.LeaderElectLeaseDuration,
		RenewDeadline: c.LeaderElectRenewDeadline,
		RetryPeriod:   c.LeaderElectRetryPeriod,
	}
}
