package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

const (
	ctxKey    = "webhookd.key"
	ctxQuota  = "webhookd.quota"
	ctxPortal = "webhookd.portal"
)

// requestID echoes a sane client X-Request-ID or makes one.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rid := c.Request().Header.Get(echo.HeaderXRequestID)
		if !saneRequestID(rid) {
			rid = uuid.NewString()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, rid)
		return next(c)
	}
}

func saneRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == ':') {
			return false
		}
	}
	return true
}

// recoverPanic turns a panic into INTERNAL_ERROR and logs the stack, never showing it.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = registry.Wrap(registry.CodeInternal, fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
			}
		}()
		return next(c)
	}
}

// accessLog writes one JSON line per request with its request id; no header values, so
// keys never reach the log.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req := c.Request()
		attrs := []any{"requestId", c.Response().Header().Get(echo.HeaderXRequestID), "method", req.Method,
			"route", c.Path(), "status", c.Response().Status, "durationMs", time.Since(start).Milliseconds(),
			"remoteIp", c.RealIP()}
		if k, ok := c.Get(ctxKey).(*registry.APIKey); ok {
			attrs = append(attrs, "tenantId", k.TenantID, "keyId", k.ID)
		}
		if p, ok := c.Get(ctxPortal).(*registry.PortalSession); ok {
			attrs = append(attrs, "portalSessionId", p.ID)
		}
		s.log.InfoContext(req.Context(), "request", attrs...)
		if s.cfg.Observe != nil {
			s.cfg.Observe(req.Method, c.Path(), c.Response().Status, time.Since(start))
		}
		return nil
	}
}

// capBody makes reading more than the body limit fail, on every route; it answers nothing
// itself, so that a request is authenticated before its size is judged.
func (s *Server) capBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit)
		return next(c)
	}
}

// limitBody answers PAYLOAD_TOO_LARGE for a declared length over the limit before the body is
// read (a chunked one fails while being read, through capBody). It runs after authentication.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().ContentLength > s.cfg.BodyLimit {
			return registry.E(registry.CodePayloadTooLarge)
		}
		return next(c)
	}
}

// plainBody answers UNSUPPORTED_CONTENT_ENCODING for a request with a body whose
// Content-Encoding names any coding but identity. The API decodes no content coding: it would
// read a gzipped body as bytes that are not JSON, and plain JSON labelled gzip as something the
// client did not say it sent. It runs after authentication and limitBody; a request without a
// body (Content-Length 0) passes whatever it says.
func (s *Server) plainBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength != 0 && !identityOnly(req.Header.Values("Content-Encoding")) {
			return registry.E(registry.CodeUnsupportedContentEncoding)
		}
		return next(c)
	}
}

// identityOnly reports whether every coding listed in Content-Encoding header values is
// identity (compared case-insensitively, as RFC 9110 says codings are); none listed is identity.
func identityOnly(values []string) bool {
	for _, v := range values {
		for _, coding := range strings.Split(v, ",") {
			if coding = strings.TrimSpace(coding); coding != "" && !strings.EqualFold(coding, "identity") {
				return false
			}
		}
	}
	return true
}

// routingErrorRate gives a 404 or 405 that Echo's router answered the X-RateLimit-* headers
// of a valid key, as every other answer to it carries: the request is checked and counted
// like any other, and one over the key's limit is RATE_LIMIT_EXCEEDED. Without a valid key
// the routing error stands alone.
func (s *Server) routingErrorRate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		var he *echo.HTTPError
		if err == nil || c.Get(ctxKey) != nil || c.Request().Header.Get("X-API-Key") == "" || !errors.As(err, &he) ||
			he.Code != http.StatusNotFound && he.Code != http.StatusMethodNotAllowed {
			return err
		}
		if kerr := s.checkKey(c); registry.CodeOf(kerr) == registry.CodeRateLimitExceeded {
			return kerr
		}
		return err
	}
}

// authenticate runs the key checks in the contract's order: MISSING_API_KEY, INVALID_API_KEY,
// KEY_REVOKED, KEY_SUSPENDED, KEY_EXPIRED, TENANT_SUSPENDED, IP_NOT_ALLOWED, RATE_LIMIT_EXCEEDED.
// INSUFFICIENT_SCOPE comes last, per route, from requireScope.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.checkKey(c); err != nil {
			return err
		}
		return next(c)
	}
}

