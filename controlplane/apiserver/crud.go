package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/wasmfleet/wasmfleet/controlplane/apiserver/validation"
	"github.com/wasmfleet/wasmfleet/controlplane/quota"
	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

const protobufType = "application/vnd.kubernetes.protobuf"

// maxUpdateRetries bounds the read-modify-write loop of unconditional
// updates and patches racing other writers.
const maxUpdateRetries = 16

func (s *Server) handle(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	ctx := r.Context()
	out, err := negotiateFor(r, info)
	if err != nil {
		return err
	}
	info.out = out
	if err := checkWriteOptions(r, info.verb); err != nil {
		return err
	}
	if out.yaml {
		if info.verb == "watch" {
			return notAcceptable("application/yaml is not served for watches")
		}
		yw := &yamlWriter{ResponseWriter: w}
		defer yw.finish()
		w = yw
	}
	switch info.subresource {
	case "status", "finalize":
		if info.verb == "get" {
			return s.get(w, r, info)
		}
		return s.replaceOrPatch(w, r, info)
	case "scale":
		return s.serveScale(w, r, info)
	case "binding":
		return s.bind(w, r, info)
	case "eviction":
		return s.evict(w, r, info)
	case "log":
		return s.podLog(w, r, info)
	case "exec", "attach", "portforward":
		return badRequest("%s is not supported: wasmfleet agents run WebAssembly guests and containerd tasks without a streaming server (kubectl logs works)", info.subresource)
	}
	switch info.verb {
	case "get":
		return s.get(w, r, info)
	case "list":
		return s.list(w, r, info)
	case "watch":
		return s.watch(w, r, info)
	case "create":
		switch info.res.gvr.Resource {
		case "selfsubjectaccessreviews":
			return s.selfSubjectAccessReview(w, r)
		case "selfsubjectrulesreviews", "selfsubjectreviews":
			return s.selfReview(w, r, info)
		}
		return s.create(w, r, info)
	case "update", "patch":
		return s.replaceOrPatch(w, r, info)
	case "delete":
		opts, err := s.deleteOptions(r)
		if err != nil {
			return err
		}
		body, code, err := s.delete(ctx, info, opts)
		if err != nil {
			return err
		}
		writeJSON(w, code, body)
		return nil
	case "deletecollection":
		return s.deleteCollection(w, r, info)
	}
	return apierrors.NewMethodNotSupported(info.res.gvr.GroupResource(), info.verb)
}

func (info *reqInfo) key() string {
	return storage.Key(info.res.gvr.Resource, info.namespace, info.name)
}

// load reads and decodes the addressed object.
func (s *Server) load(ctx context.Context, info *reqInfo) (runtime.Object, storage.Object, error) {
	return s.loadFrom(ctx, info, false)
}

// loadFrom reads the object; stale reads the connected etcd member's copy
// without a consensus round trip (see update for when that is safe).
func (s *Server) loadFrom(ctx context.Context, info *reqInfo, stale bool) (runtime.Object, storage.Object, error) {
	get := s.store.Get
	if stale {
		get = s.store.GetStale
	}
	so, err := get(ctx, info.key())
	if err != nil {
		return nil, so, storageError(err, info.res.gvr.GroupResource(), info.name)
	}
	obj, err := s.decode(info.res, so)
	return obj, so, err
}

// encodeStored encodes an object to be stored: the bytes of encoding/json
// (TestStoredJSONMatchesEncodingJSON holds them equal on random objects of
// every resource), written by goccy/go-json in about half the time. Every
// create, update and binding encodes the whole object.
func encodeStored(obj runtime.Object) ([]byte, error) { return gojson.Marshal(obj) }

// decodeStored decodes an object as stored. Stored values are JSON that
// this server wrote with encoding/json's encoding; goccy/go-json decodes
// them about 2.5 times as fast into the same objects
// (TestStoredJSONMatchesEncodingJSON), and bindings, updates and watch
// events all start with this decode.
func (s *Server) decodeStored(res *resource, so storage.Object) (runtime.Object, error) {
	obj := res.new()
	if err := gojson.Unmarshal(so.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", so.Key, err)
	}
	mustMeta(obj).SetResourceVersion(strconv.FormatInt(so.Rev, 10))
	obj.GetObjectKind().SetGroupVersionKind(res.gvk())
	return obj, nil
}

func mustMeta(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		panic(fmt.Sprintf("%T has no object metadata: %v", obj, err))
	}
	return m
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	minRev, err := parseRV(r.URL.Query().Get("resourceVersion"))
	if err != nil {
		return err
	}
	so, err := s.store.Get(r.Context(), info.key())
	if minRev > so.Rev { // (0 when not found) etcd may not have reached minRev
		if err := s.reached(r.Context(), minRev); err != nil {
			return err
		}
	}
	if err != nil {
		return storageError(err, info.res.gvr.GroupResource(), info.name)
	}
	switch {
	case info.out.table():
		obj, err := s.decode(info.res, so)
		if err != nil {
			return err
		}
		return s.writeTable(w, r, info.res, []runtime.Object{obj}, metav1.ListMeta{ResourceVersion: strconv.FormatInt(so.Rev, 10)})
	case info.out.meta():
		p, err := partialOfStored(so, info.out.gv)
		if err != nil {
			return err
		}
		return s.writeOutput(w, http.StatusOK, info.out, p)
	}
	b, err := s.wire(info.res, so.Value, so.Rev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// readBody reads the request body, refusing more than MaxBodyBytes before
// reading it all.
func readBody(r *http.Request) ([]byte, error) {
	tooLarge := func() error { return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", MaxBodyBytes)) }
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge()
	}
	// Sized by Content-Length when there is one (and one byte more, to see
	// EOF without growing): io.ReadAll would start at 512 bytes and grow.
	b := make([]byte, 0, max(r.ContentLength, 511)+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > MaxBodyBytes {
			return nil, tooLarge()
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, badRequest("read request body: %v", err)
		}
	}
}

// toJSON converts a request body to JSON according to its Content-Type;
// strictErrs are a YAML body's keys given twice (see yamlToJSON).
func toJSON(r *http.Request, body []byte) (j []byte, strictErrs []error, err error) {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "", "application/json", "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json":
		return body, nil, nil
	case "application/yaml", "application/apply-patch+yaml":
		return yamlToJSON(body)
	}
	return nil, nil, unsupportedMediaType(ct)
}

