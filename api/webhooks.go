package api

import (
	"net/http"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
	"github.com/labstack/echo/v4"
)

// createdEndpoint is the create response: the endpoint plus its secret, shown this once
// (and later only through GET .../secret).
type createdEndpoint struct {
	*registry.Endpoint
	Secret string `json:"secret"`
}

func (s *Server) createWebhook(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	rawURL, err := o.str("url", true)
	if err != nil {
		return err
	}
	events, _, err := o.strings("events", true)
	if err != nil {
		return err
	}
	desc, err := o.str("description", false)
	if err != nil {
		return err
	}
	headers, _, err := o.stringMap("headers")
	if err != nil {
		return err
	}
	n := registry.NewEndpoint{Headers: headers}
	if n.URL, err = validateURL(*rawURL); err != nil {
		return err
	}
	if n.Events, err = validateEvents(events); err != nil {
		return err
	}
	if err := validateHeaders(headers); err != nil {
		return err
	}
	if desc != nil {
		n.Description = *desc
	}
	if err := s.probe(c, n.URL); err != nil {
		return err
	}
	if n.Secret, err = signing.NewSecret(); err != nil {
		return registry.Wrap(registry.CodeInternal, err)
	}
	e, err := s.cfg.Registry.CreateEndpoint(c.Request().Context(), tenantID(c), n)
	if err != nil {
		return err
	}
	return ok(c, http.StatusCreated, createdEndpoint{Endpoint: e, Secret: e.Secret})
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
	status := c.QueryParam("status")
	if status != "" && status != registry.StatusActive && status != registry.StatusDisabled {
		return registry.E(registry.CodeInvalidFieldType, "status", "active|disabled")
	}
	eps, total, err := s.cfg.Registry.ListEndpoints(c.Request().Context(), tenantID(c), status, pg)
	if err != nil {
		return err
	}
	if eps == nil {
		eps = []*registry.Endpoint{}
	}
	return list(c, eps, pg, total)
}

func (s *Server) getWebhook(c echo.Context) error {
	e, err := s.cfg.Registry.Endpoint(c.Request().Context(), tenantID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, e)
}

// patchedEndpoint adds requeuedDeliveries when the patch re-enabled the endpoint.
type patchedEndpoint struct {
	*registry.Endpoint
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
	e, err := s.cfg.Registry.UpdateEndpoint(ctx, tid, eid, p)
	if err != nil {
		return err
	}
	out := patchedEndpoint{Endpoint: e}
	switch {
	case enabled != nil && *enabled:
		var n int
		if out.Endpoint, n, err = s.cfg.Deliveries.Enable(ctx, tid, eid); err != nil {
			return err
		}
		out.RequeuedDeliveries = &n
	case enabled != nil && !*enabled:
		if out.Endpoint, err = s.cfg.Deliveries.Disable(ctx, tid, eid); err != nil {
			return err
		}
	}
	return ok(c, http.StatusOK, out)
}

func (s *Server) readPatch(o object) (registry.EndpointPatch, *bool, error) {
	var p registry.EndpointPatch
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
	if p.Description, err = o.str("description", false); err != nil {
		return p, nil, err
	}
	if p.Headers, p.HeadersSet, err = o.stringMap("headers"); err != nil {
		return p, nil, err
	}
	if err := validateHeaders(p.Headers); err != nil {
		return p, nil, err
	}
	enabled, err := o.boolean("enabled")
	return p, enabled, err
}

func (s *Server) deleteWebhook(c echo.Context) error {
	if err := s.cfg.Registry.DeleteEndpoint(c.Request().Context(), tenantID(c), c.Param("id")); err != nil {
		return err
	}
	return ok(c, http.StatusOK, map[string]any{"id": c.Param("id"), "deleted": true})
}

// secretView is GET .../secret: the current secret and, during a rotation's grace period,
// the previous one with the time it stops signing.
type secretView struct {
	Secret                  string     `json:"secret"`
	PreviousSecret          *string    `json:"previousSecret"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt"`
}

func viewSecret(e *registry.Endpoint, now time.Time) secretView {
	v := secretView{Secret: e.Secret}
	if e.PrevSecret != "" && now.Before(e.PrevSecretExpiresAt) {
		prev, exp := e.PrevSecret, e.PrevSecretExpiresAt
		v.PreviousSecret, v.PreviousSecretExpiresAt = &prev, &exp
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
	if c.Request().ContentLength != 0 {
		o, err := readObject(c)
		if err != nil {
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
	}
	secret, err := signing.NewSecret()
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
