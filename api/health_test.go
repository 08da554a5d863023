package api_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/google/uuid"
)

// rateLimitError is the answer to a rateLimitPerSecond that is not an integer from 1 to 10,000
// or null.
const rateLimitError = "Field rateLimitPerSecond must be of type integer from 1 to 10000 or null"

// TestRateLimitPerSecondValidation: create and PATCH take an integer from 1 to 10,000 or null;
// anything else is INVALID_FIELD_TYPE and changes nothing. A PATCH of other fields keeps it,
// null clears it.
func TestRateLimitPerSecondValidation(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	for _, tc := range []struct{ name, raw string }{
		{"zero", "0"}, {"negative", "-1"}, {"above 10000", "10001"}, {"fraction", "1.5"}, {"integral float", "20.0"},
		{"exponent", "1e3"}, {"string", `"20"`}, {"boolean", "true"}, {"object", "{}"}, {"array", "[20]"},
	} {
		t.Run("create/"+tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key,
				`{"url": "`+e.hookURL("/hook")+`", "events": ["scan.completed"], "rateLimitPerSecond": `+tc.raw+`}`)
			assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", rateLimitError)
		})
		t.Run("patch/"+tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPatch, hook, key, `{"rateLimitPerSecond": `+tc.raw+`}`)
			assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", rateLimitError)
		})
	}
	rateLimit := func() any {
		return data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)["rateLimitPerSecond"]
	}
	if got := rateLimit(); got != nil {
		t.Errorf("rateLimitPerSecond after refused PATCHes = %v, want null", got)
	}
	for _, n := range []float64{1, 10000, 20} {
		got := data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"rateLimitPerSecond": n}), http.StatusOK)
		if got["rateLimitPerSecond"] != n {
			t.Errorf("PATCH rateLimitPerSecond %v answered %v", n, got["rateLimitPerSecond"])
		}
	}
	data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"description": "d"}), http.StatusOK)
	if got := rateLimit(); got != 20.0 {
		t.Errorf("rateLimitPerSecond after a PATCH of description = %v, want 20 kept", got)
	}
	if got := data(t, e.do(t, http.MethodPatch, hook, key, `{"rateLimitPerSecond": null}`), http.StatusOK); got["rateLimitPerSecond"] != nil {
		t.Errorf("PATCH rateLimitPerSecond null answered %v, want null", got["rateLimitPerSecond"])
	}
	if got := rateLimit(); got != nil {
		t.Errorf("rateLimitPerSecond after PATCH null = %v, want null", got)
	}
	for _, n := range []float64{1, 10000} {
		created := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/hook"),
			"events": []string{"scan.completed"}, "rateLimitPerSecond": n}), http.StatusCreated)
		if created["rateLimitPerSecond"] != n {
			t.Errorf("create with rateLimitPerSecond %v answered %v", n, created["rateLimitPerSecond"])
		}
	}
}

// TestEffectiveConcurrencyShown: every view of an endpoint carries effectiveConcurrency: the
// ceiling (the server's endpoint concurrency) for a new endpoint, 1 on probation after a
// re-enable; a re-enable of an endpoint that was never disabled starts no probation.
func TestEffectiveConcurrencyShown(t *testing.T) {
	const ceiling = 7
	e := newEnv(t, withConfig(func(c *api.Config) { c.EndpointConcurrency = ceiling }))
	key, _ := e.newKey(t)
	created := e.createWebhook(t, key)
	hook := "/api/v1/webhooks/" + created["id"].(string)
	list, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	for name, v := range map[string]map[string]any{"create": created, "list": list[0].(map[string]any),
		"get":                 data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK),
		"enable while active": data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": true}), http.StatusOK)} {
		if v["effectiveConcurrency"] != float64(ceiling) || v["probation"] != false {
			t.Errorf("%s: effectiveConcurrency %v, probation %v; want %d, false", name, v["effectiveConcurrency"],
				v["probation"], ceiling)
		}
	}
	data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": false}), http.StatusOK)
	for name, v := range map[string]map[string]any{
		"re-enable":             data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": true}), http.StatusOK),
		"get after a re-enable": data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK),
	} {
		if v["effectiveConcurrency"] != 1.0 || v["probation"] != true || v["status"] != "active" {
			t.Errorf("%s: effectiveConcurrency %v, probation %v, status %v; want 1, true, active", name,
				v["effectiveConcurrency"], v["probation"], v["status"])
		}
	}
}

