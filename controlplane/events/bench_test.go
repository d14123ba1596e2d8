package events

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// benchValue is a ConfigMap of about 1 KiB.
func benchValue(i int) []byte {
	return fmt.Appendf(nil, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c%d","namespace":"bench","labels":{"app":"bench"}},"data":{"k":"%s"}}`,
		i, benchFiller)
}

var benchFiller = strings.Repeat("x", 900)

// subscribe delivers the revision header of every message on subject to the
// returned channel, through an ordered JetStream consumer ("consumer") or a
// plain NATS subscription ("core"), from a connection of its own.
func subscribe(b *testing.B, url, stream, subject, kind string) <-chan int64 {
	b.Helper()
	_, js := connect(b, url)
	ch := make(chan int64, 1<<16)
	handle := func(h nats.Header) {
		rev, _ := strconv.ParseInt(h.Get(subjects.HeaderRevision), 10, 64)
		ch <- rev
	}
	switch kind {
	case "core":
		sub, err := js.Conn().Subscribe(subject, func(m *nats.Msg) { handle(m.Header) })
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sub.Unsubscribe() })
	case "consumer":
		c, err := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := c.Consume(func(m jetstream.Msg) { handle(m.Headers()) })
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cc.Stop)
	}
	if err := js.Conn().Flush(); err != nil {
		b.Fatal(err)
	}
	return ch
}

func await(b *testing.B, ch <-chan int64, rev int64) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-ch:
			if r >= rev {
				return
			}
		case <-timeout:
			b.Fatalf("revision %d not received", rev)
		}
	}
}

func reportPercentiles(b *testing.B, prefix string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	us := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / float64(time.Microsecond) }
	b.ReportMetric(us(0.50), prefix+"p50-µs")
	b.ReportMetric(us(0.99), prefix+"p99-µs")
}

// BenchmarkLatency measures, one change at a time, etcd Put (in-process
// client, fsync off) → publisher → subscriber, and as a baseline a raw
// JetStream publish → subscriber on a stream configured the same way.
func BenchmarkLatency(b *testing.B) {
	for _, kind := range []string{"consumer", "core"} {
		b.Run("etcd-to-"+kind, func(b *testing.B) {
			e := newEnv(b)
			r := start(b, e.config(b), nil)
			waitFor(b, "ready", r.p.Ready)
			ch := subscribe(b, e.url, subjects.DefaultStream, subjects.ResourceFilter("configmaps"), kind)
			var lat, put []time.Duration
			i := 0
			for b.Loop() {
				t0 := time.Now()
				resp, err := e.etcd.Put(context.Background(), storage.Key("configmaps", "bench", fmt.Sprint("c", i%100)), string(benchValue(i)))
				if err != nil {
					b.Fatal(err)
				}
				put = append(put, time.Since(t0))
				await(b, ch, resp.Header.Revision)
				lat = append(lat, time.Since(t0))
				i++
			}
			reportPercentiles(b, "", lat)
			reportPercentiles(b, "put-", put)
		})
		b.Run("jetstream-to-"+kind, func(b *testing.B) {
			e := newEnv(b)
			sc := StreamConfig("BASELINE", DefaultMaxAge, 0, 1)
			sc.Subjects = []string{"baseline.>"}
			if _, err := e.js.CreateOrUpdateStream(context.Background(), sc); err != nil {
				b.Fatal(err)
			}
			ch := subscribe(b, e.url, "BASELINE", "baseline.>", kind)
			var lat []time.Duration
			i := int64(0)
			for b.Loop() {
				i++
				m := &nats.Msg{Subject: "baseline.configmaps.bench.c", Data: benchValue(int(i)), Header: nats.Header{
					subjects.HeaderRevision: []string{strconv.FormatInt(i, 10)}, subjects.HeaderMsgID: []string{strconv.FormatInt(i, 10)},
				}}
				t0 := time.Now()
				fut, err := e.js.PublishMsgAsync(m)
				if err != nil {
					b.Fatal(err)
				}
				await(b, ch, i)
				lat = append(lat, time.Since(t0))
				select {
				case <-fut.Ok():
				case err := <-fut.Err():
					b.Fatal(err)
				}
			}
			reportPercentiles(b, "", lat)
		})
	}
}

