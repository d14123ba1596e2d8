// Command termlog writes its first argument to the file its second names
// (a container's terminationMessagePath) and exits with the code its third
// gives: a test guest of the agent's termination messages.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: termlog MESSAGE FILE CODE")
		os.Exit(2)
	}
	if err := os.WriteFile(os.Args[2], []byte(os.Args[1]), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "termlog:", err)
		os.Exit(2)
	}
	code, _ := strconv.Atoi(os.Args[3])
	os.Exit(code)
}
