// Package api is webhookd's HTTP API: Echo routes, middleware, handlers and the one table
// that turns error codes into the error envelope.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// Registry is what the API needs of the store. Methods return *registry.Error with
// WEBHOOK_NOT_FOUND, DELIVERY_NOT_FOUND, INVALID_API_KEY, INVALID_PORTAL_SESSION,
// SERVICE_UNAVAILABLE or DATABASE_ERROR; APIKey returns registry.ErrKeyNotFound for an unknown id.
type Registry interface {
	Ping(ctx context.Context) error
	Now() time.Time
	Authenticate(ctx context.Context, plain string, defaultPerMinute int) (*registry.APIKey, registry.RateResult, error)
	KnownKey(plain string) (*registry.APIKey, *registry.KeyCheck, bool)
	APIKey(ctx context.Context, id string) (*registry.APIKey, error)
	CreatePortalSession(ctx context.Context, k *registry.APIKey, ttl time.Duration) (*registry.PortalSession, string, error)
	LookupPortalSession(ctx context.Context, token string) (*registry.PortalSession, error)
	Tenant(ctx context.Context, id string) (*registry.Tenant, error)
	CreateEndpoint(ctx context.Context, tid string, n registry.NewEndpoint) (*registry.Endpoint, error)
	Endpoint(ctx context.Context, tid, eid string) (*registry.Endpoint, error)
	ListEndpoints(ctx context.Context, tid, status string, pg registry.Page) ([]*registry.Endpoint, int, error)
	DeleteEndpoint(ctx context.Context, tid, eid string) error
	RotateSecret(ctx context.Context, tid, eid, secret string, grace time.Duration) (*registry.Endpoint, error)
	Delivery(ctx context.Context, tid, eid, did string, withAttempts bool) (*registry.Delivery, error)
	ListDeliveries(ctx context.Context, tid, eid, status string, pg registry.Page) ([]*registry.Delivery, int, error)
	AllowRequest(ctx context.Context, bucket string, perMinute int) (registry.RateResult, error)
	Usage(ctx context.Context, tid string) (registry.Usage, error)
	ListEvents(ctx context.Context, tid string, f registry.EventFilter, pg registry.Page) ([]*registry.Event, int, error)
	EventWithDeliveries(ctx context.Context, tid, evid string) (*registry.Event, []registry.EventDelivery, error)
	Recovery(ctx context.Context, tid, eid, rid string) (*registry.Recovery, error)
	EndpointStats(ctx context.Context, tid, eid string, hours int) ([]registry.HourStats, error)
}

var _ Registry = (*registry.Store)(nil)

// Deliveries is what the API needs of the delivery engine. Methods return *registry.Error
// with WEBHOOK_DISABLED, QUOTA_EXCEEDED, IDEMPOTENCY_KEY_REUSED, KAFKA_ERROR and the registry's codes.
type Deliveries interface {
	Publish(ctx context.Context, p delivery.PublishRequest) (*delivery.Published, error)
	PublishBatch(ctx context.Context, p delivery.BatchRequest) (*delivery.PublishedBatch, error)
	SendTest(ctx context.Context, tid, eid string) (*registry.Delivery, error)
	Retry(ctx context.Context, tid, eid, did string) (*registry.Delivery, error)
	Update(ctx context.Context, tid, eid string, p registry.EndpointPatch) (*registry.Endpoint, error)
	Enable(ctx context.Context, tid, eid string) (*registry.Endpoint, int, error)
	Disable(ctx context.Context, tid, eid string) (*registry.Endpoint, error)
	Recover(ctx context.Context, tid, eid string, n registry.NewRecovery) (*registry.Recovery, error)
}

var _ Deliveries = (*delivery.Service)(nil)

// Prober checks that a URL answers; an error means WEBHOOK_URL_UNREACHABLE.
type Prober func(ctx context.Context, url string) error

// SecretMaker returns a fresh endpoint signing secret ("whsec_" + base64).
type SecretMaker func() (string, error)

// Config configures the API server. Zero values mean defaults.
type Config struct {
	Registry   Registry
	Deliveries Deliveries
	Probe      Prober
	// NewSecret makes endpoint signing secrets; the signing package owns their format.
	NewSecret SecretMaker
	Logger    *slog.Logger
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// BodyLimit caps request bodies; default 256 KiB.
	BodyLimit int64
	// DefaultRateLimit applies to keys without their own limit; default 600 per minute.
	DefaultRateLimit int
	// UnavailableRetryAfter is the Retry-After (seconds) sent with 503; default 5.
	UnavailableRetryAfter int
	// EndpointConcurrency is the attempts an endpoint may have in flight at most (the workers'
	// setting): the ceiling of the effectiveConcurrency endpoints show. Default 32.
	EndpointConcurrency int
	// PublicURL is the origin (scheme://host[:port]) portal links point at; empty: the origin
	// of the request that makes the link.
	PublicURL string
	// Extra mounts more routes (metrics, dashboards) on the same Echo instance.
	Extra func(e *echo.Echo)
	// Observe, when set, is told of every request (for metrics).
	Observe func(method, route string, status int, d time.Duration)
}

