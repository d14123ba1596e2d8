//go:build unix

package wasm

import "syscall"

// allocBytes returns n zero bytes in a private anonymous mapping, outside
// the Go heap: the kernel backs a page only once the guest touches it.
// mapped is false when the mapping failed and the bytes come from the Go
// heap instead (or n is 0).
func allocBytes(n int) (b []byte, mapped bool) {
	if n == 0 {
		return []byte{}, false
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	return b, true
}

// freeBytes releases a mapping allocBytes returned. Nothing may use b
// afterwards.
func freeBytes(b []byte) { _ = syscall.Munmap(b) }
