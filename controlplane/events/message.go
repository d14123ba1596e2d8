package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/tidwall/gjson"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/wasmfleet/wasmfleet/controlplane/events/subjects"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// position orders every message the publisher produces. Within a revision,
// a gap marker comes first, then for the i-th event of the revision its
// events copy (slot 2i) and its node copy (slot 2i+1).
type position struct {
	rev  int64
	slot int
}

const (
	slotGap = -1
	// slotAll stands for "the whole revision": nothing of rev is missing.
	slotAll = math.MaxInt
)

func (p position) less(q position) bool {
	return p.rev < q.rev || p.rev == q.rev && p.slot < q.slot
}

// msgID is the Nats-Msg-Id of the message at p: "<rev>" for the first event
// of a revision, "<rev>.<i>" for the i-th (i > 0) when one etcd transaction
// changed several keys, ".node" appended for the node copy, "<rev>.gap" for
// a gap marker.
func (p position) msgID() string {
	b := strconv.AppendInt(make([]byte, 0, 24), p.rev, 10)
	if p.slot == slotGap {
		return string(append(b, ".gap"...))
	}
	if i := p.slot / 2; i > 0 {
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(i), 10)
	}
	if p.slot%2 == 1 {
		b = append(b, ".node"...)
	}
	return string(b)
}

func (p position) String() string {
	if p.slot == slotAll {
		return "revision " + strconv.FormatInt(p.rev, 10) + " complete"
	}
	return p.msgID()
}

func parseMsgID(id string) (position, error) {
	t := strings.Split(id, ".")
	rev, err := strconv.ParseInt(t[0], 10, 64)
	if err != nil || rev <= 0 {
		return position{}, fmt.Errorf("message id %q: bad revision", id)
	}
	p := position{rev: rev}
	rest := t[1:]
	if len(rest) == 1 && rest[0] == "gap" {
		p.slot = slotGap
		return p, nil
	}
	if len(rest) > 0 && rest[0] != "node" {
		i, err := strconv.Atoi(rest[0])
		if err != nil || i <= 0 {
			return position{}, fmt.Errorf("message id %q: bad event index", id)
		}
		p.slot = 2 * i
		rest = rest[1:]
	}
	if len(rest) == 1 && rest[0] == "node" {
		p.slot++
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return position{}, fmt.Errorf("message id %q: unknown suffix", id)
	}
	return p, nil
}

// splitKey splits an etcd key into resource, namespace ("" when
// cluster-scoped) and name.
func splitKey(key string) (resource, namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(key, storage.Root)
	if !found {
		return "", "", "", false
	}
	t := strings.Split(rest, "/")
	for _, s := range t {
		if s == "" {
			return "", "", "", false
		}
	}
	switch len(t) {
	case 2:
		return t[0], "", t[1], true
	case 3:
		return t[0], t[1], t[2], true
	}
	return "", "", "", false
}

// outMsg is one message to publish.
type outMsg struct {
	pos position
	msg *nats.Msg
}

// eventMessages returns the messages of the idx-th event of its revision:
// the events copy and, for a pod bound to a node, the node copy. ok is false
// when the key is outside the scheme.
func eventMessages(ev *clientv3.Event, idx int) (msgs [2]outMsg, n int, ok bool) {
	key := string(ev.Kv.Key)
	resource, ns, name, ok := splitKey(key)
	if !ok {
		return msgs, 0, false
	}
	rev := ev.Kv.ModRevision
	var typ storage.EventType
	var value, prev []byte
	if ev.PrevKv != nil {
		prev = ev.PrevKv.Value
	}
	switch {
	case ev.Type == mvccpb.DELETE:
		typ, value = storage.Deleted, prev
	case ev.IsCreate():
		typ, value = storage.Added, ev.Kv.Value
	default:
		typ, value = storage.Modified, ev.Kv.Value
	}
	payload := payloadOf(resource, value, rev)
	revStr := strconv.FormatInt(rev, 10)

	pos := position{rev: rev, slot: 2 * idx}
	msgs[0] = outMsg{pos: pos, msg: newMsg(subjects.ObjectSubject(resource, ns, name), string(typ), revStr, key, pos, payload)}
	n = 1
	if resource != "pods" {
		return msgs, n, true
	}
	node := nodeName(value)
	if node == "" {
		return msgs, n, true
	}
	// As a Kubernetes watch with fieldSelector spec.nodeName=<node> does,
	// the node sees a pod appear (ADDED) when it is bound to it.
	nodeTyp := typ
	if typ == storage.Modified && nodeName(prev) != node {
		nodeTyp = storage.Added
	}
	pos.slot++
	msgs[1] = outMsg{pos: pos, msg: newMsg(subjects.NodePodSubject(node, ns, name), string(nodeTyp), revStr, key, pos, payload)}
	return msgs, 2, true
}

