package api_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
)

func TestPatchWebhook(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	created := e.createWebhook(t, key, "scan.completed")
	id := created["id"].(string)
	hook := "/api/v1/webhooks/" + id
	nextMillisecond()

	// Each step patches some fields; want lists the fields that must read so afterwards.
	steps := []struct {
		name   string
		patch  map[string]any
		want   map[string]any
		probes int64 // probes this step must make
	}{
		{"description only", map[string]any{"description": "SIEM"},
			map[string]any{"description": "SIEM", "url": created["url"], "events": []any{"scan.completed"}, "headers": map[string]any{}}, 0},
		{"headers", map[string]any{"headers": map[string]string{"X-Team": "sec", "Authorization": "Bearer t"}},
			map[string]any{"headers": map[string]any{"X-Team": "sec", "Authorization": "Bearer t"}, "description": "SIEM"}, 0},
		{"null headers change nothing", map[string]any{"headers": nil},
			map[string]any{"headers": map[string]any{"X-Team": "sec", "Authorization": "Bearer t"}}, 0},
		{"empty headers clear them", map[string]any{"headers": map[string]string{}},
			map[string]any{"headers": map[string]any{}}, 0},
		{"events", map[string]any{"events": []string{"scan.started", "scan.cancelled", "scan.started"}},
			map[string]any{"events": []any{"scan.started", "scan.cancelled"}, "description": "SIEM"}, 0},
		{"same url is not probed again", map[string]any{"url": created["url"]}, map[string]any{"url": created["url"]}, 0},
		{"new url is probed", map[string]any{"url": e.hookURL("/v2")}, map[string]any{"url": e.hookURL("/v2")}, 1},
		{"empty description", map[string]any{"description": ""}, map[string]any{"description": ""}, 0},
		{"empty object", map[string]any{}, map[string]any{"url": e.hookURL("/v2"), "events": []any{"scan.started", "scan.cancelled"}}, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := e.probes.Load()
			d := data(t, e.do(t, http.MethodPatch, hook, key, st.patch), http.StatusOK)
			assertFields(t, d, endpointFields...)
			got := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)
			for k, w := range st.want {
				if !reflect.DeepEqual(d[k], w) || !reflect.DeepEqual(got[k], w) {
					t.Errorf("%s = %#v in the PATCH answer and %#v on GET, want %#v", k, d[k], got[k], w)
				}
			}
			if d["status"] != "active" || d["createdAt"] != created["createdAt"] {
				t.Errorf("status, createdAt = %v, %v; want active and unchanged", d["status"], d["createdAt"])
			}
			if !parseTime(t, d["updatedAt"]).After(parseTime(t, created["createdAt"])) {
				t.Errorf("updatedAt %v is not after createdAt %v", d["updatedAt"], created["createdAt"])
			}
			if n := e.probes.Load() - before; n != st.probes {
				t.Errorf("probes = %d, want %d", n, st.probes)
			}
		})
	}
	t.Run("events change the subscriptions", func(t *testing.T) {
		for typ, want := range map[string]float64{"scan.completed": 0, "scan.started": 1, "scan.cancelled": 1} {
			if d := data(t, e.publish(t, key, typ), http.StatusAccepted); d["deliveries"] != want {
				t.Errorf("publish %s: deliveries = %v, want %v", typ, d["deliveries"], want)
			}
		}
	})
}

