package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPublicURLSetting: WEBHOOKD_PUBLIC_URL must be a bare origin, and portal links point at it.
func TestPublicURLSetting(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
	}{
		{"", true},
		{"https://webhooks.example.com", true},
		{"https://webhooks.example.com/", true},
		{"http://127.0.0.1:8080", true},
		{"webhooks.example.com", false},
		{"ftp://webhooks.example.com", false},
		{"https://webhooks.example.com/portal", false},
		{"https://webhooks.example.com/?a=b", false},
		{"https://user:pw@webhooks.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			env := map[string]string{"WEBHOOKD_PUBLIC_URL": tt.value}
			_, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard)
			if (err == nil) != tt.ok {
				t.Errorf("parseServe with WEBHOOKD_PUBLIC_URL=%q: err = %v, want ok %v", tt.value, err, tt.ok)
			}
		})
	}
	t.Run("links point at it", func(t *testing.T) {
		st := newStack(t, map[string]string{"WEBHOOKD_PUBLIC_URL": "https://webhooks.example.com/"})
		svc := st.start(t)
		_, key := st.tenant(t)
		var s struct{ URL string }
		svc.call(t, key, http.MethodPost, "/api/v1/portal/sessions", nil).want(t, http.StatusCreated, &s)
		if !strings.HasPrefix(s.URL, "https://webhooks.example.com/portal#cix_ps_") {
			t.Errorf("url = %q, want it on https://webhooks.example.com", s.URL)
		}
	})
}
