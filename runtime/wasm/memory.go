package wasm

import (
	"github.com/tetratelabs/wazero/experimental"
)

// pageSize is the size of a wasm memory page.
const pageSize = 64 << 10

// wasm32MaxMemory is the most memory a wasm32 module can address: 4 GiB.
const wasm32MaxMemory = 1 << 32

// limitAllocator gives one container its linear memory and enforces the
// container's memory limit; see "Memory limits" in the package doc. It is
// used by the container's goroutine only (wazero allocates, grows and frees
// a module's memory on the goroutine that runs the module), so it needs no
// locking; run reads its verdict after the guest has returned.
type limitAllocator struct {
	limit uint64 // bytes, a multiple of pageSize
	// image is the module's memory image, nil when it has none (its data
	// section then is in the compiled module).
	image *memoryImage
	// refused is the size of the first grow refused because of limit; 0
	// while none was.
	refused uint64
	// overAtStart is set when the module's initial memory exceeds limit.
	overAtStart bool
	// imageLost is set when the memory image could be neither mapped nor
	// copied into the initial memory.
	imageLost bool
}

func newLimitAllocator(limitBytes int64, image *memoryImage) *limitAllocator {
	l := uint64(wasm32MaxMemory)
	if limitBytes > 0 && uint64(limitBytes) < l {
		l = uint64(limitBytes) / pageSize * pageSize
	}
	return &limitAllocator{limit: l, image: image}
}

// Allocate implements experimental.MemoryAllocator. capacity is the initial
// capacity wazero suggests (the module's minimum) and max the module's
// own maximum.
func (a *limitAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	return &linearMemory{a: a, max: min(max, a.limit), initialCap: capacity}
}

// linearMemory is a byte slice that grows like append, never beyond max.
// Its bytes are outside the Go heap where the platform allows (see
// allocBytes): a guest's untouched pages then cost no RSS, and its memory
// neither counts towards nor is scanned by the garbage collector, whose
// heap goal would otherwise grow by every guest's whole linear memory.
type linearMemory struct {
	a          *limitAllocator
	max        uint64
	initialCap uint64
	buf        []byte
	// mapped is buf's whole capacity when it is off the Go heap and must
	// be released with freeBytes.
	mapped []byte
	// reserved: mapped is a reservation of address space holding the
	// memory image, and buf grows in it (growReserved) without moving;
	// past it, buf moves to a plain mapping, copied.
	reserved  bool
	allocated bool // the initial Reallocate happened
}

// Reallocate implements experimental.LinearMemory. wazero has already
// refused sizes beyond the module's own maximum; sizes beyond the
// container's limit are refused here and remembered.
func (m *linearMemory) Reallocate(size uint64) []byte {
	initial := !m.allocated
	m.allocated = true
	if size > m.max {
		if initial {
			// wazero cannot take a refusal of the initial memory: give it,
			// and the container ends as OOMKilled before the guest runs.
			m.a.overAtStart = true
			m.setBuf(size, size)
			return m.buf
		}
		if m.a.refused == 0 {
			m.a.refused = size
		}
		return nil
	}
	if m.reserved && size <= uint64(len(m.mapped)) {
		if !growReserved(m.mapped[len(m.buf):size]) {
			return nil
		}
		m.buf = m.mapped[:size:size]
		return m.buf
	}
	if initial && m.a.image != nil {
		if region, ok := m.a.image.newMemory(min(m.max, max(size, imageReservation)), size); ok {
			m.mapped, m.reserved, m.buf = region, true, region[:size:size]
			return m.buf
		}
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size] // bytes past len were never used: still zero
		return m.buf
	}
	// Grow by a quarter more than asked, as Go's append does for large
	// slices, so a guest that grows page by page is not copied every time.
	c := max(size, m.initialCap)
	if !initial {
		c = max(c, size+size/4)
	}
	m.setBuf(size, min(c, m.max))
	if initial && m.a.image != nil && !m.a.image.copyTo(m.buf) {
		// No mapping and no copy of the image: the guest must not run.
		m.a.imageLost = true
	}
	return m.buf
}

// setBuf replaces buf by a new one of length size and capacity c holding
// buf's bytes (the rest zero), and releases the old one: a mapping is grown
// by remapping it where the platform can, else copied. wazero drops its
// reference to the old buffer when Reallocate returns (the module's
// goroutine is the only one using it).
func (m *linearMemory) setBuf(size, c uint64) {
	if m.mapped != nil && !m.reserved {
		if buf, ok := remapBytes(m.mapped, int(c)); ok { // no copy (Linux)
			m.mapped, m.buf = buf, buf[:size]
			return
		}
	}
	old, oldMapped := m.buf, m.mapped
	buf, mapped := allocBytes(int(c))
	if mapped {
		m.mapped = buf
	} else {
		m.mapped = nil
	}
	m.buf = buf[:size]
	copy(m.buf, old)
	if oldMapped != nil {
		freeBytes(oldMapped)
	}
	m.reserved = false
}

// Free implements experimental.LinearMemory. wazero calls it once, on the
// module's goroutine, when the module is closed; nothing reads the memory
// afterwards.
func (m *linearMemory) Free() {
	if m.mapped != nil {
		freeBytes(m.mapped)
	}
	m.buf, m.mapped = nil, nil
}
