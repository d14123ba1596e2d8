package testenv

import (
	"context"
	"testing"

	"k8s.io/client-go/informers"
)

// Runner is a controller as the controller manager runs it.
type Runner interface {
	Run(ctx context.Context, workers int) error
}

// RunController starts factory and runs c with workers until the test
// ends; then it stops both, and the test fails if Run returned an error.
// Register c's informers on factory (construct c) before.
func RunController(t testing.TB, factory informers.SharedInformerFactory, c Runner, workers int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, workers) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
}
