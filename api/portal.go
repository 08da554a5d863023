package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/cert-ix/webhookd/api/portal"
	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// PortalTokenHeader carries a portal session token. The page keeps the token out of URLs (it
// arrives in the link's fragment, which browsers never send) and sends it in this header only.
// Authorization is not used, so that an API key there still counts as missing.
const PortalTokenHeader = "X-Portal-Token"

const (
	defaultPortalSeconds = 3600
	maxPortalSeconds     = int64(registry.MaxPortalSession / time.Second)
)

// authenticateWebhooks admits an API key or, on a request without one, a portal session token.
// Only the /webhooks routes and the reading of /events use it: everywhere else a portal token is
// no credential, so such a request answers MISSING_API_KEY.
func (s *Server) authenticateWebhooks(next echo.HandlerFunc) echo.HandlerFunc {
	withKey, withPortal := s.authenticate(next), s.authenticatePortal(next)
	return func(c echo.Context) error {
		h := c.Request().Header
		if h.Get("X-API-Key") == "" && h.Get(PortalTokenHeader) != "" {
			return withPortal(c)
		}
		return withKey(c)
	}
}

// authenticatePortal runs a portal token's checks in this order: INVALID_PORTAL_SESSION (unknown
// or malformed token), PORTAL_SESSION_EXPIRED, INVALID_PORTAL_SESSION (the key that made it has
// since been revoked, suspended, deleted or has expired), TENANT_SUSPENDED, RATE_LIMIT_EXCEEDED;
// INSUFFICIENT_SCOPE cannot follow, since the routes it guards need no more than the session's
// scopes. The key's IP allow-list does not apply: a portal link is opened from a person's browser,
// not from the integration the key serves. Each session has its own rate-limit bucket with the
// key's limit, so clicking through the portal never spends the integration's budget.
func (s *Server) authenticatePortal(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		c.Response().Header().Set("Cache-Control", "no-store")
		p, err := s.cfg.Registry.LookupPortalSession(ctx, c.Request().Header.Get(PortalTokenHeader))
		if err != nil {
			return err
		}
		if p.Expired(s.cfg.Registry.Now()) {
			return registry.E(registry.CodePortalSessionExpired)
		}
		k, err := s.portalKey(c, p)
		if err != nil {
			return err
		}
		status, quota, err := s.tenantOf(ctx, k)
		if err != nil {
			return err
		}
		if status != registry.StatusActive {
			return registry.E(registry.CodeTenantSuspended)
		}
		principal := &registry.APIKey{ID: k.ID, TenantID: p.TenantID, Scopes: registry.PortalScopes}
		c.Set(ctxKey, principal)
		c.Set(ctxQuota, quota)
		c.Set(ctxPortal, p)
		if err := s.rateLimit(c, p.ID, k.RateLimitPerMinute); err != nil {
			return err
		}
		return next(c)
	}
}

// portalKey returns the API key that made the session while it is still usable;
// INVALID_PORTAL_SESSION otherwise.
func (s *Server) portalKey(c echo.Context, p *registry.PortalSession) (*registry.APIKey, error) {
	k, err := s.cfg.Registry.APIKey(c.Request().Context(), p.KeyID)
	if errors.Is(err, registry.ErrKeyNotFound) {
		return nil, registry.E(registry.CodeInvalidPortalSession)
	}
	if err != nil {
		return nil, err
	}
	expired := k.ExpiresAt != nil && !s.cfg.Registry.Now().Before(*k.ExpiresAt)
	if k.Status != registry.StatusActive || expired || k.TenantID != p.TenantID {
		return nil, registry.E(registry.CodeInvalidPortalSession)
	}
	return k, nil
}

// portalSessionView is the answer to POST /portal/sessions.
type portalSessionView struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// createPortalSession makes a portal link for the key's tenant. A session grants webhooks:read
// and webhooks:write, so the key must hold both (the route checked webhooks:write): no key can
// make a credential stronger than itself.
func (s *Server) createPortalSession(c echo.Context) error {
	k := apiKey(c)
	if !k.HasScope(registry.ScopeWebhooksRead) {
		return registry.E(registry.CodeInsufficientScope, registry.ScopeWebhooksRead)
	}
	secs, err := portalSeconds(c)
	if err != nil {
		return err
	}
	p, token, err := s.cfg.Registry.CreatePortalSession(c.Request().Context(), k, time.Duration(secs)*time.Second)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return ok(c, http.StatusCreated, portalSessionView{ID: p.ID, URL: s.portalOrigin(c) + "/portal#" + token,
		ExpiresAt: p.ExpiresAt})
}

// portalSeconds reads the optional body {"expiresInSeconds": 1..86400}; default 3600 (also for
// no body at all). Any other field is UNKNOWN_FIELD: a misspelt lifetime must not give the
// default one silently.
func portalSeconds(c echo.Context) (int64, error) {
	o, err := readOptionalObject(c)
	if err != nil {
		return 0, err
	}
	if err := o.only("expiresInSeconds"); err != nil {
		return 0, err
	}
	n, err := o.integer("expiresInSeconds")
	if err != nil || n == nil {
		return defaultPortalSeconds, err
	}
	if *n < 1 || *n > maxPortalSeconds {
		return 0, registry.E(registry.CodeInvalidFieldType, "expiresInSeconds", "integer between 1 and 86400")
	}
	return *n, nil
}

// portalOrigin is where links point: the configured public URL, else this request's own
// origin. The scheme is https when the request came over TLS, or through a trusted proxy that
// says so in X-Forwarded-Proto.
func (s *Server) portalOrigin(c echo.Context) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	req := c.Request()
	scheme := "http"
	if req.TLS != nil || req.Header.Get(echo.HeaderXForwardedProto) == "https" && s.fromTrustedProxy(req) {
		scheme = "https"
	}
	return scheme + "://" + req.Host
}

func (s *Server) fromTrustedProxy(req *http.Request) bool {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// portalPage serves the portal's one HTML page.
func (s *Server) portalPage(c echo.Context) error { return serveAsset(c, portal.Page()) }

// portalAsset serves the page's script modules and style sheet; NOT_FOUND for anything else.
func (s *Server) portalAsset(c echo.Context) error {
	f, found := portal.Asset(c.Param("*"))
	if !found {
		return registry.E(registry.CodeNotFound)
	}
	return serveAsset(c, f)
}

// serveAsset writes an embedded file with the portal's security headers; ETag and
// If-None-Match make a reload cheap without ever serving a stale page.
func serveAsset(c echo.Context, f portal.File) error {
	h := c.Response().Header()
	portal.SetSecurityHeaders(h)
	h.Set(echo.HeaderContentType, f.ContentType)
	h.Set("ETag", f.ETag)
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(c.Response(), c.Request(), f.Name, time.Time{}, bytes.NewReader(f.Body))
	return nil
}
