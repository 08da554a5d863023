package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/api/portal"
)

// TestPortalPageHeaders: the page and its assets carry the strict policy, and only files the
// page uses are served.
func TestPortalPageHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, http.MethodGet, "/portal", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /portal = %d %s", r.status, r.header.Get("Content-Type"))
	}
	want := map[string]string{
		"Content-Security-Policy": portal.ContentSecurityPolicy,
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
	}
	for name, v := range want {
		if got := r.header.Get(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	for _, must := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self';", "style-src 'self';"} {
		if !strings.Contains(portal.ContentSecurityPolicy, must) {
			t.Errorf("the policy lacks %q", must)
		}
	}
	if strings.Contains(portal.ContentSecurityPolicy, "unsafe") {
		t.Errorf("the policy allows something unsafe: %s", portal.ContentSecurityPolicy)
	}
	r = e.do(t, http.MethodGet, "/portal", "", nil, "If-None-Match", r.header.Get("ETag"))
	if r.status != http.StatusNotModified {
		t.Errorf("GET /portal with its ETag = %d, want 304", r.status)
	}
}

func TestPortalAssets(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		path, ctype string
		status      int
	}{
		{"/portal/assets/js/app.js", "text/javascript", http.StatusOK},
		{"/portal/assets/portal.css", "text/css", http.StatusOK},
		{"/portal/assets/index.html", "application/json", http.StatusNotFound},
		{"/portal/assets/nope.js", "application/json", http.StatusNotFound},
		{"/portal/assets/../openapi.yaml", "application/json", http.StatusNotFound},
		{"/portal/assets/js/../../index.html", "application/json", http.StatusNotFound},
		{"/portal/", "application/json", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req, _ := http.NewRequestWithContext(t.Context(), method, e.base+tt.path, nil)
				res, err := e.http.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				ctype := res.Header.Get("Content-Type")
				if res.StatusCode != tt.status || method == http.MethodGet && !strings.HasPrefix(ctype, tt.ctype) {
					t.Errorf("%s %s = %d %s, want %d %s", method, tt.path, res.StatusCode, ctype, tt.status, tt.ctype)
				}
				if res.StatusCode == http.StatusNotFound && method == http.MethodGet {
					doc, _ := openAPI(t)
					checkErrorSchema(t, doc, req, body)
				}
			}
		})
	}
}
