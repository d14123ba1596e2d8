// Command runcapp is the program in the image of the agent's runc test
// (built static with CGO_ENABLED=0): it prints one line with its argv,
// $GREETING, its hostname and $HOSTNAME, then "alive 1", "alive 2", … every 200ms until SIGTERM; with
// the argument "once", it exits 0 after the first line; with "fail MESSAGE",
// it writes MESSAGE to /dev/termination-log and exits 3. Running on, it
// creates /dev/shm/ready. "check PATH" (the probes' command) prints nothing
// and exits 0 if PATH exists, else says so and exits 1. "serve PORT" also
// answers HTTP on 127.0.0.1:PORT: 200 on /healthz, 500 elsewhere; and the
// gRPC health service on PORT+1000: "" SERVING, "down" NOT_SERVING.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "check" {
		if _, err := os.Stat(os.Args[2]); err != nil {
			fmt.Println("no", os.Args[2])
			os.Exit(1)
		}
		return
	}
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
	if len(os.Args) > 2 && os.Args[1] == "serve" {
		go func() {
			err := http.ListenAndServe("127.0.0.1:"+os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/healthz" || r.Header.Get("User-Agent") == "" {
					w.WriteHeader(http.StatusInternalServerError)
				}
			}))
			fmt.Println(err)
		}()
		go func() {
			port, _ := strconv.Atoi(os.Args[2])
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1000))
			if err != nil {
				fmt.Println(err)
				return
			}
			hs := health.NewServer()
			hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
			srv := grpc.NewServer()
			healthpb.RegisterHealthServer(srv, hs)
			fmt.Println(srv.Serve(ln))
		}()
	}
	if err := os.WriteFile("/dev/shm/ready", nil, 0o644); err != nil {
		fmt.Println(err)
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
