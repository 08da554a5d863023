package api_test

import (
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func TestPublishEvent(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	enabled := []string{e.createWebhook(t, key, "scan.completed")["id"].(string),
		e.createWebhook(t, key, "scan.completed", "scan.failed")["id"].(string)}
	e.createWebhook(t, key, "scan.failed")
	disabled := e.createWebhook(t, key, "scan.completed")["id"].(string)
	data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+disabled, key, map[string]any{"enabled": false}), http.StatusOK)

	before := time.Now().Add(-time.Second)
	r := e.do(t, http.MethodPost, "/api/v1/events", key, map[string]any{"type": "scan.completed",
		"data": map[string]any{"scanId": "7d8f0e7c-2f7a-4a0e-9d55-1c1b0b9b2c11", "scanType": "zap",
			"priority": "high", "target": "https://example.com", "findings": map[string]any{"high": 2}}})
	d := data(t, r, http.StatusAccepted)
	assertFields(t, d, "id", "type", "createdAt", "deliveries")
	if !eventID.MatchString(d["id"].(string)) || d["type"] != "scan.completed" {
		t.Errorf("event = %v, want an evt_ id and type scan.completed", d)
	}
	if at := parseTime(t, d["createdAt"]); at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("createdAt = %v, want now", at)
	}
	// Two enabled subscribers and the disabled one, which gets a held delivery.
	if d["deliveries"] != float64(3) {
		t.Errorf("deliveries = %v, want 3 subscribed endpoints", d["deliveries"])
	}
	// A small fan-out is created with the event: each enabled subscriber's delivery is queued.
	for _, ep := range enabled {
		assertQueued(t, e, tid, ep, registry.DeliveryID(d["id"].(string), ep))
	}

	for typ, want := range map[string]float64{"scan.failed": 2, "scan.started": 0, "scan.cancelled": 0} {
		if d := data(t, e.publish(t, key, typ), http.StatusAccepted); d["deliveries"] != want {
			t.Errorf("publish %s: deliveries = %v, want %v", typ, d["deliveries"], want)
		}
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(4) {
		t.Errorf("eventsPublished = %v, want 4", u["eventsPublished"])
	}
}

func usage(t *testing.T, e *env, key string) map[string]any {
	t.Helper()
	return data(t, e.do(t, http.MethodGet, "/api/v1/usage", key, nil), http.StatusOK)
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	e.createWebhook(t, key, "scan.completed")
	first := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "order-1"), http.StatusAccepted)
	again := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "order-1"), http.StatusOK)
	if !reflect.DeepEqual(again, first) {
		t.Errorf("repeat answered %v, want the first event %v", again, first)
	}
	t.Run("a different body with the same key is refused", func(t *testing.T) {
		r := e.publish(t, key, "scan.failed", "Idempotency-Key", "order-1")
		assertError(t, r, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED", reusedKeyMsg)
	})
	t.Run("another key is another event", func(t *testing.T) {
		d := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "order-2"), http.StatusAccepted)
		if d["id"] == first["id"] {
			t.Error("a different Idempotency-Key returned the first event")
		}
	})
	t.Run("keys are per tenant", func(t *testing.T) {
		other, _ := e.newKey(t)
		d := data(t, e.publish(t, other, "scan.completed", "Idempotency-Key", "order-1"), http.StatusAccepted)
		if d["id"] == first["id"] || d["deliveries"] != float64(0) {
			t.Errorf("another tenant's publish = %v, want a new event with no deliveries", d)
		}
	})
	t.Run("another key of the same tenant shares the keys", func(t *testing.T) {
		k2, _ := e.key(t, registry.NewKeyParams{TenantID: tid})
		d := data(t, e.publish(t, k2, "scan.completed", "Idempotency-Key", "order-1"), http.StatusOK)
		if d["id"] != first["id"] {
			t.Errorf("answered %v, want the first event", d)
		}
	})
	if u := usage(t, e, key); u["eventsPublished"] != float64(2) {
		t.Errorf("eventsPublished = %v, want 2: replays are not counted", u["eventsPublished"])
	}
}

