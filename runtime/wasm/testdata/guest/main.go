// Command guest is the runtime tests' misbehaving workload, built with
// GOOS=wasip1 GOARCH=wasm. argv[1] picks what it does; see run.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args))
}

// sink keeps the memory bomb's allocations reachable.
var sink [][]byte

func run(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: guest MODE [ARG...]")
		return 2
	}
	arg := func(i int) string {
		if len(args) > i {
			return args[i]
		}
		return ""
	}
	switch args[1] {
	case "exit": // exit CODE
		code, _ := strconv.Atoi(arg(2))
		return code
	case "panic":
		panic("boom")
	case "env": // print argv, environ, the time and random bytes
		fmt.Printf("args=%s\n", strings.Join(args, ","))
		for _, e := range os.Environ() {
			fmt.Printf("env %s\n", e)
		}
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			fmt.Println("rand error:", err)
			return 1
		}
		fmt.Printf("now=%s\n", time.Now().UTC().Format(time.RFC3339Nano))
		start := time.Now()
		time.Sleep(20 * time.Millisecond)
		fmt.Printf("slept=%s\n", time.Since(start))
		fmt.Printf("rand=%s\n", hex.EncodeToString(b))
		return 0
	case "loop": // spin without calls or allocation
		fmt.Println("looping")
		x := 0
		for {
			x++
		}
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(time.Hour)
		return 0
	case "bomb": // bomb MIB: allocate and keep MIB MiB, then exit 0
		n, _ := strconv.Atoi(arg(2))
		for i := range n {
			b := make([]byte, 1<<20)
			for j := range b { // touch it, so it is really there
				b[j] = byte(i + j)
			}
			sink = append(sink, b)
		}
		fmt.Printf("allocated %d MiB\n", n)
		return 0
	case "cat": // cat FILE
		b, err := os.ReadFile(arg(2))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(b)
		return 0
	case "write": // write DIR: create DIR/new.txt and append to DIR/existing.txt
		if err := os.WriteFile(arg(2)+"/new.txt", []byte("written by guest\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("wrote")
		return 0
	case "vandal": // vandal DIR: try every kind of write; print each result
		dir := arg(2)
		results := map[string]error{}
		results["create"] = os.WriteFile(dir+"/new.txt", []byte("x"), 0o644)
		results["overwrite"] = os.WriteFile(dir+"/existing.txt", []byte("x"), 0o644)
		if f, err := os.OpenFile(dir+"/created-readonly.txt", os.O_RDONLY|os.O_CREATE, 0o644); err == nil {
			f.Close()
			results["open-create"] = nil
		} else {
			results["open-create"] = err
		}
		if f, err := os.OpenFile(dir+"/existing.txt", os.O_RDONLY|os.O_TRUNC, 0); err == nil {
			f.Close()
			results["open-trunc"] = nil
		} else {
			results["open-trunc"] = err
		}
		results["remove"] = os.Remove(dir + "/existing.txt")
		results["mkdir"] = os.Mkdir(dir+"/sub", 0o755)
		results["rename"] = os.Rename(dir+"/existing.txt", dir+"/renamed.txt")
		results["symlink"] = os.Symlink("/", dir+"/escape")
		failed := 0
		for _, k := range []string{"create", "overwrite", "open-create", "open-trunc", "remove", "mkdir", "rename", "symlink"} {
			if results[k] == nil {
				fmt.Printf("%s: ok\n", k)
			} else {
				failed++
				fmt.Printf("%s: %v\n", k, results[k])
			}
		}
		fmt.Printf("refused %d\n", failed)
		return 0
	case "escape": // escape DIR: try to leave DIR through .. and a symlink
		dir := arg(2)
		_, errDots := os.ReadFile(dir + "/../../../../etc/hostname")
		errLink := os.Symlink("/etc", dir+"/etc")
		_, errRead := os.ReadFile(dir + "/etc/hostname")
		fmt.Printf("dots: %v\nsymlink: %v\nthrough-link: %v\n", errDots, errLink, errRead)
		if errDots == nil || errLink == nil || errRead == nil {
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, errors.New("unknown mode "+args[1]))
	return 2
}
