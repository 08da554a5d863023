package api_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/api"
)

// validationEnv is an env with a key and one endpoint, for request-body tests.
func validationEnv(t *testing.T) (e *env, key, id string) {
	t.Helper()
	e = newEnv(t, withProbe(func(real api.Prober) api.Prober {
		return func(ctx context.Context, raw string) error {
			// A URL that should have been refused must not make the test resolve a name.
			if u, err := url.Parse(raw); err != nil || net.ParseIP(u.Hostname()) == nil {
				t.Errorf("probe of %q: only IP literals may be probed here", raw)
				return errors.New("not probed")
			}
			return real(ctx, raw)
		}
	}))
	key, _ = e.newKey(t)
	return e, key, e.createWebhook(t, key)["id"].(string)
}

func TestInvalidJSON(t *testing.T) {
	e, key, id := validationEnv(t)
	bodies := map[string]string{
		"broken":           `{"url": "https://example.com", "events": [`,
		"array":            `[{"url": "https://example.com"}]`,
		"empty":            ``,
		"whitespace only":  " \n\t ",
		"trailing garbage": `{"url": "https://example.com", "events": ["scan.completed"]} garbage`,
		"two objects":      `{}{}`,
		"null":             `null`,
		"string":           `"text"`,
		"number":           `42`,
		"single quotes":    `{'url': 'https://example.com'}`,
		"trailing comma":   `{"url": "https://example.com",}`,
		"not utf-8 json":   "{\"url\": \xff}",
	}
	targets := []struct{ name, method, path string }{
		{"create", "POST", "/api/v1/webhooks"},
		{"patch", "PATCH", "/api/v1/webhooks/" + id},
		{"publish", "POST", "/api/v1/events"},
	}
	for _, tg := range targets {
		for name, body := range bodies {
			t.Run(tg.name+"/"+name, func(t *testing.T) {
				r := e.do(t, tg.method, tg.path, key, body)
				assertError(t, r, http.StatusBadRequest, "INVALID_JSON", "Request body is not valid JSON")
			})
		}
	}
	t.Run("rotate-secret with a broken body", func(t *testing.T) {
		r := e.do(t, "POST", "/api/v1/webhooks/"+id+"/rotate-secret", key, `{"gracePeriodSeconds": `)
		assertError(t, r, http.StatusBadRequest, "INVALID_JSON", "Request body is not valid JSON")
	})
	if n := e.probes.Load(); n != 1 {
		t.Errorf("probes = %d, want 1 (only the setup's registration)", n)
	}
}

func TestMissingRequiredField(t *testing.T) {
	e, key, _ := validationEnv(t)
	url := e.hookURL("/hook")
	tests := []struct {
		name, path string
		body       any
		field      string
	}{
		{"webhook without url", "/api/v1/webhooks", map[string]any{"events": []string{"scan.completed"}}, "url"},
		{"webhook with null url", "/api/v1/webhooks", map[string]any{"url": nil, "events": []string{"scan.completed"}}, "url"},
		{"webhook without anything", "/api/v1/webhooks", map[string]any{}, "url"},
		{"webhook without events", "/api/v1/webhooks", map[string]any{"url": url}, "events"},
		{"webhook with null events", "/api/v1/webhooks", map[string]any{"url": url, "events": nil}, "events"},
		{"event without type", "/api/v1/events", map[string]any{"data": map[string]any{"scanId": "s", "scanType": "zap"}}, "type"},
		{"event without data", "/api/v1/events", map[string]any{"type": "scan.completed"}, "data"},
		{"event without scanId", "/api/v1/events", map[string]any{"type": "scan.completed", "data": map[string]any{"scanType": "zap"}}, "data.scanId"},
		{"event without scanType", "/api/v1/events", map[string]any{"type": "scan.completed", "data": map[string]any{"scanId": "s"}}, "data.scanType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, tt.path, key, tt.body)
			assertError(t, r, http.StatusBadRequest, "MISSING_REQUIRED_FIELD", "Missing required field: "+tt.field)
		})
	}
}

