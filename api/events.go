package api

import (
	"encoding/json"
	"net/http"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

var priorities = []string{"critical", "high", "normal", "low"}

const maxIdempotencyKey = 255

// publishEvent validates a scan event and hands it to the delivery engine, which answers once
// the event is durable in Redis.
func (s *Server) publishEvent(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	typ, err := o.str("type", true)
	if err != nil {
		return err
	}
	if !registry.IsEventType(*typ) {
		return registry.E(registry.CodeInvalidWebhookEvent, *typ)
	}
	if !o.has("data") {
		return registry.E(registry.CodeMissingRequiredField, "data")
	}
	data, err := parseObject(o["data"])
	if err != nil {
		return registry.E(registry.CodeInvalidFieldType, "data", "object")
	}
	if err := s.checkScanData(c, data); err != nil {
		return err
	}
	idem := c.Request().Header.Get("Idempotency-Key")
	if len(idem) > maxIdempotencyKey || !isPrintableASCII(idem) && idem != "" {
		return registry.E(registry.CodeInvalidHeader, "Idempotency-Key")
	}
	res, err := s.cfg.Deliveries.Publish(c.Request().Context(), delivery.PublishRequest{
		TenantID: tenantID(c), Type: *typ, Data: json.RawMessage(o["data"]), IdempotencyKey: idem,
		Quota: c.Get(ctxQuota).(int64),
	})
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if res.Replayed {
		status = http.StatusOK
	}
	return ok(c, status, res)
}

func (s *Server) checkScanData(c echo.Context, data object) error {
	for _, f := range []string{"scanId", "scanType"} {
		if !data.has(f) {
			return registry.E(registry.CodeMissingRequiredField, "data."+f)
		}
	}
	var scanID, scanType string
	if err := json.Unmarshal(data["scanId"], &scanID); err != nil {
		return registry.E(registry.CodeInvalidFieldType, "data.scanId", "string")
	}
	if err := json.Unmarshal(data["scanType"], &scanType); err != nil {
		return registry.E(registry.CodeInvalidFieldType, "data.scanType", "string")
	}
	if !registry.IsScanType(scanType) {
		return registry.E(registry.CodeInvalidScanType, scanType)
	}
	if !apiKey(c).AllowsScanType(scanType) {
		return registry.E(registry.CodeScanTypeNotAllowed, scanType)
	}
	if data.has("priority") {
		var p string
		if err := json.Unmarshal(data["priority"], &p); err != nil {
			return registry.E(registry.CodeInvalidPriority, string(data["priority"]))
		}
		if !containsString(priorities, p) {
			return registry.E(registry.CodeInvalidPriority, p)
		}
	}
	return nil
}

func (s *Server) usage(c echo.Context) error {
	u, err := s.cfg.Registry.Usage(c.Request().Context(), tenantID(c))
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, u)
}
