package api

import "github.com/cert-ix/webhookd/registry"

// ValidateURL exposes validateURL to the external tests and fuzz targets.
var ValidateURL = validateURL

// ErrorSpec returns the HTTP status and message template of an error code from the one
// error table, so that tests can check any envelope against it.
func ErrorSpec(code string) (status int, template string, ok bool) {
	s, ok := errorTable[registry.Code(code)]
	return s.Status, s.Message, ok
}
