package wasm_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	goruntime "runtime"
	"strconv"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmfleet/wasmfleet/runtime/wasm"
)

// memoryAfterInstantiate instantiates bin without running its start
// function and returns its memory.
func memoryAfterInstantiate(t *testing.T, bin []byte) []byte {
	t.Helper()
	ctx := context.Background()
	wr := wazero.NewRuntime(ctx)
	defer wr.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, wr)
	mod, err := wr.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()
	b, ok := mem.Read(0, mem.Size())
	if !ok {
		t.Fatal("read memory")
	}
	return bytes.Clone(b)
}

// TestCoalesceDataKeepsMemory: a Go module's 30,000 data segments are
// merged into few, and memory after instantiation is the same byte for byte.
func TestCoalesceDataKeepsMemory(t *testing.T) {
	bin, err := os.ReadFile(goGuest(t, "hello").Path)
	if err != nil {
		t.Fatal(err)
	}
	out := wasm.CoalesceData(bin)
	before, after := len(wasm.DataSegments(bin)), len(wasm.DataSegments(out))
	t.Logf("data segments: %d -> %d", before, after)
	if before < 1000 || after > before/20 {
		t.Errorf("data segments %d -> %d: want a Go module's thousands merged into a few", before, after)
	}
	if !bytes.Equal(memoryAfterInstantiate(t, bin), memoryAfterInstantiate(t, out)) {
		t.Fatal("memory differs after instantiation")
	}
}

// TestMemoryImageKeepsMemory: a Go module instantiated by the runtime, its
// data mapped from a memory image (64-bit Linux), has the same memory byte
// for byte as the module instantiated by wazero alone.
func TestMemoryImageKeepsMemory(t *testing.T) {
	m := goGuest(t, "hello")
	bin, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	got, image, err := wasm.MemoryAfterInstantiate(context.Background(), newRuntime(t, wasm.Config{}), m)
	if err != nil {
		t.Fatal(err)
	}
	if want := goruntime.GOOS == "linux" && strconv.IntSize == 64; image != want {
		t.Errorf("memory image used: %v, want %v", image, want)
	}
	if !bytes.Equal(got, memoryAfterInstantiate(t, bin)) {
		t.Fatal("memory differs after instantiation")
	}
}

// Hand-made modules: a memory of one page and a data section.
func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

// active is an active segment in memory 0 at offset.
func active(offset int64, data string) []byte {
	b := append([]byte{0, 0x41}, wasm.AppendSLEB128(nil, offset)...)
	b = append(b, 0x0b)
	return append(append(b, uleb(uint64(len(data)))...), data...)
}

func module(extra []byte, segs ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, section(5, []byte{1, 0, 1})...) // one memory, min 1 page
	b = append(b, extra...)
	body := uleb(uint64(len(segs)))
	for _, s := range segs {
		body = append(body, s...)
	}
	return append(b, section(11, body)...)
}

func TestCoalesceDataHandMade(t *testing.T) {
	merges := module(nil, active(0, "ab"), active(4, "cd"), active(4+1024+2, "ef"), active(5000, "gh"))
	out := wasm.CoalesceData(merges)
	if got := wasm.DataSegments(out); len(got) != 2 || got[0] != [2]uint64{0, 1032} || got[1] != [2]uint64{5000, 2} {
		t.Errorf("segments after merging: %v", got)
	}
	if !bytes.Equal(memoryAfterInstantiate(t, merges), memoryAfterInstantiate(t, out)) {
		t.Error("memory differs after instantiation")
	}
	// Segments out of address order are sorted first.
	unordered := module(nil, active(10, "c"), active(0, "a"), active(5, "b"))
	if got := wasm.DataSegments(wasm.CoalesceData(unordered)); len(got) != 1 || got[0] != [2]uint64{0, 11} {
		t.Errorf("unordered segments: %v", got)
	}
	if !bytes.Equal(memoryAfterInstantiate(t, unordered), memoryAfterInstantiate(t, wasm.CoalesceData(unordered))) {
		t.Error("memory differs after instantiation (unordered)")
	}
	// Offsets of 2 GiB and more are negative i32.const immediates.
	high := module(nil, active(-1<<31, "a"), active(-1<<31+3, "b"))
	if got := wasm.DataSegments(wasm.CoalesceData(high)); len(got) != 1 || got[0] != [2]uint64{1 << 31, 4} {
		t.Errorf("high offsets: %v", got)
	}

	truncated := module(nil, active(0, "a"), active(2, "b"))
	truncated = truncated[:len(truncated)-2]
	for name, bin := range map[string][]byte{
		"overlapping":            module(nil, active(0, "abcd"), active(2, "xy")),
		"overlapping, unordered": module(nil, active(2, "xy"), active(0, "abcd")),
		"passive":                module(nil, active(0, "a"), append([]byte{1}, append(uleb(1), 'b')...)),
		"data count section":     module(section(12, uleb(2)), active(0, "a"), active(2, "b")),
		"global offset":          module(nil, active(0, "a"), []byte{0, 0x23, 0, 0x0b, 1, 'b'}),
		"truncated":              truncated,
	} {
		if out := wasm.CoalesceData(bin); !bytes.Equal(out, bin) {
			t.Errorf("%s: module changed", name)
		}
	}
}
