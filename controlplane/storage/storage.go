// Package storage is the etcd registry: the only code that reads or writes
// etcd. Objects live at /registry/<resource>/<namespace>/<name> (or
// /registry/<resource>/<name> when cluster-scoped) as JSON without
// metadata.resourceVersion; an object's resourceVersion is its etcd mod
// revision, injected on read by InjectResourceVersion. Every write is one
// etcd transaction that compares the revision it expects, so concurrent
// writers get ErrConflict instead of losing an update. A write may also
// take and release claims (see Claims): keys outside Root that keep values
// unique in the cluster, in the same transaction.
//
// A Store is safe for concurrent use; it holds no state besides its etcd
// clients and the lease it reuses for expiring objects.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Root is the prefix under which all objects are stored.
const Root = "/registry/"

// Errors returned by Store; test with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("resource version conflict")
	ErrCompacted = errors.New("resource version compacted")
	// ErrFutureRev: a read at a revision etcd has not reached yet.
	ErrFutureRev = errors.New("resource version not reached yet")
	// ErrGuardMissing: the key a guarded create depends on does not exist.
	ErrGuardMissing = errors.New("guard key missing")
	// ErrTooLarge: the write is larger than etcd takes in one request
	// (--max-request-bytes, 1.5 MiB unless set otherwise).
	ErrTooLarge = errors.New("the object is too large for etcd")
)

// Key returns the etcd key of an object; namespace is "" for cluster-scoped
// resources.
func Key(resource, namespace, name string) string {
	if namespace == "" {
		return Root + resource + "/" + name
	}
	return Root + resource + "/" + namespace + "/" + name
}

// Prefix returns the key prefix of all objects of resource in namespace (all
// namespaces when namespace is "").
func Prefix(resource, namespace string) string {
	if namespace == "" {
		return Root + resource + "/"
	}
	return Root + resource + "/" + namespace + "/"
}

// Object is a stored value and its mod revision.
type Object struct {
	Key   string
	Value []byte
	Rev   int64
	// Lease is the etcd lease the key expires with (0: none); Update keeps
	// it when given back.
	Lease int64
}

// Store reads and writes objects in etcd.
type Store struct {
	c *clientv3.Client
	// kv takes the writes' transactions, built as etcd's own requests:
	// clientv3's builder clones each comparison by reflection and copies
	// each value twice.
	kv      pb.KVClient
	latency *prometheus.HistogramVec
	leases  *leases
}

// New returns a Store using c; the caller keeps ownership of c.
func New(c *clientv3.Client) *Store { return NewWithKV(c, clientv3.RetryKVClient(c)) }

// NewWithKV is New with the client of etcd's KV service that writes go to,
// such as an embedded etcd's in-process one (embedded.Etcd.KV).
func NewWithKV(c *clientv3.Client, kv pb.KVClient) *Store {
	return &Store{c: c, kv: kv, leases: &leases{}}
}

// WithMetrics returns a Store that records the latency of every etcd
// operation in reg as etcd_request_duration_seconds{operation}.
func (s *Store) WithMetrics(reg prometheus.Registerer) *Store {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "etcd_request_duration_seconds",
		Help:    "Latency of etcd operations made by the API server, by operation.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"operation"})
	reg.MustRegister(h)
	return &Store{c: s.c, kv: s.kv, latency: h, leases: s.leases}
}

func (s *Store) observe(op string, start time.Time) {
	if s.latency != nil {
		s.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	}
}

// Create stores value at key if nothing is there and returns its revision.
func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return s.CreateGuarded(ctx, key, value, "", 0)
}

// CreateGuarded is Create that also requires guard (when not "") to exist,
// in the same transaction: an object is never created in a namespace that
// is gone. It returns ErrGuardMissing when guard does not exist. With ttl >
// 0 the object expires (is deleted by etcd) after ttl and at most a minute
// more, like Kubernetes events.
func (s *Store) CreateGuarded(ctx context.Context, key string, value []byte, guard string, ttl time.Duration) (int64, error) {
	return s.CreateClaiming(ctx, key, value, guard, ttl, Claims{})
}

