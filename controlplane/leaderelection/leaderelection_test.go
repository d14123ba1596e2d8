package leaderelection_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/leaderelection"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
)

func fast(id string) leaderelection.Config {
	return leaderelection.Config{
		Namespace: "kube-system", Name: "test-component", Identity: id,
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond,
	}
}

// Two candidates: exactly one works at any moment; stopping the leader
// hands over to the other, and the lease names the new holder.
func TestOneLeaderAndHandover(t *testing.T) {
	c := testcluster.Start(t)
	client := c.Client(t)
	var active, maxActive atomic.Int32
	started := make(chan string, 4)
	work := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			started <- id
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond) // a slow shutdown must not overlap the next leader
			active.Add(-1)
			return nil
		}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- leaderelection.Run(ctxA, client, fast("a"), work("a")) })
	first := <-started
	if first != "a" {
		t.Fatalf("first leader %q, want a (b not started yet)", first)
	}
	wg.Go(func() { errs <- leaderelection.Run(ctxB, client, fast("b"), work("b")) })
	select {
	case id := <-started:
		t.Fatalf("%s started while a leads", id)
	case <-time.After(3 * time.Second): // longer than a lease: a keeps renewing
	}
	stopA()
	select {
	case id := <-started:
		if id != "b" {
			t.Fatalf("took over: %q", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b did not take over")
	}
	lease, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), "test-component", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "b" {
		t.Fatalf("lease after handover: %+v, %v", lease, err)
	}
	stopB()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if m := maxActive.Load(); m != 1 {
		t.Errorf("%d leaders worked at once", m)
	}
}

// Work that fails while leading ends Run with its error.
func TestWorkErrorEndsRun(t *testing.T) {
	c := testcluster.Start(t)
	boom := errors.New("boom")
	err := leaderelection.Run(context.Background(), c.Client(t), fast("a"), func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
}