// decodeInto decodes a protobuf, JSON or YAML body into obj; unknown and
// duplicate fields are dropped and answered as checkFields does.
func (s *Server) decodeInto(r *http.Request, body []byte, obj any) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == protobufType {
		// client-go and kubectl send typed objects as protobuf.
		o, ok := obj.(runtime.Object)
		if !ok {
			return unsupportedMediaType(mt)
		}
		got, gvk, err := s.protobuf.Decode(body, nil, o)
		if err != nil {
			return badRequest("invalid protobuf body: %v", err)
		}
		if got != o {
			return badRequest("the body is a %s, not what this endpoint takes", gvk.Kind)
		}
		return nil
	}
	j, yamlErrs, err := toJSON(r, body)
	if err != nil {
		return err
	}
	strictErrs, err := decodeJSON(j, obj)
	if err != nil {
		return badRequest("invalid request body: %v", err)
	}
	return checkFields(r, append(yamlErrs, strictErrs...))
}

// checkFields answers a body's strict decoding errors (unknown and
// duplicate fields) by r's fieldValidation: refused (Strict), a Warning
// header each (Warn, the default) or ignored (Ignore).
func checkFields(r *http.Request, strictErrs []error) error {
	if len(strictErrs) == 0 {
		return nil
	}
	switch r.URL.Query().Get("fieldValidation") {
	case "Strict":
		msg := "strict decoding error: "
		for i, e := range strictErrs {
			if i > 0 {
				msg += ", "
			}
			msg += e.Error()
		}
		return badRequest("%s", msg)
	case "Ignore":
	default:
		for _, e := range strictErrs {
			warn(r.Context(), e.Error())
		}
	}
	return nil
}

// decodeObject decodes a body meant to be an object of res and checks its
// kind and apiVersion.
func (s *Server) decodeObject(r *http.Request, body []byte, res *resource) (runtime.Object, error) {
	obj := res.new()
	if err := s.decodeInto(r, body, obj); err != nil {
		return nil, err
	}
	return obj, checkKind(obj, res)
}

func checkKind(obj runtime.Object, res *resource) error {
	return checkKindOf(obj, res.gvk())
}

// checkKindOf refuses obj, decoded from a body, when the body named a kind
// or API version other than want's, and sets want's.
func checkKindOf(obj runtime.Object, want schema.GroupVersionKind) error {
	gvk := obj.GetObjectKind().GroupVersionKind()
	if (gvk.Kind != "" && gvk.Kind != want.Kind) || (gvk.Version != "" && gvk.GroupVersion() != want.GroupVersion()) {
		return badRequest("the API version in the data (%s) does not match the expected API version (%s) or kind %s", gvk.GroupVersion(), want.GroupVersion(), want.Kind)
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	return nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	obj, err := s.decodeObject(r, body, info.res)
	if err != nil {
		return err
	}
	out, err := s.createObject(r.Context(), info, obj, isDryRun(r))
	if err != nil {
		return err
	}
	return s.respond(w, r, http.StatusCreated, out)
}

// stored is an object as written: typed, and as JSON, both with their
// resourceVersion (json nil: respond encodes obj).
type stored struct {
	obj  runtime.Object
	json []byte
}

// newStored is obj of res, stored as value at rev. The stored JSON is
// what a client reads, unless res is a view (views.go).
func newStored(res *resource, obj runtime.Object, value []byte, rev int64) stored {
	mustMeta(obj).SetResourceVersion(strconv.FormatInt(rev, 10))
	if res.view != nil {
		return stored{obj: obj}
	}
	return stored{obj: obj, json: storage.InjectResourceVersion(value, rev)}
}

// respond answers with st in protobuf when the client prefers it (client-go
// does; it decodes protobuf several times faster), else in JSON; or with
// its metadata only when the client asked for PartialObjectMetadata (the
// metadata client's patches do).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, code int, st stored) error {
	if out, err := negotiate(r.Header.Get("Accept")); err == nil && out.kind == outputMeta {
		return s.writeOutput(w, code, out, partialOf(st.obj, out.gv))
	}
	if strings.HasPrefix(r.Header.Get("Accept"), protobufType) {
		var b bytes.Buffer
		if err := s.protobuf.Encode(st.obj, &b); err == nil {
			w.Header().Set("Content-Type", protobufType)
			w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
			w.WriteHeader(code)
			w.Write(b.Bytes())
			return nil
		}
	}
	if st.json == nil {
		b, err := encodeStored(st.obj)
		if err != nil {
			return err
		}
		st.json = b
	}
	writeJSON(w, code, st.json)
	return nil
}

// generateNameAttempts is how many names a create with generateName
// tries before it answers AlreadyExists, as in Kubernetes.
const generateNameAttempts = 8

// createObject prepares, defaults, validates and stores a new object and
// returns its stored JSON. An object with generateName and no name gets
// a name of that prefix and a random suffix, another if it is taken.
func (s *Server) createObject(ctx context.Context, info *reqInfo, obj runtime.Object, dryRun bool) (stored, error) {
	m := mustMeta(obj)
	prefix := m.GetGenerateName()
	if m.GetName() != "" || prefix == "" {
		return s.createNamed(ctx, info, obj, dryRun, false)
	}
	for attempt := 1; ; attempt++ {
		// As Kubernetes: a prefix is cut to leave room for the suffix in
		// 63 characters.
		m.SetName(prefix[:min(len(prefix), 58)] + rand.String(5))
		st, err := s.createNamed(ctx, info, obj, dryRun, true)
		if !apierrors.IsAlreadyExists(err) || attempt == generateNameAttempts {
			return st, err
		}
	}
}

