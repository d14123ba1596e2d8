package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

// OpenAPI v2 (Swagger 2.0) is what client-go's discovery OpenAPISchema()
// reads, in protobuf: tools built on it (Argo CD's cluster cache among
// them) fail without it. It holds the same schemas and operations as the
// v3 documents, in one document, converted on the first request.

// v2ProtoType is the media type of the protobuf encoding as
// kube-apiserver answers it; clients ask for it with "@v1.0" in place of
// ".v1.0", which is no valid media type.
const v2ProtoType = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

type swagger struct {
	Swagger     string                     `json:"swagger"`
	Info        info                       `json:"info"`
	Paths       map[string]*v2PathItem     `json:"paths"`
	Definitions map[string]json.RawMessage `json:"definitions"`
}

type v2PathItem struct {
	Get        *v2Operation   `json:"get,omitempty"`
	Put        *v2Operation   `json:"put,omitempty"`
	Post       *v2Operation   `json:"post,omitempty"`
	Delete     *v2Operation   `json:"delete,omitempty"`
	Patch      *v2Operation   `json:"patch,omitempty"`
	Parameters []*v2Parameter `json:"parameters,omitempty"`
}

type v2Operation struct {
	Description string                 `json:"description,omitempty"`
	OperationID string                 `json:"operationId"`
	Tags        []string               `json:"tags,omitempty"`
	Consumes    []string               `json:"consumes,omitempty"`
	Produces    []string               `json:"produces,omitempty"`
	Schemes     []string               `json:"schemes"`
	Parameters  []*v2Parameter         `json:"parameters,omitempty"`
	Responses   map[string]*v2Response `json:"responses"`
	Action      string                 `json:"x-kubernetes-action,omitempty"`
	GVK         *gvk                   `json:"x-kubernetes-group-version-kind,omitempty"`
}

// v2Parameter is a query or path parameter (Type) or the body (Schema).
type v2Parameter struct {
	Name        string          `json:"name"`
	In          string          `json:"in"`
	Description string          `json:"description,omitempty"`
	Required    bool            `json:"required,omitempty"`
	Type        string          `json:"type,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
}

type v2Response struct {
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema,omitempty"`
}

// v2Doc is the v2 document, built once: JSON and protobuf.
type v2Doc struct {
	once        sync.Once
	json, proto []byte
	hash        string
	err         error
}

func (d *Documents) v2() (*v2Doc, error) {
	d.swagger.once.Do(func() {
		d.swagger.json, d.swagger.proto, d.swagger.err = d.buildV2()
		d.swagger.hash = hashOf(d.swagger.json)
		// Parsing the document takes some 30 MB that would otherwise stay
		// with the process until the runtime gives it back, minutes later.
		debug.FreeOSMemory()
	})
	return &d.swagger, d.swagger.err
}

// buildV2 converts the v3 documents: their components become the
// definitions (the same names, $refs under #/definitions/) and their
// operations take v2's shape (a body parameter, consumes and produces).
func (d *Documents) buildV2() (jsonDoc, protoDoc []byte, err error) {
	out := swagger{Swagger: "2.0", Info: info{Title: "wasmfleet", Version: "v2"},
		Paths: map[string]*v2PathItem{}, Definitions: map[string]json.RawMessage{}}
	for _, key := range slices.Sorted(maps.Keys(d.docs)) {
		var doc document
		if err := json.Unmarshal(d.docs[key].body, &doc); err != nil {
			return nil, nil, fmt.Errorf("openapi v2: decode %s: %w", key, err)
		}
		for name, s := range doc.Components.Schemas {
			if s.OneOf != nil {
				// OpenAPI 2.0 has no oneOf: Quantity and IntOrString are
				// strings of their format, as in kube-apiserver's.
				flat := *s
				flat.OneOf, flat.Type = nil, "string"
				s = &flat
			}
			if out.Definitions[name], err = v2Schema(s); err != nil {
				return nil, nil, err
			}
		}
		for path, item := range doc.Paths {
			v2item := &v2PathItem{Parameters: v2Params(item.Parameters)}
			for _, op := range []struct {
				in  *operation
				out **v2Operation
			}{{item.Get, &v2item.Get}, {item.Put, &v2item.Put}, {item.Post, &v2item.Post}, {item.Delete, &v2item.Delete}, {item.Patch, &v2item.Patch}} {
				if op.in != nil {
					if *op.out, err = v2Op(op.in); err != nil {
						return nil, nil, fmt.Errorf("openapi v2: %s: %w", path, err)
					}
				}
			}
			out.Paths[path] = v2item
		}
	}
	if jsonDoc, err = marshal(out); err != nil {
		return nil, nil, fmt.Errorf("openapi v2: encode: %w", err)
	}
	parsed, err := openapi_v2.ParseDocument(jsonDoc)
	if err != nil {
		return nil, nil, fmt.Errorf("openapi v2: the document does not parse as OpenAPI 2.0: %w", err)
	}
	if protoDoc, err = proto.Marshal(parsed); err != nil {
		return nil, nil, fmt.Errorf("openapi v2: encode protobuf: %w", err)
	}
	return jsonDoc, protoDoc, nil
}

