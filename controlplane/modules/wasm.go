package modules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNotWasm is wrapped by the error for content that is not a WebAssembly
// core module binary.
var ErrNotWasm = errors.New("not a WebAssembly module")

// HeaderSize is the length of a WebAssembly binary's header: the magic
// "\0asm" and the little-endian version 1.
const HeaderSize = 8

var wasmMagic = []byte("\x00asm")

// CheckHeader reports whether b, the first bytes of a file (up to
// HeaderSize are looked at), starts a WebAssembly core module: magic \0asm
// and binary version 1. Its error wraps ErrNotWasm and says what was found
// instead. The rest of the module is not validated here; the runtime
// compiles it.
func CheckHeader(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: it is empty; a module starts with the 8-byte header \\0asm and version 1", ErrNotWasm)
	}
	if head := b[:min(len(b), len(wasmMagic))]; !bytes.Equal(head, wasmMagic[:len(head)]) {
		return fmt.Errorf("%w: it starts with % x (%q), not the magic \\0asm (00 61 73 6d)", ErrNotWasm, head, head)
	}
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: only %d bytes, shorter than the 8-byte header (\\0asm and version 1)", ErrNotWasm, len(b))
	}
	switch v := binary.LittleEndian.Uint32(b[4:8]); {
	case v == 1:
		return nil
	case v&0xffff == 0x0d:
		// Component model binaries: version 0x0d, layer 1.
		return fmt.Errorf("%w: it is a WebAssembly component (version bytes % x); only core modules (version 1) are supported", ErrNotWasm, b[4:8])
	default:
		return fmt.Errorf("%w: unsupported binary version %d (bytes % x), want 1", ErrNotWasm, v, b[4:8])
	}
}
