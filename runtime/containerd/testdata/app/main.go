// Command app is the program inside the tests' OCI image (built static with
// CGO_ENABLED=0). Its first argument picks what it does:
//
//	true            exit 0 at once (the benchmark's /bin/true)
//	out             write "hello stdout" and "hello stderr", exit 0
//	exit N          exit with code N
//	env             print argv (one "arg=" line each), the environment
//	                ("env=" lines) and the hostname ("hostname=")
//	write PATH      create PATH; exit 0 if that worked, 4 if it failed
//	alloc MB        touch MB MiB of memory, 1 MiB at a time, then exit 0
//	trap CODE       on SIGTERM print "got SIGTERM" and exit CODE
//	ignore          ignore SIGTERM
//	sleep           sleep until killed
//	listen ADDR     accept TCP connections on ADDR until killed
//	dial ADDR       exit 0 if a TCP connection to ADDR opens, else 6
//	tick N          print "tick 1", "tick 2", … every 100ms, N lines (0: for
//	                ever), then exit 7
//
// trap, ignore, sleep and listen print "ready" once they are set up.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: app COMMAND [ARG]")
		os.Exit(2)
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	switch os.Args[1] {
	case "true":
	case "out":
		fmt.Println("hello stdout")
		fmt.Fprintln(os.Stderr, "hello stderr")
	case "exit":
		n, _ := strconv.Atoi(arg)
		os.Exit(n)
	case "env":
		for _, a := range os.Args {
			fmt.Printf("arg=%s\n", a)
		}
		for _, e := range os.Environ() {
			fmt.Printf("env=%s\n", e)
		}
		h, _ := os.Hostname()
		fmt.Printf("hostname=%s\n", h)
	case "write":
		if err := os.WriteFile(arg, []byte("x"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		fmt.Println("wrote", arg)
	case "alloc":
		mb, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
	case "trap":
		code, _ := strconv.Atoi(arg)
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("ready")
		<-ch
		fmt.Println("got SIGTERM")
		os.Exit(code)
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		for {
			time.Sleep(time.Hour)
		}
	case "tick":
		// tick N: a line every 100ms, N of them (0: for ever), then exit 7.
		n, _ := strconv.Atoi(arg)
		for i := 1; n == 0 || i <= n; i++ {
			fmt.Println("tick", i)
			time.Sleep(100 * time.Millisecond)
		}
		os.Exit(7)
	case "sleep":
		fmt.Println("ready")
		for {
			time.Sleep(time.Hour)
		}
	case "listen":
		// listen ADDR: accept TCP connections on ADDR (and close them).
		ln, err := net.Listen("tcp", arg)
		if err != nil {
			fmt.Println(err)
			os.Exit(5)
		}
		fmt.Println("ready")
		for {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}
	case "dial":
		// dial ADDR: exit 0 if a TCP connection to ADDR opens, else 6.
		c, err := net.DialTimeout("tcp", arg, 5*time.Second)
		if err != nil {
			fmt.Println(err)
			os.Exit(6)
		}
		c.Close()
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}
