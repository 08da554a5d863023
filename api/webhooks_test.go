package api_test

import (
	"encoding/base64"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/google/uuid"
)

// endpointFields are the fields of an endpoint in every response (SPEC.md).
var endpointFields = []string{"id", "url", "events", "description", "headers", "enabled", "status",
	"disabledReason", "disabledAt", "consecutiveFailures", "probation", "degraded", "effectiveConcurrency", "maxConcurrency",
	"rateLimitPerSecond", "ordering", "createdAt", "updatedAt"}

func assertFields(t *testing.T, m map[string]any, want ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if !reflect.DeepEqual(got, w) {
		t.Errorf("fields = %v, want %v", got, w)
	}
}

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("time %v is not RFC 3339: %v", v, err)
	}
	return ts
}

// assertSecret checks the format whsec_ + base64 of 32 bytes.
func assertSecret(t *testing.T, v any) string {
	t.Helper()
	s, _ := v.(string)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if !strings.HasPrefix(s, "whsec_") || err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not whsec_ + base64 of 32 bytes", s)
	}
	return s
}

func TestCreateWebhook(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	url := e.hookURL("/hooks/cert-ix?team=sec")
	r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": url,
		"events":      []string{"scan.completed", "scan.failed", "scan.completed", "scan.failed"},
		"description": "Production SIEM", "headers": map[string]string{"X-Team": "sec"}})
	d := data(t, r, http.StatusCreated)
	assertFields(t, d, append(endpointFields, "secret")...)
	if _, err := uuid.Parse(d["id"].(string)); err != nil {
		t.Errorf("id %v is not a UUID", d["id"])
	}
	want := map[string]any{"url": url, "events": []any{"scan.completed", "scan.failed"}, "description": "Production SIEM",
		"headers": map[string]any{"X-Team": "sec"}, "enabled": true, "status": "active", "disabledReason": nil,
		"disabledAt": nil, "consecutiveFailures": float64(0)}
	for k, w := range want {
		if !reflect.DeepEqual(d[k], w) {
			t.Errorf("%s = %#v, want %#v", k, d[k], w)
		}
	}
	if created, updated := parseTime(t, d["createdAt"]), parseTime(t, d["updatedAt"]); !created.Equal(updated) {
		t.Errorf("createdAt %v != updatedAt %v on a new endpoint", created, updated)
	}
	first := assertSecret(t, d["secret"])
	if e.probes.Load() != 1 || e.hits.Load() != 1 {
		t.Errorf("probes, receiver hits = %d, %d; want one real request to the URL", e.probes.Load(), e.hits.Load())
	}

	t.Run("minimal body", func(t *testing.T) {
		d := e.createWebhook(t, key, "scan.started")
		if d["description"] != "" || !reflect.DeepEqual(d["headers"], map[string]any{}) {
			t.Errorf("description, headers = %#v, %#v; want \"\" and {}", d["description"], d["headers"])
		}
		if assertSecret(t, d["secret"]) == first {
			t.Error("two endpoints got the same secret")
		}
	})
}

func TestListWebhooks(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	var ids []string
	for _, ev := range []string{"scan.started", "scan.completed", "scan.failed"} {
		ids = append(ids, e.createWebhook(t, key, ev)["id"].(string))
		nextMillisecond()
	}
	data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+ids[1], key, map[string]any{"enabled": false}), http.StatusOK)
	newest := []string{ids[2], ids[1], ids[0]}

	tests := []struct {
		query   string
		want    []string
		pagin   []float64 // page, limit, total, totalPages
		noItems bool
	}{
		{"", newest, []float64{1, 20, 3, 1}, false},
		{"?page=1&limit=2", newest[:2], []float64{1, 2, 3, 2}, false},
		{"?page=2&limit=2", newest[2:], []float64{2, 2, 3, 2}, false},
		{"?page=3&limit=2", nil, []float64{3, 2, 3, 2}, true},
		{"?limit=1&page=3", newest[2:], []float64{3, 1, 3, 3}, false},
		{"?status=active", []string{ids[2], ids[0]}, []float64{1, 20, 2, 1}, false},
		{"?status=disabled", []string{ids[1]}, []float64{1, 20, 1, 1}, false},
		{"?status=active&limit=1&page=2", []string{ids[0]}, []float64{2, 1, 2, 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.do(t, http.MethodGet, "/api/v1/webhooks"+tt.query, key, nil)
			items, pg := listData(t, r)
			var got []string
			for _, it := range items {
				m := it.(map[string]any)
				assertFields(t, m, endpointFields...)
				got = append(got, m["id"].(string))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ids = %v, want %v (newest first)", got, tt.want)
			}
			wantPg := map[string]any{"page": tt.pagin[0], "limit": tt.pagin[1], "total": tt.pagin[2], "totalPages": tt.pagin[3]}
			if !reflect.DeepEqual(pg, wantPg) {
				t.Errorf("pagination = %v, want %v", pg, wantPg)
			}
			if strings.Contains(string(r.body), "whsec_") {
				t.Errorf("list shows a secret: %s", r.body)
			}
		})
	}
	t.Run("invalid status", func(t *testing.T) {
		r := e.do(t, http.MethodGet, "/api/v1/webhooks?status=paused", key, nil)
		assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", "Field status must be of type active|disabled")
	})
	t.Run("a tenant without endpoints gets an empty array", func(t *testing.T) {
		other, _ := e.newKey(t)
		r := e.do(t, http.MethodGet, "/api/v1/webhooks", other, nil)
		items, pg := listData(t, r)
		if items == nil || len(items) != 0 || pg["total"] != float64(0) || pg["totalPages"] != float64(0) {
			t.Errorf("list = %s, want data [] with total 0 and totalPages 0", r.body)
		}
	})
}

