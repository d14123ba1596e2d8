//go:build !linux

package wasm

import "errors"

// imageFile: no memory images here (see memimage.go); modules keep their
// data section and wazero copies it.
type imageFile struct{}

func newImageFile(uint64) (imageFile, error)              { return imageFile{}, errors.ErrUnsupported }
func (imageFile) writeAt([]byte, uint64) error            { return errors.ErrUnsupported }
func (imageFile) readAt([]byte, uint64) error             { return errors.ErrUnsupported }
func (imageFile) close()                                  {}
func (*memoryImage) newMemory(_, _ uint64) ([]byte, bool) { return nil, false }
func growReserved([]byte) bool                            { return false }
