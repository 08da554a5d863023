package api_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"
)

const encodingMsg = "Request body encoding not supported"

// TestContentEncodingRefused: the API reads bodies as sent and decodes no content coding, so a
// body with a Content-Encoding other than identity is 415 UNSUPPORTED_CONTENT_ENCODING on every
// route that takes one, whether it is really compressed or plain JSON labelled so; nothing is
// stored. The key is still checked first, then the size, as for any body.
func TestContentEncodingRefused(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	event := `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap"}}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(event))
	zw.Close()
	routes := []struct{ name, method, path, body string }{
		{"create", "POST", "/api/v1/webhooks", `{"url":"` + e.hookURL("/h") + `","events":["scan.completed"]}`},
		{"patch", "PATCH", hook, `{"description":"d"}`},
		{"rotate", "POST", hook + "/rotate-secret", `{}`},
		{"test ping", "POST", hook + "/test", `{}`},
		{"recover", "POST", hook + "/recover", `{"since":"2026-01-01T00:00:00Z"}`},
		{"publish", "POST", "/api/v1/events", event},
		{"batch", "POST", "/api/v1/events/batch", `{"events":[` + event + `]}`},
		{"portal session", "POST", "/api/v1/portal/sessions", `{}`},
	}
	for _, coding := range []string{"gzip", "deflate", "br", "x-gzip", "gzip, identity", "identity, gzip", "*"} {
		for _, rt := range routes {
			t.Run(coding+"/"+rt.name, func(t *testing.T) {
				r := e.do(t, rt.method, rt.path, key, rt.body, "Content-Encoding", coding)
				assertError(t, r, http.StatusUnsupportedMediaType, "UNSUPPORTED_CONTENT_ENCODING", encodingMsg)
				assertRateHeaders(t, r)
			})
		}
	}
	t.Run("a gzipped body", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/api/v1/events", key, gz.Bytes(), "Content-Encoding", "gzip")
		assertError(t, r, http.StatusUnsupportedMediaType, "UNSUPPORTED_CONTENT_ENCODING", encodingMsg)
	})
	t.Run("chunked", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/api/v1/events", key, strings.NewReader(event), "Content-Encoding", "gzip")
		assertError(t, r, http.StatusUnsupportedMediaType, "UNSUPPORTED_CONTENT_ENCODING", encodingMsg)
	})
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0", u["eventsPublished"])
	}
	t.Run("identity is no coding", func(t *testing.T) {
		for _, coding := range []string{"identity", "IDENTITY", " identity "} {
			data(t, e.do(t, http.MethodPost, "/api/v1/events", key, event, "Content-Encoding", coding), http.StatusAccepted)
		}
	})
	t.Run("without a body the header does not matter", func(t *testing.T) {
		data(t, e.do(t, http.MethodPost, hook+"/test", key, nil, "Content-Encoding", "gzip"), http.StatusAccepted)
		listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil, "Content-Encoding", "gzip"))
	})
	t.Run("the key first, then the size", func(t *testing.T) {
		assertError(t, e.do(t, http.MethodPost, "/api/v1/events", "", gz.Bytes(), "Content-Encoding", "gzip"),
			http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
		assertError(t, e.do(t, http.MethodPost, "/api/v1/events", "cix_sk_"+strings.Repeat("x", 40), gz.Bytes(), "Content-Encoding", "gzip"),
			http.StatusUnauthorized, "INVALID_API_KEY", "Invalid API key")
		big := strings.Repeat(" ", 300<<10)
		assertError(t, e.do(t, http.MethodPost, "/api/v1/events", key, big, "Content-Encoding", "gzip"),
			http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "Request body too large")
	})
}
