package wasm

import (
	"bytes"
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmfleet/wasmfleet/runtime"
)

// CoalesceData is coalesceData, for the external tests.
var CoalesceData = coalesceData

// AppendSLEB128 is appendSLEB128, for the external tests' hand-made modules.
var AppendSLEB128 = appendSLEB128

// DataSegments returns the offsets and sizes of bin's data segments, or nil
// when coalesceData would not touch them.
func DataSegments(bin []byte) [][2]uint64 {
	start, end := dataSection(bin)
	if end == 0 {
		return nil
	}
	segs, err := parseData(bin[start:end])
	if err != nil {
		return nil
	}
	out := make([][2]uint64, len(segs))
	for i, s := range segs {
		out[i] = [2]uint64{uint64(s.offset), uint64(len(s.data))}
	}
	return out
}

// MemoryAfterInstantiate instantiates m as a container would (its memory
// image, if it has one, mapped by the container's allocator) without
// running its start function, and returns a copy of its memory and whether
// the module has a memory image.
func MemoryAfterInstantiate(ctx context.Context, r *Runtime, m runtime.Module) ([]byte, bool, error) {
	mod, err := r.acquire(ctx, m)
	if err != nil {
		return nil, false, err
	}
	defer r.release(mod)
	alloc := newLimitAllocator(0, mod.image)
	inst, err := r.wr.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), mod.compiled,
		wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, false, err
	}
	defer inst.Close(ctx)
	mem := inst.Memory()
	b, _ := mem.Read(0, mem.Size())
	return bytes.Clone(b), mod.image != nil, nil
}
