package main

import (
	"net/http"
	"testing"
)

// TestServeWithoutExtraCA: `serve` on an operator's Redis with no WEBHOOKD_EXTRA_CA_FILE (the
// production setting: endpoints present publicly trusted certificates) starts and answers.
func TestServeWithoutExtraCA(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_EXTRA_CA_FILE": ""})
	svc := st.start(t)
	r := svc.call(t, "", http.MethodGet, "/healthz", nil)
	if r.Status != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", r.Status)
	}
}
