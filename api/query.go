package api

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// queryParam returns the first value of the query parameter name, whether it is present, and
// whether it could be decoded. Echo's QueryParam drops a pair it cannot decode, so ?page=%zz
// would silently mean no page at all; here it is present and invalid.
func queryParam(c echo.Context, name string) (value string, present, valid bool) {
	for _, pair := range strings.Split(c.Request().URL.RawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != name {
			continue
		}
		value, err := url.QueryUnescape(v)
		return value, true, err == nil
	}
	return "", false, true
}

// page reads ?page= and ?limit= (defaults 1 and 20).
func page(c echo.Context) (registry.Page, error) {
	pg := registry.Page{Page: 1, Limit: 20}
	if v, present, valid := queryParam(c, "page"); present {
		n, err := strconv.Atoi(v)
		if !valid || err != nil || n < 1 {
			return pg, registry.E(registry.CodeInvalidPage)
		}
		pg.Page = n
	}
	if v, present, valid := queryParam(c, "limit"); present {
		n, err := strconv.Atoi(v)
		if !valid || err != nil || n < 1 || n > 100 {
			return pg, registry.E(registry.CodeInvalidLimit)
		}
		pg.Limit = n
	}
	return pg, nil
}

// statusFilter reads ?status=, which must be one of allowed (or absent): INVALID_FIELD_TYPE
// naming the allowed values otherwise.
func statusFilter(c echo.Context, allowed []string) (string, error) {
	v, present, valid := queryParam(c, "status")
	if !present || valid && v == "" {
		return "", nil
	}
	if !valid || !containsString(allowed, v) {
		return "", registry.E(registry.CodeInvalidFieldType, "status", strings.Join(allowed, "|"))
	}
	return v, nil
}