// createNamed is createObject once the object has its name; generated
// says it was drawn from generateName.
func (s *Server) createNamed(ctx context.Context, info *reqInfo, obj runtime.Object, dryRun, generated bool) (stored, error) {
	m := mustMeta(obj)
	// Admission refusals name a generated object by its prefix, as in
	// Kubernetes, where the name is drawn after admission: a controller's
	// repeated refusals then read alike (and its events aggregate).
	admName := m.GetName()
	if generated {
		admName = m.GetGenerateName()
	}
	if err := checkNamespace(info, m); err != nil {
		return stored{}, err
	}
	if rv, err := strconv.ParseUint(m.GetResourceVersion(), 10, 64); err == nil && rv != 0 {
		return stored{}, rvOnCreate()
	}
	info = &reqInfo{verb: "create", res: info.res, namespace: info.namespace, name: m.GetName(), manager: info.manager, ownFields: info.ownFields}
	dedupOwnerReferences(ctx, m, false)
	if err := s.admitCreate(ctx, info, obj); err != nil {
		return stored{}, err
	}
	// Admission first, as in Kubernetes: NamespaceLifecycle comes first
	// of all; LimitRanger, Priority and RuntimeClass mutate before
	// validation, LimitRanger and RuntimeClass check after it, and
	// ResourceQuota charges last.
	if info.res.namespaced {
		if err := s.refuseTerminating(ctx, info, admName); err != nil {
			return stored{}, err
		}
	}
	s.prepareCreate(info, obj)
	s.defaults(info, obj)
	pod, _ := obj.(*corev1.Pod)
	var (
		rc  *nodev1.RuntimeClass
		lrs []*corev1.LimitRange
	)
	if pod != nil {
		var err error
		if lrs, err = s.podLimitRanges(ctx, info.namespace); err != nil {
			return stored{}, err
		}
		admitLimitRanges(pod, lrs)
		// The QoS class follows the requests and limits admission set.
		pod.Status.QOSClass = qosClass(&pod.Spec)
		if err := s.admitPriority(ctx, admName, pod); err != nil {
			return stored{}, err
		}
		if rc, err = s.podRuntimeClass(ctx, admName, pod); err != nil {
			return stored{}, err
		}
		if err := admitRuntimeClass(admName, pod, rc); err != nil {
			return stored{}, err
		}
	}
	if ing, ok := obj.(*networkingv1.Ingress); ok {
		if err := s.admitIngress(ctx, ing); err != nil {
			return stored{}, err
		}
	}
	if errs := validateCreate(info.res, obj); len(errs) > 0 {
		return stored{}, invalid(info, errs)
	}
	// As kube-apiserver's BeforeCreate: the strategy's warnings once the
	// object is valid, before validating admission (so on dry runs too).
	warnAll(ctx, warningsOnCreate(obj))
	if pod != nil {
		if err := validateLimitRanges(admName, pod, lrs); err != nil {
			return stored{}, err
		}
		if err := validateRuntimeClass(admName, pod, rc); err != nil {
			return stored{}, err
		}
	}
	if pc, ok := obj.(*schedulingv1.PriorityClass); ok {
		if err := s.admitPriorityClass(ctx, pc); err != nil {
			return stored{}, err
		}
	}
	svc, _ := obj.(*corev1.Service)
	var asked *corev1.Service
	if svc != nil {
		asked = svc.DeepCopy()
	}
	for attempt := 1; ; attempt++ {
		st, err := s.storeNew(ctx, info, admName, obj, dryRun, svc, asked)
		// A value the server picked for a Service was taken meanwhile:
		// pick again, from the Service as asked.
		if svc == nil || !errors.Is(err, storage.ErrConflict) {
			return st, err
		}
		if attempt == maxUpdateRetries {
			return stored{}, storageError(err, info.res.gvr.GroupResource(), info.name)
		}
	}
}

// storeNew is the end of createNamed, once the object is valid: it
// allocates a Service's values (from asked, what it asked for), charges
// quotas and stores obj. A Service that lost a value it was given to
// another write is storage.ErrConflict.
func (s *Server) storeNew(ctx context.Context, info *reqInfo, admName string, obj runtime.Object, dryRun bool, svc, asked *corev1.Service) (stored, error) {
	var claims *serviceClaims
	if svc != nil {
		*svc = *asked.DeepCopy()
		var err error
		if claims, err = s.allocateService(ctx, svc, nil); err != nil {
			return stored{}, err
		}
	}
	value, err := storedValue(info.res, obj)
	if err != nil {
		return stored{}, err
	}
	refund, err := s.chargeQuotas(ctx, info, admName, obj, nil, dryRun)
	if err != nil {
		return stored{}, err
	}
	if dryRun {
		// As kube-apiserver's dry-run storage: the answer is the write's,
		// only nothing is written.
		if err := s.dryRunCreate(ctx, info); err != nil {
			return stored{}, err
		}
		if claims != nil {
			if err := claims.dryRun(ctx, s, svc); err != nil {
				return stored{}, err
			}
		}
		if info.res.view != nil {
			return stored{obj: obj}, nil
		}
		return stored{obj: obj, json: value}, nil
	}
	guard := ""
	if info.res.namespaced {
		guard = storage.Key("namespaces", "", info.namespace)
	}
	var c storage.Claims
	if claims != nil {
		c = claims.Claims
	}
	rev, err := s.store.CreateClaiming(ctx, info.key(), value, guard, s.ttl(info.res), c)
	if err != nil {
		refund()
	}
	if errors.Is(err, storage.ErrGuardMissing) {
		return stored{}, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, info.namespace)
	}
	if claims != nil && err != nil {
		if err = claims.claimedError(svc, err); errors.Is(err, storage.ErrConflict) {
			return stored{}, err
		}
	}
	if err != nil {
		return stored{}, storageError(err, info.res.gvr.GroupResource(), info.name)
	}
	s.wrote(info.res.gvr.Resource, rev)
	return newStored(info.res, obj, value, rev), nil
}

