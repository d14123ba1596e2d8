package wasm

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"github.com/tetratelabs/wazero"
)

// imageModule is a module with one exported memory of minPages pages and
// the given data segments.
func imageModule(minPages byte, segs ...dataSegment) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 5, 3, 1, 0, minPages)                            // memory section: one memory, no maximum
	b = append(b, 7, 10, 1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0) // export section: "memory"
	return append(b, encodeData(segs)...)
}

func TestMemoryImage(t *testing.T) {
	if runtime.GOOS != "linux" || strconv.IntSize != 64 {
		t.Skip("memory images are for 64-bit Linux")
	}
	bin := imageModule(2, dataSegment{offset: 70000, data: []byte("world")}, dataSegment{offset: 5000, data: []byte("hello")})
	stripped, img := newMemoryImage(bin)
	if img == nil {
		t.Fatal("no image")
	}
	defer img.close()
	if want := bin[:8+5+12]; !bytes.Equal(stripped, want) { // the data section left out
		t.Fatalf("stripped module %x, want %x", stripped, want)
	}
	page := uint64(os.Getpagesize())
	if img.off != 5000/page*page || img.end != 70005 || (img.off+img.size)%page != 0 || img.off+img.size < 70005 {
		t.Fatalf("image off %d size %d end %d", img.off, img.size, img.end)
	}

	want := make([]byte, 2*pageSize)
	copy(want[5000:], "hello")
	copy(want[70000:], "world")
	a := newLimitAllocator(4*pageSize, img)
	m := a.Allocate(2*pageSize, 1<<32)
	b := m.Reallocate(2 * pageSize)
	if !bytes.Equal(b, want) {
		t.Fatal("initial memory is not the data laid out in zeros")
	}
	b[5000], b[100] = 'J', 1 // a private copy of the page: the image is unchanged
	other := newLimitAllocator(0, img).Allocate(2*pageSize, 1<<32)
	if ob := other.Reallocate(2 * pageSize); !bytes.Equal(ob, want) {
		t.Fatal("a write of one instance shows in another")
	}
	other.Free()

	grown := m.Reallocate(3 * pageSize)
	if len(grown) != 3*pageSize || unsafe.SliceData(grown) != unsafe.SliceData(b) || grown[5000] != 'J' ||
		string(grown[70000:70005]) != "world" || !bytes.Equal(grown[2*pageSize:], make([]byte, pageSize)) {
		t.Fatal("grow moved the memory, lost data or is not zeroed")
	}
	if m.Reallocate(5*pageSize) != nil || a.refused != 5*pageSize {
		t.Fatalf("grow past the limit: refused = %d", a.refused)
	}
	m.Free()

	// Past the reservation the memory moves to a plain mapping, copied.
	defer func(r uint64) { imageReservation = r }(imageReservation)
	imageReservation = 2 * pageSize
	m = newLimitAllocator(0, img).Allocate(2*pageSize, 1<<32)
	b = m.Reallocate(2 * pageSize)
	b[100] = 1
	grown = m.Reallocate(4 * pageSize)
	want[100] = 1
	if len(grown) != 4*pageSize || !bytes.Equal(grown[:2*pageSize], want) || !bytes.Equal(grown[2*pageSize:], make([]byte, 2*pageSize)) {
		t.Fatal("grow past the reservation lost data or is not zeroed")
	}
	if grown = m.Reallocate(5 * pageSize); len(grown) != 5*pageSize || grown[100] != 1 || grown[70000] != 'w' {
		t.Fatal("grow after the move")
	}
	m.Free()
	want[100] = 0

	// Without a mapping the image is copied.
	fresh := make([]byte, 2*pageSize)
	if !img.copyTo(fresh) || !bytes.Equal(fresh, want) {
		t.Fatal("copyTo")
	}
}

// TestMemoryImageFits: the image is used only when the data lies in the
// module's own memory at its initial size.
func TestMemoryImageFits(t *testing.T) {
	if runtime.GOOS != "linux" || strconv.IntSize != 64 {
		t.Skip("memory images are for 64-bit Linux")
	}
	start := dataSegment{offset: 0, data: []byte("x")}
	ctx := context.Background()
	wr := wazero.NewRuntime(ctx)
	defer wr.Close(ctx)
	for _, tc := range []struct {
		name string
		bin  []byte
		fits bool
	}{
		{"within the initial memory", imageModule(2, start, dataSegment{offset: 2*pageSize - 2, data: []byte("ab")}), true},
		{"past the initial memory", imageModule(2, start, dataSegment{offset: 2*pageSize - 1, data: []byte("ab")}), false},
		{"no exported memory", append([]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x02"), encodeData([]dataSegment{start, {2 * pageSize, nil}})...), false},
	} {
		stripped, img := newMemoryImage(tc.bin)
		if img == nil {
			t.Fatalf("%s: no image", tc.name)
		}
		c, err := wr.CompileModule(ctx, stripped)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := img.fits(c); got != tc.fits {
			t.Errorf("%s: fits %v, want %v", tc.name, got, tc.fits)
		}
		img.close()
	}
}

// TestMemoryImageOnlyForEnoughData: little data is copied, as before.
func TestMemoryImageOnlyForEnoughData(t *testing.T) {
	bin := imageModule(2, dataSegment{offset: 0, data: []byte("x")}, dataSegment{offset: 60000, data: []byte("y")})
	if out, img := newMemoryImage(bin); img != nil || !bytes.Equal(out, bin) {
		t.Fatal("an image for 60 kB of data")
	}
}
