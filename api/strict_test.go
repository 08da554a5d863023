package api_test

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Tests of "Stricter input": a request body is understood completely or refused clearly.

const (
	invalidJSON    = "Request body is not valid JSON"
	reusedKeyMsg   = "Idempotency key was used with a different request"
	descriptionMsg = "Field description must be of type string of at most 1024 characters"
)

// TestDuplicateKeysAreInvalidJSON: a key twice in one object, at any depth and however it is
// escaped, makes the whole body INVALID_JSON on every route that takes a body; nothing is stored.
func TestDuplicateKeysAreInvalidJSON(t *testing.T) {
	e, key, id := validationEnv(t)
	url := e.hookURL("/hook")
	hook := "/api/v1/webhooks/" + id
	tests := []struct{ name, method, path, body string }{
		{"create: url twice", "POST", "/api/v1/webhooks", `{"url":"` + url + `","url":"` + url + `","events":["scan.completed"]}`},
		{"create: escaped twin", "POST", "/api/v1/webhooks", `{"url":"` + url + `","events":["scan.completed"],"ev\u0065nts":["scan.failed"]}`},
		{"create: inside headers", "POST", "/api/v1/webhooks", `{"url":"` + url + `","events":["scan.completed"],"headers":{"X-A":"1","X-A":"2"}}`},
		{"patch: top level", "PATCH", hook, `{"description":"a","description":"b"}`},
		{"rotate: top level", "POST", hook + "/rotate-secret", `{"gracePeriodSeconds":1,"gracePeriodSeconds":2}`},
		{"publish: scanType twice", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"nmap","scanType":"zap"}}`},
		{"publish: disallowed type hidden first", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"metasploit","scanType":"zap"}}`},
		{"publish: deep in data", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","x":[{"a":{"b":1,"b":1}}]}}`},
		{"publish: type twice", "POST", "/api/v1/events", `{"type":"scan.failed","type":"scan.completed","data":{"scanId":"s","scanType":"zap"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertError(t, e.do(t, tt.method, tt.path, key, tt.body), http.StatusBadRequest, "INVALID_JSON", invalidJSON)
		})
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0", u["eventsPublished"])
	}
	t.Run("equal keys in different objects are fine", func(t *testing.T) {
		body := `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","a":{"scanId":1},"b":[{"x":1},{"x":2}]}}`
		data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)
	})
}

