package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

var priorities = []string{"critical", "high", "normal", "low"}

const maxIdempotencyKey = 255

// maxBatch is the most events one batch publish may hold.
const maxBatch = 100

// eventInput is one validated event of a publish.
type eventInput struct {
	typ    string
	data   json.RawMessage
	scanID string
}

// publishEvent validates a scan event and hands it to the delivery engine, which answers once
// the event is durable in Redis.
func (s *Server) publishEvent(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	ev, err := s.readEvent(c, o)
	if err != nil {
		return err
	}
	idem, hash, err := idempotency(c, o)
	if err != nil {
		return err
	}
	var res *delivery.Published
	err = s.publishAs(c, func(quota int64, check *registry.KeyCheck) (err error) {
		res, err = s.cfg.Deliveries.Publish(c.Request().Context(), delivery.PublishRequest{
			TenantID: tenantID(c), Type: ev.typ, Data: ev.data, IdempotencyKey: idem,
			RequestHash: hash, ScanID: ev.scanID, Quota: quota, Key: check,
		})
		return err
	})
	if err != nil {
		return err
	}
	return ok(c, publishStatus(res.Replayed), res)
}

// publishBatch validates 1 to 100 scan events, each as publishEvent does, and hands them to
// the delivery engine, which stores them all or none. The first invalid event answers with
// its usual code, naming the field as events[i].field.
func (s *Server) publishBatch(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	if err := o.only("events"); err != nil {
		return err
	}
	items, _, err := o.array("events", true)
	if err != nil {
		return err
	}
	if len(items) == 0 || len(items) > maxBatch {
		return registry.E(registry.CodeInvalidFieldType, "events", "array of 1 to "+strconv.Itoa(maxBatch)+" events")
	}
	evs := make([]delivery.BatchEvent, len(items))
	for i, raw := range items {
		path := "events[" + strconv.Itoa(i) + "]"
		item, err := nestedObject(raw)
		if err != nil {
			return registry.E(registry.CodeInvalidFieldType, path, "object")
		}
		ev, err := s.readEvent(c, item.at(path+"."))
		if err != nil {
			return err
		}
		evs[i] = delivery.BatchEvent{Type: ev.typ, Data: ev.data, ScanID: ev.scanID}
	}
	idem, hash, err := idempotency(c, o)
	if err != nil {
		return err
	}
	var res *delivery.PublishedBatch
	err = s.publishAs(c, func(quota int64, check *registry.KeyCheck) (err error) {
		res, err = s.cfg.Deliveries.PublishBatch(c.Request().Context(), delivery.BatchRequest{TenantID: tenantID(c),
			Events: evs, IdempotencyKey: idem, RequestHash: hash, Quota: quota, Key: check})
		return err
	})
	if err != nil {
		return err
	}
	return ok(c, publishStatus(res.Replayed), res)
}

// publishStatus is 202 for events accepted now, 200 for the replay of earlier ones.
func publishStatus(replayed bool) int {
	if replayed {
		return http.StatusOK
	}
	return http.StatusAccepted
}

// readEvent validates one event object {type, data}: the type one of the scan events, data
// an object with the scan's id and type (see checkScanData).
func (s *Server) readEvent(c echo.Context, o object) (eventInput, error) {
	if err := o.only("type", "data"); err != nil {
		return eventInput{}, err
	}
	typ, err := o.str("type", true)
	if err != nil {
		return eventInput{}, err
	}
	if !registry.IsEventType(*typ) {
		return eventInput{}, registry.E(registry.CodeInvalidWebhookEvent, *typ)
	}
	data, err := o.nested("data")
	if err != nil {
		return eventInput{}, err
	}
	scanID, err := s.checkScanData(c, data)
	if err != nil {
		return eventInput{}, err
	}
	return eventInput{typ: *typ, data: json.RawMessage(o.fields["data"]), scanID: scanID}, nil
}

// idempotency reads the Idempotency-Key header and, when there is one, the hash of the body
// it covers (canonicalHash).
func idempotency(c echo.Context, body object) (key, hash string, err error) {
	key = c.Request().Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || !isPrintableASCII(key) && key != "" {
		return "", "", registry.E(registry.CodeInvalidHeader, "Idempotency-Key")
	}
	if key == "" {
		return "", "", nil
	}
	if hash, err = canonicalHash(body.raw); err != nil {
		return "", "", registry.Wrap(registry.CodeInvalidJSON, err)
	}
	return key, hash, nil
}

// checkScanData validates an event's data and returns its scanId: scanId and scanType are
// required strings, the scanId one that GET /events?scanId= can find (validateScanID), the
// scanType known and allowed by the key, and a priority, if present, one of the four.
func (s *Server) checkScanData(c echo.Context, data object) (string, error) {
	scanID, err := data.str("scanId", true)
	if err != nil {
		return "", err
	}
	scanType, err := data.str("scanType", true)
	if err != nil {
		return "", err
	}
	if err := validateScanID(data.path+"scanId", *scanID); err != nil {
		return "", err
	}
	if !registry.IsScanType(*scanType) {
		return "", registry.E(registry.CodeInvalidScanType, *scanType)
	}
	if !apiKey(c).AllowsScanType(*scanType) {
		return "", registry.E(registry.CodeScanTypeNotAllowed, *scanType)
	}
	return *scanID, checkPriority(data)
}

// checkPriority answers INVALID_PRIORITY for a data.priority that is given (not null: has) and
// not one of the four; a value that is not a string is quoted as sent.
func checkPriority(data object) error {
	if !data.has("priority") {
		return nil
	}
	raw := data.fields["priority"]
	var p string
	if json.Unmarshal(raw, &p) != nil {
		return registry.E(registry.CodeInvalidPriority, string(raw))
	}
	if !containsString(priorities, p) {
		return registry.E(registry.CodeInvalidPriority, p)
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