func TestDisableAndEnable(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	hook := "/api/v1/webhooks/" + id
	did := e.sendTest(t, key, id)["id"].(string)
	// Two failed attempts of the first run, as a worker would record them.
	for range 2 {
		recordOutcome(t, e, tid, id, did, 0, registry.OutcomeFailure, 15)
	}
	if d := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK); d["consecutiveFailures"] != float64(2) {
		t.Fatalf("consecutiveFailures = %v, want 2", d["consecutiveFailures"])
	}

	before := time.Now().Add(-time.Second)
	d := data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": false, "description": "paused"}), http.StatusOK)
	assertFields(t, d, endpointFields...)
	if d["enabled"] != false || d["status"] != "disabled" || d["disabledReason"] != "manual" || d["description"] != "paused" {
		t.Errorf("after enabled:false = %v, want disabled (manual) with the description applied", d)
	}
	if at := parseTime(t, d["disabledAt"]); at.Before(before) {
		t.Errorf("disabledAt = %v, want the time of the PATCH", at)
	}
	delivery := "/api/v1/webhooks/" + id + "/deliveries/" + did
	if st := data(t, e.do(t, http.MethodGet, delivery, key, nil), http.StatusOK)["status"]; st != "held" {
		t.Errorf("pending delivery is %v after disabling, want held", st)
	}
	items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks?status=disabled", key, nil))
	if len(items) != 1 {
		t.Errorf("?status=disabled lists %d endpoints, want 1", len(items))
	}
	again := data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": false}), http.StatusOK)
	if again["disabledReason"] != "manual" || again["disabledAt"] != d["disabledAt"] {
		t.Errorf("disabling twice changed reason or time: %v", again)
	}

	d = data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": true}), http.StatusOK)
	assertFields(t, d, append(endpointFields, "requeuedDeliveries")...)
	want := map[string]any{"enabled": true, "status": "active", "disabledReason": nil, "disabledAt": nil,
		"consecutiveFailures": float64(0), "requeuedDeliveries": float64(1)}
	for k, w := range want {
		if d[k] != w {
			t.Errorf("after enabled:true %s = %#v, want %#v", k, d[k], w)
		}
	}
	if st := data(t, e.do(t, http.MethodGet, delivery, key, nil), http.StatusOK)["status"]; st != "pending" {
		t.Errorf("held delivery is %v after re-enabling, want pending", st)
	}
	d = data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": true}), http.StatusOK)
	if d["requeuedDeliveries"] != float64(0) {
		t.Errorf("enabling an active endpoint: requeuedDeliveries = %v, want 0", d["requeuedDeliveries"])
	}
	d = data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"description": "x"}), http.StatusOK)
	if _, ok := d["requeuedDeliveries"]; ok {
		t.Errorf("requeuedDeliveries present on a PATCH that did not enable: %v", d)
	}
}

func TestAutoDisabledEndpoint(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	hook := "/api/v1/webhooks/" + id
	did := e.sendTest(t, key, id)["id"].(string)
	recordOutcome(t, e, tid, id, did, 0, registry.OutcomeFailure, 2)
	recordOutcome(t, e, tid, id, did, 0, registry.OutcomeFailure, 2)
	d := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)
	if d["status"] != "disabled" || d["disabledReason"] != "consecutive_failures" {
		t.Fatalf("after 2 failures with threshold 2: %v, want disabled (consecutive_failures)", d)
	}
	assertError(t, e.do(t, http.MethodPost, hook+"/test", key, nil), http.StatusConflict, "WEBHOOK_DISABLED",
		"Webhook is disabled due to consecutive failures")
	d = data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"enabled": true}), http.StatusOK)
	if d["consecutiveFailures"] != float64(0) || d["requeuedDeliveries"] != float64(1) || d["disabledReason"] != nil {
		t.Errorf("after re-enable: %v, want 0 failures, reason null and the held delivery requeued", d)
	}
}

// recordOutcome stores one finished attempt of run gen of a delivery, as a worker would, with
// the auto-disable threshold disableAfter and no minimum window.
func recordOutcome(t *testing.T, e *env, tid, eid, did string, gen int, o registry.AttemptOutcome, disableAfter int) {
	t.Helper()
	status := 204
	if o != registry.OutcomeSuccess {
		status = 500
	}
	_, _, err := registrytest.Record(t.Context(), e.store, registrytest.Attempt{TenantID: tid, EndpointID: eid,
		DeliveryID: did, Generation: gen, Outcome: o,
		Attempt:       registry.Attempt{Number: 1, StartedAt: time.Now(), DurationMs: 3, StatusCode: status},
		NextAttemptAt: time.Now().Add(time.Minute), MaxAttempts: 10, Streak: registry.StreakRule{Threshold: disableAfter}})
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
}
