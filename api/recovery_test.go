package api_test

import (
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
)

// state is everything in the test's Redis database but the rate limiter's counters, which
// every request moves: what "nothing changed" compares. Values are sorted, so that a hash
// read twice compares equal whatever order it came in.
func state(t *testing.T, e *env) map[string][]string {
	t.Helper()
	db := registrytest.Dump(t, e.rdb)
	for k, v := range db {
		if strings.HasPrefix(k, "rate:") {
			delete(db, k)
			continue
		}
		slices.Sort(v)
	}
	return db
}

// unchanged fails the test if the database differs from before.
func unchanged(t *testing.T, e *env, before map[string][]string) {
	t.Helper()
	after := state(t, e)
	for k, v := range after {
		if w, ok := before[k]; !ok || !reflect.DeepEqual(v, w) {
			t.Errorf("key %s changed: %v, was %v", k, v, w)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("key %s was removed", k)
		}
	}
}

// failedDelivery publishes an event to endpoint eid and records its one attempt as failed for
// good; it returns the event and delivery ids.
func failedDelivery(t *testing.T, e *env, key, tid, eid string) (evid, did string) {
	t.Helper()
	evid = data(t, e.publish(t, key, registry.EventScanCompleted), http.StatusAccepted)["id"].(string)
	did = registry.DeliveryID(evid, eid)
	st, _, err := registrytest.Record(t.Context(), e.store, registrytest.Attempt{TenantID: tid, EndpointID: eid,
		DeliveryID: did, Outcome: registry.OutcomeFailure, MaxAttempts: 1, Streak: registry.StreakRule{Threshold: 1000},
		Attempt: registry.Attempt{Number: 1, StartedAt: time.Now(), DurationMs: 3, StatusCode: 500}})
	if err != nil || st != registry.DeliveryFailed {
		t.Fatalf("Record = %s, %v; want failed", st, err)
	}
	return evid, did
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

const (
	msgTimeRange  = "Invalid time range: since must be before until"
	msgSinceType  = "Field since must be of type RFC 3339 timestamp"
	msgUntilType  = "Field until must be of type RFC 3339 timestamp"
	msgIncludeSet = `Field include must be of type array of "failed" and "missing"`
)

// Every malformed recover request is refused with its code and message, and leaves the
// database as it was: no recovery, no task, the failed delivery still failed.
func TestRecoverBadInput(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	hook := e.createWebhook(t, key)["id"].(string)
	failedDelivery(t, e, key, tid, hook)
	now := time.Now()
	hour := now.Add(-time.Hour)
	tests := []struct {
		name      string
		body      any
		code, msg string
	}{
		{"since after until", map[string]any{"since": rfc(now), "until": rfc(hour)}, "INVALID_TIME_RANGE", msgTimeRange},
		{"since equal to until", map[string]any{"since": rfc(hour), "until": rfc(hour)}, "INVALID_TIME_RANGE", msgTimeRange},
		{"equal in other zones", map[string]any{"since": "2026-01-01T02:00:00+02:00", "until": "2026-01-01T00:00:00Z"},
			"INVALID_TIME_RANGE", msgTimeRange},
		{"since in the future, until now", map[string]any{"since": rfc(now.Add(time.Hour))}, "INVALID_TIME_RANGE", msgTimeRange},
		{"since missing", map[string]any{"until": rfc(now)}, "MISSING_REQUIRED_FIELD", "Missing required field: since"},
		{"since null", map[string]any{"since": nil}, "MISSING_REQUIRED_FIELD", "Missing required field: since"},
		{"empty object", map[string]any{}, "MISSING_REQUIRED_FIELD", "Missing required field: since"},
		{"since a word", map[string]any{"since": "yesterday"}, "INVALID_FIELD_TYPE", msgSinceType},
		{"since empty", map[string]any{"since": ""}, "INVALID_FIELD_TYPE", msgSinceType},
		{"since a date", map[string]any{"since": "2026-01-01"}, "INVALID_FIELD_TYPE", msgSinceType},
		{"since without a zone", map[string]any{"since": "2026-01-01T00:00:00"}, "INVALID_FIELD_TYPE", msgSinceType},
		{"since month 13", map[string]any{"since": "2026-13-01T00:00:00Z"}, "INVALID_FIELD_TYPE", msgSinceType},
		{"since 30 February", map[string]any{"since": "2026-02-30T00:00:00Z"}, "INVALID_FIELD_TYPE", msgSinceType},
		{"since Unix seconds", map[string]any{"since": 1767225600}, "INVALID_FIELD_TYPE", "Field since must be of type string"},
		{"until a word", map[string]any{"since": rfc(hour), "until": "now"}, "INVALID_FIELD_TYPE", msgUntilType},
		{"until a date", map[string]any{"since": rfc(hour), "until": "2026-01-02"}, "INVALID_FIELD_TYPE", msgUntilType},
		{"include unknown", map[string]any{"since": rfc(hour), "include": []string{"failed", "succeeded"}},
			"INVALID_FIELD_TYPE", msgIncludeSet},
		{"include in capitals", map[string]any{"since": rfc(hour), "include": []string{"FAILED"}}, "INVALID_FIELD_TYPE", msgIncludeSet},
		{"include empty", map[string]any{"since": rfc(hour), "include": []string{}}, "INVALID_FIELD_TYPE", msgIncludeSet},
		{"include a string", map[string]any{"since": rfc(hour), "include": "failed"}, "INVALID_FIELD_TYPE",
			"Field include must be of type array"},
		{"include of numbers", map[string]any{"since": rfc(hour), "include": []int{1}}, "INVALID_FIELD_TYPE",
			"Field include[0] must be of type string"},
		{"include of null", map[string]any{"since": rfc(hour), "include": []any{nil}}, "INVALID_FIELD_TYPE",
			"Field include[0] must be of type string"},
		{"unknown field", map[string]any{"since": rfc(hour), "from": rfc(hour)}, "UNKNOWN_FIELD", "Unknown field: from"},
		{"read-only field", map[string]any{"since": rfc(hour), "status": "done"}, "UNKNOWN_FIELD", "Unknown field: status"},
		{"endpoint in the body", map[string]any{"since": rfc(hour), "webhookId": hook}, "UNKNOWN_FIELD", "Unknown field: webhookId"},
		{"not JSON", "{since", "INVALID_JSON", "Request body is not valid JSON"},
		{"no body", "", "INVALID_JSON", "Request body is not valid JSON"},
		{"an array", `[{"since":"` + rfc(hour) + `"}]`, "INVALID_JSON", "Request body is not valid JSON"},
		{"duplicate key", `{"since":"` + rfc(hour) + `","since":"` + rfc(now) + `"}`, "INVALID_JSON", "Request body is not valid JSON"},
	}
	before := state(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks/"+hook+"/recover", key, tt.body)
			assertError(t, r, http.StatusBadRequest, tt.code, tt.msg)
			unchanged(t, e, before)
		})
	}
}