// TestNumbersOutsideFloat64AreInvalidJSON: a number a float64 cannot hold is INVALID_JSON
// wherever it stands, even in free-form event data.
func TestNumbersOutsideFloat64AreInvalidJSON(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	for _, n := range []string{"1e400", "-1e400", "1" + strings.Repeat("0", 400)} {
		tests := []struct{ name, method, path, body string }{
			{"publish data", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","cvss":` + n + `}}`},
			{"publish nested", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","x":[[` + n + `]]}}`},
			{"rotate", "POST", hook + "/rotate-secret", `{"gracePeriodSeconds":` + n + `}`},
			{"patch", "PATCH", hook, `{"enabled":` + n + `}`},
		}
		for _, tt := range tests {
			t.Run(tt.name+"/"+n[:5], func(t *testing.T) {
				assertError(t, e.do(t, tt.method, tt.path, key, tt.body), http.StatusBadRequest, "INVALID_JSON", invalidJSON)
			})
		}
	}
	t.Run("the largest float64 is fine", func(t *testing.T) {
		body := `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","big":1.7976931348623157e308,"tiny":1e-400}}`
		data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)
	})
}

// TestUnknownFields: read-only and unknown fields are refused by name and change nothing.
func TestUnknownFields(t *testing.T) {
	e, key, id := validationEnv(t)
	url := e.hookURL("/hook")
	hook := "/api/v1/webhooks/" + id
	before := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)
	tests := []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"create: secret", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": []string{"scan.completed"}, "secret": "whsec_mine"}, "secret"},
		{"create: id", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": []string{"scan.completed"}, "id": unknownID}, "id"},
		{"create: typo", "POST", "/api/v1/webhooks", map[string]any{"url": url, "event": []string{"scan.completed"}, "events": []string{"scan.completed"}}, "event"},
		{"patch: secret", "PATCH", hook, map[string]any{"secret": "whsec_mine"}, "secret"},
		{"patch: id", "PATCH", hook, map[string]any{"id": unknownID}, "id"},
		{"patch: status", "PATCH", hook, map[string]any{"status": "disabled"}, "status"},
		{"patch: createdAt", "PATCH", hook, map[string]any{"createdAt": "2020-01-01T00:00:00Z"}, "createdAt"},
		{"patch: the first unknown one is named", "PATCH", hook, `{"description":"x","zeta":1,"alpha":2}`, "zeta"},
		{"rotate: grace typo", "POST", hook + "/rotate-secret", map[string]any{"gracePeriod": 60}, "gracePeriod"},
		{"publish: top level", "POST", "/api/v1/events", map[string]any{"type": "scan.completed", "id": "evt_mine",
			"data": map[string]any{"scanId": "s", "scanType": "zap"}}, "id"},
		{"test ping: any field", "POST", hook + "/test", map[string]any{"force": true}, "force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, key, tt.body)
			assertError(t, r, http.StatusBadRequest, "UNKNOWN_FIELD", "Unknown field: "+tt.field)
		})
	}
	after := data(t, e.do(t, http.MethodGet, hook, key, nil), http.StatusOK)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("refused requests changed the endpoint:\n before %v\n after  %v", before, after)
	}
	list, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", key, nil))
	if len(list) != 1 {
		t.Errorf("%d endpoints, want 1: no refused create may register one", len(list))
	}
	t.Run("an empty object is fine where no body is needed", func(t *testing.T) {
		data(t, e.do(t, http.MethodPost, hook+"/test", key, "{}"), http.StatusAccepted)
	})
}

// TestCreateHonoursEnabled: enabled:false on create registers a disabled endpoint (reason
// manual) whose events are held; enabled:true is the default.
func TestCreateHonoursEnabled(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	for _, tt := range []struct {
		enabled bool
		status  string
		reason  any
	}{{false, "disabled", "manual"}, {true, "active", nil}} {
		d := data(t, e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/h"),
			"events": []string{"scan.completed"}, "enabled": tt.enabled}), http.StatusCreated)
		if d["enabled"] != tt.enabled || d["status"] != tt.status || d["disabledReason"] != tt.reason {
			t.Errorf("enabled:%v created %v", tt.enabled, d)
		}
		got := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+d["id"].(string), key, nil), http.StatusOK)
		if got["status"] != tt.status {
			t.Errorf("GET after enabled:%v shows status %v", tt.enabled, got["status"])
		}
		if !tt.enabled {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks/"+d["id"].(string)+"/test", key, nil)
			assertError(t, r, http.StatusConflict, "WEBHOOK_DISABLED", "Webhook is disabled due to consecutive failures")
		}
	}
}

// TestIdempotencyKeyReusedWithDifferentBody: the same key with another body is refused, the
// same body (whatever its spacing and key order) replays the first event.
func TestIdempotencyKeyReusedWithDifferentBody(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	e.createWebhook(t, key, "scan.completed", "scan.failed")
	body := `{"type":"scan.completed","data":{"scanId":"s-1","scanType":"zap","n":1.50}}`
	first := data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body, "Idempotency-Key", "order-9"), http.StatusAccepted)
	same := []string{
		body,
		`{ "data": { "n": 1.50, "scanType": "zap", "scanId": "s-1" }, "type": "scan.completed" }`,
		`{"type":"scan.completed","data":{"scanId":"s-\u0031","scanType":"zap","n":1.50}}`,
	}
	for i, b := range same {
		d := data(t, e.do(t, http.MethodPost, "/api/v1/events", key, b, "Idempotency-Key", "order-9"), http.StatusOK)
		if !reflect.DeepEqual(d, first) {
			t.Errorf("same body #%d answered %v, want the first event %v", i, d, first)
		}
	}
	different := []string{
		`{"type":"scan.failed","data":{"scanId":"s-1","scanType":"zap","n":1.50}}`,
		`{"type":"scan.completed","data":{"scanId":"s-2","scanType":"zap","n":1.50}}`,
		`{"type":"scan.completed","data":{"scanId":"s-1","scanType":"zap","n":1.5}}`,
		`{"type":"scan.completed","data":{"scanId":"s-1","scanType":"zap","n":1.50,"extra":null}}`,
	}
	for i, b := range different {
		r := e.do(t, http.MethodPost, "/api/v1/events", key, b, "Idempotency-Key", "order-9")
		assertError(t, r, http.StatusConflict, "IDEMPOTENCY_KEY_REUSED", reusedKeyMsg)
		assertRateHeaders(t, r)
		if t.Failed() {
			t.Fatalf("different body #%d", i)
		}
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(1) {
		t.Errorf("eventsPublished = %v, want 1", u["eventsPublished"])
	}
}

