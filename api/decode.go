package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// object is a decoded JSON object body whose fields are checked one by one, so that a missing
// field and a field of the wrong type each get their own error code.
type object map[string]json.RawMessage

// readObject decodes the body as one JSON object: INVALID_JSON for anything else (an empty
// body, an array, trailing data), PAYLOAD_TOO_LARGE past the body limit.
func readObject(c echo.Context) (object, error) {
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, registry.E(registry.CodePayloadTooLarge)
		}
		return nil, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	return parseObject(b)
}

func parseObject(b []byte) (object, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, registry.E(registry.CodeInvalidJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var o object
	if err := dec.Decode(&o); err != nil {
		return nil, registry.Wrap(registry.CodeInvalidJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, registry.E(registry.CodeInvalidJSON)
	}
	if o == nil {
		o = object{}
	}
	return o, nil
}

// has reports whether the field is present and not null.
func (o object) has(field string) bool {
	v, ok := o[field]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func (o object) decode(field, typ string, required bool, v any) (bool, error) {
	if !o.has(field) {
		if required {
			return false, registry.E(registry.CodeMissingRequiredField, field)
		}
		return false, nil
	}
	if err := json.Unmarshal(o[field], v); err != nil {
		return false, registry.E(registry.CodeInvalidFieldType, field, typ)
	}
	return true, nil
}

func (o object) str(field string, required bool) (*string, error) {
	var s string
	ok, err := o.decode(field, "string", required, &s)
	if !ok {
		return nil, err
	}
	return &s, nil
}

func (o object) strings(field string, required bool) ([]string, bool, error) {
	var raw []json.RawMessage
	ok, err := o.decode(field, "array", required, &raw)
	if !ok {
		return nil, false, err
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil || bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
			return nil, false, registry.E(registry.CodeInvalidFieldType, field+"["+strconv.Itoa(i)+"]", "string")
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
		if err := json.Unmarshal(r, &v); err != nil || bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
			return nil, false, registry.E(registry.CodeInvalidFieldType, field+"."+k, "string")
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
	quoted := bytes.HasPrefix(bytes.TrimSpace(o[field]), []byte(`"`))
	v, perr := strconv.ParseInt(n.String(), 10, 64)
	if perr != nil || quoted {
		return nil, registry.E(registry.CodeInvalidFieldType, field, "integer")
	}
	return &v, nil
}

// page reads ?page= and ?limit= (defaults 1 and 20).
func page(c echo.Context) (registry.Page, error) {
	pg := registry.Page{Page: 1, Limit: 20}
	if v := c.QueryParam("page"); v != "" || c.QueryParams().Has("page") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return pg, registry.E(registry.CodeInvalidPage)
		}
		pg.Page = n
	}
	if v := c.QueryParam("limit"); v != "" || c.QueryParams().Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return pg, registry.E(registry.CodeInvalidLimit)
		}
		pg.Limit = n
	}
	return pg, nil
}

// Pagination is the list envelope's paging block.
type Pagination struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	Total      int `json:"total"`
	TotalPages int `json:"totalPages"`
}

func ok(c echo.Context, status int, data any) error {
	return c.JSON(status, map[string]any{"success": true, "data": data})
}

func list(c echo.Context, data any, pg registry.Page, total int) error {
	pages := (total + pg.Limit - 1) / pg.Limit
	return c.JSON(http.StatusOK, map[string]any{"success": true, "data": data,
		"pagination": Pagination{Page: pg.Page, Limit: pg.Limit, Total: total, TotalPages: pages}})
}
