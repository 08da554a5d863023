package api_test

import (
	"net/http"
	"reflect"
	"testing"
)

// Tests that a field given as null is a field left out, as in the first version's contract
// (typed clients send every field, null for the ones they do not set): optional ones keep their
// default or their value, required ones are MISSING_REQUIRED_FIELD (validation_test.go). Only
// rateLimitPerSecond gives null a meaning of its own: no limit.

// TestNullIsLeftOut: optional fields given as null on create get their defaults, and on PATCH
// change nothing.
func TestNullIsLeftOut(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	d := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, `{"url":"`+e.hookURL("/h")+
		`","events":["scan.completed"],"description":null,"headers":null,"enabled":null,"ordering":null}`), http.StatusCreated)
	if d["enabled"] != true || d["ordering"] != "none" || d["description"] != "" {
		t.Errorf("created with nulls = %v, want enabled, ordering none, no description", d)
	}
	before := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)
	for _, body := range []string{`{"headers":null,"description":null}`, `{"ordering":null,"enabled":null,"url":null,"events":null}`} {
		data(t, e.do(t, http.MethodPatch, hook, key, body), http.StatusOK)
	}
	after := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)
	delete(before, "updatedAt")
	delete(after, "updatedAt")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("PATCH of nulls changed the endpoint:\n before %v\n after  %v", before, after)
	}
	body := `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","priority":null}}`
	data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)
}

// TestNullWhereAllowed: rateLimitPerSecond null means no limit (and clears one), and null
// inside free-form event data is data like any other.
func TestNullWhereAllowed(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	d := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, `{"url":"`+e.hookURL("/h")+
		`","events":["scan.completed"],"rateLimitPerSecond":null}`), http.StatusCreated)
	if d["rateLimitPerSecond"] != nil {
		t.Errorf("created with rateLimitPerSecond null: %v, want null", d["rateLimitPerSecond"])
	}
	data(t, e.do(t, http.MethodPatch, hook, key, `{"rateLimitPerSecond":5}`), http.StatusOK)
	if d := data(t, e.do(t, http.MethodPatch, hook, key, `{"rateLimitPerSecond":null}`), http.StatusOK); d["rateLimitPerSecond"] != nil {
		t.Errorf("PATCH rateLimitPerSecond null left %v, want null (no limit)", d["rateLimitPerSecond"])
	}
	body := `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","finding":null,"x":[null]}}`
	data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)
}