// checkKey runs authenticate's checks on the key Authenticate read, which counted the request
// against the key's rate limit in the same round trip; once the key is known good, the rate
// decision sets the X-RateLimit-* headers and may refuse it.
func (s *Server) checkKey(c echo.Context) error {
	ctx := c.Request().Context()
	plain := c.Request().Header.Get("X-API-Key")
	if plain == "" {
		return registry.E(registry.CodeMissingAPIKey)
	}
	k, rate, err := s.cfg.Registry.Authenticate(ctx, plain, s.cfg.DefaultRateLimit)
	if err != nil {
		return err
	}
	if err := s.keyRefused(k); err != nil {
		return err
	}
	status, quota, err := s.tenantOf(ctx, k)
	if err != nil {
		return err
	}
	if status != registry.StatusActive {
		return registry.E(registry.CodeTenantSuspended)
	}
	if !ipAllowed(k.AllowedIPAddresses, c.RealIP()) {
		return registry.E(registry.CodeIPNotAllowed)
	}
	c.Set(ctxKey, k)
	c.Set(ctxQuota, quota)
	return s.applyRate(c, s.limitOf(k.RateLimitPerMinute), rate)
}

// keyRefused is the first of a key's own checks that k fails, in the contract's order:
// KEY_REVOKED, KEY_SUSPENDED, KEY_EXPIRED; nil when it passes them.
func (s *Server) keyRefused(k *registry.APIKey) error {
	switch {
	case k.Status == registry.StatusRevoked:
		return registry.E(registry.CodeKeyRevoked)
	case k.Status == registry.StatusSuspended:
		return registry.E(registry.CodeKeySuspended)
	case k.ExpiresAt != nil && !s.cfg.Registry.Now().Before(*k.ExpiresAt):
		return registry.E(registry.CodeKeyExpired)
	}
	return nil
}

// rateLimit counts a portal session's request against its bucket's per-minute limit (the
// service default when limit is 0) and applies the decision.
func (s *Server) rateLimit(c echo.Context, bucket string, limit int) error {
	limit = s.limitOf(limit)
	res, err := s.cfg.Registry.AllowRequest(c.Request().Context(), bucket, limit)
	if err != nil {
		return err
	}
	return s.applyRate(c, limit, res)
}

// limitOf is a per-minute limit, or the service default for 0.
func (s *Server) limitOf(limit int) int {
	if limit <= 0 {
		return s.cfg.DefaultRateLimit
	}
	return limit
}

// applyRate sets the X-RateLimit headers of a rate decision and answers RATE_LIMIT_EXCEEDED
// when it refused the request.
func (s *Server) applyRate(c echo.Context, limit int, res registry.RateResult) error {
	h := c.Response().Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(s.cfg.Registry.Now().Add(res.ResetAfter).Unix(), 10))
	if !res.Allowed {
		n := int(math.Ceil(res.RetryAfter.Seconds()))
		if n < 1 {
			n = 1
		}
		return registry.E(registry.CodeRateLimitExceeded, strconv.Itoa(n))
	}
	return nil
}

func ipAllowed(allowed []string, ip string) bool {
	if len(allowed) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, s := range allowed {
		if p, err := registry.ParseIPOrCIDR(s); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// requireScope answers INSUFFICIENT_SCOPE unless the key holds scope.
func (s *Server) requireScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !apiKey(c).HasScope(scope) {
				return registry.E(registry.CodeInsufficientScope, scope)
			}
			return next(c)
		}
	}
}

// knownIDs answers WEBHOOK_NOT_FOUND or DELIVERY_NOT_FOUND for a path id that is not a
// canonical UUID, the only form the registry issues, before it reaches the store: an id such as
// "<uuid>:dlv" would otherwise name another record of the tenant and fail with DATABASE_ERROR.
// It runs after the scope check, and a bad delivery id of an unknown endpoint is still
// WEBHOOK_NOT_FOUND, as with well-formed ids.
func (s *Server) knownIDs(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !canonicalUUID(c.Param("id")) {
			return registry.E(registry.CodeWebhookNotFound)
		}
		for _, name := range c.ParamNames() {
			if name == "deliveryId" && !canonicalUUID(c.Param(name)) {
				if _, err := s.cfg.Registry.Endpoint(c.Request().Context(), tenantID(c), c.Param("id")); err != nil {
					return err
				}
				return registry.E(registry.CodeDeliveryNotFound)
			}
		}
		return next(c)
	}
}

// canonicalUUID reports whether s is a UUID in lower-case 8-4-4-4-12 form.
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func apiKey(c echo.Context) *registry.APIKey { return c.Get(ctxKey).(*registry.APIKey) }
func tenantID(c echo.Context) string         { return apiKey(c).TenantID }

// tenantOf returns the tenant's status and monthly quota from the key's copy of them, or from
// the tenant record for a key that has none.
func (s *Server) tenantOf(ctx context.Context, k *registry.APIKey) (string, int64, error) {
	if k.TenantStatus != "" {
		return k.TenantStatus, k.TenantQuota, nil
	}
	t, err := s.cfg.Registry.Tenant(ctx, k.TenantID)
	if err != nil {
		if registry.CodeOf(err) == registry.CodeInternal {
			return "", 0, registry.E(registry.CodeInvalidAPIKey)
		}
		return "", 0, err
	}
	return t.Status, t.MonthlyEventQuota, nil
}