// CreateClaiming is CreateGuarded that also takes c.Take in the same
// transaction (c.Release is ignored: a new object holds nothing). It
// returns a *ClaimedError when one of them is held already.
func (s *Store) CreateClaiming(ctx context.Context, key string, value []byte, guard string, ttl time.Duration, c Claims) (int64, error) {
	defer s.observe("create", time.Now())
	var lease int64
	if ttl > 0 {
		var err error
		if lease, err = s.Lease(ctx, ttl); err != nil {
			return 0, err
		}
	}
	r := &pb.TxnRequest{
		Compare: []*pb.Compare{createRevision(key, pb.Compare_EQUAL, 0)},
		Success: []*pb.RequestOp{put(key, value, lease)},
	}
	if guard != "" {
		r.Compare = append(r.Compare, createRevision(guard, pb.Compare_GREATER, 0))
		r.Failure = []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: []byte(guard), CountOnly: true})}
	}
	c.Release = nil
	c.addTo(r)
	resp, err := s.txn(ctx, r)
	if err != nil {
		return 0, fmt.Errorf("etcd create %s: %w", key, err)
	}
	if !resp.Succeeded {
		if guard != "" && resp.Responses[0].GetResponseRange().Count == 0 {
			return 0, ErrGuardMissing
		}
		if err := c.taken(resp); err != nil {
			return 0, err
		}
		return 0, ErrExists
	}
	return resp.Header.Revision, nil
}

// Claims are keys outside Root that a write takes and gives up in its own
// transaction: values that must be unique in the cluster, such as a
// Service's cluster IP and node ports, held exactly as long as a stored
// object holds them. A claim's value is its Owner.
type Claims struct {
	// Take are created; each must not exist.
	Take []string
	// Release are deleted when their value is Owner (and left alone when
	// someone else holds them, or nobody).
	Release []string
	// Owner names the holder: stored in the keys taken, compared in the
	// keys released.
	Owner string
}

// ClaimedError is the error of a write whose claim Key is held already.
type ClaimedError struct{ Key string }

func (e *ClaimedError) Error() string { return e.Key + " is held already" }

// addTo adds c to r: a comparison for each key taken and, after r's own
// failure ranges, a count of each (for taken); puts and conditional
// deletes after r's own success operations.
func (c Claims) addTo(r *pb.TxnRequest) {
	for _, k := range c.Take {
		r.Compare = append(r.Compare, createRevision(k, pb.Compare_EQUAL, 0))
		r.Success = append(r.Success, put(k, []byte(c.Owner), 0))
		r.Failure = append(r.Failure, rangeOp(&pb.RangeRequest{Key: []byte(k), CountOnly: true}))
	}
	for _, k := range c.Release {
		r.Success = append(r.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte(k), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte(c.Owner)}}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k)}}}},
		}}})
	}
}

// RepairClaims takes the keys of c.Take that are free and releases c.Release
// (those whose value is c.Owner), provided the object at key, the holder,
// is still at revision rev (0: key does not exist). It reports whether it
// was: a repair brings claims in line with the objects it read, and leaves
// them to the next repair if one changed since.
func (s *Store) RepairClaims(ctx context.Context, key string, rev int64, c Claims) (bool, error) {
	r := &pb.TxnRequest{Compare: []*pb.Compare{modRevision(key, rev)}}
	for _, k := range c.Take {
		r.Success = append(r.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
			Compare: []*pb.Compare{createRevision(k, pb.Compare_EQUAL, 0)},
			Success: []*pb.RequestOp{put(k, []byte(c.Owner), 0)},
		}}})
	}
	c.Take = nil
	c.addTo(r)
	resp, err := s.txn(ctx, r)
	if err != nil {
		return false, fmt.Errorf("etcd repair claims of %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// taken returns a *ClaimedError for the first key of c.Take that the
// failed transaction resp (built with addTo) found held, or nil.
func (c Claims) taken(resp *pb.TxnResponse) error {
	first := len(resp.Responses) - len(c.Take)
	for i, k := range c.Take {
		if resp.Responses[first+i].GetResponseRange().Count > 0 {
			return &ClaimedError{Key: k}
		}
	}
	return nil
}

func (s *Store) txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	// As clientv3's own calls: wait for a connection rather than fail.
	resp, err := s.kv.Txn(ctx, r, grpc.WaitForReady(true))
	// etcd refuses a request over its limit; gRPC, one over the limit
	// plus 512 KiB before etcd sees it.
	if err = clientv3.ContextError(ctx, err); errors.Is(err, rpctypes.ErrRequestTooLarge) || status.Code(err) == codes.ResourceExhausted {
		err = fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return resp, err
}

func createRevision(key string, result pb.Compare_CompareResult, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_CREATE, Result: result, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: rev}}
}

