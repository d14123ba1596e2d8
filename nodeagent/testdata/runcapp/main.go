// Command runcapp is the program in the image of the agent's runc test
// (built static with CGO_ENABLED=0): it prints one line with its argv and
// $GREETING, then sleeps until killed.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Printf("hello from runc args=%q greeting=%s\n", os.Args, os.Getenv("GREETING"))
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	fmt.Println("stopping")
}
