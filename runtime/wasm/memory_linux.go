package wasm

import "golang.org/x/sys/unix"

// remapBytes grows a mapping allocBytes (or remapBytes) returned to n bytes
// with mremap, which moves the mapping's pages instead of copying them: a
// Go guest grows its memory several times while it starts, and copying
// (and so touching) every page each time was a good part of a start's CPU.
// The bytes past the old length are zero. ok false: b is unchanged and
// still mapped; on success b must not be used any more.
func remapBytes(b []byte, n int) (_ []byte, ok bool) {
	nb, err := unix.Mremap(b, n, unix.MREMAP_MAYMOVE)
	if err != nil {
		return nil, false
	}
	return nb, true
}
