// Command runcapp is the program in the image of the agent's runc test
// (built static with CGO_ENABLED=0): it prints one line with its argv,
// $GREETING, its hostname and $HOSTNAME, then "alive 1", "alive 2", … every 200ms until SIGTERM; with
// the argument "once", it exits 0 after the first line; with "fail MESSAGE",
// it writes MESSAGE to /dev/termination-log and exits 3.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	hostname, _ := os.Hostname()
	fmt.Printf("hello from runc args=%q greeting=%s hostname=%s HOSTNAME=%s\n", os.Args, os.Getenv("GREETING"), hostname, os.Getenv("HOSTNAME"))
	if len(os.Args) > 1 && os.Args[1] == "once" {
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "fail" {
		if err := os.WriteFile("/dev/termination-log", []byte(os.Args[2]), 0o644); err != nil {
			fmt.Println(err)
		}
		os.Exit(3)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(200 * time.Millisecond)
	for n := 1; ; n++ {
		select {
		case <-ch:
			fmt.Println("stopping")
			return
		case <-tick.C:
			fmt.Println("alive", n)
		}
	}
}
