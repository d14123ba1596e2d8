package wasm

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
)

// Go's linker writes one data segment per run of non-zero bytes: the
// examples' Go modules have about 31,000 segments for 1 MB of data, and
// wazero evaluates every segment's offset expression again at each
// instantiation, more than half of the time it takes to start a Go guest.
// coalesceData merges neighbouring segments before the module is compiled.

const (
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
	// maxDataGap is the widest run of zeros written to join two segments:
	// a fresh memory is all zeros there already.
	maxDataGap = 1024
)

// coalesceData returns bin with neighbouring active data segments merged,
// the zeros between them written out. Memory is the same after
// instantiation: that holds when every segment is active, in memory 0, at a
// constant offset, and no two overlap (so none writes another's bytes or a
// gap, and their order does not matter), and when no code refers to
// segments by index (no data count section, no passive segment). Any other
// module, or one that does not parse, is returned unchanged, for wazero to
// judge.
func coalesceData(bin []byte) []byte {
	dataStart, dataEnd := dataSection(bin)
	if dataEnd == 0 {
		return bin
	}
	segs, err := parseData(bin[dataStart:dataEnd])
	if err != nil || len(segs) < 2 {
		return bin
	}
	if !sortDisjoint(segs) {
		return bin
	}
	merged := mergeSegments(segs)
	if len(merged) == len(segs) {
		return bin
	}
	out := make([]byte, 0, len(bin))
	out = append(out, bin[:dataStart]...)
	out = append(out, encodeData(merged)...)
	return append(out, bin[dataEnd:]...)
}

// sortDisjoint sorts segs by offset and reports whether no two overlap.
// Segments that do not overlap write the same memory in any order (Go's
// linker does not write them in address order).
func sortDisjoint(segs []dataSegment) bool {
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	for i := 1; i < len(segs); i++ {
		if segmentEnd(segs[i-1]) > uint64(segs[i].offset) {
			return false
		}
	}
	return true
}

// dataSection finds the data section of bin (its id and size included);
// end is 0 when there is none, when the module has a data count section
// (code refers to segments by index), or when the sections do not parse.
func dataSection(bin []byte) (start, end int) {
	if len(bin) < 8 {
		return 0, 0
	}
	for p := 8; p < len(bin); {
		id := bin[p]
		size, n := binary.Uvarint(bin[p+1:])
		next := p + 1 + n + int(size)
		if n <= 0 || size > uint64(len(bin)) || next > len(bin) {
			return 0, 0
		}
		switch id {
		case sectionDataCount:
			return 0, 0
		case sectionData:
			start, end = p, next
		}
		p = next
	}
	return start, end
}

type dataSegment struct {
	offset uint32
	data   []byte
}

var errUnmergeable = errors.New("data segments cannot be merged")

// parseData reads a data section (id and size included) whose segments
// are all active in memory 0 at i32.const offsets.
func parseData(sec []byte) ([]dataSegment, error) {
	r := byteReader{b: sec[1:]}
	r.uvarint() // section size, checked by the caller
	count := r.uvarint()
	if r.err != nil || count > uint64(len(sec)) {
		return nil, errUnmergeable
	}
	segs := make([]dataSegment, 0, count)
	for range count {
		if flags := r.uvarint(); flags != 0 || r.byte() != opI32Const {
			return nil, errUnmergeable
		}
		offset := uint32(r.varint32())
		if r.byte() != opEnd {
			return nil, errUnmergeable
		}
		data := r.bytes(r.uvarint())
		if r.err != nil {
			return nil, errUnmergeable
		}
		segs = append(segs, dataSegment{offset: uint32(offset), data: data})
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errUnmergeable
	}
	return segs, nil
}

// mergeSegments joins sorted, disjoint segments whose gap is at most
// maxDataGap, each merged segment's bytes allocated once.
func mergeSegments(segs []dataSegment) []dataSegment {
	var out []dataSegment
	for i := 0; i < len(segs); {
		first, end := segs[i].offset, segmentEnd(segs[i])
		j := i + 1
		for ; j < len(segs) && uint64(segs[j].offset)-end <= maxDataGap; j++ {
			end = segmentEnd(segs[j])
		}
		data := make([]byte, end-uint64(first))
		for _, s := range segs[i:j] {
			copy(data[s.offset-first:], s.data)
		}
		out = append(out, dataSegment{offset: first, data: data})
		i = j
	}
	return out
}

func segmentEnd(s dataSegment) uint64 { return uint64(s.offset) + uint64(len(s.data)) }

// encodeData writes a data section of active segments in memory 0.
func encodeData(segs []dataSegment) []byte {
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(segs)))
	for _, s := range segs {
		body = append(body, 0, opI32Const)
		body = appendSLEB128(body, int64(int32(s.offset)))
		body = append(body, opEnd)
		body = binary.AppendUvarint(body, uint64(len(s.data)))
		body = append(body, s.data...)
	}
	sec := []byte{sectionData}
	sec = binary.AppendUvarint(sec, uint64(len(body)))
	return append(sec, body...)
}

// byteReader reads LEB128 numbers and bytes; the first error sticks.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) fail() { r.err, r.b = errUnmergeable, nil }

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint32 reads a signed LEB128 number of at most 32 bits (the
// i32.const immediate). encoding/binary's Varint is zig-zag, not LEB128.
func (r *byteReader) varint32() int32 {
	var v int64
	var shift uint
	for i := 0; i < 5; i++ {
		if i >= len(r.b) {
			break
		}
		c := r.b[i]
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				break
			}
			r.b = r.b[i+1:]
			return int32(v)
		}
	}
	r.fail()
	return 0
}

// appendSLEB128 appends v as a signed LEB128 number.
func appendSLEB128(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func (r *byteReader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}