func modRevision(key string, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
}

func put(key string, value []byte, lease int64) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: value, Lease: lease}}}
}

func rangeOp(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

// keyGone reports whether a transaction that failed did so because its key
// is gone: its Failure is a keys-only Range of the key.
func keyGone(resp *pb.TxnResponse) bool {
	return len(resp.Responses[0].GetResponseRange().Kvs) == 0
}

// Get returns the object at key, read linearizably.
func (s *Store) Get(ctx context.Context, key string) (Object, error) {
	defer s.observe("get", time.Now())
	return s.get(ctx, key)
}

// GetStale returns the object at key as the connected etcd member has it,
// without a consensus round trip: possibly slightly behind, like an
// informer cache. For admission checks that tolerate that.
func (s *Store) GetStale(ctx context.Context, key string) (Object, error) {
	defer s.observe("get_stale", time.Now())
	return s.get(ctx, key, clientv3.WithSerializable())
}

func (s *Store) get(ctx context.Context, key string, opts ...clientv3.OpOption) (Object, error) {
	resp, err := s.c.Get(ctx, key, opts...)
	if err != nil {
		return Object{}, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Object{}, ErrNotFound
	}
	kv := resp.Kvs[0]
	return Object{Key: key, Value: kv.Value, Rev: kv.ModRevision, Lease: kv.Lease}, nil
}

// Update replaces the object at key if its revision is still expectedRev,
// keeping lease (the Lease of the Object read; 0: none). It returns the new
// revision, ErrNotFound when the key is gone, or ErrConflict when someone
// else wrote it first.
func (s *Store) Update(ctx context.Context, key string, value []byte, expectedRev, lease int64) (int64, error) {
	return s.UpdateClaiming(ctx, key, value, expectedRev, lease, Claims{})
}

// UpdateClaiming is Update that also takes and releases c in the same
// transaction; a *ClaimedError when a key to take is held already.
func (s *Store) UpdateClaiming(ctx context.Context, key string, value []byte, expectedRev, lease int64, c Claims) (int64, error) {
	defer s.observe("update", time.Now())
	r := &pb.TxnRequest{
		Compare: []*pb.Compare{modRevision(key, expectedRev)},
		Success: []*pb.RequestOp{put(key, value, lease)},
		Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: []byte(key), KeysOnly: true})},
	}
	c.addTo(r)
	resp, err := s.txn(ctx, r)
	if err != nil {
		return 0, fmt.Errorf("etcd update %s: %w", key, err)
	}
	return written(resp, c)
}

// written is the revision of an update or delete transaction resp (built
// with a Range of its key as first failure operation, then c.addTo), or why
// it failed.
func written(resp *pb.TxnResponse, c Claims) (int64, error) {
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if keyGone(resp) {
		return 0, ErrNotFound
	}
	if err := c.taken(resp); err != nil {
		return 0, err
	}
	return 0, ErrConflict
}

// Delete removes the object at key if its revision is still expectedRev (0:
// whatever it is) and returns the revision of the deletion.
func (s *Store) Delete(ctx context.Context, key string, expectedRev int64) (int64, error) {
	return s.DeleteReleasing(ctx, key, expectedRev, Claims{})
}

// DeleteReleasing is Delete that also releases c.Release in the same
// transaction (c.Take is ignored).
func (s *Store) DeleteReleasing(ctx context.Context, key string, expectedRev int64, c Claims) (int64, error) {
	defer s.observe("delete", time.Now())
	cmp := createRevision(key, pb.Compare_GREATER, 0)
	if expectedRev != 0 {
		cmp = modRevision(key, expectedRev)
	}
	r := &pb.TxnRequest{
		Compare: []*pb.Compare{cmp},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key)}}}},
		Failure: []*pb.RequestOp{rangeOp(&pb.RangeRequest{Key: []byte(key), KeysOnly: true})},
	}
	c.Take = nil
	c.addTo(r)
	resp, err := s.txn(ctx, r)
	if err != nil {
		return 0, fmt.Errorf("etcd delete %s: %w", key, err)
	}
	return written(resp, c)
}

