package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// batchEvent is one valid event of a batch, of its own scan.
func batchEvent(i int, typ string) map[string]any {
	return map[string]any{"type": typ, "data": map[string]any{"scanId": fmt.Sprintf("scan-%d", i), "scanType": "zap"}}
}

// batchOf is a batch body of n valid scan.completed events.
func batchOf(n int) map[string]any {
	evs := make([]any, n)
	for i := range evs {
		evs[i] = batchEvent(i, registry.EventScanCompleted)
	}
	return map[string]any{"events": evs}
}

// batchEvents asserts an accepted (or replayed) batch and returns its events.
func batchEvents(t *testing.T, r *response, status int) []map[string]any {
	t.Helper()
	d := data(t, r, status)
	assertFields(t, d, "events")
	items, _ := d["events"].([]any)
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i], _ = it.(map[string]any)
		assertFields(t, out[i], "id", "type", "createdAt", "deliveries")
	}
	return out
}

func TestPublishBatch(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	completed := e.createWebhook(t, key, "scan.completed")["id"].(string)
	both := e.createWebhook(t, key, "scan.completed", "scan.failed")["id"].(string)
	body := map[string]any{"events": []any{batchEvent(0, "scan.completed"), batchEvent(1, "scan.failed"),
		batchEvent(2, "scan.started")}}
	evs := batchEvents(t, e.do(t, http.MethodPost, "/api/v1/events/batch", key, body), http.StatusAccepted)
	if len(evs) != 3 {
		t.Fatalf("answered %d events, want 3", len(evs))
	}
	for i, want := range []struct {
		typ        string
		deliveries float64
	}{{"scan.completed", 2}, {"scan.failed", 1}, {"scan.started", 0}} {
		if !eventID.MatchString(evs[i]["id"].(string)) || evs[i]["type"] != want.typ || evs[i]["deliveries"] != want.deliveries {
			t.Errorf("events[%d] = %v, want an evt_ id, type %s, %v deliveries", i, evs[i], want.typ, want.deliveries)
		}
	}
	// Each delivery is queued on its endpoint, as a single publish queues it.
	for _, ep := range []string{completed, both} {
		assertQueued(t, e, tid, ep, registry.DeliveryID(evs[0]["id"].(string), ep))
	}
	assertQueued(t, e, tid, both, registry.DeliveryID(evs[1]["id"].(string), both))
	// Every event is stored and listed like a single one.
	for i, ev := range evs {
		got := data(t, e.do(t, http.MethodGet, "/api/v1/events/"+ev["id"].(string), key, nil), http.StatusOK)
		if got["type"] != ev["type"] || got["data"].(map[string]any)["scanId"] != fmt.Sprintf("scan-%d", i) {
			t.Errorf("GET event %d = %v, want type %v and scan-%d", i, got, ev["type"], i)
		}
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(3) {
		t.Errorf("eventsPublished = %v, want 3: every event of a batch counts", u["eventsPublished"])
	}
	t.Run("a hundred events", func(t *testing.T) {
		evs := batchEvents(t, e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(100)), http.StatusAccepted)
		seen := map[any]bool{}
		for _, ev := range evs {
			seen[ev["id"]] = true
		}
		if len(evs) != 100 || len(seen) != 100 {
			t.Errorf("answered %d events with %d distinct ids, want 100", len(evs), len(seen))
		}
	})
}

