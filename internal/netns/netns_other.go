//go:build !linux

// Package netns runs code in another network namespace of the node: a
// container's, or a new one.
package netns

import "errors"

// Run fails: network namespaces are Linux's.
func Run(string, func() error) error { return errors.New("network namespaces are Linux's") }
