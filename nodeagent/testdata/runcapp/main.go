// Command runcapp is the program in the image of the agent's runc test
// (built static with CGO_ENABLED=0): it prints one line with its argv,
// $GREETING, its hostname and $HOSTNAME, then "alive 1", "alive 2", … every 200ms until SIGTERM; with
// the argument "once", it exits 0 after the first line.
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
