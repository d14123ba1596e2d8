package wasm

// CoalesceData is coalesceData, for the external tests.
var CoalesceData = coalesceData

// AppendSLEB128 is appendSLEB128, for the external tests' hand-made modules.
var AppendSLEB128 = appendSLEB128

// DataSegments returns the offsets and sizes of bin's data segments, or nil
// when coalesceData would not touch them.
func DataSegments(bin []byte) [][2]uint64 {
	start, end := dataSection(bin)
	if end == 0 {
		return nil
	}
	segs, err := parseData(bin[start:end])
	if err != nil {
		return nil
	}
	out := make([][2]uint64, len(segs))
	for i, s := range segs {
		out[i] = [2]uint64{uint64(s.offset), uint64(len(s.data))}
	}
	return out
}
