package api_test

import (
	"net/http"
	"testing"
	"time"
)

func TestGetSecret(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	created := e.createWebhook(t, key)
	d := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+created["id"].(string)+"/secret", key, nil), http.StatusOK)
	assertFields(t, d, "secret", "previousSecret", "previousSecretExpiresAt", "previousSecrets")
	if d["secret"] != created["secret"] || d["previousSecret"] != nil || d["previousSecretExpiresAt"] != nil {
		t.Errorf("secret = %v, want the created secret and no previous one", d)
	}
}

func TestRotateSecret(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	tests := []struct {
		name  string
		body  any
		grace time.Duration // -1: no previous secret
	}{
		{"no body: default grace of one day", nil, 24 * time.Hour},
		{"empty object: default grace", map[string]any{}, 24 * time.Hour},
		{"null grace: default", map[string]any{"gracePeriodSeconds": nil}, 24 * time.Hour},
		{"zero grace: the old secret stops at once", map[string]any{"gracePeriodSeconds": 0}, -1},
		{"one hour", map[string]any{"gracePeriodSeconds": 3600}, time.Hour},
		{"the maximum, 604800", map[string]any{"gracePeriodSeconds": 604800}, 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := e.createWebhook(t, key)
			path := "/api/v1/webhooks/" + created["id"].(string)
			before := time.Now().Add(-time.Second)
			rot := data(t, e.do(t, http.MethodPost, path+"/rotate-secret", key, tt.body), http.StatusOK)
			after := time.Now().Add(time.Second)
			got := data(t, e.do(t, http.MethodGet, path+"/secret", key, nil), http.StatusOK)
			for _, d := range []map[string]any{rot, got} {
				assertFields(t, d, "secret", "previousSecret", "previousSecretExpiresAt", "previousSecrets")
				if s := assertSecret(t, d["secret"]); s == created["secret"] {
					t.Errorf("secret not rotated")
				}
				if tt.grace < 0 {
					if d["previousSecret"] != nil || d["previousSecretExpiresAt"] != nil {
						t.Errorf("previous secret shown after a zero grace: %v", d)
					}
					continue
				}
				if d["previousSecret"] != created["secret"] {
					t.Errorf("previousSecret = %v, want the old secret", d["previousSecret"])
				}
				exp := parseTime(t, d["previousSecretExpiresAt"])
				if exp.Before(before.Add(tt.grace)) || exp.After(after.Add(tt.grace)) {
					t.Errorf("previousSecretExpiresAt = %v, want about now + %v", exp, tt.grace)
				}
			}
			if rot["secret"] != got["secret"] {
				t.Errorf("rotate answered %v, GET secret shows %v", rot["secret"], got["secret"])
			}
		})
	}
	t.Run("a second rotation keeps every older secret signing", func(t *testing.T) {
		created := e.createWebhook(t, key)
		path := "/api/v1/webhooks/" + created["id"].(string)
		first := data(t, e.do(t, http.MethodPost, path+"/rotate-secret", key, map[string]any{"gracePeriodSeconds": 7200}), http.StatusOK)
		second := data(t, e.do(t, http.MethodPost, path+"/rotate-secret", key, map[string]any{"gracePeriodSeconds": 60}), http.StatusOK)
		got := data(t, e.do(t, http.MethodGet, path+"/secret", key, nil), http.StatusOK)
		for _, d := range []map[string]any{second, got} {
			if d["previousSecret"] != first["secret"] || d["secret"] == first["secret"] {
				t.Errorf("previousSecret is not the first rotation's secret")
			}
			prev, _ := d["previousSecrets"].([]any)
			if len(prev) != 2 {
				t.Fatalf("previousSecrets has %d entries, want 2", len(prev))
			}
			newest, oldest := prev[0].(map[string]any), prev[1].(map[string]any)
			if newest["secret"] != first["secret"] || oldest["secret"] != created["secret"] {
				t.Errorf("previousSecrets are not the first rotation's and the created secret, newest first")
			}
			if d := parseTime(t, oldest["expiresAt"]).Sub(parseTime(t, newest["expiresAt"])); d < 7000*time.Second {
				t.Errorf("the created secret's grace ends %v after the first rotation's, want about 2h-60s", d)
			}
		}
	})

	const rangeMsg = "Field gracePeriodSeconds must be of type integer between 0 and 604800"
	const typeMsg = "Field gracePeriodSeconds must be of type integer"
	invalid := []struct {
		name string
		body any
		msg  string
	}{
		{"604801", map[string]any{"gracePeriodSeconds": 604801}, rangeMsg},
		{"negative", map[string]any{"gracePeriodSeconds": -1}, rangeMsg},
		{"string", map[string]any{"gracePeriodSeconds": "abc"}, typeMsg},
		{"numeric string", map[string]any{"gracePeriodSeconds": "60"}, typeMsg},
		{"fraction", map[string]any{"gracePeriodSeconds": 60.5}, typeMsg},
		{"bool", map[string]any{"gracePeriodSeconds": true}, typeMsg},
		{"huge", `{"gracePeriodSeconds": 99999999999999999999999}`, typeMsg},
	}
	created := e.createWebhook(t, key)
	path := "/api/v1/webhooks/" + created["id"].(string)
	for _, tt := range invalid {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, path+"/rotate-secret", key, tt.body)
			assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", tt.msg)
		})
	}
	got := data(t, e.do(t, http.MethodGet, path+"/secret", key, nil), http.StatusOK)
	if got["secret"] != created["secret"] || got["previousSecret"] != nil {
		t.Errorf("a rejected rotation changed the secret: %v", got)
	}
}
