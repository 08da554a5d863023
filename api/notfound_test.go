package api_test

import (
	"net/http"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// webhookOps are the operations on one endpoint; {id} and {did} are filled in.
func webhookOps(id, did string) []struct{ name, method, path string } {
	hook := "/api/v1/webhooks/" + id
	return []struct{ name, method, path string }{
		{"get", "GET", hook},
		{"patch", "PATCH", hook},
		{"delete", "DELETE", hook},
		{"secret", "GET", hook + "/secret"},
		{"rotate", "POST", hook + "/rotate-secret"},
		{"test", "POST", hook + "/test"},
		{"deliveries", "GET", hook + "/deliveries"},
		{"delivery", "GET", hook + "/deliveries/" + did},
		{"retry", "POST", hook + "/deliveries/" + did + "/retry"},
		{"stats", "GET", hook + "/stats"},
	}
}

// body gives every operation a valid body, so that only the id can be wrong.
func opBody(method string) any {
	if method == "PATCH" {
		return map[string]any{"description": "changed"}
	}
	if method == "POST" {
		return map[string]any{}
	}
	return nil
}

func TestWebhookNotFound(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	live := e.createWebhook(t, key)["id"].(string)
	did := e.sendTest(t, key, live)["id"].(string)
	gone := e.createWebhook(t, key)["id"].(string)
	goneDid := e.sendTest(t, key, gone)["id"].(string)
	if r := e.do(t, http.MethodDelete, "/api/v1/webhooks/"+gone, key, nil); r.status != http.StatusOK {
		t.Fatalf("DELETE = %d, want 200; %s", r.status, r.body)
	}
	otherKey, _ := e.newKey(t)
	other := e.createWebhook(t, otherKey)["id"].(string)
	otherDid := e.sendTest(t, otherKey, other)["id"].(string)

	ids := []struct{ name, id, did string }{
		{"unknown uuid", unknownID, did},
		{"deleted", gone, goneDid},
		{"another tenant's", other, otherDid},
		{"not a uuid", "not-a-uuid", did},
		{"upper-case of a real id", upper(live), did},
		// Ids that name another kind of record of the same tenant must not reach it.
		{"deliveries index of a real id", live + ":dlv", did},
		{"status index of a real id", live + ":dlv:pending", did},
	}
	for _, tt := range ids {
		for _, op := range webhookOps(tt.id, tt.did) {
			t.Run(tt.name+"/"+op.name, func(t *testing.T) {
				r := e.do(t, op.method, op.path, key, opBody(op.method))
				assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
			})
		}
	}
	t.Run("the live endpoint is untouched", func(t *testing.T) {
		d := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+live, key, nil), http.StatusOK)
		if d["description"] != "" || d["status"] != "active" {
			t.Errorf("live endpoint = %v, want unchanged", d)
		}
	})
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestDeliveryNotFound(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	hook := e.createWebhook(t, key)["id"].(string)
	did := e.sendTest(t, key, hook)["id"].(string)
	sibling := e.createWebhook(t, key)["id"].(string)
	siblingDid := e.sendTest(t, key, sibling)["id"].(string)
	otherKey, otherTid := e.newKey(t)
	otherHook := e.createWebhook(t, otherKey)["id"].(string)
	otherDid := e.sendTest(t, otherKey, otherHook)["id"].(string)
	recordOutcome(t, e, tid, hook, did, 0, registry.OutcomeSuccess, 15)
	recordOutcome(t, e, otherTid, otherHook, otherDid, 0, registry.OutcomeSuccess, 15)

	dids := []struct{ name, did string }{
		{"unknown", unknownID},
		{"another endpoint's", siblingDid},
		{"another tenant's", otherDid},
		{"not a uuid", "nope"},
		{"attempts list of a real delivery", did + ":att"},
	}
	for _, tt := range dids {
		for _, op := range []struct{ name, method, suffix string }{{"get", "GET", ""}, {"retry", "POST", "/retry"}} {
			t.Run(tt.name+"/"+op.name, func(t *testing.T) {
				r := e.do(t, op.method, "/api/v1/webhooks/"+hook+"/deliveries/"+tt.did+op.suffix, key, nil)
				assertError(t, r, http.StatusNotFound, "DELIVERY_NOT_FOUND", "Delivery not found")
			})
		}
	}
	t.Run("a malformed delivery id of an unknown endpoint is WEBHOOK_NOT_FOUND", func(t *testing.T) {
		r := e.do(t, http.MethodGet, "/api/v1/webhooks/"+unknownID+"/deliveries/nope", key, nil)
		assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
	})
	t.Run("the real delivery is found with its attempt", func(t *testing.T) {
		d := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+hook+"/deliveries/"+did, key, nil), http.StatusOK)
		if d["id"] != did || d["webhookId"] != hook {
			t.Errorf("delivery = %v, want id %s of webhook %s", d, did, hook)
		}
		if atts, _ := d["attempts"].([]any); len(atts) != 1 {
			t.Errorf("attempts = %v, want the one recorded", d["attempts"])
		}
	})
}
