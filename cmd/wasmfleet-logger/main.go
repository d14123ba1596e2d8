// Command wasmfleet-logger writes the log of one runc container: the node
// agent has containerd's shim run it for each container
// (runtime/containerd/shimlog), so that the container's output reaches its
// log file while no agent process runs. It links none of containerd's
// client and costs about 3 MB of memory per container; without it beside
// the agent (or on $PATH), the agent's own executable does the job at
// several times that.
//
// It is not meant to be run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/wasmfleet/wasmfleet/runtime/containerd/shimlog"
)

func main() {
	shimlog.RunLoggerIfAsked(os.Args)
	fmt.Fprintln(os.Stderr, "wasmfleet-logger: containerd's shim runs this for the node agent's containers; it is not meant to be run by hand")
	os.Exit(2)
}
