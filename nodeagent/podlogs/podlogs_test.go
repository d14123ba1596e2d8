package podlogs

import (
	"github.com/wasmfleet/wasmfleet/internal/testenv"

	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clock hands out times one second apart from a fixed start.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func read(t *testing.T, path string, o ReadOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := Read(context.Background(), path, o, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriteAndRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	c := &clock{t: time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)}
	l, err := Open(path, Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	out, errw := l.Stream("stdout"), l.Stream("stderr")
	fmt.Fprint(out, "one\ntw")
	fmt.Fprint(errw, "oops\n")
	fmt.Fprint(out, "o\nthree\nunfinished")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := read(t, path, ReadOptions{Tail: -1}), "one\noops\ntwo\nthree\nunfinished"; got != want {
		t.Errorf("all = %q, want %q", got, want)
	}
	if got, want := read(t, path, ReadOptions{Tail: 2}), "three\nunfinished"; got != want {
		t.Errorf("tail 2 = %q, want %q", got, want)
	}
	since := time.Date(2026, 11, 26, 7, 0, 3, 0, time.UTC)
	if got, want := read(t, path, ReadOptions{Tail: -1, Since: since}), "two\nthree\nunfinished"; got != want {
		t.Errorf("since = %q, want %q", got, want)
	}
	if got, want := read(t, path, ReadOptions{Tail: 1, Timestamps: true}), "2026-11-26T07:00:05Z unfinished"; got != want {
		t.Errorf("timestamps = %q, want %q", got, want)
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), "2026-11-26T07:00:01Z stdout F one\n2026-11-26T07:00:02Z stderr F oops\n") {
		t.Errorf("stored records:\n%s", raw)
	}
	if got := read(t, t.TempDir()+"/none", ReadOptions{Tail: -1}); got != "" {
		t.Errorf("missing log = %q", got)
	}
}

func TestLongLinesSplitAndJoin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, _ := Open(path, Options{})
	long := strings.Repeat("x", 2*MaxLineBytes+10)
	fmt.Fprintf(l.Stream("stdout"), "%s\nshort\n", long)
	l.Close()
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), " stdout P "); n != 2 {
		t.Errorf("%d partial records, want 2", n)
	}
	if got, want := read(t, path, ReadOptions{Tail: -1}), long+"\nshort\n"; got != want {
		t.Errorf("joined line wrong (len %d, want %d)", len(got), len(want))
	}
	// With timestamps, one per line, not one per record.
	if got := read(t, path, ReadOptions{Tail: -1, Timestamps: true}); strings.Count(got, "Z ") != 2 {
		t.Errorf("%d timestamps, want 2", strings.Count(got, "Z "))
	}
}

// TestRotationBoundsDisk: however much a container prints, its log stays
// within MaxFiles × MaxFileBytes (plus one record) and keeps the newest lines.
func TestRotationBoundsDisk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	l, _ := Open(path, Options{MaxFileBytes: 4 << 10, MaxFiles: 3})
	out := l.Stream("stdout")
	for i := range 20000 {
		fmt.Fprintf(out, "line %06d\n", i)
	}
	l.Close()
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		total += info.Size()
	}
	if len(entries) != 3 || total > 3*(4<<10)+100 {
		t.Fatalf("%d files, %d bytes on disk; want 3 files within 12 KiB", len(entries), total)
	}
	got := strings.Split(strings.TrimSpace(read(t, path, ReadOptions{Tail: -1})), "\n")
	if got[len(got)-1] != "line 019999" {
		t.Fatalf("last line %q", got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order: %q then %q", got[i-1], got[i])
		}
	}
}

// TestFollowAcrossRotations: kubectl logs -f sees every line once, in
// order, while the log rotates underneath it.
func TestFollowAcrossRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, _ := Open(path, Options{MaxFileBytes: 2 << 10, MaxFiles: 50})
	out := l.Stream("stdout")
	fmt.Fprintln(out, "before")
	ctx, cancel := context.WithCancel(context.Background())
	var buf testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- Read(ctx, path, ReadOptions{Tail: -1, Follow: true, Poll: 5 * time.Millisecond}, &buf) }()
	const n = 1000
	for i := range n {
		fmt.Fprintf(out, "line %04d\n", i)
		if i%100 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	want := "before\n"
	for i := range n {
		want += fmt.Sprintf("line %04d\n", i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for buf.String() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != want {
		t.Fatalf("followed %d bytes, want %d; first difference near %q", len(got), len(want), firstDiff(got, want))
	}
	l.Close()
}

func firstDiff(a, b string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[max(0, i-20):min(len(a), i+20)]
		}
	}
	return ""
}
