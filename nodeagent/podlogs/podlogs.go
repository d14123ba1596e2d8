// Package podlogs keeps a container's stdout and stderr on the node's disk
// with bounded size, and reads them back the way `kubectl logs` asks:
// --tail, --since, --timestamps and --follow.
//
// Each line is stored in the CRI log format the kubelet uses,
//
//	2026-11-26T07:44:10.123456789Z stdout F the line
//
// (F: a full line; P: a part of a line longer than MaxLineBytes, continued
// by the next record). A container run's log is a file, its current file,
// with up to MaxFiles-1 rotated ones beside it named after it, <file>.<N>,
// N counting up from 1 as they are rotated (the highest is the newest). A
// file is rotated once it grows past MaxFileBytes, so a container uses at
// most about MaxFiles × MaxFileBytes of disk however much it prints. A
// rotated file keeps its name until it is removed, which is what lets a
// follower find the file written after the one it finished.
package podlogs

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults, as the kubelet's containerLogMaxSize and containerLogMaxFiles.
const (
	DefaultMaxFileBytes = 10 << 20
	DefaultMaxFiles     = 5
	// MaxLineBytes is the longest record; longer lines are split into
	// partial (P) records.
	MaxLineBytes = 16 << 10
)

// Options bound a log's disk use.
type Options struct {
	MaxFileBytes int64 // rotate past this size (0: DefaultMaxFileBytes)
	MaxFiles     int   // files kept, the current one included (0: DefaultMaxFiles; at least 2)
	// Now stamps lines; nil means time.Now.
	Now func() time.Time
}

// Log writes one container's log. Its stream writers may be used from
// different goroutines; Close flushes unfinished lines.
type Log struct {
	path string // the current file
	opts Options

	mu   sync.Mutex
	f    *os.File
	size int64
	// pending holds each stream's unfinished line.
	pending map[string][]byte
}

// Open creates the log whose current file is path (and its directory) if
// needed, and appends to it.
func Open(path string, opts Options) (*Log, error) {
	if opts.MaxFileBytes <= 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if opts.MaxFiles < 2 {
		opts.MaxFiles = 2
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	l := &Log{path: path, opts: opts, pending: map[string][]byte{}}
	if err := l.openCurrent(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) openCurrent() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Stream returns the writer for "stdout" or "stderr".
func (l *Log) Stream(name string) io.Writer { return streamWriter{l: l, name: name} }

type streamWriter struct {
	l    *Log
	name string
}

func (w streamWriter) Write(p []byte) (int, error) {
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	buf := append(l.pending[w.name], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		if err := l.record(w.name, buf[:i], 'F'); err != nil {
			return 0, err
		}
		buf = buf[i+1:]
	}
	for len(buf) > MaxLineBytes {
		if err := l.record(w.name, buf[:MaxLineBytes], 'P'); err != nil {
			return 0, err
		}
		buf = buf[MaxLineBytes:]
	}
	l.pending[w.name] = append(l.pending[w.name][:0], buf...)
	return len(p), nil
}

// record writes one line; l.mu is held.
func (l *Log) record(stream string, line []byte, tag byte) error {
	for len(line) > MaxLineBytes {
		if err := l.record(stream, line[:MaxLineBytes], 'P'); err != nil {
			return err
		}
		line = line[MaxLineBytes:]
	}
	rec := make([]byte, 0, len(line)+48)
	rec = l.opts.Now().UTC().AppendFormat(rec, time.RFC3339Nano)
	rec = append(rec, ' ')
	rec = append(rec, stream...)
	rec = append(rec, ' ', tag, ' ')
	rec = append(rec, line...)
	rec = append(rec, '\n')
	n, err := l.f.Write(rec)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if l.size >= l.opts.MaxFileBytes {
		return l.rotate()
	}
	return nil
}

// rotate renames the current file to <file>.<N>, N one more than the
// newest rotated file's, removes the oldest rotated files beyond
// MaxFiles-1 and starts a new current file.
func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	l.f = nil
	names := rotatedFiles(l.path)
	n := 1
	if len(names) > 0 {
		n = rotatedNumber(l.path, names[len(names)-1]) + 1
	}
	name := l.path + "." + strconv.Itoa(n)
	if err := os.Rename(l.path, name); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	names = append(names, name)
	for _, name := range names[:max(0, len(names)-(l.opts.MaxFiles-1))] {
		os.Remove(name)
	}
	return l.openCurrent()
}

// Close writes unfinished lines as partial records and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	for _, s := range []string{"stdout", "stderr"} {
		if p := l.pending[s]; len(p) > 0 {
			l.record(s, p, 'P')
		}
	}
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadOptions are kubectl logs' options.
type ReadOptions struct {
	// Tail keeps only the last Tail records (< 0: all); a record is a line
	// unless the line was longer than MaxLineBytes.
	Tail int64
	// Since drops lines stamped before it (zero: none).
	Since time.Time
	// Timestamps prefixes each line with its RFC 3339 timestamp.
	Timestamps bool
	// Follow keeps writing new lines until ctx ends.
	Follow bool
	// Poll is how often a followed log is checked for growth (0: 100ms).
	Poll time.Duration
}