func newMsg(subject, typ, rev, key string, pos position, payload []byte) *nats.Msg {
	m := &nats.Msg{
		Subject: subject,
		Header: nats.Header{
			subjects.HeaderType:     []string{typ},
			subjects.HeaderRevision: []string{rev},
			subjects.HeaderMsgID:    []string{pos.msgID()},
		},
		Data: payload,
	}
	if headerSafe(key) {
		m.Header[subjects.HeaderKey] = []string{key}
	}
	return m
}

// headerSafe reports whether v goes through a NATS header unchanged:
// nats.go trims a value's leading and trailing white space and turns CR
// and LF into spaces, so the key of an object named "a " (RBAC names may
// be any path segment) would arrive as that of "a", another object.
func headerSafe(v string) bool {
	return !strings.ContainsAny(v, "\r\n") && textproto.TrimString(v) == v
}

func gapMessage(rev, from int64) outMsg {
	pos := position{rev: rev, slot: slotGap}
	return outMsg{pos: pos, msg: &nats.Msg{
		Subject: subjects.GapSubject,
		Header: nats.Header{
			subjects.HeaderType:     []string{subjects.TypeGap},
			subjects.HeaderRevision: []string{strconv.FormatInt(rev, 10)},
			subjects.HeaderGapFrom:  []string{strconv.FormatInt(from, 10)},
			subjects.HeaderMsgID:    []string{pos.msgID()},
		},
	}}
}

// payloadOf returns the published form of a stored value: resourceVersion
// injected and, for secrets, data and stringData removed.
func payloadOf(resource string, value []byte, rev int64) []byte {
	if value == nil {
		return nil
	}
	value = storage.InjectResourceVersion(value, rev)
	if resource == "secrets" {
		return redactSecret(value)
	}
	return value
}

// lastApplied is the annotation in which `kubectl apply` (and `create
// --save-config`) keeps the whole object it applied: for a secret, its data.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// redactSecret drops a secret's data and stringData, and the annotation
// that holds a copy of them. A value that is not a JSON object is dropped
// whole: nothing unparsed reaches a subject.
func redactSecret(value []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(value, &m); err != nil {
		return nil
	}
	delete(m, "data")
	delete(m, "stringData")
	if md, ok := m["metadata"]; ok {
		md, err := withoutAnnotation(md, lastApplied)
		if err != nil {
			return nil
		}
		m["metadata"] = md
	}
	b, err := marshalPlain(m)
	if err != nil {
		return nil
	}
	return b
}

// withoutAnnotation returns the JSON metadata md without the annotation
// key.
func withoutAnnotation(md json.RawMessage, key string) (json.RawMessage, error) {
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(md, &meta); err != nil {
		return nil, err
	}
	a, ok := meta["annotations"]
	if !ok {
		return md, nil
	}
	var annotations map[string]json.RawMessage
	if err := json.Unmarshal(a, &annotations); err != nil {
		return nil, err
	}
	if _, ok := annotations[key]; !ok {
		return md, nil
	}
	delete(annotations, key)
	var err error
	if meta["annotations"], err = marshalPlain(annotations); err != nil {
		return nil, err
	}
	return marshalPlain(meta)
}

// marshalPlain encodes v as JSON without escaping <, > and &.
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

var nodeNameKey = []byte(`"nodeName"`)

// nodeName returns spec.nodeName of a pod value ("" if unset or unparsable).
// gjson finds it without decoding the rest of the pod: a full
// json.Unmarshal, even into a one-field struct, scans every byte twice and
// took most of the publisher's CPU per pod event. The value is checked to be
// valid JSON only when it names a node (most pods are created unbound), so
// that no garbage reaches a node's subject. A value without the key
// "nodeName", whose name could otherwise only be spelled with an escape,
// names no node and skips the parse.
func nodeName(value []byte) string {
	if !bytes.Contains(value, nodeNameKey) && bytes.IndexByte(value, '\\') < 0 {
		return ""
	}
	r := gjson.GetBytes(value, "spec.nodeName")
	if r.Type != gjson.String || r.Str == "" || !gjson.ValidBytes(value) {
		return ""
	}
	return r.Str
}

// positionOf reads the position of a stored message from its Nats-Msg-Id.
func positionOf(h nats.Header) (position, bool) {
	if h == nil || h.Get(subjects.HeaderRevision) == "" {
		return position{}, false
	}
	p, err := parseMsgID(h.Get(subjects.HeaderMsgID))
	if err != nil {
		return position{}, false
	}
	return p, true
}
