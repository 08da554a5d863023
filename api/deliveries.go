package api

import (
	"net/http"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// noFields refuses a body with any field on a route that takes none; an empty body or {} is
// fine.
func noFields(c echo.Context) error {
	o, err := readOptionalObject(c)
	if err != nil {
		return err
	}
	return o.only()
}

func (s *Server) testWebhook(c echo.Context) error {
	if err := noFields(c); err != nil {
		return err
	}
	d, err := s.cfg.Deliveries.SendTest(c.Request().Context(), tenantID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return ok(c, http.StatusAccepted, d)
}

func (s *Server) listDeliveries(c echo.Context) error {
	ctx := c.Request().Context()
	pg, err := page(c)
	if err != nil {
		return err
	}
	status, err := statusFilter(c, registry.DeliveryStatuses)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Registry.Endpoint(ctx, tenantID(c), c.Param("id")); err != nil {
		return err
	}
	ds, total, err := s.cfg.Registry.ListDeliveries(ctx, tenantID(c), c.Param("id"), status, pg)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []*registry.Delivery{}
	}
	return list(c, ds, pg, total)
}

func (s *Server) getDelivery(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := s.cfg.Registry.Endpoint(ctx, tenantID(c), c.Param("id")); err != nil {
		return err
	}
	d, err := s.cfg.Registry.Delivery(ctx, tenantID(c), c.Param("id"), c.Param("deliveryId"), true)
	if err != nil {
		return err
	}
	if d.Attempts == nil {
		d.Attempts = []registry.Attempt{}
	}
	return ok(c, http.StatusOK, deliveryView{Delivery: d, Attempts: d.Attempts})
}

// deliveryView is one delivery with every attempt: "attempts" is always present, [] when there
// is none yet (registry.Delivery omits it when empty, for lists).
type deliveryView struct {
	*registry.Delivery
	Attempts []registry.Attempt `json:"attempts"`
}

func (s *Server) retryDelivery(c echo.Context) error {
	if err := noFields(c); err != nil {
		return err
	}
	d, err := s.cfg.Deliveries.Retry(c.Request().Context(), tenantID(c), c.Param("id"), c.Param("deliveryId"))
	if err != nil {
		return err
	}
	return ok(c, http.StatusAccepted, d)
}
