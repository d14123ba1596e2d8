package wasm

// CoalesceData is coalesceData, for the external tests.
var CoalesceData = coalesceData

// DataSegments returns the offsets and sizes of bin's data segments, or nil
// when coalesceData would not touch them.
func DataSegments(bin []byte) [][2]uint64 {
	for p := 8; p < len(bin); {
		r := byteReader{b: bin[p+1:]}
		size := r.uvarint()
		end := p + 1 + (len(bin[p+1:]) - len(r.b)) + int(size)
		if bin[p] == sectionData {
			segs, err := parseData(bin[p:end])
			if err != nil {
				return nil
			}
			out := make([][2]uint64, len(segs))
			for i, s := range segs {
				out[i] = [2]uint64{uint64(s.offset), uint64(len(s.data))}
			}
			return out
		}
		p = end
	}
	return nil
}
