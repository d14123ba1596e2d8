package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LatencyResult is one paced latency measurement: how long after a write
// its message reached a plain core NATS subscription and a JetStream
// ordered consumer.
type LatencyResult struct {
	// Core and Ordered count from the write call returning (clamped at 0:
	// see Early).
	Core    Dist
	Ordered Dist
	// CoreFromCall and OrderedFromCall count from the write call starting:
	// an upper bound that includes the write's own round trip.
	CoreFromCall, OrderedFromCall Dist
	// Lost counts samples that did not reach both receivers within
	// sampleTimeout (they are left out of the distributions).
	Lost int
	// Early counts arrivals before the write call returned (the publisher
	// can see an etcd commit before the client does); they count as 0.
	Early int
}

// sampleTimeout bounds the wait for one sample's messages.
const sampleTimeout = 2 * time.Second

// maxLostInARow ends a measurement that receives nothing.
const maxLostInARow = 5

// arrivals records when each sample's message reached each receiver.
type arrivals struct {
	mu      sync.Mutex
	core    map[string]time.Time
	ordered map[string]time.Time
	notify  chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{core: map[string]time.Time{}, ordered: map[string]time.Time{}, notify: make(chan struct{}, 1)}
}

func (a *arrivals) record(m map[string]time.Time, subject string) {
	now := time.Now()
	key := subject[strings.LastIndexByte(subject, '.')+1:]
	a.mu.Lock()
	if _, dup := m[key]; !dup {
		m[key] = now
	}
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

func (a *arrivals) get(key string) (core, ordered time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	core, ok1 := a.core[key]
	ordered, ok2 := a.ordered[key]
	return core, ordered, ok1 && ok2
}

// receivers subscribes to filter with a core subscription and with an
// ordered consumer of stream (new messages only). stop ends both.
func receivers(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, stream, filter string) (*arrivals, func(), error) {
	a := newArrivals()
	sub, err := nc.Subscribe(filter, func(m *nats.Msg) { a.record(a.core, m.Subject) })
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if err := nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, nil, err
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		sub.Unsubscribe()
		return nil, nil, fmt.Errorf("ordered consumer on %s %s: %w", stream, filter, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { a.record(a.ordered, m.Subject()) })
	if err != nil {
		sub.Unsubscribe()
		return nil, nil, fmt.Errorf("consume %s %s: %w", stream, filter, err)
	}
	stop := func() {
		cc.Stop()
		<-cc.Closed()
		sub.Unsubscribe()
	}
	return a, stop, nil
}

// measureLatency writes samples (+warmup) objects one at a time: write(i)
// makes the change named key(i). It waits for both receivers (at most sampleTimeout) and
// pauses pace before the next write, so the path is measured unloaded.
func measureLatency(ctx context.Context, a *arrivals, samples, warmup int, pace time.Duration,
	key func(i int) string, write func(ctx context.Context, i int) error) (LatencyResult, error) {
	var res LatencyResult
	var core, ordered, coreCall, orderedCall []time.Duration
	lostInARow := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := range warmup + samples {
		start := time.Now()
		err := write(ctx, i)
		ref := time.Now()
		if err != nil {
			return res, fmt.Errorf("sample %d: %w", i, err)
		}
		k := key(i)
		timer.Reset(sampleTimeout)
		var tc, to time.Time
		ok := false
	wait:
		for {
			if tc, to, ok = a.get(k); ok {
				break
			}
			select {
			case <-a.notify:
			case <-timer.C:
				break wait
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
		if !ok {
			if lostInARow++; lostInARow == maxLostInARow {
				return res, fmt.Errorf("%d samples in a row did not arrive within %v; is anything published?", lostInARow, sampleTimeout)
			}
		} else {
			lostInARow = 0
		}
		if i < warmup {
			continue
		}
		if !ok {
			res.Lost++
			continue
		}
		dc, do := tc.Sub(ref), to.Sub(ref)
		if dc < 0 || do < 0 {
			res.Early++
		}
		core, ordered = append(core, max(dc, 0)), append(ordered, max(do, 0))
		coreCall, orderedCall = append(coreCall, tc.Sub(start)), append(orderedCall, to.Sub(start))
		if pace > 0 {
			timer.Reset(pace)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
	}
	res.Core, res.Ordered = summarize(core), summarize(ordered)
	res.CoreFromCall, res.OrderedFromCall = summarize(coreCall), summarize(orderedCall)
	return res, nil
}
