package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// object is a JSON object body, read strictly (checkStrict), whose fields are checked one by
// one, so that a missing field and a field of the wrong type each get their own error code.
type object struct {
	fields map[string]json.RawMessage
	names  []string // in document order
	raw    []byte   // the whole object as received
	// path is where the object sits in the body ("events[3]." for an item of a batch, ""
	// for the body itself): errors name its fields with it.
	path string
}

// at returns the object as found at path in the body.
func (o object) at(path string) object {
	o.path = path
	return o
}

// readObject decodes the body strictly as one JSON object: INVALID_JSON for anything else (an
// empty body, an array, trailing data, a name twice, a number outside float64),
// PAYLOAD_TOO_LARGE past the body limit.
func readObject(c echo.Context) (object, error) {
	b, err := readBody(c)
	if err != nil {
		return object{}, err
	}
	return parseObject(b)
}

// readOptionalObject is readObject for routes whose body may be left out: an empty body reads
// as {}.
func readOptionalObject(c echo.Context) (object, error) {
	b, err := readBody(c)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return object{fields: map[string]json.RawMessage{}}, err
	}
	return parseObject(b)
}

func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, registry.E(registry.CodePayloadTooLarge)
		}
		return nil, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	return b, nil
}

func parseObject(b []byte) (object, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return object{}, registry.E(registry.CodeInvalidJSON)
	}
	fields, names, err := checkStrict(b)
	if err != nil {
		return object{}, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	return object{fields: fields, names: names, raw: b}, nil
}

// nestedObject reads an object found inside a body that readObject already checked as a
// whole: the strict walk is not repeated.
func nestedObject(b []byte) (object, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return object{}, registry.E(registry.CodeInvalidJSON)
	}
	fields, names, err := checkedFields(b)
	if err != nil {
		return object{}, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	return object{fields: fields, names: names, raw: b}, nil
}

// only answers UNKNOWN_FIELD naming the first field, in document order, that is not one of
// allowed: read-only and misspelt fields are refused rather than silently ignored.
func (o object) only(allowed ...string) error {
	for _, n := range o.names {
		if !containsString(allowed, n) {
			return registry.E(registry.CodeUnknownField, o.path+safeName(n))
		}
	}
	return nil
}

// isNull reports whether a JSON value is null.
func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// has reports whether the field is present and not null. A field given as null is a field left
// out, as in the first version's contract, on which typed clients that send every field rely:
// MISSING_REQUIRED_FIELD when it is required, nothing changed when it is optional. The one
// field whose null means something, rateLimitPerSecond (no limit), reads it itself (rateLimit).
func (o object) has(field string) bool {
	v, ok := o.fields[field]
	return ok && !isNull(v)
}

// decode reads the field into v and reports whether it was there (has): MISSING_REQUIRED_FIELD
// when a required field is not, INVALID_FIELD_TYPE naming typ when the value is not of that type.
func (o object) decode(field, typ string, required bool, v any) (bool, error) {
	if !o.has(field) {
		if required {
			return false, registry.E(registry.CodeMissingRequiredField, o.path+field)
		}
		return false, nil
	}
	if json.Unmarshal(o.fields[field], v) != nil {
		return false, registry.E(registry.CodeInvalidFieldType, o.path+field, typ)
	}
	return true, nil
}

// nested reads a required field that is an object, as found at o.path+field+".".
func (o object) nested(field string) (object, error) {
	raw := o.fields[field]
	if !o.has(field) {
		return object{}, registry.E(registry.CodeMissingRequiredField, o.path+field)
	}
	n, err := nestedObject(raw)
	if err != nil {
		return object{}, registry.E(registry.CodeInvalidFieldType, o.path+field, "object")
	}
	return n.at(o.path + field + "."), nil
}

func (o object) str(field string, required bool) (*string, error) {
	// The body is valid JSON, so a string without escapes is what its quotes hold.
	if raw := o.fields[field]; len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		s := string(raw[1 : len(raw)-1])
		return &s, nil
	}
	var s string
	ok, err := o.decode(field, "string", required, &s)
	if !ok {
		return nil, err
	}
	return &s, nil
}

// text is str for a string of at most max characters: INVALID_FIELD_TYPE naming the limit.
func (o object) text(field string, max int) (*string, error) {
	s, err := o.str(field, false)
	if s != nil && utf8.RuneCountInString(*s) > max {
		return nil, registry.E(registry.CodeInvalidFieldType, o.path+field, "string of at most "+strconv.Itoa(max)+" characters")
	}
	return s, err
}

// array reads a field that is an array, each element as found in the body.
func (o object) array(field string, required bool) ([]json.RawMessage, bool, error) {
	if !o.has(field) {
		if required {
			return nil, false, registry.E(registry.CodeMissingRequiredField, o.path+field)
		}
		return nil, false, nil
	}
	raw := o.fields[field]
	if raw[0] != '[' {
		return nil, false, registry.E(registry.CodeInvalidFieldType, o.path+field, "array")
	}
	items, err := checkedElements(raw)
	if err != nil {
		return nil, false, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	return items, true, nil
}

func (o object) strings(field string, required bool) ([]string, bool, error) {
	raw, ok, err := o.array(field, required)
	if !ok {
		return nil, false, err
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		if isNull(r) || json.Unmarshal(r, &out[i]) != nil {
			return nil, false, registry.E(registry.CodeInvalidFieldType, o.path+field+"["+strconv.Itoa(i)+"]", "string")
		}
	}
	return out, true, nil
}

func (o object) stringMap(field string) (map[string]string, bool, error) {
	var raw map[string]json.RawMessage
	ok, err := o.decode(field, "object", false, &raw)
	if !ok {
		return nil, false, err
	}
	out := make(map[string]string, len(raw))
	for k, r := range raw {
		var v string
		if isNull(r) || json.Unmarshal(r, &v) != nil {
			return nil, false, registry.E(registry.CodeInvalidFieldType, o.path+field+"."+k, "string")
		}
		out[k] = v
	}
	return out, true, nil
}

func (o object) boolean(field string) (*bool, error) {
	var b bool
	ok, err := o.decode(field, "boolean", false, &b)
	if !ok {
		return nil, err
	}
	return &b, nil
}

func (o object) integer(field string) (*int64, error) {
	var n json.Number
	ok, err := o.decode(field, "integer", false, &n)
	if !ok {
		return nil, err
	}
	// json.Number also takes a quoted number ("60"), which is a string, not an integer.
	quoted := bytes.HasPrefix(bytes.TrimSpace(o.fields[field]), []byte(`"`))
	v, perr := strconv.ParseInt(n.String(), 10, 64)
	if perr != nil || quoted {
		return nil, registry.E(registry.CodeInvalidFieldType, o.path+field, "integer")
	}
	return &v, nil
}

// Pagination is the list envelope's paging block.
type Pagination struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	Total      int `json:"total"`
	TotalPages int `json:"totalPages"`
}

// success is the success envelope of one object.
type success struct {
	Success bool `json:"success"`
	Data    any  `json:"data"`
}

func ok(c echo.Context, status int, data any) error {
	return c.JSON(status, success{Success: true, Data: data})
}

func list(c echo.Context, data any, pg registry.Page, total int) error {
	pages := (total + pg.Limit - 1) / pg.Limit
	return c.JSON(http.StatusOK, map[string]any{"success": true, "data": data,
		"pagination": Pagination{Page: pg.Page, Limit: pg.Limit, Total: total, TotalPages: pages}})
}