func TestInvalidFieldType(t *testing.T) {
	e, key, id := validationEnv(t)
	url := e.hookURL("/hook")
	ev := []string{"scan.completed"}
	hook := "/api/v1/webhooks/" + id
	tests := []struct {
		name, method, path string
		body               any
		field, typ         string
	}{
		{"events as string", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": "scan.completed"}, "events", "array"},
		{"events as object", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": map[string]any{}}, "events", "array"},
		{"url as number", "POST", "/api/v1/webhooks", map[string]any{"url": 42, "events": ev}, "url", "string"},
		{"url as array", "POST", "/api/v1/webhooks", map[string]any{"url": []string{url}, "events": ev}, "url", "string"},
		{"headers as array", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": ev, "headers": []string{"X-A"}}, "headers", "object"},
		{"headers as string", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": ev, "headers": "X-A: b"}, "headers", "object"},
		{"header value as number", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": ev, "headers": map[string]any{"X-A": 1}}, "headers.X-A", "string"},
		{"description as number", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": ev, "description": 7}, "description", "string"},
		{"event entry as number", "POST", "/api/v1/webhooks", map[string]any{"url": url, "events": []any{"scan.completed", 3}}, "events[1]", "string"},
		{"enabled as string", "PATCH", hook, map[string]any{"enabled": "false"}, "enabled", "boolean"},
		{"enabled as number", "PATCH", hook, map[string]any{"enabled": 0}, "enabled", "boolean"},
		{"patch url as number", "PATCH", hook, map[string]any{"url": 1}, "url", "string"},
		{"patch events as string", "PATCH", hook, map[string]any{"events": "scan.failed"}, "events", "array"},
		{"patch headers as array", "PATCH", hook, map[string]any{"headers": []any{}}, "headers", "object"},
		{"grace period as string", "POST", hook + "/rotate-secret", map[string]any{"gracePeriodSeconds": "abc"}, "gracePeriodSeconds", "integer"},
		{"grace period as fraction", "POST", hook + "/rotate-secret", map[string]any{"gracePeriodSeconds": 1.5}, "gracePeriodSeconds", "integer"},
		{"event type as number", "POST", "/api/v1/events", map[string]any{"type": 1, "data": map[string]any{}}, "type", "string"},
		{"event data as array", "POST", "/api/v1/events", map[string]any{"type": "scan.completed", "data": []any{}}, "data", "object"},
		{"event data as string", "POST", "/api/v1/events", map[string]any{"type": "scan.completed", "data": "x"}, "data", "object"},
		{"scanId as number", "POST", "/api/v1/events", map[string]any{"type": "scan.completed", "data": map[string]any{"scanId": 1, "scanType": "zap"}}, "data.scanId", "string"},
		{"scanType as bool", "POST", "/api/v1/events", map[string]any{"type": "scan.completed", "data": map[string]any{"scanId": "s", "scanType": true}}, "data.scanType", "string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, key, tt.body)
			assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE", "Field "+tt.field+" must be of type "+tt.typ)
		})
	}
}

func TestInvalidWebhookURL(t *testing.T) {
	e, key, id := validationEnv(t)
	host := strings.TrimPrefix(e.recv.URL, "https://")
	ip, port, _ := net.SplitHostPort(host)
	long := "https://" + host + "/" + strings.Repeat("a", 2048-len("https://"+host+"/")+1)
	urls := map[string]string{
		"http":                "http://" + host + "/hook",
		"ftp":                 "ftp://" + host + "/hook",
		"relative":            "/hook",
		"host only":           host,
		"scheme relative":     "//" + host + "/hook",
		"no host":             "https://",
		"no host with path":   "https:///hook",
		"empty":               "",
		"userinfo":            "https://user:pw@" + host + "/hook",
		"user only":           "https://user@" + host + "/hook",
		"longer than 2048":    long,
		"space":               "https://" + host + "/ho ok",
		"space in host":       "https://exa mple.com/hook",
		"backslash":           "https://" + host + "\\hook",
		"backslash authority": "https:\\\\" + host + "/hook",
		"javascript":          "javascript:alert(1)",
		"data":                "data:text/plain,hi",
		"opaque https":        "https:" + host,
		"newline":             "https://" + host + "/hook\n",
		"tab":                 "https://\t" + host + "/hook",
		"port out of range":   "https://127.0.0.1:70000/hook",
		"non-ascii":           "https://exämple.com/hook",
		"mixed case scheme":   "HTTP://" + host + "/hook",
		"fragment":            "https://" + host + "/hook#part",
		// Hosts that some resolver or parser reads differently from the dotted-decimal form.
		"decimal IPv4":          "https://2130706433/hook",
		"hex IPv4":              "https://0x7f000001/hook",
		"upper-case hex IPv4":   "https://0X7F000001/hook",
		"octal IPv4":            "https://0177.0.0.1/hook",
		"short IPv4":            "https://127.1/hook",
		"hex octet IPv4":        "https://0x7f.0.0.1/hook",
		"leading-zero octet":    "https://127.0.0.01/hook",
		"five-part IPv4":        "https://1.2.3.4.5/hook",
		"numeric last label":    "https://hooks.example.123/hook",
		"hex last label":        "https://hooks.example.0x1f/hook",
		"IPv4 with port tricks": "https://2130706433:443/hook",
		"IPv4 in brackets":      "https://[127.0.0.1]/hook",
		"unbracketed IPv6":      "https://::1/hook",
		"non-canonical IPv6":    "https://[0:0:0:0:0:0:0:1]/hook",
		"upper-case IPv6":       "https://[::FFFF:127.0.0.1]/hook",
		"IPv6 leading zeros":    "https://[::0001]/hook",
		"IPv6 zone id":          "https://[fe80::1%25eth0]/hook",
		"IPv6 unclosed":         "https://[::1/hook",
		"IPv6 junk after ]":     "https://[::1]x/hook",
		// Hosts that are not what they look like.
		"ideographic full stop": "https://example\u3002com/hook",
		"fullwidth full stop":   "https://example\uff0ecom/hook",
		"percent-encoded host":  "https://ex%61mple.com/hook",
		"percent-encoded IPv4":  "https://%31%32%37.0.0.1/hook",
		"percent-encoded dot":   "https://example%2ecom/hook",
		"at sign in host":       "https://hooks.example.com@" + host + "/hook",
		"encoded at sign":       "https://hooks.example.com%40" + host + "/hook",
		"backslash at sign":     "https://hooks.example.com\\@" + host + "/hook",
		"trailing dot":          "https://hooks.example.com./hook",
		"trailing dot on IPv4":  "https://127.0.0.1./hook",
		"empty label":           "https://hooks..example.com/hook",
		"leading dot":           "https://.example.com/hook",
		"only a dot":            "https://./hook",
		"sub-delims in host":    "https://a!b$c.example.com/hook",
		"angle brackets host":   "https://a<b>.example.com/hook",
		"label over 63":         "https://" + strings.Repeat("a", 64) + ".example.com/hook",
		"name over 253":         "https://" + strings.Repeat("abcdefgh.", 28) + "example.com/hook",
		"empty port":            "https://" + ip + ":/hook",
		"port with leading 0":   "https://" + ip + ":0" + port + "/hook",
		"port zero":             "https://hooks.example.com:0/hook",
		"signed port":           "https://hooks.example.com:+443/hook",
	}
	for name, u := range urls {
		t.Run("create/"+name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": u, "events": []string{"scan.completed"}})
			assertError(t, r, http.StatusBadRequest, "INVALID_WEBHOOK_URL", "Webhook URL must use HTTPS")
		})
		t.Run("patch/"+name, func(t *testing.T) {
			r := e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"url": u})
			assertError(t, r, http.StatusBadRequest, "INVALID_WEBHOOK_URL", "Webhook URL must use HTTPS")
		})
	}
	if n := e.probes.Load(); n != 1 {
		t.Errorf("probes = %d, want 1: an invalid URL must never be probed", n)
	}
	t.Run("exactly 2048 characters is accepted", func(t *testing.T) {
		u := long[:len(long)-1]
		r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": u, "events": []string{"scan.completed"}})
		if got := data(t, r, http.StatusCreated)["url"]; got != u {
			t.Errorf("url = %v, want the 2048-character URL", got)
		}
	})
	t.Run("upper-case HTTPS scheme is accepted", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": "HTTPS://" + host + "/up", "events": []string{"scan.completed"}})
		data(t, r, http.StatusCreated)
	})
}

// TestValidateURLAccepts keeps legitimate hosts valid: names, and IP literals in their canonical
// form whatever address they hold (the delivery client's guard decides at connect time). The
// second column is the stored form.
func TestValidateURLAccepts(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.example.com/hook", "https://hooks.example.com/hook"},
		{"https://hooks.example.com", "https://hooks.example.com"},
		{"HTTPS://Hooks.Example.COM/Hook", "https://Hooks.Example.COM/Hook"},
		{"https://hooks.example.com:8443/a/b?x=1&y=a@b", "https://hooks.example.com:8443/a/b?x=1&y=a@b"},
		{"https://xn--bcher-kva.example/hook", "https://xn--bcher-kva.example/hook"},
		{"https://my_host.example.com/hook", "https://my_host.example.com/hook"},
		{"https://123.example.com/hook", "https://123.example.com/hook"},
		{"https://0x7f.example.com/hook", "https://0x7f.example.com/hook"},
		{"https://1e100.net/hook", "https://1e100.net/hook"},
		{"https://localhost/hook", "https://localhost/hook"},
		{"https://hook/", "https://hook/"},
		{"https://127.0.0.1:8443/hook", "https://127.0.0.1:8443/hook"},
		{"https://203.0.113.7/hook", "https://203.0.113.7/hook"},
		{"https://0.0.0.0/hook", "https://0.0.0.0/hook"},
		{"https://[::1]:8443/hook", "https://[::1]:8443/hook"},
		{"https://[2001:db8::1]/hook", "https://[2001:db8::1]/hook"},
		{"https://[::ffff:127.0.0.1]/hook", "https://[::ffff:127.0.0.1]/hook"},
		{"https://hooks.example.com:65535/hook", "https://hooks.example.com:65535/hook"},
		{"https://hooks.example.com/a%2Fb", "https://hooks.example.com/a%2Fb"},
		{`https://hooks.example.com/"x"`, "https://hooks.example.com/%22x%22"},
	}
	for _, tt := range tests {
		got, err := api.ValidateURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ValidateURL(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestInvalidWebhookEvent(t *testing.T) {
	e, key, id := validationEnv(t)
	url := e.hookURL("/hook")
	tests := []struct {
		name   string
		events []string
		bad    string
	}{
		{"unknown", []string{"scan.exploded"}, "scan.exploded"},
		{"first bad one named", []string{"scan.completed", "scan.exploded", "bogus"}, "scan.exploded"},
		{"test type is not subscribable", []string{"webhook.test"}, "webhook.test"},
		{"wrong case", []string{"Scan.Completed"}, "Scan.Completed"},
		{"empty string", []string{""}, ""},
		{"empty array", []string{}, "[]"},
	}
	for _, tt := range tests {
		t.Run("create/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": url, "events": tt.events})
			assertError(t, r, http.StatusBadRequest, "INVALID_WEBHOOK_EVENT", "Invalid event type: "+tt.bad)
		})
		t.Run("patch/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"events": tt.events})
			assertError(t, r, http.StatusBadRequest, "INVALID_WEBHOOK_EVENT", "Invalid event type: "+tt.bad)
		})
	}
	for _, typ := range []string{"scan.exploded", "webhook.test", "SCAN.STARTED", ""} {
		t.Run("publish/"+typ, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/events", key, map[string]any{"type": typ,
				"data": map[string]any{"scanId": "s", "scanType": "zap"}})
			assertError(t, r, http.StatusBadRequest, "INVALID_WEBHOOK_EVENT", "Invalid event type: "+typ)
		})
	}
}

