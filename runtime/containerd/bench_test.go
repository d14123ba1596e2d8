package containerd

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// BenchmarkStartTrue measures one container's whole life through this
// package, with the test image already imported and unpacked: Start
// (create the container with a new snapshot and an OCI spec, create and
// start the task through the runc shim) until Done (the guest, "/app true",
// a static Go program that exits at once, has exited and its task,
// container and snapshot are deleted). Issue 3 quotes ~49 ms for busybox
// /bin/true through containerd 1.6 and runc with the Go client.
//
// serial runs one container at a time; start-to-exit does the same and also
// reports the part from starting the task (ExitStatus.StartedAt) to the
// guest's exit (FinishedAt, containerd's exit time), i.e. without creating
// the container and without the cleanup; parallel-4 keeps four in flight.
func BenchmarkStartTrue(b *testing.B) {
	r := newRuntime(b)
	spec := runtime.ContainerSpec{ID: "bench/true/app/0", Image: testImage, Args: []string{"true"}}
	run := func(b *testing.B) runtime.Container {
		c, err := r.Start(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		<-c.Done()
		if st, _ := c.Exit(); st.Reason != runtime.ReasonCompleted {
			b.Fatalf("exit %+v", st)
		}
		return c
	}
	run(b) // warm: the image's config is read once

	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			run(b)
		}
	})
	b.Run("start-to-exit", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			c := run(b)
			st, _ := c.Exit()
			total += st.FinishedAt.Sub(st.StartedAt)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "task-start-to-exit-ms/op")
	})
	b.Run("parallel-4", func(b *testing.B) {
		b.SetParallelism(1)
		sem := make(chan struct{}, 4)
		errs := make(chan error, 1)
		i := 0
		for b.Loop() {
			sem <- struct{}{}
			i++
			s := spec
			s.ID = fmt.Sprintf("bench/true/app/%d", i)
			go func() {
				defer func() { <-sem }()
				c, err := r.Start(context.Background(), s)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				<-c.Done()
			}()
		}
		for range cap(sem) {
			sem <- struct{}{}
		}
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
	})
}
