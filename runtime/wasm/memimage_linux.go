package wasm

import (
	"io"
	"unsafe"

	"golang.org/x/sys/unix"
)

// imageFile holds a memory image: a memfd, in memory and nameless.
type imageFile int

func newImageFile(size uint64) (imageFile, error) {
	fd, err := unix.MemfdCreate("wasm-memory-image", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, err
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return imageFile(fd), nil
}

func (f imageFile) writeAt(b []byte, off uint64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(int(f), b, int64(off))
		if err != nil {
			return err
		}
		b, off = b[n:], off+uint64(n)
	}
	return nil
}

func (f imageFile) readAt(b []byte, off uint64) error {
	for len(b) > 0 {
		n, err := unix.Pread(int(f), b, int64(off))
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+uint64(n)
	}
	return nil
}

func (f imageFile) close() { _ = unix.Close(int(f)) }

// newMemory returns a new instance's memory: a reservation of maxBytes of
// address space whose first size bytes are readable and writable, with
// the image mapped privately (copy on write) over its part. Release it
// with freeBytes; grow it with growReserved.
func (img *memoryImage) newMemory(maxBytes, size uint64) ([]byte, bool) {
	region, err := unix.Mmap(-1, 0, int(maxBytes), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil, false
	}
	part := region[img.off : img.off+img.size]
	if !growReserved(region[:size]) {
		freeBytes(region)
		return nil, false
	}
	if _, err := unix.MmapPtr(int(img.file), 0, unsafe.Pointer(&part[0]), uintptr(len(part)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
		freeBytes(region)
		return nil, false
	}
	return region, true
}

// growReserved makes b, a part of a reservation newMemory returned,
// readable and writable. Its pages are zero until written.
func growReserved(b []byte) bool {
	return unix.Mprotect(b, unix.PROT_READ|unix.PROT_WRITE) == nil
}
