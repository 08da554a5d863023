package api

import (
	"errors"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// ctxKeyCheck holds a publish request's authentication while the publish owes it
// (authenticatePublish).
const ctxKeyCheck = "webhookd.keycheck"

// authenticatePublish is authenticate for the publish routes, with one round trip fewer when
// it can: a key this process has read before, which passes every check as read then
// (registry.KnownKey), leaves its record's freshness and its rate limit to the publish's own
// script (registry.KeyCheck, publishAs). Any answer the request gets before its publish
// counted it — a body that fails validation, say — first has the request authenticated as
// authenticate does, so the contract's order of checks holds whatever it sent.
func (s *Server) authenticatePublish(next echo.HandlerFunc) echo.HandlerFunc {
	full := s.authenticate(next)
	return func(c echo.Context) error {
		if !s.deferKey(c) {
			return full(c)
		}
		err := next(c)
		if err != nil && c.Get(ctxKeyCheck) != nil {
			c.Set(ctxKeyCheck, nil)
			if kerr := s.checkKey(c); kerr != nil {
				return kerr
			}
		}
		return err
	}
}

// deferKey sets up a publish request's key as last read, and its check for the publish, when
// the key passes all of authenticate's checks but the rate limit, and requireScope's.
func (s *Server) deferKey(c echo.Context) bool {
	k, check, ok := s.cfg.Registry.KnownKey(c.Request().Header.Get("X-API-Key"))
	if !ok || s.keyRefused(k) != nil || k.TenantStatus != registry.StatusActive ||
		!ipAllowed(k.AllowedIPAddresses, c.RealIP()) || !k.HasScope(registry.ScopeEventsWrite) {
		return false
	}
	check.Limit = s.limitOf(k.RateLimitPerMinute)
	c.Set(ctxKey, k)
	c.Set(ctxQuota, k.TenantQuota)
	c.Set(ctxKeyCheck, check)
	return true
}

// publishAs runs publish with the tenant's quota and the request's key check, when
// authenticatePublish left one, and applies what the check found: the rate decision's headers
// (RATE_LIMIT_EXCEEDED when it refused, and nothing was stored), or, for a key that changed
// since it was read, authenticate's checks and the publish again without a check.
func (s *Server) publishAs(c echo.Context, publish func(quota int64, check *registry.KeyCheck) error) error {
	check, _ := c.Get(ctxKeyCheck).(*registry.KeyCheck)
	err := publish(c.Get(ctxQuota).(int64), check)
	switch {
	case check == nil:
	case errors.Is(err, registry.ErrKeyChanged):
		c.Set(ctxKeyCheck, nil)
		if kerr := s.checkKey(c); kerr != nil {
			return kerr
		}
		return publish(c.Get(ctxQuota).(int64), nil)
	case check.Counted:
		c.Set(ctxKeyCheck, nil)
		if rerr := s.applyRate(c, check.Limit, check.Rate); rerr != nil {
			return rerr
		}
	}
	return err
}
