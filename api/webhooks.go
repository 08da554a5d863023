package api

import (
	"net/http"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// endpointView is an endpoint as every answer shows it: with its effective concurrency, the
// attempts it may have in flight now (its ceiling, lowered by 429 and 503 answers, 1 during
// probation), and that ceiling, so that a reader can tell a throttled endpoint from one at
// full speed.
type endpointView struct {
	*registry.Endpoint
	EffectiveConcurrency int `json:"effectiveConcurrency"`
	MaxConcurrency       int `json:"maxConcurrency"`
}

func (s *Server) view(e *registry.Endpoint) endpointView {
	return endpointView{Endpoint: e, EffectiveConcurrency: e.Concurrency(s.cfg.EndpointConcurrency),
		MaxConcurrency: s.cfg.EndpointConcurrency}
}

// createdEndpoint is the create response: the endpoint plus its secret, shown this once
// (and later only through GET .../secret).
type createdEndpoint struct {
	endpointView
	Secret string `json:"secret"`
}

// writableFields are the fields a client may set on create and PATCH; everything else an
// endpoint shows is read-only.
var writableFields = []string{"url", "events", "description", "headers", "enabled", "ordering", "rateLimitPerSecond"}

const maxDescription = 1024

func (s *Server) createWebhook(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	n, err := readNewEndpoint(o)
	if err != nil {
		return err
	}
	if err := s.probe(c, n.URL); err != nil {
		return err
	}
	if n.Secret, err = s.cfg.NewSecret(); err != nil {
		return registry.Wrap(registry.CodeInternal, err)
	}
	e, err := s.cfg.Registry.CreateEndpoint(c.Request().Context(), tenantID(c), n)
	if err != nil {
		return err
	}
	return ok(c, http.StatusCreated, createdEndpoint{endpointView: s.view(e), Secret: e.Secret})
}

// readNewEndpoint validates a create body; url and events are required.
func readNewEndpoint(o object) (registry.NewEndpoint, error) {
	var n registry.NewEndpoint
	if err := o.only(writableFields...); err != nil {
		return n, err
	}
	rawURL, err := o.str("url", true)
	if err != nil {
		return n, err
	}
	events, _, err := o.strings("events", true)
	if err != nil {
		return n, err
	}
	desc, err := o.text("description", maxDescription)
	if err != nil {
		return n, err
	}
	if n.Headers, _, err = o.stringMap("headers"); err != nil {
		return n, err
	}
	enabled, err := o.boolean("enabled")
	if err != nil {
		return n, err
	}
	if ord, err := ordering(o); err != nil {
		return n, err
	} else if ord != nil {
		n.Ordering = *ord
	}
	if n.RateLimitPerSecond, _, err = rateLimit(o); err != nil {
		return n, err
	}
	if n.URL, err = validateURL(*rawURL); err != nil {
		return n, err
	}
	if n.Events, err = validateEvents(events); err != nil {
		return n, err
	}
	if err := validateHeaders(n.Headers); err != nil {
		return n, err
	}
	if desc != nil {
		n.Description = *desc
	}
	n.Disabled = enabled != nil && !*enabled
	return n, nil
}

func (s *Server) probe(c echo.Context, url string) error {
	if err := s.cfg.Probe(c.Request().Context(), url); err != nil {
		s.log.InfoContext(c.Request().Context(), "webhook url unreachable",
			"requestId", c.Response().Header().Get(echo.HeaderXRequestID), "reason", err.Error())
		return registry.Wrap(registry.CodeWebhookUnreachable, err)
	}
	return nil
}

func (s *Server) listWebhooks(c echo.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	status, err := statusFilter(c, []string{registry.StatusActive, registry.StatusDisabled})
	if err != nil {
		return err
	}
	eps, total, err := s.cfg.Registry.ListEndpoints(c.Request().Context(), tenantID(c), status, pg)
	if err != nil {
		return err
	}
	views := make([]endpointView, len(eps))
	for i, e := range eps {
		views[i] = s.view(e)
	}
	return list(c, views, pg, total)
}

func (s *Server) getWebhook(c echo.Context) error {
	e, err := s.cfg.Registry.Endpoint(c.Request().Context(), tenantID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, s.view(e))
}

// patchedEndpoint adds requeuedDeliveries when the patch re-enabled the endpoint.
type patchedEndpoint struct {
	endpointView
	RequeuedDeliveries *int `json:"requeuedDeliveries,omitempty"`
}

func (s *Server) patchWebhook(c echo.Context) error {
	ctx := c.Request().Context()
	tid, eid := tenantID(c), c.Param("id")
	o, err := readObject(c)
	if err != nil {
		return err
	}
	p, enabled, err := s.readPatch(o)
	if err != nil {
		return err
	}
	cur, err := s.cfg.Registry.Endpoint(ctx, tid, eid)
	if err != nil {
		return err
	}
	if p.URL != nil && *p.URL != cur.URL {
		if err := s.probe(c, *p.URL); err != nil {
			return err
		}
	}
	e, err := s.cfg.Deliveries.Update(ctx, tid, eid, p)
	if err != nil {
		return err
	}
	var requeued *int
	switch {
	case enabled != nil && *enabled:
		var n int
		if e, n, err = s.cfg.Deliveries.Enable(ctx, tid, eid); err != nil {
			return err
		}
		requeued = &n
	case enabled != nil && !*enabled:
		if e, err = s.cfg.Deliveries.Disable(ctx, tid, eid); err != nil {
			return err
		}
	}
	return ok(c, http.StatusOK, patchedEndpoint{endpointView: s.view(e), RequeuedDeliveries: requeued})
}

func (s *Server) readPatch(o object) (registry.EndpointPatch, *bool, error) {
	var p registry.EndpointPatch
	if err := o.only(writableFields...); err != nil {
		return p, nil, err
	}
	rawURL, err := o.str("url", false)
	if err != nil {
		return p, nil, err
	}
	if rawURL != nil {
		u, err := validateURL(*rawURL)
		if err != nil {
			return p, nil, err
		}
		p.URL = &u
	}
	events, has, err := o.strings("events", false)
	if err != nil {
		return p, nil, err
	}
	if has {
		if p.Events, err = validateEvents(events); err != nil {
			return p, nil, err
		}
	}
	if p.Description, err = o.text("description", maxDescription); err != nil {
		return p, nil, err
	}
	if p.Headers, p.HeadersSet, err = o.stringMap("headers"); err != nil {
		return p, nil, err
	}
	if err := validateHeaders(p.Headers); err != nil {
		return p, nil, err
	}
	if p.Ordering, err = ordering(o); err != nil {
		return p, nil, err
	}
	if p.RateLimitPerSecond, p.RateLimitSet, err = rateLimit(o); err != nil {
		return p, nil, err
	}
	enabled, err := o.boolean("enabled")
	return p, enabled, err
}

// maxRateLimit is the highest rateLimitPerSecond an endpoint may have.
const maxRateLimit = 10000

// rateLimit reads the optional "rateLimitPerSecond": an integer from 1 to 10,000, or null for
// none, the only field a body may give as null; set tells whether the field was there.
func rateLimit(o object) (limit *int, set bool, err error) {
	raw, present := o.fields["rateLimitPerSecond"]
	if !present {
		return nil, false, nil
	}
	if isNull(raw) {
		return nil, true, nil
	}
	n, err := o.integer("rateLimitPerSecond")
	if err != nil || n == nil || *n < 1 || *n > maxRateLimit {
		return nil, true, registry.E(registry.CodeInvalidFieldType, "rateLimitPerSecond", "integer from 1 to 10000 or null")
	}
	v := int(*n)
	return &v, true, nil
}

// ordering reads the optional "ordering": "none" or "scan".
func ordering(o object) (*string, error) {
	v, err := o.str("ordering", false)
	if err != nil || v == nil {
		return nil, err
	}
	if *v != registry.OrderingNone && *v != registry.OrderingScan {
		return nil, registry.E(registry.CodeInvalidFieldType, "ordering", `"none" or "scan"`)
	}
	return v, nil
}

func (s *Server) deleteWebhook(c echo.Context) error {
	if err := s.cfg.Registry.DeleteEndpoint(c.Request().Context(), tenantID(c), c.Param("id")); err != nil {
		return err
	}
	return ok(c, http.StatusOK, map[string]any{"id": c.Param("id"), "deleted": true})
}

// secretView is GET .../secret: the current secret and the replaced ones that still sign
// (each until its rotation's grace ends), newest first. previousSecret and
// previousSecretExpiresAt repeat the newest of them for clients written before there could
// be several.
type secretView struct {
	Secret                  string           `json:"secret"`
	PreviousSecret          *string          `json:"previousSecret"`
	PreviousSecretExpiresAt *time.Time       `json:"previousSecretExpiresAt"`
	PreviousSecrets         []previousSecret `json:"previousSecrets"`
}

// previousSecret is a replaced secret that still signs until ExpiresAt.
type previousSecret struct {
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func viewSecret(e *registry.Endpoint, now time.Time) secretView {
	v := secretView{Secret: e.Secret, PreviousSecrets: []previousSecret{}}
	for _, p := range e.PreviousSecrets(now) {
		v.PreviousSecrets = append(v.PreviousSecrets, previousSecret{Secret: p.Secret, ExpiresAt: p.ExpiresAt})
	}
	if len(v.PreviousSecrets) > 0 {
		newest := v.PreviousSecrets[0]
		v.PreviousSecret, v.PreviousSecretExpiresAt = &newest.Secret, &newest.ExpiresAt
	}
	return v
}

func (s *Server) getSecret(c echo.Context) error {
	e, err := s.cfg.Registry.Endpoint(c.Request().Context(), tenantID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, viewSecret(e, s.cfg.Registry.Now()))
}

const (
	defaultGrace = 86400
	maxGrace     = 604800
)

func (s *Server) rotateSecret(c echo.Context) error {
	grace := int64(defaultGrace)
	o, err := readOptionalObject(c)
	if err != nil {
		return err
	}
	if err := o.only("gracePeriodSeconds"); err != nil {
		return err
	}
	g, err := o.integer("gracePeriodSeconds")
	if err != nil {
		return err
	}
	if g != nil {
		if *g < 0 || *g > maxGrace {
			return registry.E(registry.CodeInvalidFieldType, "gracePeriodSeconds", "integer between 0 and 604800")
		}
		grace = *g
	}
	secret, err := s.cfg.NewSecret()
	if err != nil {
		return registry.Wrap(registry.CodeInternal, err)
	}
	e, err := s.cfg.Registry.RotateSecret(c.Request().Context(), tenantID(c), c.Param("id"), secret,
		time.Duration(grace)*time.Second)
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, viewSecret(e, s.cfg.Registry.Now()))
}