// A recover request for an endpoint the key cannot act on is refused, and changes nothing:
// another tenant's, an unknown, a deleted or a disabled endpoint, or a key without
// webhooks:write.
func TestRecoverRefused(t *testing.T) {
	e := newEnv(t)
	keyA, tidA := e.newKey(t)
	keyB, tidB := e.newKey(t)
	hookA := e.createWebhook(t, keyA)["id"].(string)
	hookB := e.createWebhook(t, keyB)["id"].(string)
	off := e.createWebhook(t, keyA)["id"].(string)
	gone := e.createWebhook(t, keyA)["id"].(string)
	failedDelivery(t, e, keyA, tidA, hookA)
	failedDelivery(t, e, keyB, tidB, hookB)
	_, offDid := failedDelivery(t, e, keyA, tidA, off)
	data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+off, keyA, map[string]any{"enabled": false}), http.StatusOK)
	if r := e.do(t, http.MethodDelete, "/api/v1/webhooks/"+gone, keyA, nil); r.status != http.StatusNoContent && r.status != http.StatusOK {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	readOnly, _ := e.key(t, registry.NewKeyParams{TenantID: tidA, Scopes: []string{registry.ScopeWebhooksRead}})
	body := map[string]any{"since": rfc(time.Now().Add(-time.Hour)), "include": []string{"failed", "missing"}}
	tests := []struct {
		name, key, hook string
		status          int
		code, msg       string
	}{
		{"another tenant's endpoint", keyB, hookA, 404, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"the other tenant's own way round", keyA, hookB, 404, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"unknown endpoint", keyA, unknownID, 404, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"malformed endpoint id", keyA, "not-a-uuid", 404, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"upper-case endpoint id", keyA, strings.ToUpper(hookA), 404, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"deleted endpoint", keyA, gone, 404, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"disabled endpoint", keyA, off, 409, "WEBHOOK_DISABLED", "Webhook is disabled due to consecutive failures"},
		{"key without webhooks:write", readOnly, hookA, 403, "INSUFFICIENT_SCOPE", "Insufficient scope: requires webhooks:write"},
	}
	before := state(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks/"+tt.hook+"/recover", tt.key, body)
			assertError(t, r, tt.status, tt.code, tt.msg)
			unchanged(t, e, before)
		})
	}
	// The disabled endpoint's delivery stayed failed (it is not held: it was failed before).
	d := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+off+"/deliveries/"+offDid, keyA, nil), http.StatusOK)
	if d["status"] != registry.DeliveryFailed {
		t.Errorf("the disabled endpoint's failed delivery is %v, want still failed", d["status"])
	}
}

