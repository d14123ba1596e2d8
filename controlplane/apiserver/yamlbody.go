package apiserver

import (
	"errors"
	"fmt"

	goyaml "go.yaml.in/yaml/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"
)

// maxYAMLExpansion bounds the JSON a YAML request body may turn into.
// Without aliases the JSON is within a small factor of the YAML (itself at
// most MaxBodyBytes); beyond that only aliases can take it, and go-yaml's
// alias-ratio check counts nodes, not bytes: a 1 MiB string aliased a few
// thousand times passes it and would expand to gigabytes.
const maxYAMLExpansion = 4 * MaxBodyBytes

// yamlToJSON converts a YAML request body to JSON, refusing bodies whose
// aliases expand past maxYAMLExpansion before building the JSON. The JSON
// keeps the last of a key given twice in one mapping; strictErrs has one
// error for each such key, for the request's fieldValidation to answer
// as kube-apiserver's strict YAML decoding does (kubectl apply
// --server-side asks for Strict).
func yamlToJSON(body []byte) (j []byte, strictErrs []error, err error) {
	var v any
	if err := goyaml.UnmarshalStrict(body, &v); err != nil {
		var dups *goyaml.TypeError
		if !errors.As(err, &dups) {
			return nil, nil, badRequest("invalid YAML: %v", err)
		}
		for _, e := range dups.Errors {
			strictErrs = append(strictErrs, errors.New(e))
		}
		v = nil
		if err := goyaml.Unmarshal(body, &v); err != nil {
			return nil, nil, badRequest("invalid YAML: %v", err)
		}
	}
	if jsonBudget(v, maxYAMLExpansion) < 0 {
		return nil, nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the YAML body expands to more than %d bytes of JSON", maxYAMLExpansion))
	}
	if j, err = yaml.YAMLToJSON(body); err != nil {
		return nil, nil, badRequest("invalid YAML: %v", err)
	}
	return j, strictErrs, nil
}

// jsonBudget subtracts the approximate JSON size of a decoded YAML value
// from budget and returns what is left, stopping early once it is negative.
// Aliased values are shared in v, so the walk, not the memory, meets each
// repetition; it visits at most budget nodes.
func jsonBudget(v any, budget int64) int64 {
	switch x := v.(type) {
	case string:
		return budget - int64(len(x)) - 2
	case []any:
		budget -= 2
		for _, e := range x {
			if budget < 0 {
				return budget
			}
			budget = jsonBudget(e, budget-1)
		}
		return budget
	case map[any]any:
		budget -= 2
		for k, e := range x {
			if budget < 0 {
				return budget
			}
			budget = jsonBudget(e, jsonBudget(k, budget-2))
		}
		return budget
	}
	return budget - 8 // numbers, booleans, null, timestamps
}
