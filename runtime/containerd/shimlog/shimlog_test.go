package shimlog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmfleet/wasmfleet/nodeagent/podlogs"
	"github.com/wasmfleet/wasmfleet/runtime"
)

func TestCopyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod", "main", "0.log")
	arg, err := json.Marshal(runtime.LogFile{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	err = copyLog(context.Background(), string(arg), strings.NewReader("out 1\nout 2\n"), strings.NewReader("err 1\n"),
		func() error { ready++; return nil })
	if err != nil || ready != 1 {
		t.Fatalf("copyLog: %v, ready called %d times", err, ready)
	}
	var b bytes.Buffer
	if err := podlogs.Read(context.Background(), path, podlogs.ReadOptions{Tail: -1}, &b); err != nil {
		t.Fatal(err)
	}
	// The two streams are two pipes: their lines interleave in any order.
	got := b.String()
	for _, line := range []string{"out 1\n", "out 2\n", "err 1\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("log %q lacks %q", got, line)
		}
	}
	if raw, _ := os.ReadFile(path); !bytes.Contains(raw, []byte(" stderr F err 1\n")) || !bytes.Contains(raw, []byte(" stdout F out 2\n")) {
		t.Errorf("log file %q: want CRI records of both streams", raw)
	}
}

// A log that cannot be opened still lets the container run: its output is
// read and dropped, not left to fill the pipe.
func TestCopyLogUnopenableDrains(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	arg, _ := json.Marshal(runtime.LogFile{Path: filepath.Join(file, "under-a-file.log")})
	out := strings.NewReader(strings.Repeat("x", 1<<20))
	ready := false
	if err := copyLog(context.Background(), string(arg), out, strings.NewReader(""), func() error { ready = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !ready || out.Len() != 0 {
		t.Errorf("ready %v, %d bytes left unread", ready, out.Len())
	}
}

// A write that fails (the log's directory is gone, so rotation fails) does
// not stop the reading: the container would block on a full pipe.
func TestCopyLogDrainsAfterAWriteError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	arg, _ := json.Marshal(runtime.LogFile{Path: filepath.Join(dir, "0.log"), MaxFileBytes: 1024})
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- copyLog(context.Background(), string(arg), r, strings.NewReader(""), func() error {
			return os.RemoveAll(dir) // the first rotation fails
		})
	}()
	line := []byte(strings.Repeat("x", 99) + "\n")
	for range 1000 { // 100 KB: more than a pipe holds
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if err := <-done; err != nil {
		t.Logf("copyLog: %v", err) // closing a broken log may fail
	}
}
