// Command job is a batch workload: it computes π to a number of decimal
// places with Machin's formula, prints it and exits 0, so its Job completes.
//
//	GOOS=wasip1 GOARCH=wasm go build -o job.wasm ./examples/job
//	wasmfleet module push job:v1 job.wasm
//	kubectl apply -f examples/job/job.yaml
//	kubectl wait --for=condition=complete job/pi && kubectl logs job/pi
//
// Usage: job [-digits N] (default 1000, at most 100000). The last line of
// its output is π itself ("3.14159…").
package main

import (
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, computes and prints π; it returns 0, or 2 on bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("job", flag.ContinueOnError)
	fs.SetOutput(stderr)
	digits := fs.Int("digits", 1000, "decimal places of π to compute (1 to 100000)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *digits < 1 || *digits > 100000 {
		fmt.Fprintf(stderr, "job: -digits %d: want 1 to 100000\n", *digits)
		return 2
	}
	start := time.Now()
	p := pi(*digits)
	fmt.Fprintf(stdout, "computed %d decimal places of pi in %s\n", *digits, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(stdout, p)
	return 0
}

// pi returns π truncated to n decimal places, as "3.1415…", using Machin's
// formula π = 16·arctan(1/5) − 4·arctan(1/239) in fixed point with 10 guard
// digits.
func pi(n int) string {
	unity := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n+10)), nil)
	p := new(big.Int).Mul(big.NewInt(16), arccot(5, unity))
	p.Sub(p, new(big.Int).Mul(big.NewInt(4), arccot(239, unity)))
	p.Quo(p, new(big.Int).Exp(big.NewInt(10), big.NewInt(10), nil)) // drop the guard digits
	s := p.String()
	return s[:1] + "." + s[1:]
}

// arccot returns arccot(x)·unity = Σ (−1)^k · unity / ((2k+1)·x^(2k+1)).
func arccot(x int64, unity *big.Int) *big.Int {
	sum := new(big.Int)
	xx := big.NewInt(x * x)
	power := new(big.Int).Quo(unity, big.NewInt(x)) // unity / x^(2k+1)
	term := new(big.Int)
	for k := int64(0); power.Sign() != 0; k++ {
		term.Quo(power, big.NewInt(2*k+1))
		if k%2 == 0 {
			sum.Add(sum, term)
		} else {
			sum.Sub(sum, term)
		}
		power.Quo(power, xx)
	}
	return sum
}