// TestPublishBatchRefused: every bad batch answers the code its first bad part has, and
// nothing of it is stored or counted.
func TestPublishBatchRefused(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	nmapOnly, _ := e.key(t, registry.NewKeyParams{TenantID: tid, AllowedScanTypes: []string{"nmap"}})
	e.createWebhook(t, key, "scan.completed")
	// with replaces event 3 of a batch of 5 (and, with two, event 4 too).
	with := func(bad ...any) map[string]any {
		b := batchOf(5)
		for i, ev := range bad {
			b["events"].([]any)[3+i] = ev
		}
		return b
	}
	dataWith := func(k string, v any) map[string]any {
		ev := batchEvent(3, "scan.completed")
		ev["data"].(map[string]any)[k] = v
		if v == nil {
			delete(ev["data"].(map[string]any), k)
		}
		return ev
	}
	tests := []struct {
		name      string
		key       string
		body      any
		status    int
		code, msg string
	}{
		{"not JSON", key, `{"events": [`, 400, "INVALID_JSON", "Request body is not valid JSON"},
		{"an array", key, `[]`, 400, "INVALID_JSON", "Request body is not valid JSON"},
		{"no events", key, map[string]any{}, 400, "MISSING_REQUIRED_FIELD", "Missing required field: events"},
		{"events null", key, `{"events": null}`, 400, "MISSING_REQUIRED_FIELD", "Missing required field: events"},
		{"events not an array", key, map[string]any{"events": "x"}, 400, "INVALID_FIELD_TYPE",
			"Field events must be of type array"},
		{"events an object", key, map[string]any{"events": batchEvent(0, "scan.completed")}, 400, "INVALID_FIELD_TYPE",
			"Field events must be of type array"},
		{"empty", key, map[string]any{"events": []any{}}, 400, "INVALID_FIELD_TYPE",
			"Field events must be of type array of 1 to 100 events"},
		{"101 events", key, batchOf(101), 400, "INVALID_FIELD_TYPE", "Field events must be of type array of 1 to 100 events"},
		{"unknown top-level field", key, map[string]any{"events": batchOf(1)["events"], "type": "scan.completed"}, 400,
			"UNKNOWN_FIELD", "Unknown field: type"},
		{"duplicate name inside an event", key, `{"events": [{"type": "scan.completed", "type": "scan.failed", "data": {}}]}`,
			400, "INVALID_JSON", "Request body is not valid JSON"},
		{"event not an object", key, with(42), 400, "INVALID_FIELD_TYPE", "Field events[3] must be of type object"},
		{"event null", key, with(nil), 400, "INVALID_FIELD_TYPE", "Field events[3] must be of type object"},
		{"unknown field in an event", key, with(map[string]any{"type": "scan.completed", "data": batchEvent(3, "")["data"],
			"priority": "high"}), 400, "UNKNOWN_FIELD", "Unknown field: events[3].priority"},
		{"no type", key, with(map[string]any{"data": batchEvent(3, "")["data"]}), 400, "MISSING_REQUIRED_FIELD",
			"Missing required field: events[3].type"},
		{"type not a string", key, with(map[string]any{"type": 5, "data": batchEvent(3, "")["data"]}), 400,
			"INVALID_FIELD_TYPE", "Field events[3].type must be of type string"},
		{"unknown type", key, with(batchEvent(3, "scan.paused")), 400, "INVALID_WEBHOOK_EVENT", "Invalid event type: scan.paused"},
		{"operational type", key, with(batchEvent(3, "webhook.disabled")), 400, "INVALID_WEBHOOK_EVENT",
			"Invalid event type: webhook.disabled"},
		{"no data", key, with(map[string]any{"type": "scan.completed"}), 400, "MISSING_REQUIRED_FIELD",
			"Missing required field: events[3].data"},
		{"data not an object", key, with(map[string]any{"type": "scan.completed", "data": []any{}}), 400,
			"INVALID_FIELD_TYPE", "Field events[3].data must be of type object"},
		{"no scanId", key, with(dataWith("scanId", nil)), 400, "MISSING_REQUIRED_FIELD",
			"Missing required field: events[3].data.scanId"},
		{"scanId not a string", key, with(dataWith("scanId", 7)), 400, "INVALID_FIELD_TYPE",
			"Field events[3].data.scanId must be of type string"},
		{"no scanType", key, with(dataWith("scanType", nil)), 400, "MISSING_REQUIRED_FIELD",
			"Missing required field: events[3].data.scanType"},
		{"scanType not a string", key, with(dataWith("scanType", true)), 400, "INVALID_FIELD_TYPE",
			"Field events[3].data.scanType must be of type string"},
		{"unknown scan type", key, with(dataWith("scanType", "burp")), 400, "INVALID_SCAN_TYPE", "Invalid scan type: burp"},
		{"bad priority", key, with(dataWith("priority", "urgent")), 400, "INVALID_PRIORITY", "Invalid priority: urgent"},
		{"scan type not allowed", nmapOnly, batchOf(2), 403, "SCAN_TYPE_NOT_ALLOWED", "Scan type zap not allowed for this API key"},
		{"the first bad event answers", key, with(dataWith("scanType", "burp"), map[string]any{"type": 1}), 400,
			"INVALID_SCAN_TYPE", "Invalid scan type: burp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/events/batch", tt.key, tt.body)
			assertError(t, r, tt.status, tt.code, tt.msg)
		})
	}
	t.Run("body over the limit", func(t *testing.T) {
		b := batchOf(100)
		for _, ev := range b["events"].([]any) {
			ev.(map[string]any)["data"].(map[string]any)["report"] = strings.Repeat("x", 3<<10)
		}
		r := e.do(t, http.MethodPost, "/api/v1/events/batch", key, b)
		assertError(t, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "Request body too large")
	})
	t.Run("without events:write", func(t *testing.T) {
		readOnly, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksRead}})
		r := e.do(t, http.MethodPost, "/api/v1/events/batch", readOnly, batchOf(1))
		assertError(t, r, http.StatusForbidden, "INSUFFICIENT_SCOPE", "Insufficient scope: requires events:write")
	})
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0: refused batches are not counted", u["eventsPublished"])
	}
	if items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/events", key, nil)); len(items) != 0 {
		t.Errorf("%d events stored, want none of a refused batch", len(items))
	}
}