// A recovery is read only through its own endpoint and tenant: anything else is
// RECOVERY_NOT_FOUND (or WEBHOOK_NOT_FOUND when the endpoint is not the key's).
func TestRecoveryNotFound(t *testing.T) {
	e := newEnv(t)
	keyA, tidA := e.newKey(t)
	keyB, _ := e.newKey(t)
	hookA := e.createWebhook(t, keyA)["id"].(string)
	otherA := e.createWebhook(t, keyA)["id"].(string)
	hookB := e.createWebhook(t, keyB)["id"].(string)
	failedDelivery(t, e, keyA, tidA, hookA)
	rcv := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks/"+hookA+"/recover", keyA,
		map[string]any{"since": rfc(time.Now().Add(-time.Hour))}), http.StatusAccepted)
	assertFields(t, rcv, "id", "webhookId", "since", "until", "include", "status", "requeued", "created", "createdAt",
		"finishedAt")
	rid := rcv["id"].(string)
	got := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+hookA+"/recoveries/"+rid, keyA, nil), http.StatusOK)
	if got["id"] != rid || got["webhookId"] != hookA || got["status"] != "running" {
		t.Errorf("recovery = %v, want %s of %s, running (no worker runs here)", got, rid, hookA)
	}

	const unknownRcv = "rcv_0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, key, hook, rid string
		code, msg            string
	}{
		{"unknown recovery", keyA, hookA, unknownRcv, "RECOVERY_NOT_FOUND", "Recovery not found"},
		{"malformed recovery id", keyA, hookA, "rcv_nope", "RECOVERY_NOT_FOUND", "Recovery not found"},
		{"upper-case recovery id", keyA, hookA, strings.ToUpper(rid), "RECOVERY_NOT_FOUND", "Recovery not found"},
		{"another endpoint's recovery", keyA, otherA, rid, "RECOVERY_NOT_FOUND", "Recovery not found"},
		{"another tenant's recovery on its own endpoint", keyB, hookB, rid, "RECOVERY_NOT_FOUND", "Recovery not found"},
		{"another tenant's endpoint and recovery", keyB, hookA, rid, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"unknown endpoint, unknown recovery", keyA, unknownID, unknownRcv, "WEBHOOK_NOT_FOUND", "Webhook not found"},
		{"unknown endpoint, malformed recovery", keyA, unknownID, "nope", "WEBHOOK_NOT_FOUND", "Webhook not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodGet, "/api/v1/webhooks/"+tt.hook+"/recoveries/"+tt.rid, tt.key, nil)
			assertError(t, r, http.StatusNotFound, tt.code, tt.msg)
		})
	}
}

