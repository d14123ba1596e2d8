package server

import "time"

// SetSystemObjectsInterval makes the server look for deleted system
// namespaces and the kubernetes Service every d until the returned
// function restores the interval. Not for parallel tests.
func SetSystemObjectsInterval(d time.Duration) (restore func()) {
	old := systemObjectsInterval
	systemObjectsInterval = d
	return func() { systemObjectsInterval = old }
}