func TestInvalidHeader(t *testing.T) {
	e, key, id := validationEnv(t)
	url := e.hookURL("/hook")
	tests := []struct {
		name, header, value, inMessage string
	}{
		{"webhook-id", "webhook-id", "x", "webhook-id"},
		{"Webhook-Signature", "Webhook-Signature", "v1,abc", "Webhook-Signature"},
		{"Host", "Host", "evil.example", "Host"},
		{"Content-Type", "Content-Type", "text/plain", "Content-Type"},
		{"content-length", "content-length", "1", "content-length"},
		{"User-Agent", "User-Agent", "me", "User-Agent"},
		{"Connection", "Connection", "close", "Connection"},
		{"Transfer-Encoding", "Transfer-Encoding", "chunked", "Transfer-Encoding"},
		// Names that are not printable ASCII are quoted in the message.
		{"name with space", "X Bad", "v", `"X Bad"`},
		{"name with newline", "X-A\nB", "v", `"X-A\nB"`},
		{"name with colon", "X-Bad:", "v", "X-Bad:"},
		{"empty name", "", "v", ""},
		{"value with CR LF", "X-Team", "a\r\nInjected: yes", "X-Team"},
		{"value with NUL", "X-Team", "a\x00b", "X-Team"},
		{"value over 2 KiB", "X-Big", strings.Repeat("v", 2049), "X-Big"},
	}
	for _, tt := range tests {
		hdr := map[string]string{"X-Fine": "ok", tt.header: tt.value}
		t.Run("create/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": url,
				"events": []string{"scan.completed"}, "headers": hdr})
			assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: "+tt.inMessage)
		})
		t.Run("patch/"+tt.name, func(t *testing.T) {
			r := e.do(t, http.MethodPatch, "/api/v1/webhooks/"+id, key, map[string]any{"headers": hdr})
			assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: "+tt.inMessage)
		})
	}
	t.Run("more than 20 headers", func(t *testing.T) {
		hdr := map[string]string{}
		for i := range 21 {
			hdr["X-H"+strings.Repeat("i", i+1)] = "v"
		}
		r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": url,
			"events": []string{"scan.completed"}, "headers": hdr})
		assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: too many headers (at most 20)")
	})
	t.Run("Idempotency-Key over 255 characters", func(t *testing.T) {
		r := e.publish(t, key, "scan.completed", "Idempotency-Key", strings.Repeat("k", 256))
		assertError(t, r, http.StatusBadRequest, "INVALID_HEADER", "Invalid header: Idempotency-Key")
	})
}