// GET /api/v1/events refuses bad filters and pages with their codes.
func TestListEventsBadQuery(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	e.publish(t, key, registry.EventScanCompleted)
	eventsOnly, _ := e.key(t, registry.NewKeyParams{TenantID: e.tenant(t, 0), Scopes: []string{registry.ScopeEventsWrite}})
	const (
		t1 = "2026-01-01T00:00:00Z"
		t2 = "2026-01-02T00:00:00Z"
	)
	tests := []struct {
		name, query, key string
		status           int
		code, msg        string
	}{
		{"unknown type", "type=scan.exploded", key, 400, "INVALID_WEBHOOK_EVENT", "Invalid event type: scan.exploded"},
		{"test ping type", "type=webhook.test", key, 400, "INVALID_WEBHOOK_EVENT", "Invalid event type: webhook.test"},
		{"since a word", "since=yesterday", key, 400, "INVALID_FIELD_TYPE", msgSinceType},
		{"since a date", "since=2026-01-01", key, 400, "INVALID_FIELD_TYPE", msgSinceType},
		{"since with an unencoded plus", "since=2026-01-01T00:00:00+02:00", key, 400, "INVALID_FIELD_TYPE", msgSinceType},
		{"since badly encoded", "since=%zz", key, 400, "INVALID_FIELD_TYPE", msgSinceType},
		{"since empty", "since=", key, 400, "INVALID_FIELD_TYPE", msgSinceType},
		{"until a word", "until=tomorrow", key, 400, "INVALID_FIELD_TYPE", msgUntilType},
		{"since after until", "since=" + t2 + "&until=" + t1, key, 400, "INVALID_TIME_RANGE", msgTimeRange},
		{"since equal to until", "since=" + t1 + "&until=" + t1, key, 400, "INVALID_TIME_RANGE", msgTimeRange},
		{"empty scanId", "scanId=", key, 400, "INVALID_FIELD_TYPE", "Field scanId must be of type non-empty string"},
		{"page 0", "page=0", key, 400, "INVALID_PAGE", "Page must be a positive integer"},
		{"page a word", "page=two", key, 400, "INVALID_PAGE", "Page must be a positive integer"},
		{"page badly encoded", "page=%zz", key, 400, "INVALID_PAGE", "Page must be a positive integer"},
		{"limit 101", "limit=101", key, 400, "INVALID_LIMIT", "Limit must be between 1 and 100"},
		{"limit 0", "limit=0", key, 400, "INVALID_LIMIT", "Limit must be between 1 and 100"},
		{"key without webhooks:read", "", eventsOnly, 403, "INSUFFICIENT_SCOPE", "Insufficient scope: requires webhooks:read"},
		{"no key", "", "", 401, "MISSING_API_KEY", "API key is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertError(t, e.do(t, http.MethodGet, "/api/v1/events?"+tt.query, tt.key, nil), tt.status, tt.code, tt.msg)
		})
	}
	t.Run("an encoded plus is a zone", func(t *testing.T) {
		items, pg := listData(t, e.do(t, http.MethodGet, "/api/v1/events?since=2026-01-01T00:00:00%2B02:00", key, nil))
		if len(items) != 1 || pg["total"] != float64(1) {
			t.Errorf("events since 2026 = %d (total %v), want the one published", len(items), pg["total"])
		}
	})
}

// GET /api/v1/events/{id} answers EVENT_NOT_FOUND, identically, for an unknown, a malformed
// and another tenant's event id.
func TestGetEventNotFound(t *testing.T) {
	e := newEnv(t)
	keyA, _ := e.newKey(t)
	keyB, _ := e.newKey(t)
	e.createWebhook(t, keyA)
	evA := data(t, e.publish(t, keyA, registry.EventScanCompleted), http.StatusAccepted)["id"].(string)
	evB := data(t, e.publish(t, keyB, registry.EventScanCompleted), http.StatusAccepted)["id"].(string)
	var bodies []string
	for _, id := range []string{evB, "evt_0123456789abcdef0123456789abcdef", "evt_nope", "nope", strings.ToUpper(evB)} {
		r := e.do(t, http.MethodGet, "/api/v1/events/"+id, keyA, nil, "X-Request-ID", "req-event-not-found")
		assertError(t, r, http.StatusNotFound, "EVENT_NOT_FOUND", "Event not found")
		bodies = append(bodies, string(r.body))
	}
	for i, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("answer %d = %s, want the same as for another tenant's event: %s", i+1, b, bodies[0])
		}
	}
	d := data(t, e.do(t, http.MethodGet, "/api/v1/events/"+evA, keyA, nil), http.StatusOK)
	if ds, _ := d["deliveries"].([]any); d["id"] != evA || len(ds) != 1 {
		t.Errorf("event = %v, want %s with its one delivery", d, evA)
	}
}

