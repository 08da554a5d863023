package api

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/cert-ix/webhookd/registry"
	"golang.org/x/net/http/httpguts"
)

const (
	maxURLLength   = 2048
	maxHeaders     = 20
	maxHeaderValue = 2048
)

// validateURL accepts an absolute https:// URL with a host, no userinfo, at most 2048
// characters; anything else is INVALID_WEBHOOK_URL. Where it may connect is decided later,
// at connect time, by the delivery client's address guard.
func validateURL(raw string) (string, error) {
	bad := registry.E(registry.CodeInvalidWebhookURL)
	if raw == "" || len(raw) > maxURLLength || strings.ContainsAny(raw, "\\ \t\r\n") || !isPrintableASCII(raw) {
		return "", bad
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host == "" || u.Hostname() == "" {
		return "", bad
	}
	if !strings.HasPrefix(strings.ToLower(raw), "https://") || u.Fragment != "" {
		return "", bad
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", bad
		}
	}
	host := u.Hostname()
	if strings.HasPrefix(host, ".") || strings.HasSuffix(host, "..") || strings.Contains(host, "..") {
		return "", bad
	}
	return u.String(), nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validateEvents requires a non-empty list of the four scan events; INVALID_WEBHOOK_EVENT names
// the first bad one ("[]" for an empty list). Duplicates are folded.
func validateEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, registry.E(registry.CodeInvalidWebhookEvent, "[]")
	}
	out := make([]string, 0, len(events))
	for _, e := range events {
		if !registry.IsEventType(e) {
			return nil, registry.E(registry.CodeInvalidWebhookEvent, e)
		}
		if !containsString(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true, "proxy-authorization": true,
	"proxy-connection": true, "te": true, "trailer": true, "trailers": true, "transfer-encoding": true, "upgrade": true,
}

// validateHeaders rejects reserved names (webhook-*, host, content-*, user-agent, hop-by-hop),
// invalid names or values, more than 20 headers, or values over 2 KiB: INVALID_HEADER naming it.
func validateHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return registry.E(registry.CodeInvalidHeader, "too many headers (at most 20)")
	}
	for name, value := range h {
		lower := strings.ToLower(name)
		reserved := strings.HasPrefix(lower, "webhook-") || strings.HasPrefix(lower, "content-") ||
			lower == "host" || lower == "user-agent" || hopByHop[lower]
		if reserved || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) ||
			len(value) > maxHeaderValue {
			return registry.E(registry.CodeInvalidHeader, safeName(name))
		}
	}
	return nil
}

// safeName keeps an invalid header name printable in the error message.
func safeName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	if !isPrintableASCII(s) {
		return strconv.Quote(s)
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
