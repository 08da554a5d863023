package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
)

var update = flag.Bool("update", false, "rewrite the golden envelopes in ../testdata/golden")

var (
	uuidRe   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	retryNRe = regexp.MustCompile(`Retry in [0-9]+ seconds\.`)
)

// normaliser replaces what differs between runs (ids, secrets, times, the receiver's port, the
// rate limiter's N) with stable placeholders; equal values get equal placeholders.
type normaliser struct {
	host string
	seen map[string]string
	n    map[string]int
}

func (z *normaliser) placeholder(kind, v string) string {
	if p, ok := z.seen[v]; ok {
		return p
	}
	z.n[kind]++
	p := fmt.Sprintf("<%s-%d>", kind, z.n[kind])
	z.seen[v] = p
	return p
}

func (z *normaliser) value(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // placeholders are numbered in a stable order
		for _, k := range keys {
			x[k] = z.value(k, x[k])
		}
		return x
	case []any:
		for i := range x {
			x[i] = z.value(key, x[i])
		}
		return x
	case string:
		return z.str(key, x)
	}
	return v
}

func (z *normaliser) str(key, s string) string {
	if key == "requestId" {
		return "<request-id>"
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return "<time>"
	}
	switch {
	case uuidRe.MatchString(s):
		return z.placeholder("uuid", s)
	case eventID.MatchString(s):
		return z.placeholder("event-id", s)
	case strings.HasPrefix(s, "whsec_"):
		return z.placeholder("secret", s)
	}
	s = strings.ReplaceAll(s, z.host, "https://receiver.test")
	return retryNRe.ReplaceAllString(s, "Retry in {N} seconds.")
}

// assertGolden compares the normalised body with testdata/golden/name.json (or rewrites it).
func assertGolden(t *testing.T, e *env, name string, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	z := &normaliser{host: e.recv.URL, seen: map[string]string{}, n: map[string]int{}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(z.value("", v)); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("..", "testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (-update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestGoldenErrors(t *testing.T) {
	e := newEnv(t, withConfig(func(c *api.Config) { c.Extra = panicRoute }))
	key, tid := e.newKey(t)
	read, _ := e.key(t, registry.NewKeyParams{TenantID: tid, Scopes: []string{registry.ScopeWebhooksRead}})
	limited, _ := e.key(t, registry.NewKeyParams{TenantID: tid, RateLimitPerMinute: 1})
	id := e.createWebhook(t, key)["id"].(string)
	data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"enabled": false}), http.StatusOK)
	e.do(t, http.MethodGet, "/api/v1/usage", limited, nil)

	tests := []struct {
		name, method, path, key string
		body                    any
		status                  int
	}{
		{"error_400_invalid_json", "POST", "/api/v1/webhooks", key, `{"url": `, 400},
		{"error_401_missing_api_key", "GET", "/api/v1/webhooks", "", nil, 401},
		{"error_403_insufficient_scope", "POST", "/api/v1/webhooks", read, `{}`, 403},
		{"error_404_webhook_not_found", "GET", "/api/v1/webhooks/" + unknownID, key, nil, 404},
		{"error_409_webhook_disabled", "POST", "/api/v1/webhooks/" + id + "/test", key, nil, 409},
		{"error_429_rate_limit_exceeded", "GET", "/api/v1/usage", limited, nil, 429},
		{"error_500_internal_error", "GET", "/boom", "", nil, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertGolden(t, e, tt.name, e.do(t, tt.method, tt.path, tt.key, tt.body), tt.status)
		})
	}
	t.Run("error_503_service_unavailable", func(t *testing.T) {
		down := redis.NewClient(&redis.Options{Addr: deliverytest.ClosedAddr(t), MaxRetries: -1, DialerRetries: 1})
		t.Cleanup(func() { down.Close() })
		d := newEnv(t, withRedis(down))
		assertGolden(t, d, "error_503_service_unavailable", d.do(t, http.MethodGet, "/readyz", "", nil), 503)
	})
}

func TestGoldenSuccess(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	created := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/hooks/siem"),
		"events": []string{"scan.completed", "scan.failed"}, "description": "SIEM", "headers": map[string]string{"X-Team": "sec"}})
	assertGolden(t, e, "success_201_create_webhook", created, 201)
	nextMillisecond()
	e.createWebhook(t, key, "scan.started")
	nextMillisecond()
	last := e.createWebhook(t, key, "scan.cancelled")["id"].(string)
	data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+last, key, map[string]any{"enabled": false}), http.StatusOK)

	assertGolden(t, e, "success_200_list_webhooks", e.do(t, http.MethodGet, "/api/v1/webhooks?limit=2", key, nil), 200)
	first := data(t, created, http.StatusCreated)["id"].(string)
	assertGolden(t, e, "success_202_test_webhook", e.do(t, http.MethodPost, "/api/v1/webhooks/"+first+"/test", key, nil), 202)
	assertGolden(t, e, "success_202_publish_event", e.publish(t, key, "scan.completed"), 202)
}
