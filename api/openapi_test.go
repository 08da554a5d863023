package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cert-ix/webhookd/api"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The OpenAPI document is kept true by validating every response the API tests receive
// against it (checkOpenAPI is called from the harness's do), plus the two tests below.

var (
	oaOnce   sync.Once
	oaDoc    *openapi3.T
	oaRouter routers.Router
	oaErr    error
)

func openAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	oaOnce.Do(func() {
		// The portal's page is HTML: its body is checked as a string.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		oaDoc, oaErr = openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if oaErr != nil {
			return
		}
		if oaErr = oaDoc.Validate(t.Context()); oaErr != nil {
			return
		}
		oaDoc.Servers = nil // match any host: the tests listen on 127.0.0.1:<port>
		oaRouter, oaErr = gorillamux.NewRouter(oaDoc)
	})
	if oaErr != nil {
		t.Fatalf("openapi.yaml: %v", oaErr)
	}
	return oaDoc, oaRouter
}

// checkOpenAPI validates one real response against the document: status, headers and body of
// its operation, or, for a path the document does not have, the error envelope schema.
func checkOpenAPI(t *testing.T, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	doc, router := openAPI(t)
	head := req.Method == http.MethodHead
	if head {
		// HEAD is answered wherever GET is, as GET without the body.
		req = req.Clone(req.Context())
		req.Method = http.MethodGet
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		if status < 400 {
			t.Errorf("openapi: %s %s answered %d but the document has no such operation", req.Method, req.URL.Path, status)
			return
		}
		if !head {
			checkErrorSchema(t, doc, req, body)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: head},
	}
	if err := openapi3filter.ValidateResponse(t.Context(), in); err != nil {
		t.Errorf("openapi: %s %s → %d does not match the document: %v\nbody: %.400s", req.Method, req.URL.Path, status, err, body)
	}
}

func checkErrorSchema(t *testing.T, doc *openapi3.T, req *http.Request, body []byte) {
	t.Helper()
	if req.Method == http.MethodHead {
		return
	}
	v, err := decodeJSON(body)
	if err != nil {
		t.Errorf("openapi: %s %s: error body is not JSON: %.200s", req.Method, req.URL.Path, body)
		return
	}
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		t.Errorf("openapi: %s %s: error body does not match the Error schema: %v", req.Method, req.URL.Path, err)
	}
}

// TestOpenAPIDocumentsEveryRoute compares the server's routes with the document's operations.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := openAPI(t)
	e := newEnv(t)
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	served := map[string]bool{}
	for _, r := range e.srv.Echo().Routes() {
		if r.Method == "echo_route_any" || strings.Contains(r.Path, "*") || r.Method == http.MethodHead {
			continue
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	// /metrics is mounted by cmd/webhookd on the same server; its test checks it is served.
	external := map[string]bool{"GET /metrics": true}
	for _, op := range sortedKeys(served) {
		if !documented[op] {
			t.Errorf("route %s is served but not documented", op)
		}
	}
	for _, op := range sortedKeys(documented) {
		if !served[op] && !external[op] {
			t.Errorf("operation %s is documented but not served", op)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func decodeJSON(b []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeNumbers(v), nil
}

// normalizeNumbers turns json.Number into float64, the form kin-openapi's schema visitor expects.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	}
	return v
}