// TestOperationalEventTypes: the operational types are subscribable on create and PATCH and
// filter the event log, but cannot be published.
func TestOperationalEventTypes(t *testing.T) {
	e, key, id := validationEnv(t)
	created := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/ops"),
		"events": registry.OperationalEventTypes}), http.StatusCreated)
	if got := stringList(created["events"]); !slices.Equal(got, registry.OperationalEventTypes) {
		t.Errorf("create answered events %v, want %v", got, registry.OperationalEventTypes)
	}
	both := append([]string{"scan.failed"}, registry.EventWebhookDisabled)
	patched := data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"events": both}), http.StatusOK)
	if got := stringList(patched["events"]); !slices.Equal(got, both) {
		t.Errorf("PATCH answered events %v, want %v", got, both)
	}
	for _, typ := range registry.OperationalEventTypes {
		t.Run("publish/"+typ, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/events", key, map[string]any{"type": typ,
				"data": map[string]any{"scanId": "s", "scanType": "zap", "webhookId": id}})
			assertError(t, r, http.StatusBadRequest, "INVALID_WEBHOOK_EVENT", "Invalid event type: "+typ)
		})
		t.Run("event log filter/"+typ, func(t *testing.T) {
			items, pg := listData(t, e.do(t, http.MethodGet, "/api/v1/events?type="+typ, key, nil))
			if len(items) != 0 || pg["total"] != 0.0 {
				t.Errorf("events of type %s = %v, want none", typ, items)
			}
		})
	}
}

func stringList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// statsWindowError is the answer to a window that is not whole hours from 1h to 7d.
const statsWindowError = "Field window must be of type whole hours from 1h to 7d"

// TestStatsWindow: ?window= takes whole hours from 1h to 7d, as hours or days (default 24h),
// and answers that many hours, oldest first, the current one last, empty ones with zero
// counts and null percentiles; anything else is INVALID_FIELD_TYPE. An unknown, deleted or
// foreign endpoint is WEBHOOK_NOT_FOUND, a key without webhooks:read INSUFFICIENT_SCOPE.
func TestStatsWindow(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	stats := "/api/v1/webhooks/" + e.createWebhook(t, key)["id"].(string) + "/stats"
	for _, bad := range []string{"0h", "0", "30m", "90m", "1.5h", "-1h", "8d", "169h", "1w", "24", "d", "abc", "",
		"1h30m", "%zz", "24h%00", "7d1h"} {
		t.Run("bad/"+bad, func(t *testing.T) {
			assertError(t, e.do(t, http.MethodGet, stats+"?window="+bad, key, nil), http.StatusBadRequest,
				"INVALID_FIELD_TYPE", statsWindowError)
		})
	}
	for _, tc := range []struct {
		query, window string
		hours         int
	}{
		{"", "24h", 24}, {"?window=1h", "1h", 1}, {"?window=24h", "24h", 24}, {"?window=7d", "168h", 168},
		{"?window=168h", "168h", 168}, {"?window=2d", "48h", 48}, {"?window=1d", "24h", 24},
	} {
		t.Run("good/"+tc.window+tc.query, func(t *testing.T) {
			now := time.Now().UTC().Truncate(time.Hour)
			d := data(t, e.do(t, http.MethodGet, stats+tc.query, key, nil), http.StatusOK)
			assertFields(t, d, "window", "hours")
			hours, _ := d["hours"].([]any)
			if d["window"] != tc.window || len(hours) != tc.hours {
				t.Fatalf("window %v with %d hours, want %s with %d", d["window"], len(hours), tc.window, tc.hours)
			}
			for i, h := range hours {
				m := h.(map[string]any)
				assertFields(t, m, "hour", "succeeded", "failed", "p50Ms", "p99Ms")
				want := now.Add(-time.Duration(tc.hours-1-i) * time.Hour)
				if at := parseTime(t, m["hour"]); !at.Equal(want) && time.Now().UTC().Truncate(time.Hour).Equal(now) {
					t.Errorf("hours[%d] = %v, want %v", i, at, want)
				}
				if m["succeeded"] != 0.0 || m["failed"] != 0.0 || m["p50Ms"] != nil || m["p99Ms"] != nil {
					t.Errorf("hours[%d] of an endpoint without attempts = %v", i, m)
				}
			}
		})
	}
	otherKey, _ := e.newKey(t)
	other := e.createWebhook(t, otherKey)["id"].(string)
	for name, path := range map[string]string{"unknown": unknownID, "foreign": other, "not a uuid": "nope"} {
		t.Run("not found/"+name, func(t *testing.T) {
			assertError(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+path+"/stats", key, nil),
				http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
		})
	}
	publisher, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeEventsWrite}})
	assertError(t, e.do(t, http.MethodGet, stats, publisher, nil), http.StatusForbidden, "INSUFFICIENT_SCOPE",
		"Insufficient scope: requires webhooks:read")
	if r := e.do(t, http.MethodHead, stats+"?window=1h", key, nil); r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("HEAD stats = %d with %d bytes, want 200 without a body", r.status, len(r.body))
	}
}

