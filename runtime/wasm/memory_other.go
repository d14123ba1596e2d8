//go:build !unix

package wasm

// allocBytes returns n zero bytes from the Go heap (no mappings here).
func allocBytes(n int) (b []byte, mapped bool) { return make([]byte, n), false }

// freeBytes is never called: allocBytes maps nothing.
func freeBytes([]byte) {}
