package dast

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// operations lists the requests a spec describes, in path order.
func operations(spec []byte) ([]request, error) {
	if len(spec) == 0 {
		return nil, nil
	}
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("the candidate's OpenAPI spec does not load: %w", err)
	}
	if doc.Paths == nil {
		return nil, nil
	}
	var out []request
	paths := doc.Paths.Map()
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, path := range keys {
		item := paths[path]
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			r := request{method: method, path: path}
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				if p == nil || p.Value == nil {
					continue
				}
				switch p.Value.In {
				case openapi3.ParameterInPath:
					r.pathParams = append(r.pathParams, p.Value.Name)
				case openapi3.ParameterInQuery:
					r.query = append(r.query, p.Value.Name)
				}
			}
			if strings.Contains(path, "{") && len(r.pathParams) == 0 {
				return nil, fmt.Errorf("the candidate's OpenAPI spec: %s %s has a templated path and no path parameters", method, path)
			}
			if rb := op.RequestBody; rb != nil && rb.Value != nil && rb.Value.Content.Get("application/json") != nil {
				r.jsonBody = true
			}
			out = append(out, r)
		}
	}
	return out, nil
}
