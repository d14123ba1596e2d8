//go:build unix

package wasm

import "golang.org/x/sys/unix"

// allocBytes returns n zero bytes in a private anonymous mapping, outside
// the Go heap: the kernel backs a page only once the guest touches it.
// mapped is false when the mapping failed and the bytes come from the Go
// heap instead (or n is 0). (golang.org/x/sys/unix rather than syscall maps
// it, so that remapBytes can grow it on Linux.)
func allocBytes(n int) (b []byte, mapped bool) {
	if n == 0 {
		return []byte{}, false
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	return b, true
}

// freeBytes releases a mapping allocBytes or remapBytes returned. Nothing
// may use b afterwards.
func freeBytes(b []byte) { _ = unix.Munmap(b) }