func TestPublishValidation(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	nmapOnly, _ := e.key(t, registry.NewKeyParams{TenantID: tid, AllowedScanTypes: []string{"nmap"}})
	tests := []struct {
		name, key string
		data      map[string]any
		status    int
		code, msg string
	}{
		{"unknown scan type", key, map[string]any{"scanType": "burp"}, 400, "INVALID_SCAN_TYPE", "Invalid scan type: burp"},
		{"upper-case scan type", key, map[string]any{"scanType": "ZAP"}, 400, "INVALID_SCAN_TYPE", "Invalid scan type: ZAP"},
		{"empty scan type", key, map[string]any{"scanType": ""}, 400, "INVALID_SCAN_TYPE", "Invalid scan type: "},
		{"scan type not allowed", nmapOnly, map[string]any{"scanType": "zap"}, 403, "SCAN_TYPE_NOT_ALLOWED",
			"Scan type zap not allowed for this API key"},
		{"invalid scan type beats not allowed", nmapOnly, map[string]any{"scanType": "burp"}, 400, "INVALID_SCAN_TYPE",
			"Invalid scan type: burp"},
		{"not allowed beats invalid priority", nmapOnly, map[string]any{"scanType": "zap", "priority": "urgent"}, 403,
			"SCAN_TYPE_NOT_ALLOWED", "Scan type zap not allowed for this API key"},
		{"unknown priority", key, map[string]any{"priority": "urgent"}, 400, "INVALID_PRIORITY", "Invalid priority: urgent"},
		{"upper-case priority", key, map[string]any{"priority": "HIGH"}, 400, "INVALID_PRIORITY", "Invalid priority: HIGH"},
		{"numeric priority", key, map[string]any{"priority": 5}, 400, "INVALID_PRIORITY", "Invalid priority: 5"},
		{"empty priority", key, map[string]any{"priority": ""}, 400, "INVALID_PRIORITY", "Invalid priority: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := map[string]any{"scanId": "s-1", "scanType": "zap"}
			for k, v := range tt.data {
				d[k] = v
			}
			r := e.do(t, http.MethodPost, "/api/v1/events", tt.key, map[string]any{"type": "scan.started", "data": d})
			assertError(t, r, tt.status, tt.code, tt.msg)
		})
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0: rejected events are not counted", u["eventsPublished"])
	}
	t.Run("allowed scan type and every priority", func(t *testing.T) {
		for _, p := range []any{"critical", "high", "normal", "low", nil} {
			r := e.do(t, http.MethodPost, "/api/v1/events", nmapOnly, map[string]any{"type": "scan.started",
				"data": map[string]any{"scanId": "s-1", "scanType": "nmap", "priority": p}})
			data(t, r, http.StatusAccepted)
		}
	})
}

func TestQuotaExceeded(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 1)
	key, _ := e.key(t, registry.NewKeyParams{TenantID: tid})
	first := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "k1"), http.StatusAccepted)
	for _, idem := range []string{"", "k2"} {
		r := e.publish(t, key, "scan.completed", "Idempotency-Key", idem)
		assertError(t, r, http.StatusTooManyRequests, "QUOTA_EXCEEDED", "Monthly scan quota exceeded")
		assertRateHeaders(t, r)
		// Retry-After names the seconds until the next UTC calendar month.
		now := time.Now().UTC()
		until := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(now).Seconds()
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || float64(n) > until+1 {
			t.Errorf("Retry-After = %q, want seconds until the next month (<= %.0f)", r.header.Get("Retry-After"), until)
		}
	}
	t.Run("a replay is not counted against the quota", func(t *testing.T) {
		d := data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "k1"), http.StatusOK)
		if d["id"] != first["id"] {
			t.Errorf("replay = %v, want the first event", d)
		}
	})
	u := usage(t, e, key)
	want := map[string]any{"eventsPublished": float64(1), "monthlyEventQuota": float64(1), "remaining": float64(0)}
	for k, w := range want {
		if u[k] != w {
			t.Errorf("usage %s = %v, want %v", k, u[k], w)
		}
	}
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	readOnly, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksRead}})
	data(t, e.publish(t, key, "scan.completed"), http.StatusAccepted)
	u := usage(t, e, readOnly)
	assertFields(t, u, "period", "periodStart", "periodEnd", "eventsPublished", "monthlyEventQuota", "remaining")
	start, end := parseTime(t, u["periodStart"]), parseTime(t, u["periodEnd"])
	if start.Day() != 1 || start.Hour() != 0 || start.Location() != time.UTC || !end.Equal(start.AddDate(0, 1, 0)) {
		t.Errorf("period %v .. %v, want one UTC calendar month", start, end)
	}
	if u["period"] != start.Format("2006-01") {
		t.Errorf("period = %v, want %s", u["period"], start.Format("2006-01"))
	}
	if u["eventsPublished"] != float64(1) || u["monthlyEventQuota"] != float64(0) || u["remaining"] != nil {
		t.Errorf("usage = %v, want 1 event, quota 0 (unlimited) and remaining null", u)
	}
}