// ListOptions select a page of a List.
type ListOptions struct {
	// Rev reads at this revision (0: the latest).
	Rev int64
	// Limit caps the number of items (0: no limit).
	Limit int64
	// From is the first key to read (inclusive); "" starts at the prefix.
	From string
}

// ListResult is one page of objects in key order.
type ListResult struct {
	Items []Object
	// Rev is the revision the page was read at.
	Rev int64
	// More reports that keys remain after the last item.
	More bool
	// Count is the number of keys from the first one read to the end of
	// the prefix: the page's and those after it.
	Count int64
}

// List returns the objects under prefix.
func (s *Store) List(ctx context.Context, prefix string, o ListOptions) (ListResult, error) {
	defer s.observe("list", time.Now())
	from := prefix
	if o.From != "" {
		from = o.From
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if o.Rev > 0 {
		opts = append(opts, clientv3.WithRev(o.Rev))
	}
	if o.Limit > 0 {
		opts = append(opts, clientv3.WithLimit(o.Limit))
	}
	resp, err := s.c.Get(ctx, from, opts...)
	if err != nil {
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			return ListResult{}, ErrCompacted
		case errors.Is(err, rpctypes.ErrFutureRev):
			return ListResult{}, ErrFutureRev
		}
		return ListResult{}, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	r := ListResult{Rev: resp.Header.Revision, More: resp.More, Count: resp.Count, Items: make([]Object, len(resp.Kvs))}
	if o.Rev > 0 {
		r.Rev = o.Rev
	}
	for i, kv := range resp.Kvs {
		r.Items[i] = Object{Key: string(kv.Key), Value: kv.Value, Rev: kv.ModRevision, Lease: kv.Lease}
	}
	return r, nil
}

// Keys returns the keys under prefix.
func (s *Store) Keys(ctx context.Context, prefix string) ([]string, error) {
	defer s.observe("list", time.Now())
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	keys := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		keys[i] = string(kv.Key)
	}
	return keys, nil
}

// CurrentRev returns etcd's latest revision.
func (s *Store) CurrentRev(ctx context.Context) (int64, error) {
	resp, err := s.c.Get(ctx, Root+"\x00", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// compacted says whether etcd's history no longer holds rev (a read at rev
// fails); on other errors it says false and the caller finds out later.
func (s *Store) compacted(ctx context.Context, rev int64) bool {
	_, err := s.c.Get(ctx, Root+"\x00", clientv3.WithRev(rev), clientv3.WithCountOnly(), clientv3.WithSerializable())
	return errors.Is(err, rpctypes.ErrCompacted)
}

// Compact discards history before rev.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if _, err := s.c.Compact(ctx, rev); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("etcd compact %d: %w", rev, err)
	}
	return nil
}

// EventType is the kind of change a watch reports.
type EventType string

// Watch event types, named as Kubernetes names them.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	// Progress is not a change but a mark that WatchCache.Watch sends
	// among the events: every change under the watched prefix up to
	// Object.Rev (its only field set) has been sent before it. It lets a
	// watcher of a quiet prefix know how far it is up to date, as
	// Kubernetes' bookmarks do.
	Progress EventType = "PROGRESS"
)

// Event is one change. For Deleted, Object holds the last value and Rev the
// revision of the deletion.
type Event struct {
	Type   EventType
	Object Object
	// Prev is the value before the change (nil for Added).
	Prev []byte
}

// Watch streams the changes under prefix from revision fromRev (inclusive)
// in revision order until ctx ends or an error occurs; the error (ErrCompacted
// when fromRev is no longer in etcd's history) is sent on the error channel
// and both channels close. The events channel is unbuffered beyond etcd's
// own buffering: a slow reader slows only its own watch.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, <-chan error) {
	out := make(chan Event, 100)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(errc)
		err := s.follow(ctx, prefix, fromRev, func(evs []Event, _ int64) bool {
			for _, e := range evs {
				select {
				case out <- e:
				case <-ctx.Done():
					return false
				}
			}
			return true
		})
		if err != nil {
			errc <- err
		}
	}()
	return out, errc
}