// TestHeaderNamesAreCaseInsensitive: two custom headers that differ only in case are refused.
func TestHeaderNamesAreCaseInsensitive(t *testing.T) {
	e, key, id := validationEnv(t)
	hdr := map[string]string{"X-Team": "a", "x-team": "b"}
	r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/h"),
		"events": []string{"scan.completed"}, "headers": hdr})
	assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: x-team")
	r = e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"headers": hdr})
	assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: x-team")
}

// TestHeaderAndDescriptionLimits: names up to 256 characters, values up to 2 KiB, 20 headers,
// Expect reserved, descriptions up to 1,024 characters.
func TestHeaderAndDescriptionLimits(t *testing.T) {
	e, key, id := validationEnv(t)
	url := e.hookURL("/h")
	hook := "/api/v1/webhooks/" + id
	long := "X-" + strings.Repeat("n", 255)
	bad := []struct {
		name    string
		headers map[string]string
		inMsg   string
	}{
		{"name of 257", map[string]string{long: "v"}, long[:64]},
		{"value of 2049", map[string]string{"X-V": strings.Repeat("v", 2049)}, "X-V"},
		{"Expect", map[string]string{"Expect": "100-continue"}, "Expect"},
		{"expect", map[string]string{"expect": "100-continue"}, "expect"},
	}
	for _, tt := range bad {
		t.Run("create/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": url, "events": []string{"scan.completed"}, "headers": tt.headers})
			assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: "+tt.inMsg)
		})
		t.Run("patch/"+tt.name, func(t *testing.T) {
			assertError(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"headers": tt.headers}),
				http.StatusBadRequest, "INVALID_HEADER", "Invalid header: "+tt.inMsg)
		})
	}
	twenty := map[string]string{long[:256]: strings.Repeat("v", 2048)}
	for i := range 19 {
		twenty["X-H"+strings.Repeat("i", i+1)] = "v"
	}
	d := data(t, e.do(t, http.MethodPatch, hook, key, map[string]any{"headers": twenty}), http.StatusOK)
	if n := len(d["headers"].(map[string]any)); n != 20 {
		t.Errorf("%d headers stored, want 20 at the limits", n)
	}
	desc := strings.Repeat("é", 1024)
	for _, tt := range []struct {
		method, path string
		body         map[string]any
	}{
		{"POST", "/api/v1/webhooks", map[string]any{"url": url, "events": []string{"scan.completed"}}},
		{"PATCH", hook, map[string]any{}},
	} {
		tt.body["description"] = desc + "x"
		assertError(t, e.do(t, tt.method, tt.path, key, tt.body), http.StatusBadRequest, "INVALID_FIELD_TYPE", descriptionMsg)
		tt.body["description"] = desc
		got := data(t, e.do(t, tt.method, tt.path, key, tt.body), map[string]int{"POST": 201, "PATCH": 200}[tt.method])
		if s, _ := got["description"].(string); utf8.RuneCountInString(s) != 1024 {
			t.Errorf("%s: description of %d characters stored, want 1024", tt.method, utf8.RuneCountInString(s))
		}
	}
}

