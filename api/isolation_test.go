package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// snapshot reads everything tenant A can see of one endpoint.
func snapshot(t *testing.T, e *env, key, id, did string) [][]byte {
	t.Helper()
	hook := "/api/v1/webhooks/" + id
	var out [][]byte
	for _, p := range []string{hook, hook + "/secret", hook + "/deliveries", hook + "/deliveries/" + did, "/api/v1/usage"} {
		r := e.do(t, http.MethodGet, p, key, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200; %s", p, r.status, r.body)
		}
		out = append(out, r.body)
	}
	return out
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	keyA, tidA := e.newKey(t)
	keyB, _ := e.newKey(t)
	hookA := e.createWebhook(t, keyA, "scan.completed")["id"].(string)
	didA := e.sendTest(t, keyA, hookA)["id"].(string)
	recordOutcome(t, e, tidA, hookA, didA, 0, registry.OutcomeSuccess, 15)
	hookB := e.createWebhook(t, keyB, "scan.completed")["id"].(string)
	didB := e.sendTest(t, keyB, hookB)["id"].(string)
	before := snapshot(t, e, keyA, hookA, didA)

	for _, op := range webhookOps(hookA, didA) {
		t.Run("B on A's endpoint/"+op.name, func(t *testing.T) {
			body := opBody(op.method)
			if op.method == http.MethodPatch {
				body = map[string]any{"enabled": false, "url": e.hookURL("/stolen"), "events": []string{"scan.failed"}}
			}
			r := e.do(t, op.method, op.path, keyB, body)
			assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
		})
	}
	for _, op := range []struct{ name, method, suffix string }{{"get", "GET", ""}, {"retry", "POST", "/retry"}} {
		t.Run("B's endpoint with A's delivery/"+op.name, func(t *testing.T) {
			r := e.do(t, op.method, "/api/v1/webhooks/"+hookB+"/deliveries/"+didA+op.suffix, keyB, nil)
			assertError(t, r, http.StatusNotFound, "DELIVERY_NOT_FOUND", "Delivery not found")
		})
	}
	t.Run("B's publish reaches only B's endpoints", func(t *testing.T) {
		if d := data(t, e.publish(t, keyB, "scan.completed"), http.StatusAccepted); d["deliveries"] != float64(1) {
			t.Errorf("deliveries = %v, want 1 (B's own endpoint)", d["deliveries"])
		}
	})
	t.Run("lists show only the tenant's own endpoints", func(t *testing.T) {
		for _, c := range []struct{ key, want string }{{keyA, hookA}, {keyB, hookB}} {
			items, pg := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", c.key, nil))
			if len(items) != 1 || items[0].(map[string]any)["id"] != c.want || pg["total"] != float64(1) {
				t.Errorf("list = %v (total %v), want only %s", items, pg["total"], c.want)
			}
		}
	})
	t.Run("A's endpoint is unchanged", func(t *testing.T) {
		after := snapshot(t, e, keyA, hookA, didA)
		for i := range before {
			if !bytes.Equal(before[i], after[i]) {
				t.Errorf("A's view changed:\nbefore %s\nafter  %s", before[i], after[i])
			}
		}
	})
	t.Run("B's own delivery is still B's", func(t *testing.T) {
		data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+hookB+"/deliveries/"+didB, keyB, nil), http.StatusOK)
		r := e.do(t, http.MethodGet, "/api/v1/webhooks/"+hookA+"/deliveries/"+didB, keyA, nil)
		assertError(t, r, http.StatusNotFound, "DELIVERY_NOT_FOUND", "Delivery not found")
	})
}