// follow calls fn with the events of each response of an etcd watch of
// prefix from fromRev (etcd sends all the events of a revision in one
// response) until ctx ends or fn returns false (nil), or the watch fails
// (ErrCompacted when fromRev is no longer in etcd's history). With the
// events fn gets the revision up to which the watch has now delivered
// every change: the last event's, or, for a progress notification (no
// events), the revision etcd reports. etcd sends those only to watchers
// it has sent every event up to it, on the watch's gRPC stream in order
// with the events.
func (s *Store) follow(ctx context.Context, prefix string, fromRev int64, fn func(evs []Event, rev int64) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := s.c.Watch(clientv3.WithRequireLeader(ctx), prefix,
		clientv3.WithPrefix(), clientv3.WithRev(fromRev), clientv3.WithPrevKV())
	for {
		// Stop on ctx even if the etcd client has not closed wch yet:
		// the embedded server's in-process client can hold it open
		// during shutdown, which would keep the caller waiting.
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case resp, ok = <-wch:
		}
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("etcd watch %s: closed", prefix)
		}
		if resp.CompactRevision != 0 {
			return ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcd watch %s: %w", prefix, err)
		}
		if resp.IsProgressNotify() {
			if !fn(nil, resp.Header.Revision) {
				return nil
			}
			continue
		}
		if len(resp.Events) == 0 {
			continue
		}
		evs := make([]Event, len(resp.Events))
		for i, ev := range resp.Events {
			evs[i] = toEvent(ev)
		}
		if !fn(evs, evs[len(evs)-1].Object.Rev) {
			return nil
		}
	}
}

func toEvent(ev *clientv3.Event) Event {
	e := Event{Object: Object{Key: string(ev.Kv.Key), Value: ev.Kv.Value, Rev: ev.Kv.ModRevision}}
	if ev.PrevKv != nil {
		e.Prev = ev.PrevKv.Value
	}
	switch {
	case ev.Type == mvccpb.DELETE:
		e.Type = Deleted
		e.Object.Value = e.Prev
	case ev.IsCreate():
		e.Type = Added
	default:
		e.Type = Modified
	}
	return e
}

var metadataOpen = []byte(`"metadata":{`)

// InjectResourceVersion returns value with metadata.resourceVersion set to
// rev. Stored values are JSON objects whose metadata carries no
// resourceVersion; the first `"metadata":{` is the top-level one because the
// API server writes kind and apiVersion (plain identifiers) before it.
// Values without metadata are returned unchanged.
func InjectResourceVersion(value []byte, rev int64) []byte {
	i := bytes.Index(value, metadataOpen)
	if i < 0 {
		return value
	}
	i += len(metadataOpen)
	out := make([]byte, 0, len(value)+40)
	out = append(out, value[:i]...)
	out = append(out, `"resourceVersion":"`...)
	out = strconv.AppendInt(out, rev, 10)
	out = append(out, '"')
	if i < len(value) && value[i] != '}' {
		out = append(out, ',')
	}
	return append(out, value[i:]...)
}

// Lease returns an etcd lease that keeps an object for ttl from now, and
// at most a minute more: what an update of an expiring object (an event)
// writes it with, as kube-apiserver gives each write of an event its TTL.
func (s *Store) Lease(ctx context.Context, ttl time.Duration) (int64, error) {
	id, err := s.leases.get(ctx, s.c, ttl)
	return int64(id), err
}

// leases hands out etcd leases for expiring objects. One lease serves every
// object written within a minute (as kube-apiserver's lease manager does),
// so a burst of events costs one LeaseGrant, not one each.
type leases struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	ttl     time.Duration
	granted time.Time
	now     func() time.Time // time.Now unless a test sets it
}

const leaseReuse = time.Minute

func (l *leases) get(ctx context.Context, c *clientv3.Client, ttl time.Duration) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	if l.id != 0 && l.ttl == ttl && now().Sub(l.granted) < leaseReuse {
		return l.id, nil
	}
	resp, err := c.Grant(ctx, int64((ttl+leaseReuse)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("etcd lease grant: %w", err)
	}
	l.id, l.ttl, l.granted = resp.ID, ttl, now()
	return l.id, nil
}