// TestLoneSurrogatesAreInvalidJSON: a \u escape of a UTF-16 surrogate that is not half of a
// pair stands for no character, so UTF-8 cannot carry it; the strict reader refuses it as it
// refuses text that is not UTF-8, anywhere in any body. A whole pair is one character.
func TestLoneSurrogatesAreInvalidJSON(t *testing.T) {
	e, key, id := validationEnv(t)
	hook := "/api/v1/webhooks/" + id
	lone := map[string]string{
		"high alone":           `\ud800`,
		"high then a letter":   `\ud83dx`,
		"high then non-low":    `\ud83d\u0041`,
		"two highs":            `\ud83d\ud83d`,
		"low alone":            `\udc00`,
		"low before high":      `\ude00\ud83d`,
		"high at the very end": `ok\udbff`,
	}
	for name, s := range lone {
		if !loneSurrogate([]byte(`"` + s + `"`)) {
			t.Fatalf("loneSurrogate misses %s, %s", name, s)
		}
		tests := []struct{ route, method, path, body string }{
			{"create", "POST", "/api/v1/webhooks", `{"url":"` + e.hookURL("/h") + `","events":["scan.completed"],"description":"` + s + `"}`},
			{"patch", "PATCH", hook, `{"description":"` + s + `"}`},
			{"patch header value", "PATCH", hook, `{"headers":{"X-A":"` + s + `"}}`},
			{"publish data", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","note":"` + s + `"}}`},
			{"publish name", "POST", "/api/v1/events", `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","` + s + `":1}}`},
			{"batch", "POST", "/api/v1/events/batch", `{"events":[{"type":"scan.completed","data":{"scanId":"` + s + `","scanType":"zap"}}]}`},
			{"rotate", "POST", hook + "/rotate-secret", `{"` + s + `":1}`},
			{"recover", "POST", hook + "/recover", `{"since":"` + s + `"}`},
			{"test ping", "POST", hook + "/test", `{"` + s + `":1}`},
			{"portal session", "POST", "/api/v1/portal/sessions", `{"` + s + `":1}`},
		}
		for _, tt := range tests {
			t.Run(name+"/"+tt.route, func(t *testing.T) {
				assertError(t, e.do(t, tt.method, tt.path, key, tt.body), http.StatusBadRequest, "INVALID_JSON", invalidJSON)
			})
		}
	}
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v, want 0", u["eventsPublished"])
	}
	t.Run("a whole pair is fine", func(t *testing.T) {
		d := data(t, e.do(t, http.MethodPatch, hook, key, `{"description":"\ud83d\ude00 \uD83D\uDE00"}`), http.StatusOK)
		if d["description"] != "😀 😀" {
			t.Errorf("description = %q, want two U+1F600", d["description"])
		}
		body := `{"type":"scan.completed","data":{"scanId":"s","scanType":"zap","note":"\ud83d\ude00","\udbff\udfff":1}}`
		if loneSurrogate([]byte(body)) || !loneSurrogate([]byte(`"\\\ud800"`)) || loneSurrogate([]byte(`"\\ud800"`)) {
			t.Fatal("loneSurrogate is wrong about pairs or escaped backslashes")
		}
		data(t, e.do(t, http.MethodPost, "/api/v1/events", key, body), http.StatusAccepted)
	})
}

// loneSurrogate reports whether a valid JSON document holds a \u escape of a UTF-16 surrogate
// that is not the high half of a pair whose low half follows at once. It reads the escapes as
// written, independently of the server's reader; the fuzz targets use it too.
func loneSurrogate(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '"':
			inString = !inString
		case !inString || b[i] != '\\': // nothing to read outside strings or escapes
		case b[i+1] != 'u':
			i++ // a one-character escape, \\ and \" included
		default:
			r := hex4(b[i+2 : i+6])
			i += 5
			if r >= 0xdc00 && r <= 0xdfff {
				return true
			}
			if r >= 0xd800 && r <= 0xdbff {
				if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return true
				}
				if low := hex4(b[i+3 : i+7]); low < 0xdc00 || low > 0xdfff {
					return true
				}
				i += 6
			}
		}
	}
	return false
}

func hex4(b []byte) int {
	n, _ := strconv.ParseUint(string(b), 16, 16)
	return int(n)
}