// TestPublishBatchQuota: a batch counts every event, and one that would pass the quota is
// refused whole.
func TestPublishBatchQuota(t *testing.T) {
	e := newEnv(t)
	tid := e.tenant(t, 5)
	key, _ := e.key(t, registry.NewKeyParams{TenantID: tid})
	batchEvents(t, e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(3)), http.StatusAccepted)
	r := e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(3))
	assertError(t, r, http.StatusTooManyRequests, "QUOTA_EXCEEDED", "Monthly scan quota exceeded")
	if u := usage(t, e, key); u["eventsPublished"] != float64(3) {
		t.Errorf("eventsPublished = %v after a refused batch, want 3", u["eventsPublished"])
	}
	batchEvents(t, e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(2)), http.StatusAccepted)
	r = e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(1))
	assertError(t, r, http.StatusTooManyRequests, "QUOTA_EXCEEDED", "Monthly scan quota exceeded")
	if items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/events?limit=100", key, nil)); len(items) != 5 {
		t.Errorf("%d events stored, want the 5 of the accepted batches", len(items))
	}
}

// TestPublishBatchIdempotency: one Idempotency-Key covers the whole batch.
func TestPublishBatchIdempotency(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	e.createWebhook(t, key, "scan.completed")
	first := batchEvents(t, e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(4), "Idempotency-Key", "b-1"),
		http.StatusAccepted)
	// The same request laid out otherwise is the same request.
	var parts []string
	for i := range 4 {
		parts = append(parts, fmt.Sprintf(`{"data": {"scanType": "zap", "scanId": "scan-%d"}, "type": "scan.completed"}`, i))
	}
	again := batchEvents(t, e.do(t, http.MethodPost, "/api/v1/events/batch", key,
		"{ \"events\" : [\n"+strings.Join(parts, ",\n")+"] }", "Idempotency-Key", "b-1"), http.StatusOK)
	if !reflect.DeepEqual(again, first) {
		t.Errorf("replay answered %v, want the first batch %v", again, first)
	}
	for _, tc := range []struct {
		name, path string
		body       any
	}{
		{"another batch", "/api/v1/events/batch", batchOf(3)},
		{"a single event", "/api/v1/events", batchEvent(0, "scan.completed")},
	} {
		t.Run(tc.name+" with the same key is refused", func(t *testing.T) {
			r := e.do(t, http.MethodPost, tc.path, key, tc.body, "Idempotency-Key", "b-1")
			assertError(t, r, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED", reusedKeyMsg)
		})
	}
	t.Run("a batch with a single event's key is refused", func(t *testing.T) {
		data(t, e.publish(t, key, "scan.completed", "Idempotency-Key", "s-1"), http.StatusAccepted)
		r := e.do(t, http.MethodPost, "/api/v1/events/batch", key, batchOf(1), "Idempotency-Key", "s-1")
		assertError(t, r, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED", reusedKeyMsg)
	})
	if u := usage(t, e, key); u["eventsPublished"] != float64(5) {
		t.Errorf("eventsPublished = %v, want 5: the batch once and the single event", u["eventsPublished"])
	}
}
