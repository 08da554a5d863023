package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// TestNoSecretLeaks runs a scenario that touches every secret the service holds and checks that
// none reaches the log, and that no error body carries a Go error string.
func TestNoSecretLeaks(t *testing.T) {
	e := newEnv(t,
		withConfig(func(c *api.Config) { c.Extra = panicRoute }),
		withRegistry(func(s *registry.Store) api.Registry {
			return &faultyRegistry{Store: s, err: registry.Wrap(registry.CodeDatabase, errors.New("boom"))}
		}))
	key, tid := e.newKey(t)
	other, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksRead}})
	var all []*response
	do := func(method, path, k string, body any, hdr ...string) *response {
		r := e.do(t, method, path, k, body, hdr...)
		all = append(all, r)
		return r
	}

	const headerSecret, querySecret = "Bearer receiver-token-8812", "url-token-5531"
	secrets := []string{key, other, headerSecret, querySecret}
	var ids []string
	for _, ev := range []string{"scan.completed", "scan.failed"} {
		r := do("POST", "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/hook?token=" + querySecret),
			"events": []string{ev}, "headers": map[string]string{"Authorization": headerSecret}})
		d := data(t, r, http.StatusCreated)
		ids = append(ids, d["id"].(string))
		secrets = append(secrets, d["secret"].(string))
	}
	for _, id := range ids {
		hook := "/api/v1/webhooks/" + id
		for _, body := range []any{nil, map[string]any{"gracePeriodSeconds": 0}} {
			secrets = append(secrets, data(t, do("POST", hook+"/rotate-secret", key, body), http.StatusOK)["secret"].(string))
		}
		do("GET", hook+"/secret", key, nil)
		do("POST", hook+"/test", key, nil)
		do("PATCH", hook, key, map[string]any{"headers": map[string]string{"Authorization": headerSecret}})
	}
	do("POST", "/api/v1/events", key, map[string]any{"type": "scan.completed",
		"data": map[string]any{"scanId": "s", "scanType": "zap"}}, "Idempotency-Key", "idem-1")

	// Failures that carry keys and secrets in the request.
	wrong := changeChar(key, len(key)-1)
	secrets = append(secrets, wrong)
	do("GET", "/api/v1/webhooks/"+ids[0], wrong, nil)
	do("GET", "/api/v1/webhooks/"+ids[0]+"?apiKey="+key, "", nil)
	do("GET", "/api/v1/webhooks/"+ids[0], "", nil, "Authorization", "Bearer "+key)
	do("GET", "/api/v1/webhooks/"+ids[0]+"/secret", other, nil)
	do("POST", "/api/v1/webhooks", key, map[string]any{"url": "https://" + deliverytest.ClosedAddr(t) + "/x?token=" + querySecret,
		"events": []string{"scan.completed"}})
	do("POST", "/api/v1/webhooks", key, `{"url": "`+secrets[4]+`", "events": [`)
	do("GET", "/boom", key, nil)
	do("GET", "/api/v1/webhooks", key, nil) // DATABASE_ERROR

	logs := e.logs.String()
	if !strings.Contains(logs, "DATABASE_ERROR") || !strings.Contains(logs, "INTERNAL_ERROR") {
		t.Fatalf("the scenario did not reach the database error and the panic; log:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains the secret %q", s)
		}
		if b64, ok := strings.CutPrefix(s, "whsec_"); ok && strings.Contains(logs, b64) {
			t.Errorf("log contains the body of secret %q", s)
		}
	}
	for _, s := range []string{registry.KeyPrefix, "whsec_", "v1,"} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q", s)
		}
	}
	for _, r := range all {
		if r.status >= 400 {
			assertNoGoText(t, r)
		}
		if strings.Contains(string(r.body), registry.KeyPrefix) {
			t.Errorf("a response shows an API key: %s", r.body)
		}
	}
}
