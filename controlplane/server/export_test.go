package server

import "time"

// SetSystemNamespacesInterval makes the server look for deleted system
// namespaces every d until the returned function restores the interval.
// Not for parallel tests.
func SetSystemNamespacesInterval(d time.Duration) (restore func()) {
	old := systemNamespacesInterval
	systemNamespacesInterval = d
	return func() { systemNamespacesInterval = old }
}
