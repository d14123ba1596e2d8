package wasm_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestCheckedInWasmMatchesWat rebuilds every checked-in .wasm that has a
// .wat beside it (examples/tiny and testdata) with wabt's wat2wasm and
// compares, so the binaries the other tests and `wasmfleet up` use cannot
// drift from their sources.
func TestCheckedInWasmMatchesWat(t *testing.T) {
	wat2wasm := testenv.Tool(t, "wat2wasm")
	sources, err := filepath.Glob(filepath.Join("testdata", "*.wat"))
	if err != nil {
		t.Fatal(err)
	}
	sources = append(sources, filepath.Join("..", "..", "examples", "tiny", "tiny.wat"))
	for _, src := range sources {
		t.Run(filepath.Base(src), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.wasm")
			if b, err := exec.Command(wat2wasm, src, "-o", out).CombinedOutput(); err != nil {
				t.Fatalf("wat2wasm %s: %v\n%s", src, err, b)
			}
			built, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			checkedIn, err := os.ReadFile(strings.TrimSuffix(src, ".wat") + ".wasm")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(built, checkedIn) {
				t.Fatalf("%s is stale: run wat2wasm %s -o %s", strings.TrimSuffix(src, ".wat")+".wasm", src, strings.TrimSuffix(src, ".wat")+".wasm")
			}
		})
	}
}