// BenchmarkThroughput measures changes per second from 32 concurrent etcd
// writers to a subscriber that sees them all, with synchronous publishing
// (in-flight 1) and pipelined publishing; for each it also reports the
// latency of each change under that load.
func BenchmarkThroughput(b *testing.B) {
	for _, inflight := range []int{1, DefaultMaxInFlight} {
		b.Run(fmt.Sprint("inflight-", inflight), func(b *testing.B) {
			e := newEnv(b)
			cfg := e.config(b)
			cfg.MaxInFlight = inflight
			r := start(b, cfg, nil)
			waitFor(b, "ready", r.p.Ready)
			ch := subscribe(b, e.url, subjects.DefaultStream, subjects.ResourceFilter("configmaps"), "core")
			const writers = 32
			var next atomic.Int64
			var mu sync.Mutex
			sent := map[int64]time.Time{}
			var lat []time.Duration
			recvDone := make(chan struct{})
			var total int64
			b.ResetTimer()
			t0 := time.Now()
			total = int64(b.N)
			go func() {
				defer close(recvDone)
				for n := int64(0); n < total; n++ {
					select {
					case rev := <-ch:
						now := time.Now()
						mu.Lock()
						if ts, ok := sent[rev]; ok {
							lat = append(lat, now.Sub(ts))
						}
						mu.Unlock()
					case <-time.After(30 * time.Second):
						b.Errorf("received %d of %d", n, total)
						return
					}
				}
			}()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for next.Add(1) <= total {
						ts := time.Now()
						resp, err := e.etcd.Put(context.Background(), storage.Key("configmaps", "bench", fmt.Sprint("w", w)), string(benchValue(w)))
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						sent[resp.Header.Revision] = ts
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			<-recvDone
			elapsed := time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
			mu.Lock()
			reportPercentiles(b, "", lat)
			mu.Unlock()
		})
	}
}

// BenchmarkCatchUp measures the publisher alone: b.N changes are in etcd's
// history before it starts, and it publishes them all (one pod bound to a
// node, two messages, per change).
func BenchmarkCatchUp(b *testing.B) {
	for _, inflight := range []int{1, 16, DefaultMaxInFlight} {
		b.Run(fmt.Sprint("inflight-", inflight), func(b *testing.B) {
			e := newEnv(b)
			from := currentRev(b, e.store) + 1
			var wg sync.WaitGroup
			var next atomic.Int64
			for w := range 32 {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						name := fmt.Sprint("p", w)
						if _, err := e.etcd.Put(context.Background(), storage.Key("pods", "bench", name), string(podJSON("bench", name, "node-1"))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			last := currentRev(b, e.store)
			cfg := e.config(b)
			cfg.StartRevision = from
			cfg.MaxInFlight = inflight
			b.ResetTimer()
			t0 := time.Now()
			r := start(b, cfg, nil)
			waitFor(b, "caught up", func() bool { return r.p.PublishedRevision() >= last })
			elapsed := time.Since(t0)
			b.StopTimer()
			r.stop(b)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(2*b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLoadedLatency measures the latency of each change (Put start →
// subscriber) while 32 writers keep etcd at a steady rate of changes per
// second: the publishing latency target under load.
func BenchmarkLoadedLatency(b *testing.B) {
	for _, rate := range []int{1000, 2500, 4000} {
		b.Run(fmt.Sprint("rate-", rate), func(b *testing.B) {
			e := newEnv(b)
			r := start(b, e.config(b), nil)
			waitFor(b, "ready", r.p.Ready)
			ch := subscribe(b, e.url, subjects.DefaultStream, subjects.ResourceFilter("configmaps"), "core")
			var mu sync.Mutex
			sent := map[int64]time.Time{}
			var lat, put []time.Duration
			total := b.N
			recvDone := make(chan struct{})
			go func() {
				defer close(recvDone)
				for n := 0; n < total; n++ {
					select {
					case rev := <-ch:
						now := time.Now()
						mu.Lock()
						if ts, ok := sent[rev]; ok {
							lat = append(lat, now.Sub(ts))
						}
						mu.Unlock()
					case <-time.After(30 * time.Second):
						b.Errorf("received %d of %d", n, total)
						return
					}
				}
			}()
			work := make(chan int)
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for i := range work {
						ts := time.Now()
						resp, err := e.etcd.Put(context.Background(), storage.Key("configmaps", "bench", fmt.Sprint("c", i%256)), string(benchValue(i)))
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						sent[resp.Header.Revision] = ts
						put = append(put, time.Since(ts))
						mu.Unlock()
					}
				})
			}
			interval := time.Second / time.Duration(rate)
			b.ResetTimer()
			t0 := time.Now()
			for i := range total {
				if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				work <- i
			}
			close(work)
			wg.Wait()
			<-recvDone
			b.StopTimer()
			mu.Lock()
			reportPercentiles(b, "", lat)
			reportPercentiles(b, "put-", put)
			mu.Unlock()
		})
	}
}