// TestStatsCounts: attempts recorded as the worker records them land in the hour they ended,
// succeeded and failed counted apart, with p50 and p99 as the upper bound of the duration
// bucket that holds them; an hour without attempts has nulls, and a bucket past 30 s shows 30000.
func TestStatsCounts(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	now := time.Now().UTC()
	past := now.Add(-2 * time.Hour)
	record := func(at time.Time, n int, ms int64, o registry.AttemptOutcome) {
		for range n {
			_, _, err := registrytest.Record(t.Context(), e.store, registrytest.Attempt{TenantID: tid, EndpointID: id,
				DeliveryID: uuid.NewString(), Outcome: o, MaxAttempts: 10, NextAttemptAt: at.Add(time.Minute),
				Attempt: registry.Attempt{Number: 1, StartedAt: at.Add(-time.Duration(ms) * time.Millisecond), DurationMs: ms},
				Streak:  registry.StreakRule{Threshold: 1000}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// Two hours ago: 100 attempts, the 50th in the 5 ms bucket and the 99th in the 100 ms one.
	record(past, 50, 3, registry.OutcomeSuccess)
	record(past, 49, 80, registry.OutcomeSuccess)
	record(past, 1, 2000, registry.OutcomeFailure)
	// This hour: one attempt longer than the last bound.
	record(now, 1, 31000, registry.OutcomeFailure)
	d := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+id+"/stats?window=3h", key, nil), http.StatusOK)
	if !time.Now().UTC().Truncate(time.Hour).Equal(now.Truncate(time.Hour)) {
		t.Skip("the hour turned during the test")
	}
	hours := d["hours"].([]any)
	want := []map[string]any{
		{"succeeded": 99.0, "failed": 1.0, "p50Ms": 5.0, "p99Ms": 100.0},
		{"succeeded": 0.0, "failed": 0.0, "p50Ms": nil, "p99Ms": nil},
		{"succeeded": 0.0, "failed": 1.0, "p50Ms": 30000.0, "p99Ms": 30000.0},
	}
	for i, w := range want {
		got := hours[i].(map[string]any)
		for k, v := range w {
			if got[k] != v {
				t.Errorf("hours[%d].%s = %v, want %v (hour %v)", i, k, got[k], v, got["hour"])
			}
		}
	}
}
