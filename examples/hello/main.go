// Command hello is the smallest wasmfleet workload: it prints a greeting
// with a counter and the time every interval until it is stopped.
//
// It is built for WASI preview 1 and pushed to the module store:
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm ./examples/hello
//	wasmfleet module push hello:v1 hello.wasm
//	kubectl apply -f examples/hello/hello.yaml
//
// It is plain portable Go, so `go run ./examples/hello` works on the host too.
// Settings come from the environment, as hello.yaml sets them:
//
//	HELLO_INTERVAL   time between lines, a Go duration (default 5s)
//	HELLO_COUNT      lines to print before exiting 0 (default 0: forever)
//	POD_NAME         shown in each line when set (downward API)
//	NODE_NAME        shown in each line when set (downward API)
//
// Arguments after argv[0], if any, replace the greeting.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args, os.Getenv, os.Stdout, os.Stderr))
}

// run prints count lines (forever for 0) and returns the exit code: 0, or 2
// for bad settings.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	interval := 5 * time.Second
	if s := getenv("HELLO_INTERVAL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			fmt.Fprintf(stderr, "hello: HELLO_INTERVAL=%q: want a duration like 5s\n", s)
			return 2
		}
		interval = d
	}
	count := 0
	if s := getenv("HELLO_COUNT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "hello: HELLO_COUNT=%q: want a number >= 0\n", s)
			return 2
		}
		count = n
	}
	greeting := "hello from wasmfleet"
	if len(args) > 1 {
		greeting = strings.Join(args[1:], " ")
	}
	var where string
	if p := getenv("POD_NAME"); p != "" {
		where += " pod=" + p
	}
	if n := getenv("NODE_NAME"); n != "" {
		where += " node=" + n
	}
	for i := 1; count == 0 || i <= count; i++ {
		if i > 1 {
			time.Sleep(interval)
		}
		fmt.Fprintf(stdout, "%s #%d%s time=%s\n", greeting, i, where, time.Now().UTC().Format(time.RFC3339Nano))
	}
	return 0
}
