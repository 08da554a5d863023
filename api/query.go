package api

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// Why queryParam finds a parameter unusable. Each caller answers both with the code an invalid
// value of that parameter gets.
var (
	errUndecodable = errors.New("query value cannot be percent-decoded")
	errRepeated    = errors.New("query parameter given more than once")
)

// queryParam returns the value of the query parameter name and whether it is present; err is
// errRepeated when the name is given more than once (with any values, however the name is
// encoded) and errUndecodable when its value cannot be percent-decoded. Echo's QueryParam drops
// a pair it cannot decode and keeps the first of repeated ones, so that ?page=%zz would mean no
// page at all and ?type=a&type=b type a alone; here both are present and refused. A pair whose
// name cannot be decoded names no parameter and is ignored.
func queryParam(c echo.Context, name string) (value string, present bool, err error) {
	for _, pair := range strings.Split(c.Request().URL.RawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if key, kerr := url.QueryUnescape(k); kerr != nil || key != name {
			continue
		}
		if present {
			return "", true, errRepeated
		}
		present = true
		if value, err = url.QueryUnescape(v); err != nil {
			value, err = "", errUndecodable
		}
	}
	return value, present, err
}

// paramType is INVALID_FIELD_TYPE for the query parameter name, whose value must be of type
// typ; when queryParam found it repeated (why), the message says it may be given once.
func paramType(name, typ string, why error) error {
	if errors.Is(why, errRepeated) {
		typ += ", given once"
	}
	return registry.E(registry.CodeInvalidFieldType, name, typ)
}

// page reads ?page= and ?limit= (defaults 1 and 20). Their codes' messages are the reference's
// and have no room to say that a parameter was repeated.
func page(c echo.Context) (registry.Page, error) {
	pg := registry.Page{Page: 1, Limit: 20}
	if v, present, err := queryParam(c, "page"); present {
		n, nerr := strconv.Atoi(v)
		if err != nil || nerr != nil || n < 1 {
			return pg, registry.E(registry.CodeInvalidPage)
		}
		pg.Page = n
	}
	if v, present, err := queryParam(c, "limit"); present {
		n, nerr := strconv.Atoi(v)
		if err != nil || nerr != nil || n < 1 || n > 100 {
			return pg, registry.E(registry.CodeInvalidLimit)
		}
		pg.Limit = n
	}
	return pg, nil
}

// statusFilter reads ?status=, which must be one of allowed (or absent, or empty):
// INVALID_FIELD_TYPE naming the allowed values otherwise.
func statusFilter(c echo.Context, allowed []string) (string, error) {
	v, present, err := queryParam(c, "status")
	if !present || err == nil && v == "" {
		return "", nil
	}
	if err != nil || !containsString(allowed, v) {
		return "", paramType("status", strings.Join(allowed, "|"), err)
	}
	return v, nil
}
