// Command nats-subscriber prints wasmfleet's events as they happen, one line
// per event:
//
//	TYPE REVISION SUBJECT
//
// for example "ADDED 1042 wasmfleet.events.pods.default.web-1". Usage:
//
//	go run ./examples/nats-subscriber --url nats://admin:PASSWORD@127.0.0.1:4222 \
//	    [--subject wasmfleet.events.>] [--from-revision N] \
//	    [--tlsca CA.crt] [--tlscert CLIENT.crt --tlskey CLIENT.key]
//
// (the TLS flags, as the nats CLI's, for an external NATS with TLS).
//
// It reads the stream WASMFLEET_EVENTS with an ordered consumer (no state on
// the server, resumes by itself after a disconnect) filtered by --subject:
// wasmfleet.events.> for everything, wasmfleet.events.pods.> for pods,
// wasmfleet.nodes.<node>.> for the pods of one node (the subject scheme is in
// the package controlplane/events). Gap markers (GAP lines, on
// wasmfleet.events._gap: revisions etcd compacted before they were
// published) are printed whatever the filter. By default only new events
// are printed.
// With --from-revision N it starts at the first event whose revision is at
// least N: it binary-searches the stream's sequence numbers, reading one
// message per step (direct get of the first message at or after a
// sequence), which works because revisions never decrease along the stream;
// that takes about log2(messages in stream) reads. It runs until SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, subscribes and prints events to stdout until ctx ends. It
// returns the exit code: 0 after ctx ends, 1 on an error, 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nats-subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.url, "url", "", "NATS server URL, may carry user:password (required)")
	fs.StringVar(&o.subject, "subject", subjects.EventsPrefix+".>", "subject filter")
	fs.Int64Var(&o.fromRevision, "from-revision", 0, "start at the first event whose revision is at least this (default: new events only)")
	fs.StringVar(&o.stream, "stream", subjects.DefaultStream, "JetStream stream")
	fs.StringVar(&o.tlsCA, "tlsca", "", "CA of the NATS server's certificate (default: the system's roots)")
	fs.StringVar(&o.tlsCert, "tlscert", "", "client certificate, for a NATS server that asks for one")
	fs.StringVar(&o.tlsKey, "tlskey", "", "client key of --tlscert")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.url == "" || fs.NArg() > 0 || o.fromRevision < 0 || (o.tlsCert == "") != (o.tlsKey == "") {
		fmt.Fprintln(stderr, "usage: nats-subscriber --url URL [--subject S] [--from-revision N] [--tlsca F] [--tlscert F --tlskey F]")
		return 2
	}
	if err := subscribe(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "nats-subscriber:", err)
		return 1
	}
	return 0
}

type options struct {
	url, subject, stream   string
	fromRevision           int64
	tlsCA, tlsCert, tlsKey string
}

func subscribe(ctx context.Context, o options, stdout, stderr io.Writer) error {
	opts := []nats.Option{nats.Name("wasmfleet-nats-subscriber"), nats.MaxReconnects(-1)}
	if o.tlsCA != "" {
		opts = append(opts, nats.RootCAs(o.tlsCA))
	}
	if o.tlsCert != "" {
		opts = append(opts, nats.ClientCert(o.tlsCert, o.tlsKey))
	}
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, o.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", o.stream, err)
	}
	// Gap markers concern every subscriber: a filter that does not match
	// them gets them too (NATS refuses overlapping filters).
	filters := []string{o.subject}
	if !subjectMatches(o.subject, subjects.GapSubject) {
		filters = append(filters, subjects.GapSubject)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverNewPolicy}
	if o.fromRevision > 0 {
		seq, note, err := startSequence(ctx, st, o.fromRevision)
		if err != nil {
			return err
		}
		if note != "" {
			fmt.Fprintln(stderr, note)
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	}
	cons, err := js.OrderedConsumer(ctx, o.stream, cfg)
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", o.stream, err)
	}

	// The callback runs on the client's goroutine; printing stays on ours.
	lines := make(chan string, 256)
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		h := m.Headers()
		line := h.Get(subjects.HeaderType) + " " + h.Get(subjects.HeaderRevision) + " " + m.Subject()
		select {
		case lines <- line:
		case <-done:
		}
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", o.stream, err)
	}
	defer func() {
		close(done)
		cc.Stop()
		<-cc.Closed()
	}()
	fmt.Fprintf(stderr, "subscribed to %s on stream %s\n", o.subject, o.stream)
	for {
		select {
		case l := <-lines:
			if _, err := fmt.Fprintln(stdout, l); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// subjectMatches says whether the NATS subject filter matches subject:
// "*" matches one token, a final ">" one or more.
func subjectMatches(filter, subject string) bool {
	f, t := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, ft := range f {
		switch {
		case ft == ">" && i == len(f)-1:
			return len(t) > i
		case i >= len(t) || (ft != "*" && ft != t[i]):
			return false
		}
	}
	return len(f) == len(t)
}

// startSequence returns the sequence of the first message whose revision is
// at least rev (or the sequence after the last message when there is none
// yet), and a note when older revisions have left the stream.
//
// f(s) = "the first message at or after sequence s has revision >= rev" is
// false then true along the stream, because revisions never decrease; a
// binary search finds the first s where it holds. Each probe is one direct
// get of the next message at or after s, so deleted sequences are skipped.
func startSequence(ctx context.Context, st jetstream.Stream, rev int64) (uint64, string, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("stream info: %w", err)
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1
	if info.State.Msgs == 0 {
		return hi, "", nil
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		seq, r, ok, err := revisionAt(ctx, st, mid)
		if err != nil {
			return 0, "", err
		}
		if !ok || r >= rev {
			hi = mid
		} else {
			lo = seq + 1
		}
	}
	var note string
	if lo == info.State.FirstSeq {
		if _, first, ok, err := revisionAt(ctx, st, lo); err == nil && ok && first > rev {
			note = fmt.Sprintf("note: the stream starts at revision %d; earlier revisions have aged out", first)
		}
	}
	return lo, note, nil
}

// revisionAt returns the sequence and revision of the first message at or
// after seq; ok is false past the end.
func revisionAt(ctx context.Context, st jetstream.Stream, seq uint64) (uint64, int64, bool, error) {
	m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read message %d: %w", seq, err)
	}
	r, err := strconv.ParseInt(m.Header.Get(subjects.HeaderRevision), 10, 64)
	if err != nil {
		return 0, 0, false, fmt.Errorf("message %d: bad %s header: %w", m.Sequence, subjects.HeaderRevision, err)
	}
	return m.Sequence, r, true, nil
}