// ttl is how long objects of res live (0: until deleted): events, the
// event TTL.
func (s *Server) ttl(res *resource) time.Duration {
	if res.stored().gvr.GroupResource() == corev1.Resource("events") {
		return s.cfg.EventTTL
	}
	return 0
}

// dryRunCreate refuses a dry-run create as the create itself would be
// refused: 404 when the namespace is missing, 409 AlreadyExists when the
// name is taken. kubectl create --dry-run=server and admission checks in
// CI rely on a dry run that passes to mean that the create would.
func (s *Server) dryRunCreate(ctx context.Context, info *reqInfo) error {
	if info.res.namespaced {
		_, err := s.store.Get(ctx, storage.Key("namespaces", "", info.namespace))
		if errors.Is(err, storage.ErrNotFound) {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, info.namespace)
		}
		if err != nil {
			return storageError(err, schema.GroupResource{Resource: "namespaces"}, info.namespace)
		}
	}
	_, err := s.store.Get(ctx, info.key())
	switch {
	case err == nil:
		return apierrors.NewAlreadyExists(info.res.gvr.GroupResource(), info.name)
	case errors.Is(err, storage.ErrNotFound):
		return nil
	}
	return storageError(err, info.res.gvr.GroupResource(), info.name)
}

// refuseTerminating refuses new objects in a namespace being deleted, as
// Kubernetes' NamespaceLifecycle admission does from its informer cache:
// from the namespace cache, or before it is synced a stale read, as good (the namespace controller sweeps again, so a create
// racing the delete is still cleaned up). A missing namespace is left to
// the guarded create.
func (s *Server) refuseTerminating(ctx context.Context, info *reqInfo, admName string) error {
	mark, known := s.namespaces.lookup(info.namespace)
	if !known {
		// Not stale: the cache may not know because of a deletion just
		// written.
		so, err := s.store.Get(ctx, storage.Key("namespaces", "", info.namespace))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		mark = terminating(so.Value)
	}
	if mark == nil {
		return nil
	}
	msg := fmt.Sprintf("unable to create new content in namespace %s because it is being terminated", info.namespace)
	forbidden := apierrors.NewForbidden(info.res.gvr.GroupResource(), admName, errors.New(msg))
	forbidden.ErrStatus.Details.Causes = append(forbidden.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: corev1.NamespaceTerminatingCause, Message: fmt.Sprintf("namespace %s is being terminated", info.namespace), Field: "metadata.namespace",
	})
	return forbidden
}

