package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wasmfleet/wasmfleet/runtime"
)

func testModule(t *testing.T, name string) runtime.Module {
	t.Helper()
	p := filepath.Join("testdata", name+".wasm")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return runtime.Module{Path: p, Digest: "sha256:" + hex.EncodeToString(sum[:])}
}

// TestCompiledOncePerDigest checks that concurrent users of one digest share
// one compiled module, and that unused modules beyond IdleModules are closed.
func TestCompiledOncePerDigest(t *testing.T) {
	ctx := context.Background()
	r, err := New(ctx, Config{IdleModules: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	spin, trap := testModule(t, "spin"), testModule(t, "trap")

	var wg sync.WaitGroup
	got := make([]*module, 16)
	for i := range got {
		wg.Go(func() {
			m, err := r.acquire(ctx, spin)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = m
		})
	}
	wg.Wait()
	for _, m := range got {
		if m != got[0] {
			t.Fatal("one digest compiled twice")
		}
	}
	if got[0].users != len(got) {
		t.Fatalf("users = %d, want %d", got[0].users, len(got))
	}
	for _, m := range got {
		r.release(m)
	}
	if len(r.idle) != 1 || r.idle[0] != got[0] {
		t.Fatalf("idle = %v", r.idle)
	}

	// Using trap and releasing it pushes spin out: IdleModules is 1.
	if err := r.Prepare(ctx, trap); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.modules[spin.Digest]; ok {
		t.Fatal("spin still cached beyond IdleModules")
	}
	if len(r.idle) != 1 || r.idle[0].digest != trap.Digest {
		t.Fatalf("idle = %v", r.idle)
	}
	// An idle module in use again leaves the idle list.
	m, err := r.acquire(ctx, trap)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.idle) != 0 {
		t.Fatalf("idle = %v while trap is used", r.idle)
	}
	r.release(m)
}

func TestLinearMemoryGrowth(t *testing.T) {
	a := newLimitAllocator(10*pageSize, nil)
	m := a.Allocate(pageSize, 1<<32)
	b := m.Reallocate(pageSize)
	if len(b) != pageSize {
		t.Fatalf("initial len %d", len(b))
	}
	b[0], b[pageSize-1] = 42, 7
	b = m.Reallocate(3 * pageSize) // remapped on Linux, copied elsewhere
	if len(b) != 3*pageSize || b[0] != 42 || b[pageSize-1] != 7 || b[pageSize] != 0 || b[3*pageSize-1] != 0 {
		t.Fatal("grow lost data or is not zeroed")
	}
	if cap(b) <= 3*pageSize {
		t.Fatalf("cap %d: growing page by page would copy every time", cap(b))
	}
	if b = m.Reallocate(10 * pageSize); len(b) != 10*pageSize || cap(b) != 10*pageSize || b[0] != 42 {
		t.Fatalf("grow to the limit: len %d cap %d", len(b), cap(b))
	}
	if a.refused != 0 {
		t.Fatal("refused within the limit")
	}
	if m.Reallocate(11*pageSize) != nil || a.refused != 11*pageSize {
		t.Fatalf("grow past the limit: refused = %d", a.refused)
	}
	if newLimitAllocator(0, nil).limit != 1<<32 || newLimitAllocator(pageSize+1, nil).limit != pageSize {
		t.Fatal("limit rounding")
	}
}