// nextMillisecond waits until the clock has moved to a new millisecond, so that records
// created one after another have distinct creation times (lists order by them).
func nextMillisecond() {
	start := time.Now().UnixMilli()
	for time.Now().UnixMilli() == start {
		time.Sleep(100 * time.Microsecond)
	}
}

func TestGetWebhookNeverShowsSecret(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	created := e.createWebhook(t, key)
	id, secret := created["id"].(string), created["secret"].(string)
	r := e.do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/rotate-secret", key, nil)
	rotated := data(t, r, http.StatusOK)["secret"].(string)
	r = e.do(t, http.MethodGet, "/api/v1/webhooks/"+id, key, nil)
	d := data(t, r, http.StatusOK)
	assertFields(t, d, endpointFields...)
	for _, s := range []string{secret, rotated, strings.TrimPrefix(secret, "whsec_"), "whsec_", "ecret"} {
		if strings.Contains(string(r.body), s) {
			t.Errorf("GET body contains %q: %s", s, r.body)
		}
	}
	delete(created, "secret")
	for _, k := range []string{"id", "url", "events", "createdAt"} {
		if !reflect.DeepEqual(d[k], created[k]) {
			t.Errorf("%s = %v, want %v as created", k, d[k], created[k])
		}
	}
}

func TestDeleteWebhook(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	keep := e.createWebhook(t, key)["id"].(string)
	e.sendTest(t, key, id)
	hook := "/api/v1/webhooks/" + id
	d := data(t, e.do(t, http.MethodDelete, hook, key, nil), http.StatusOK)
	if !reflect.DeepEqual(d, map[string]any{"id": id, "deleted": true}) {
		t.Errorf("DELETE data = %v, want {id, deleted: true}", d)
	}
	for _, op := range []struct{ method, path string }{{"GET", hook}, {"DELETE", hook}, {"GET", hook + "/deliveries"}} {
		assertError(t, e.do(t, op.method, op.path, key, nil), http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
	}
	items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	if len(items) != 1 || items[0].(map[string]any)["id"] != keep {
		t.Errorf("list = %v, want only %s", items, keep)
	}
	if d := data(t, e.publish(t, key, "scan.completed"), http.StatusAccepted); d["deliveries"] != float64(1) {
		t.Errorf("deliveries = %v, want 1: the deleted endpoint is no longer subscribed", d["deliveries"])
	}
}

// An endpoint's ordering is "none" unless asked; "scan" is kept and shown, and anything else is
// refused with the field named.
func TestEndpointOrdering(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	if d := e.createWebhook(t, key); d["ordering"] != "none" {
		t.Errorf("default ordering = %v, want none", d["ordering"])
	}
	body := map[string]any{"url": e.hookURL("/x"), "events": []string{"scan.started"}, "ordering": "scan"}
	d := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, body), http.StatusCreated)
	if d["ordering"] != "scan" {
		t.Fatalf("created with ordering scan: %v", d["ordering"])
	}
	hook := "/api/v1/webhooks/" + d["id"].(string)
	assertError(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"ordering": "fifo"}), http.StatusBadRequest,
		"INVALID_FIELD_TYPE", `Field ordering must be of type "none" or "scan"`)
	assertError(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"ordering": 1}), http.StatusBadRequest,
		"INVALID_FIELD_TYPE", "Field ordering must be of type string")
	if d := data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"ordering": "none"}), http.StatusOK); d["ordering"] != "none" {
		t.Errorf("after PATCH ordering none: %v", d["ordering"])
	}
	if d := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK); d["ordering"] != "none" {
		t.Errorf("GET after PATCH: ordering %v", d["ordering"])
	}
}

// An endpoint shows the service's per-endpoint ceiling beside its effective concurrency: equal
// at full speed, and 1 of the ceiling on probation after a re-enable.
func TestEndpointConcurrencyCeiling(t *testing.T) {
	e := newEnv(t, withConfig(func(c *api.Config) { c.EndpointConcurrency = 6 }))
	key, _ := e.newKey(t)
	hook := "/api/v1/webhooks/" + e.createWebhook(t, key)["id"].(string)
	tests := []struct {
		name       string
		method     string
		body       any
		effective  float64
		probation  bool
		maxAllowed float64
	}{
		{"new", http.MethodGet, nil, 6, false, 6},
		{"disabled", http.MethodPatch, map[string]any{"enabled": false}, 6, false, 6},
		{"re-enabled", http.MethodPatch, map[string]any{"enabled": true}, 1, true, 6},
		{"read again", http.MethodGet, nil, 1, true, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := data(t, e.do(t, tt.method, hook, key, tt.body), http.StatusOK)
			got := []any{d["effectiveConcurrency"], d["probation"], d["maxConcurrency"]}
			want := []any{tt.effective, tt.probation, tt.maxAllowed}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("effectiveConcurrency, probation, maxConcurrency = %v, want %v", got, want)
			}
		})
	}
}