// Ensure creates obj (a typed k8s.io/api object with its kind set) through
// the same checks as a request, unless an object of that name exists. The
// server uses it for the namespaces and runtime classes every cluster has.
func (s *Server) Ensure(ctx context.Context, obj runtime.Object) error {
	gvk := obj.GetObjectKind().GroupVersionKind()
	for _, res := range s.reg.list {
		if res.gvk() == gvk {
			m := mustMeta(obj)
			_, err := s.createObject(ctx, &reqInfo{verb: "create", res: res, namespace: m.GetNamespace()}, obj, false)
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("ensure %s: kind not served", gvk)
}

// checkNamespace fills the object's namespace from the URL and refuses a
// mismatch.
func checkNamespace(info *reqInfo, m metav1.Object) error {
	if !info.res.namespaced {
		m.SetNamespace("")
		return nil
	}
	switch m.GetNamespace() {
	case "":
		m.SetNamespace(info.namespace)
	case info.namespace:
	default:
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

func isDryRun(r *http.Request) bool { return r.URL.Query().Get("dryRun") == "All" }

// checkWriteOptions refuses the dryRun, fieldManager, fieldValidation and
// force of a create, update or patch as kube-apiserver does (apimachinery's
// Validate{Create,Update,Patch}Options): a misspelt dryRun must not write.
func checkWriteOptions(r *http.Request, verb string) error {
	q := r.URL.Query()
	dryRun, manager, validation := q["dryRun"], q.Get("fieldManager"), q.Get("fieldValidation")
	var (
		kind string
		errs field.ErrorList
	)
	switch verb {
	case "create":
		kind = "CreateOptions"
		errs = metav1validation.ValidateCreateOptions(&metav1.CreateOptions{DryRun: dryRun, FieldManager: manager, FieldValidation: validation})
	case "update":
		kind = "UpdateOptions"
		errs = metav1validation.ValidateUpdateOptions(&metav1.UpdateOptions{DryRun: dryRun, FieldManager: manager, FieldValidation: validation})
	case "patch":
		kind = "PatchOptions"
		opts := metav1.PatchOptions{DryRun: dryRun, FieldManager: manager, FieldValidation: validation}
		if v := q.Get("force"); v != "" {
			force, err := strconv.ParseBool(v)
			if err != nil {
				return badRequest("invalid force %q", v)
			}
			opts.Force = &force
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		errs = metav1validation.ValidatePatchOptions(&opts, types.PatchType(mt))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(metav1.SchemeGroupVersion.WithKind(kind).GroupKind(), "", errs)
	}
	return nil
}

func invalid(info *reqInfo, errs field.ErrorList) error {
	return apierrors.NewInvalid(info.res.gvk().GroupKind(), info.name, errs)
}

// prepareCreate sets the fields the server owns on a new object.
func (s *Server) prepareCreate(info *reqInfo, obj runtime.Object) {
	res := info.res
	m := mustMeta(obj)
	m.SetUID(uuid.NewUUID())
	m.SetCreationTimestamp(metav1.NewTime(s.now()))
	m.SetResourceVersion("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetSelfLink("")
	if !info.ownFields {
		// Only an apply's are tracked (see apply.go).
		m.SetManagedFields(nil)
	}
	if res.hasGeneration() {
		m.SetGeneration(1)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&o.Spec)}
	case *corev1.Node:
		// Their creators own the status (agents report it). Dynamic kubelet
		// configuration is gone: kube-apiserver drops its fields.
		o.Spec.ConfigSource, o.Status.Config = nil, nil
	case *corev1.Namespace:
	case *appsv1.DaemonSet:
		o.Status = appsv1.DaemonSetStatus{}
		// As kube-apiserver's strategy: at least 1 (a value that is not a
		// number fails validation).
		if g, err := templateGeneration(o); err == nil && g < 1 {
			setTemplateGeneration(o, 1)
		}
	default:
		if res.status {
			setField(obj, "Status", reflect.Zero(fieldType(obj, "Status")))
		}
	}
}

// A DaemonSet's template generation, kube's internal spec.templateGeneration,
// is in apps/v1 the annotation deprecated.daemonset.template.generation: 1
// on create, and one more each time the template changes; updates cannot
// set it. The DaemonSet controller labels its pods with it
// (pod-template-generation).

// templateGeneration reads ds's template generation: 0 without the
// annotation.
func templateGeneration(ds *appsv1.DaemonSet) (int64, error) {
	v, ok := ds.Annotations[appsv1.DeprecatedTemplateGeneration]
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

func setTemplateGeneration(ds *appsv1.DaemonSet, g int64) {
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[appsv1.DeprecatedTemplateGeneration] = strconv.FormatInt(g, 10)
}

// keepTemplateGeneration gives ds, which replaces old, old's template
// generation, one more when the template changed, as kube-apiserver's
// DaemonSet strategy (old's is 0 without the annotation, as kube reads it).
func keepTemplateGeneration(ds, old *appsv1.DaemonSet) {
	g, _ := templateGeneration(old)
	if !apiequality.Semantic.DeepEqual(ds.Spec.Template, old.Spec.Template) {
		g++
	}
	setTemplateGeneration(ds, g)
}

// replaceOrPatch serves PUT and PATCH on an object or its status/finalize
// subresource.
func (s *Server) replaceOrPatch(w http.ResponseWriter, r *http.Request, info *reqInfo) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	info.manager = managerName(r)
	var (
		mutate func(cur runtime.Object, curJSON []byte) (runtime.Object, error)
		// missing returns the object to create when there is none: a
		// PUT's where the resource allows it, an apply's.
		missing func() (runtime.Object, error)
	)
	if info.verb == "update" {
		obj, err := s.decodeObject(r, body, info.res)
		if err != nil {
			return err
		}
		m := mustMeta(obj)
		if err := checkNamespace(info, m); err != nil {
			return err
		}
		if m.GetName() != info.name {
			return badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name)
		}
		mutate = func(cur runtime.Object, _ []byte) (runtime.Object, error) {
			// As kube-apiserver: a replacement's uid is a precondition, so
			// an object deleted and created again under its name is not
			// overwritten.
			if uid, curUID := m.GetUID(), mustMeta(cur).GetUID(); uid != "" && uid != curUID {
				return nil, apierrors.NewConflict(info.res.gvr.GroupResource(), info.name, fmt.Errorf("Precondition failed: UID in precondition: %s, UID in object meta: %s", uid, curUID))
			}
			return obj.DeepCopyObject(), nil
		}
		if rv := m.GetResourceVersion(); info.subresource == "" && info.res.createOnUpdate && (rv == "" || rv == "0") {
			// As Kubernetes for leases, events, RBAC objects and a few
			// more: a PUT of a missing object creates it.
			missing = func() (runtime.Object, error) { return obj, nil }
		}
	} else if isApply(r) {
		apply, err := s.applier(r, body, info)
		if err != nil {
			return err
		}
		info.ownFields = true
		mutate = func(cur runtime.Object, _ []byte) (runtime.Object, error) { return apply(cur) }
		if info.subresource == "" {
			// As Kubernetes: applying to a missing object creates it,
			// unless the apply names a uid, which none has.
			missing = func() (runtime.Object, error) {
				obj, err := apply(info.res.new())
				if err != nil {
					return nil, err
				}
				if uid := mustMeta(obj).GetUID(); uid != "" {
					return nil, apierrors.NewConflict(info.res.gvr.GroupResource(), info.name,
						fmt.Errorf("uid mismatch: the provided object specified uid %s, and no existing object was found", uid))
				}
				return obj, nil
			}
		}
	} else {
		patch, err := s.patcher(r, body, info.res)
		if err != nil {
			return err
		}
		mutate = func(cur runtime.Object, curJSON []byte) (runtime.Object, error) { return patch(cur, curJSON) }
	}
	out, err := s.update(r.Context(), info, mutate, isDryRun(r))
	if apierrors.IsNotFound(err) && missing != nil {
		obj, err := missing()
		if err != nil {
			return err
		}
		if out, err = s.createObject(r.Context(), info, obj, isDryRun(r)); err != nil {
			return err
		}
		return s.respond(w, r, http.StatusCreated, out)
	}
	if err != nil {
		return err
	}
	return s.respond(w, r, http.StatusOK, out)
}

// update runs the read-modify-write loop: mutate gets the current object
// (and its JSON with resourceVersion) and returns the desired one; the
// result is prepared, validated and written if etcd still holds what was
// read. A desired object naming an older resourceVersion gets 409 Conflict.
func (s *Server) update(ctx context.Context, info *reqInfo, mutate func(cur runtime.Object, curJSON []byte) (runtime.Object, error), dryRun bool) (stored, error) {
	for attempt := range maxUpdateRetries {
		// The first read skips etcd's consensus round trip, as
		// kube-apiserver reads from its watch cache: the write is a
		// compare-and-swap on the revision read, so a stale read costs a
		// retry, never a lost update. Whatever else a stale read decided
		// (an error, nothing to write) is decided again on a linearizable
		// read.
		stale := attempt == 0 && !dryRun
		st, written, err := s.updateOnce(ctx, info, mutate, dryRun, stale)
		if errors.Is(err, storage.ErrConflict) || (stale && !written) {
			continue
		}
		return st, err
	}
	return stored{}, storageError(storage.ErrConflict, info.res.gvr.GroupResource(), info.name)
}

// updateOnce is one read-modify-write; written says whether it wrote (or
// deleted) the object. A lost compare-and-swap is storage.ErrConflict.
func (s *Server) updateOnce(ctx context.Context, info *reqInfo, mutate func(cur runtime.Object, curJSON []byte) (runtime.Object, error), dryRun, stale bool) (_ stored, written bool, _ error) {
	gr := info.res.gvr.GroupResource()
	cur, so, err := s.loadFrom(ctx, info, stale)
	if err != nil {
		return stored{}, false, err
	}
	if err := s.admitCurrent(ctx, info, cur); err != nil {
		return stored{}, false, err
	}
	curRV := strconv.FormatInt(so.Rev, 10)
	curJSON, err := s.wire(info.res, so.Value, so.Rev)
	if err != nil {
		return stored{}, false, err
	}
	obj, err := mutate(cur.DeepCopyObject(), curJSON)
	if err != nil {
		return stored{}, false, err
	}
	m := mustMeta(obj)
	if m.GetResourceVersion() == "0" {
		// As kube-apiserver's versioner: "0" names no version.
		m.SetResourceVersion("")
	}
	if rv := m.GetResourceVersion(); rv != "" && rv != curRV {
		return stored{}, false, storageError(storage.ErrConflict, gr, info.name)
	}
	// As kube-apiserver's Store.Update, for a PUT or a patch that drops
	// the version it was applied to.
	if info.subresource == "" && info.res.conditionalUpdate && m.GetResourceVersion() == "" {
		return stored{}, false, invalid(info, field.ErrorList{field.Invalid(field.NewPath("metadata", "resourceVersion"), "", "must be specified for an update")})
	}
	if m.GetName() != info.name {
		return stored{}, false, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), info.name)
	}
	if err := checkNamespace(info, m); err != nil {
		return stored{}, false, err
	}
	dedupOwnerReferences(ctx, m, info.verb == "patch")
	managed := m.GetManagedFields()
	// A manifest replaced as written (kubectl replace -f) lacks them.
	s.defaults(info, obj)
	if pod, ok := obj.(*corev1.Pod); ok {
		keepPriority(pod, cur.(*corev1.Pod))
	}
	svc, _ := obj.(*corev1.Service)
	if info.subresource != "" {
		svc = nil // a status write allocates nothing
	}
	s.prepareUpdate(info, obj, cur)
	s.trackFields(info, cur, obj, managed)
	// The precondition held (or there was none): validate with the
	// current resourceVersion, as Kubernetes does for unconditional
	// updates, /status and /scale.
	m.SetResourceVersion(curRV)
	// A binding sets spec.nodeName, which is immutable to everyone else,
	// and the PodScheduled condition; bind checked both itself.
	if info.subresource != "binding" {
		if errs := validateUpdate(info.res, obj, cur); len(errs) > 0 {
			return stored{}, false, invalid(info, errs)
		}
		// As kube-apiserver's BeforeUpdate, for PUT, patch and apply alike.
		warnAll(ctx, warningsOnUpdate(obj, cur, info.subresource))
	}
	if pc, ok := obj.(*schedulingv1.PriorityClass); ok {
		if err := s.admitPriorityClass(ctx, pc); err != nil {
			return stored{}, false, err
		}
	}
	if gr == quota.Services && info.subresource == "" {
		refund, err := s.chargeQuotas(ctx, info, info.name, obj, cur, dryRun)
		if err != nil {
			return stored{}, false, err
		}
		defer func() {
			if !written {
				refund()
			}
		}()
	}
	m.SetResourceVersion("")
	var claims storage.Claims
	var sc *serviceClaims
	if svc != nil {
		if sc, err = s.allocateService(ctx, svc, cur.(*corev1.Service)); err != nil {
			return stored{}, false, err
		}
		claims = sc.Claims
	}
	value, err := storedValue(info.res, obj)
	if err != nil {
		return stored{}, false, err
	}
	if dryRun && sc != nil {
		if err := sc.dryRun(ctx, s, svc); err != nil {
			return stored{}, false, err
		}
	}
	if string(value) == string(so.Value) || dryRun {
		// Nothing changed: Kubernetes writes nothing and keeps the
		// resourceVersion.
		return newStored(info.res, obj, value, so.Rev), false, nil
	}
	if finished(obj) {
		rev, err := s.store.DeleteReleasing(ctx, info.key(), so.Rev, releaseOf(cur))
		if errors.Is(err, storage.ErrConflict) {
			return stored{}, false, err
		}
		if err != nil {
			return stored{}, false, storageError(err, gr, info.name)
		}
		s.wrote(info.res.gvr.Resource, rev)
		return newStored(info.res, obj, value, so.Rev), true, nil
	}
	lease := so.Lease
	if ttl := s.ttl(info.res); ttl > 0 {
		// As kube-apiserver: each write of an event gives it its TTL again,
		// so a recurring event lives on while it recurs.
		if lease, err = s.store.Lease(ctx, ttl); err != nil {
			return stored{}, false, storageError(err, gr, info.name)
		}
	}
	rev, err := s.store.UpdateClaiming(ctx, info.key(), value, so.Rev, lease, claims)
	if sc != nil && err != nil {
		err = sc.claimedError(svc, err)
	}
	if errors.Is(err, storage.ErrConflict) {
		return stored{}, false, err
	}
	if err != nil {
		return stored{}, false, storageError(err, gr, info.name)
	}
	s.wrote(info.res.gvr.Resource, rev)
	return newStored(info.res, obj, value, rev), true, nil
}

// dedupOwnerReferences drops each owner reference of m equal to an earlier
// one, with a warning naming its uid, as kube-apiserver does on every
// create, update and patch; patched words the warning as kube-apiserver
// does for a patch, where it looks after mutating admission only.
func dedupOwnerReferences(ctx context.Context, m metav1.Object, patched bool) {
	refs := m.GetOwnerReferences()
	var (
		kept []metav1.OwnerReference
		dups []string
	)
	for i, ref := range refs {
		if slices.ContainsFunc(refs[:i], func(r metav1.OwnerReference) bool { return r.UID == ref.UID && apiequality.Semantic.DeepEqual(r, ref) }) {
			dups = append(dups, string(ref.UID))
			continue
		}
		kept = append(kept, ref)
	}
	if len(dups) == 0 {
		return
	}
	where := ""
	if patched {
		where = " after mutating admission happens"
	}
	warn(ctx, fmt.Sprintf(".metadata.ownerReferences contains duplicate entries%s; API server dedups owner references in 1.20+, "+
		"and may reject such requests as early as 1.24; please fix your requests; duplicate UID(s) observed: %s", where, strings.Join(dups, ", ")))
	m.SetOwnerReferences(kept)
}

// finished reports whether an object being deleted has nothing left
// holding it: no finalizers and no grace period to wait for.
func finished(obj runtime.Object) bool {
	m := mustMeta(obj)
	if m.GetDeletionTimestamp() == nil || len(m.GetFinalizers()) > 0 {
		return false
	}
	if g := m.GetDeletionGracePeriodSeconds(); g != nil && *g > 0 {
		return false
	}
	if ns, ok := obj.(*corev1.Namespace); ok && len(ns.Spec.Finalizers) > 0 {
		return false
	}
	return true
}

// prepareUpdate keeps what the caller may not change through this path:
// server-owned metadata always, the status through the main resource, and
// everything but the status through /status.
func (s *Server) prepareUpdate(info *reqInfo, obj, old runtime.Object) {
	m, om := mustMeta(obj), mustMeta(old)
	if m.GetUID() == "" {
		// As Kubernetes: a missing uid means the current one; a different
		// one is a precondition that failed (PUT) or fails validation
		// (PATCH: uid is immutable).
		m.SetUID(om.GetUID())
	}
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	// As Kubernetes' BeforeUpdate: an update never removes or moves a
	// deletion timestamp, nor drops the grace period; setting either on
	// an object not being deleted fails validation (immutable).
	if om.GetDeletionTimestamp() != nil {
		m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	}
	if om.GetDeletionGracePeriodSeconds() != nil && m.GetDeletionGracePeriodSeconds() == nil {
		m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	}
	m.SetGeneration(om.GetGeneration())
	m.SetNamespace(om.GetNamespace())
	m.SetSelfLink("")
	m.SetManagedFields(nil)
	res := info.res
	switch info.subresource {
	case "binding":
		return
	case "status":
		// As Kubernetes' status strategies: the status and the metadata
		// come from the request, the rest (the spec) from old. Copy them
		// out first: the object is overwritten below.
		v := reflect.ValueOf(obj).Elem()
		status, meta := reflect.New(fieldType(obj, "Status")).Elem(), reflect.New(fieldType(obj, "ObjectMeta")).Elem()
		status.Set(v.FieldByName("Status"))
		meta.Set(v.FieldByName("ObjectMeta"))
		v.Set(reflect.ValueOf(old).Elem())
		v.FieldByName("Status").Set(status)
		v.FieldByName("ObjectMeta").Set(meta)
		switch o := obj.(type) {
		case *appsv1.DaemonSet:
			keepTemplateGeneration(o, old.(*appsv1.DaemonSet))
		case *corev1.Pod:
			// Kubernetes keeps them: old kubelets corrupted them.
			m.SetOwnerReferences(om.GetOwnerReferences())
		case *corev1.Node:
			// As kube-apiserver: kept only by a node that had it.
			if old.(*corev1.Node).Status.Config == nil {
				o.Status.Config = nil
			}
		case *appsv1.Deployment, *appsv1.ReplicaSet:
			m.SetLabels(om.GetLabels())
		}
		return
	case "finalize":
		fin := obj.(*corev1.Namespace).Spec.Finalizers
		obj.(*corev1.Namespace).Spec = *old.(*corev1.Namespace).Spec.DeepCopy()
		obj.(*corev1.Namespace).Spec.Finalizers = fin
		obj.(*corev1.Namespace).Status = *old.(*corev1.Namespace).Status.DeepCopy()
		return
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		// Only /finalize changes them: the namespace controller removes
		// the content before it removes "kubernetes".
		ns.Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
	}
	if res.status {
		setField(obj, "Status", reflect.ValueOf(old).Elem().FieldByName("Status"))
	}
	if n, ok := obj.(*corev1.Node); ok && old.(*corev1.Node).Spec.ConfigSource == nil {
		// As kube-apiserver: kept only by a node that had it.
		n.Spec.ConfigSource = nil
	}
	if svc, ok := obj.(*corev1.Service); ok {
		dropTypeDependentFields(svc, old.(*corev1.Service))
		keepServiceAllocations(svc, old.(*corev1.Service))
	}
	if ds, ok := obj.(*appsv1.DaemonSet); ok {
		keepTemplateGeneration(ds, old.(*appsv1.DaemonSet))
	}
	if res.hasGeneration() {
		changed := !apiequality.Semantic.DeepEqual(reflect.ValueOf(obj).Elem().FieldByName("Spec").Interface(),
			reflect.ValueOf(old).Elem().FieldByName("Spec").Interface())
		if _, ok := obj.(*appsv1.Deployment); ok {
			// As kube-apiserver's deployment strategy: the controller
			// copies a Deployment's annotations to its ReplicaSets.
			changed = changed || !apiequality.Semantic.DeepEqual(m.GetAnnotations(), om.GetAnnotations())
		}
		if changed {
			m.SetGeneration(om.GetGeneration() + 1)
		}
	}
}

// dropTypeDependentFields clears what svc's new type does not use, of what
// svc leaves as old had it, as kube-apiserver's service strategy does, so
// that a type changed alone (kubectl patch -p '{"spec":{"type":"ClusterIP"}}'
// on a NodePort service) is valid: the cluster IPs and IP families
// (for ExternalName), the node ports (if it adds none), the health check
// node port, the load balancer's settings and status, and the external
// traffic policy.
func dropTypeDependentFields(svc, old *corev1.Service) {
	spec, was := &svc.Spec, &old.Spec
	if was.Type != corev1.ServiceTypeExternalName && spec.Type == corev1.ServiceTypeExternalName {
		if spec.ClusterIP == was.ClusterIP && slices.Equal(spec.ClusterIPs, was.ClusterIPs) {
			spec.ClusterIP, spec.ClusterIPs = "", nil
		}
		if slices.Equal(spec.IPFamilies, was.IPFamilies) {
			spec.IPFamilies = nil
		}
		if ptr.Equal(spec.IPFamilyPolicy, was.IPFamilyPolicy) {
			spec.IPFamilyPolicy = nil
		}
	}
	if usesNodePorts(was.Type) && !usesNodePorts(spec.Type) {
		oldPorts := map[int32]bool{}
		for _, p := range was.Ports {
			oldPorts[p.NodePort] = true
		}
		if !slices.ContainsFunc(spec.Ports, func(p corev1.ServicePort) bool { return p.NodePort != 0 && !oldPorts[p.NodePort] }) {
			for i := range spec.Ports {
				spec.Ports[i].NodePort = 0
			}
		}
	}
	if usesHealthCheckNodePort(was) && !usesHealthCheckNodePort(spec) && spec.HealthCheckNodePort == was.HealthCheckNodePort {
		spec.HealthCheckNodePort = 0
	}
	if was.Type == corev1.ServiceTypeLoadBalancer && spec.Type != corev1.ServiceTypeLoadBalancer {
		if spec.AllocateLoadBalancerNodePorts != nil && ptr.Equal(spec.AllocateLoadBalancerNodePorts, was.AllocateLoadBalancerNodePorts) {
			spec.AllocateLoadBalancerNodePorts = nil
		}
		if ptr.Equal(spec.LoadBalancerClass, was.LoadBalancerClass) {
			spec.LoadBalancerClass = nil
		}
	}
	if externallyAccessible(was) && !externallyAccessible(spec) && spec.ExternalTrafficPolicy == was.ExternalTrafficPolicy {
		spec.ExternalTrafficPolicy = ""
	}
	if spec.Type != corev1.ServiceTypeLoadBalancer {
		svc.Status.LoadBalancer = corev1.LoadBalancerStatus{}
	}
}

func usesNodePorts(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

func usesHealthCheckNodePort(s *corev1.ServiceSpec) bool {
	return s.Type == corev1.ServiceTypeLoadBalancer && s.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

func externallyAccessible(s *corev1.ServiceSpec) bool {
	return usesNodePorts(s.Type) || (s.Type == corev1.ServiceTypeClusterIP && len(s.ExternalIPs) > 0)
}

// keepServiceAllocations gives svc, which replaces old, the cluster IPs,
// node ports and health check node port of old that it leaves unset, as
// kube-apiserver's service registry does (patchAllocatedValues), so that
// the manifest a service was created from replaces it again. A port's
// node port is found by the port's name, unless svc gives it to another
// port.
func keepServiceAllocations(svc, old *corev1.Service) {
	spec, was := &svc.Spec, &old.Spec
	if spec.Type != corev1.ServiceTypeExternalName && was.Type != corev1.ServiceTypeExternalName {
		if spec.ClusterIP == "" {
			spec.ClusterIP = was.ClusterIP
		}
		if len(spec.ClusterIPs) == 0 {
			spec.ClusterIPs = slices.Clone(was.ClusterIPs)
		}
	}
	if usesNodePorts(spec.Type) && usesNodePorts(was.Type) {
		given := map[int32]bool{}
		for _, p := range spec.Ports {
			given[p.NodePort] = p.NodePort != 0
		}
		byName := map[string]int32{}
		for _, p := range was.Ports {
			byName[p.Name] = p.NodePort
		}
		for i := range spec.Ports {
			if p := &spec.Ports[i]; p.NodePort == 0 && !given[byName[p.Name]] {
				p.NodePort = byName[p.Name]
			}
		}
	}
	if usesHealthCheckNodePort(spec) && usesHealthCheckNodePort(was) && spec.HealthCheckNodePort == 0 {
		spec.HealthCheckNodePort = was.HealthCheckNodePort
	}
}

// defaults fills in what kube-apiserver defaults on every create and
// update (when it decodes), and on a pod itself, not its subresources, the
// tolerations of its DefaultTolerationSeconds admission.
func (s *Server) defaults(info *reqInfo, obj runtime.Object) {
	validation.Default(obj)
	if pod, ok := obj.(*corev1.Pod); ok && info.subresource == "" {
		validation.DefaultTolerations(pod, s.cfg.DefaultTolerationSeconds)
	}
}

func setField(obj runtime.Object, name string, v reflect.Value) {
	f := reflect.ValueOf(obj).Elem().FieldByName(name)
	if f.IsValid() {
		f.Set(v)
	}
}

func fieldType(obj runtime.Object, name string) reflect.Type {
	f, _ := reflect.TypeOf(obj).Elem().FieldByName(name)
	return f.Type
}

// qosClass computes a pod's QoS class as Kubernetes does for the common
// cases: no requests or limits is BestEffort; limits equal to requests for
// cpu and memory in every container is Guaranteed; anything else Burstable.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	any, guaranteed := false, true
	for _, c := range spec.Containers {
		if len(c.Resources.Requests)+len(c.Resources.Limits) > 0 {
			any = true
		}
		for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			l, ok := c.Resources.Limits[n]
			if !ok {
				guaranteed = false
				continue
			}
			if rq, ok := c.Resources.Requests[n]; ok && rq.Cmp(l) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