// A portal token reads the tenant's events (it grants webhooks:read) but cannot publish one.
func TestPortalReadsEventsOnly(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	ev := data(t, e.publish(t, key, registry.EventScanCompleted), http.StatusAccepted)["id"].(string)
	token, _ := e.portalSession(t, key, nil)

	items, _ := listData(t, e.portal(t, http.MethodGet, "/api/v1/events", token, nil))
	if len(items) != 1 || items[0].(map[string]any)["id"] != ev {
		t.Errorf("portal's event list = %v, want the one event %s", items, ev)
	}
	if d := data(t, e.portal(t, http.MethodGet, "/api/v1/events/"+ev, token, nil), http.StatusOK); d["id"] != ev {
		t.Errorf("portal's event = %v, want %s", d, ev)
	}
	before := state(t, e)
	r := e.portal(t, http.MethodPost, "/api/v1/events", token, map[string]any{"type": registry.EventScanCompleted,
		"data": map[string]any{"scanId": "7d8f0e7c-2f7a-4a0e-9d55-1c1b0b9b2c11", "scanType": "zap"}})
	assertError(t, r, http.StatusUnauthorized, "MISSING_API_KEY", "API key is required")
	unchanged(t, e, before)
}

// The list's filters through the API: newest first, by type, scan and window, paged.
func TestListEventsFilters(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	var last time.Time
	publish := func(typ, scan string) string {
		body := map[string]any{"type": typ, "data": map[string]any{"scanId": scan, "scanType": "nmap"}}
		d := data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)
		last = parseTime(t, d["createdAt"])
		return d["id"].(string)
	}
	a1 := publish(registry.EventScanStarted, "scan-a")
	// The window's edge is a millisecond after the first event's: the events after it are
	// created at or after it.
	mid := last.Truncate(time.Millisecond).Add(time.Millisecond)
	for time.Now().Before(mid) {
		runtime.Gosched()
	}
	b1 := publish(registry.EventScanStarted, "scan-b")
	a2 := publish(registry.EventScanCompleted, "scan-a")
	ids := func(query string) ([]string, float64) {
		t.Helper()
		items, pg := listData(t, e.do(t, http.MethodGet, "/api/v1/events?"+query, key, nil))
		var out []string
		for _, it := range items {
			m := it.(map[string]any)
			if _, ok := m["data"].(map[string]any); !ok {
				t.Errorf("event %v listed without its data", m["id"])
			}
			out = append(out, m["id"].(string))
		}
		return out, pg["total"].(float64)
	}
	tests := []struct {
		query string
		want  []string
		total float64
	}{
		{"", []string{a2, b1, a1}, 3},
		{"scanId=scan-a", []string{a2, a1}, 2},
		{"scanId=scan-a&type=scan.started", []string{a1}, 1},
		{"scanId=scan-unknown", nil, 0},
		{"type=scan.started", []string{b1, a1}, 2},
		{"until=" + rfc(mid), []string{a1}, 1},
		{"since=" + rfc(mid), []string{a2, b1}, 2},
		{"limit=1&page=2", []string{b1}, 3},
		{"limit=2&page=3", nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			got, total := ids(tt.query)
			if !slices.Equal(got, tt.want) || total != tt.total {
				t.Errorf("events = %v (total %v), want %v (total %v)", got, total, tt.want, tt.total)
			}
		})
	}
}