// Server is the HTTP API.
type Server struct {
	cfg  Config
	log  *slog.Logger
	echo *echo.Echo
}

// New validates cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Deliveries == nil || cfg.Probe == nil || cfg.NewSecret == nil {
		return nil, errors.New("api: Registry, Deliveries, Probe and NewSecret are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = 256 << 10
	}
	if cfg.DefaultRateLimit == 0 {
		cfg.DefaultRateLimit = 600
	}
	if cfg.UnavailableRetryAfter == 0 {
		cfg.UnavailableRetryAfter = 5
	}
	if cfg.EndpointConcurrency <= 0 {
		cfg.EndpointConcurrency = 32
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.echo = s.routes()
	return s, nil
}

// Handler returns the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo returns the underlying Echo instance.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Serve serves on l until ctx ends, then shuts down gracefully within grace.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(envelopeListener{Listener: l, log: s.log}) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = s.ipExtractor()
	e.Use(s.requestID, s.accessLog, s.recoverPanic, s.capBody, s.routingErrorRate)
	getHead(e, "/healthz", s.healthz)
	getHead(e, "/readyz", s.readyz)
	getHead(e, "/openapi.yaml", s.openapi)
	getHead(e, "/portal", s.portalPage)
	getHead(e, "/portal/assets/*", s.portalAsset)

	// Authentication is route middleware, not group middleware, and there is no RouteNotFound:
	// Echo serves both as a catch-all 404 route, which it prefers over 405 for a known path
	// with the wrong method. Its own 404 and 405 become NOT_FOUND and METHOD_NOT_ALLOWED.
	// The body size is checked once the key is (routes).
	v1 := e.Group("/api/v1")
	// The /webhooks routes and reading /events take an API key or a portal session's token; the
	// others a key only.
	read := s.guard(s.authenticateWebhooks, registry.ScopeWebhooksRead)
	write := s.guard(s.authenticateWebhooks, registry.ScopeWebhooksWrite)
	ids := append(read[:len(read):len(read)], s.knownIDs)
	wids := append(write[:len(write):len(write)], s.knownIDs)
	v1.POST("/webhooks", s.createWebhook, write...)
	getHead(v1, "/webhooks", s.listWebhooks, read...)
	getHead(v1, "/webhooks/:id", s.getWebhook, ids...)
	v1.PATCH("/webhooks/:id", s.patchWebhook, wids...)
	v1.DELETE("/webhooks/:id", s.deleteWebhook, wids...)
	getHead(v1, "/webhooks/:id/secret", s.getSecret, wids...)
	v1.POST("/webhooks/:id/rotate-secret", s.rotateSecret, wids...)
	v1.POST("/webhooks/:id/test", s.testWebhook, wids...)
	getHead(v1, "/webhooks/:id/deliveries", s.listDeliveries, ids...)
	getHead(v1, "/webhooks/:id/deliveries/:deliveryId", s.getDelivery, ids...)
	v1.POST("/webhooks/:id/deliveries/:deliveryId/retry", s.retryDelivery, wids...)
	v1.POST("/webhooks/:id/recover", s.recover, wids...)
	getHead(v1, "/webhooks/:id/recoveries/:recoveryId", s.getRecovery, ids...)
	getHead(v1, "/webhooks/:id/stats", s.endpointStats, ids...)
	getHead(v1, "/events", s.listEvents, read...)
	getHead(v1, "/events/:eventId", s.getEvent, read...)
	v1.POST("/events", s.publishEvent, s.guard(s.authenticatePublish, registry.ScopeEventsWrite)...)
	v1.POST("/events/batch", s.publishBatch, s.guard(s.authenticatePublish, registry.ScopeEventsWrite)...)
	getHead(v1, "/usage", s.usage, s.authenticate, s.limitBody, s.plainBody)
	v1.POST("/portal/sessions", s.createPortalSession, s.guard(s.authenticate, registry.ScopeWebhooksWrite)...)
	if s.cfg.Extra != nil {
		s.cfg.Extra(e)
	}
	return e
}

// guard is the route middleware of an API route: the credential's checks (auth), then its
// scope, then the body's size and content coding, so that a client without a valid credential
// learns that first, whatever it sent.
func (s *Server) guard(auth echo.MiddlewareFunc, scope string) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{auth, s.requireScope(scope), s.limitBody, s.plainBody}
}

// matcher is what Echo and its groups have in common for registering routes.
type matcher interface {
	Match(methods []string, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
}

// getHead registers h for GET and HEAD: HEAD is answered wherever GET is (net/http drops the
// body and keeps the headers).
func getHead(r matcher, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	r.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
}

func (s *Server) ipExtractor() echo.IPExtractor {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range s.cfg.TrustedProxies {
		n := &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		opts = append(opts, echo.TrustIPRange(n))
	}
	xff := echo.ExtractIPFromXFFHeader(opts...)
	if len(s.cfg.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	return xff
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"success": true, "data": map[string]string{"status": "ok"}})
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.cfg.Registry.Ping(c.Request().Context()); err != nil {
		return registry.Wrap(registry.CodeServiceUnavailable, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"success": true, "data": map[string]string{"status": "ready"}})
}