// v2Schema is s as JSON with its $refs pointing into #/definitions/.
func v2Schema(s *schema) (json.RawMessage, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(b, []byte(`"$ref":"`+refPrefix), []byte(`"$ref":"#/definitions/`)), nil
}

// v2Params are query and path parameters, typed in place of a schema.
func v2Params(ps []*parameter) []*v2Parameter {
	var out []*v2Parameter
	for _, p := range ps {
		v := &v2Parameter{Name: p.Name, In: p.In, Description: p.Description, Required: p.Required}
		if p.Schema != nil {
			v.Type = p.Schema.Type
		}
		out = append(out, v)
	}
	return out
}

// v2Op is op with its request body as a body parameter and the media
// types of its body and answers as consumes and produces.
func v2Op(op *operation) (*v2Operation, error) {
	out := &v2Operation{Description: op.Description, OperationID: op.OperationID, Tags: op.Tags, Schemes: []string{"https"},
		Parameters: v2Params(op.Parameters), Responses: map[string]*v2Response{}, Action: op.Action, GVK: op.GVK}
	var err error
	if rb := op.RequestBody; rb != nil {
		out.Consumes = slices.Sorted(maps.Keys(rb.Content))
		body := &v2Parameter{Name: "body", In: "body", Required: rb.Required}
		if body.Schema, err = v2Schema(rb.Content[out.Consumes[0]].Schema); err != nil {
			return nil, err
		}
		out.Parameters = append([]*v2Parameter{body}, out.Parameters...)
	}
	produces := map[string]bool{}
	for code, r := range op.Responses {
		v := &v2Response{Description: r.Description}
		for _, ct := range slices.Sorted(maps.Keys(r.Content)) {
			produces[ct] = true
			if v.Schema == nil && r.Content[ct].Schema != nil {
				if v.Schema, err = v2Schema(r.Content[ct].Schema); err != nil {
					return nil, err
				}
			}
		}
		out.Responses[code] = v
	}
	out.Produces = slices.Sorted(maps.Keys(produces))
	return out, nil
}

// serveV2 serves /openapi/v2 in protobuf when the client asks for it
// first, else in JSON, with an ETag.
func (d *Documents) serveV2(w http.ResponseWriter, r *http.Request) {
	doc, err := d.v2()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	accept := r.Header.Get("Accept")
	body, ct := doc.json, "application/json"
	if first, _, _ := strings.Cut(accept, ","); strings.Contains(first, "protobuf") {
		body, ct = doc.proto, v2ProtoType
	} else if !acceptsJSON(accept) {
		http.Error(w, "application/json and "+v2ProtoType+" are served", http.StatusNotAcceptable)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Etag", strconv.Quote(doc.hash+"-"+strconv.Itoa(len(body))))
	w.Header().Add("Vary", "Accept")
	http.ServeContent(w, r, "", d.modTime, bytes.NewReader(body))
}