// Read writes the log whose current file is path to out. No file is an
// empty log.
func Read(ctx context.Context, path string, o ReadOptions, out io.Writer) error {
	// The current file is opened first: rotated while the older files are
	// read, it is still read whole (by its descriptor), after them.
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var fst os.FileInfo
	if f != nil {
		defer func() { f.Close() }()
		if fst, err = f.Stat(); err != nil {
			return err
		}
	}
	var lines [][]byte
	for _, name := range rotatedFiles(path) { // oldest first
		if st, err := os.Stat(name); err == nil && fst != nil && os.SameFile(st, fst) {
			break // f, rotated meanwhile: read below
		}
		if b, err := os.ReadFile(name); err == nil {
			lines = appendLines(lines, b)
		}
	}
	var offset int64
	if f != nil {
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		offset = int64(bytes.LastIndexByte(b, '\n') + 1)
		lines = appendLines(lines, b[:offset])
	}
	if o.Tail >= 0 && int64(len(lines)) > o.Tail {
		lines = lines[int64(len(lines))-o.Tail:]
	}
	p := &printer{w: bufio.NewWriter(out), o: o}
	for _, rec := range lines {
		p.record(rec)
	}
	if err := p.w.Flush(); err != nil || !o.Follow {
		return err
	}
	poll := o.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var partial []byte
	// drain prints what was appended to f after offset.
	drain := func() error {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.ReadAt(buf, offset)
			offset += int64(n)
			partial = append(partial, buf[:n]...)
			if n == 0 || err != nil {
				break
			}
		}
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			p.record(partial[:i+1])
			partial = partial[i+1:]
		}
		return p.w.Flush()
	}
	// finished is the file read to its end and rotated away while its
	// successor could not be opened yet; it is looked for again at the
	// next poll.
	var finished os.FileInfo
	for {
		switch {
		case finished != nil:
			if f = openNext(path, finished); f != nil {
				finished, offset, partial = nil, 0, nil
			}
		case f == nil: // no log yet when the follow began
			if f, err = os.Open(path); err != nil {
				f = nil
			}
		}
		if f != nil {
			if err := drain(); err != nil {
				return err
			}
			// Rotated away: finish this file, then go on with the one
			// written after it (several rotations may have happened).
			if st, err := os.Stat(path); err == nil {
				if cur, err := f.Stat(); err == nil && !os.SameFile(st, cur) {
					if err := drain(); err != nil {
						return err
					}
					f.Close()
					f, finished = nil, cur
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// openNext opens the file written after old, which was rotated; nil when
// that cannot be told yet (a rotation in progress): the caller tries
// again later.
func openNext(path string, old os.FileInfo) *os.File {
	name := nextFile(path, old)
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	if name != path {
		return f // a rotated file keeps its name
	}
	// The current file may have been rotated between nextFile and Open,
	// and the one opened be a newer one: it must still be the successor.
	opened, err1 := f.Stat()
	now, err2 := os.Stat(nextFile(path, old))
	if err1 == nil && err2 == nil && os.SameFile(opened, now) {
		return f
	}
	f.Close()
	return nil
}

// nextFile names the file written after old, a rotated file: the next
// rotated one, or the current one. If old is gone (removed as the oldest),
// every remaining file is newer: the oldest comes next.
func nextFile(path string, old os.FileInfo) string {
	names := rotatedFiles(path) // oldest first
	for i, name := range names {
		if st, err := os.Stat(name); err == nil && os.SameFile(st, old) {
			if i+1 < len(names) {
				return names[i+1]
			}
			return path
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return path
}

// rotatedFiles lists the rotated files of the log whose current file is
// path, oldest (lowest N) first.
func rotatedFiles(path string) []string {
	entries, _ := os.ReadDir(filepath.Dir(path))
	var names []string
	for _, e := range entries {
		if rotatedNumber(path, e.Name()) > 0 {
			names = append(names, filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(rotatedNumber(path, a), rotatedNumber(path, b)) })
	return names
}

// rotatedNumber is N of name (a file name or path) when it names a
// rotated file of path, <path>.<N>; 0 otherwise.
func rotatedNumber(path, name string) int {
	suffix, ok := strings.CutPrefix(filepath.Base(name), filepath.Base(path)+".")
	n, err := strconv.Atoi(suffix)
	if !ok || err != nil || n < 1 || suffix != strconv.Itoa(n) {
		return 0
	}
	return n
}

func appendLines(lines [][]byte, b []byte) [][]byte {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return lines
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

// printer writes stored records as kubectl logs shows them: a partial
// record and the records continuing it make one line.
type printer struct {
	w       *bufio.Writer
	o       ReadOptions
	midLine bool // the last record printed was partial
}

func (p *printer) record(rec []byte) {
	ts, rest, ok := bytes.Cut(rec, []byte(" "))
	if !ok {
		return
	}
	_, rest, _ = bytes.Cut(rest, []byte(" ")) // the stream
	tag, text, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return
	}
	if !p.o.Since.IsZero() {
		t, err := time.Parse(time.RFC3339Nano, string(ts))
		if err != nil || t.Before(p.o.Since) {
			return
		}
	}
	if p.o.Timestamps && !p.midLine {
		p.w.Write(ts)
		p.w.WriteByte(' ')
	}
	p.midLine = string(tag) == "P"
	if p.midLine {
		text = bytes.TrimSuffix(text, []byte("\n"))
	}
	p.w.Write(text)
}
