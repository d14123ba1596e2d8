package wasm

import (
	"os"
	"strconv"

	"github.com/tetratelabs/wazero"
)

// Memory images. A Go guest's module carries 1.3 MB of data, and wazero
// copies it into every instance's fresh memory when it instantiates the
// module: 330 pages faulted in, zeroed and written, about half of a Go
// guest's start. Instead, as Wasmtime does ("copy-on-write heap images"),
// the data is laid out once per compiled module in an in-memory file, the
// module's memory image, and the data section is left out of the module
// that is compiled. Each instance maps the image privately at the data's
// offsets: the kernel shares its pages until the guest writes to one (then
// copies that page), and pages the guest never touches cost nothing.
//
// A module qualifies under coalesceData's conditions (every segment active,
// in memory 0, at a constant offset, none overlapping, no data count
// section) when the data fits in the module's own, not imported, memory at
// its initial size (fits, checked after compiling; wazero would refuse to
// instantiate otherwise), and when the data is large enough to be worth it
// (minImage). An instance's memory is then a reservation of address space
// (imageReservation) that grows in place, since mremap cannot move the
// image's mapping together with the rest; that needs a 64-bit address
// space.

// minImage is the least data worth an image: copying less costs less than
// the mappings.
const minImage = 64 << 10

// imageReservation is the address space reserved for an instance's memory
// that holds an image (less when its maximum is less). A guest that grows
// past it is copied once into a plain mapping. 1,000 instances fit in the
// 512 GiB of a 39-bit address space (as on a Raspberry Pi's arm64 kernel).
// A variable for the tests.
var imageReservation uint64 = 256 << 20

// memoryImage is a module's memory at instantiation, from byte off to
// off+size; all other bytes are zero.
type memoryImage struct {
	file      imageFile
	off, size uint64 // multiples of the OS page size
	end       uint64 // the end of the last data segment
}

// newMemoryImage returns bin without its data section and the image of
// that data, or bin and nil when the module does not qualify or the
// platform has no images.
func newMemoryImage(bin []byte) ([]byte, *memoryImage) {
	if strconv.IntSize < 64 {
		return bin, nil
	}
	start, end := dataSection(bin)
	if end == 0 {
		return bin, nil
	}
	segs, err := parseData(bin[start:end])
	if err != nil || len(segs) == 0 || !sortDisjoint(segs) {
		return bin, nil
	}
	page := uint64(os.Getpagesize())
	img := &memoryImage{off: uint64(segs[0].offset) / page * page}
	for _, s := range segs {
		img.end = max(img.end, segmentEnd(s))
	}
	img.size = (img.end+page-1)/page*page - img.off
	if img.size < minImage {
		return bin, nil
	}
	if img.file, err = newImageFile(img.size); err != nil {
		return bin, nil
	}
	// One write: a Go module has about 31,000 segments.
	b := make([]byte, img.end-img.off)
	for _, s := range segs {
		copy(b[uint64(s.offset)-img.off:], s.data)
	}
	if err := img.file.writeAt(b, 0); err != nil {
		img.close()
		return bin, nil
	}
	stripped := make([]byte, 0, len(bin)-(end-start))
	return append(append(stripped, bin[:start]...), bin[end:]...), img
}

// fits reports whether the image's data lies in c's own memory at its
// initial size.
func (img *memoryImage) fits(c wazero.CompiledModule) bool {
	if len(c.ImportedMemories()) != 0 {
		return false
	}
	for _, mem := range c.ExportedMemories() {
		return img.end <= uint64(mem.Min())*pageSize
	}
	return false
}

// copyTo writes the image into a fresh, zeroed memory b: the instance's
// memory when mapping the image failed.
func (img *memoryImage) copyTo(b []byte) bool {
	return img.file.readAt(b[img.off:img.off+img.size], 0) == nil
}

func (img *memoryImage) close() { img.file.close() }
