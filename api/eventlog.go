package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// rfc3339 is the type a time field or parameter is named with in INVALID_FIELD_TYPE.
const rfc3339 = "RFC 3339 timestamp"

// listEvents is GET /events: the tenant's events, newest first, filtered by ?type=, ?scanId=,
// ?since= and ?until=.
func (s *Server) listEvents(c echo.Context) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	f, err := eventFilter(c)
	if err != nil {
		return err
	}
	evs, total, err := s.cfg.Registry.ListEvents(c.Request().Context(), tenantID(c), f, pg)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []*registry.Event{}
	}
	return list(c, evs, pg, total)
}

func eventFilter(c echo.Context) (registry.EventFilter, error) {
	var f registry.EventFilter
	if v, present, err := queryParam(c, "type"); present {
		if errors.Is(err, errRepeated) {
			return f, registry.E(registry.CodeInvalidWebhookEvent, "type may be given once")
		}
		if err != nil || !registry.IsSubscribable(v) {
			return f, registry.E(registry.CodeInvalidWebhookEvent, v)
		}
		f.Type = v
	}
	// Any non-empty scanId, not only what publish accepts now (validateScanID): events
	// published before that rule keep the scanIds they were given.
	if v, present, err := queryParam(c, "scanId"); present {
		if err != nil || v == "" {
			return f, paramType("scanId", "non-empty string", err)
		}
		f.ScanID = v
	}
	var err error
	if f.Since, err = timeParam(c, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(c, "until"); err != nil {
		return f, err
	}
	return f, checkRange(f.Since, f.Until)
}

// timeParam reads an optional RFC 3339 query parameter; zero when absent.
func timeParam(c echo.Context, name string) (time.Time, error) {
	v, present, err := queryParam(c, name)
	if !present {
		return time.Time{}, nil
	}
	t, terr := time.Parse(time.RFC3339Nano, v)
	if err != nil || terr != nil {
		return time.Time{}, paramType(name, rfc3339, err)
	}
	return t, nil
}

// checkRange refuses a window whose since is not before its until (when both are set).
func checkRange(since, until time.Time) error {
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return registry.E(registry.CodeInvalidTimeRange)
	}
	return nil
}

// eventView is GET /events/{id}: the event and its delivery to each endpoint.
type eventView struct {
	*registry.Event
	Deliveries []registry.EventDelivery `json:"deliveries"`
}

func (s *Server) getEvent(c echo.Context) error {
	id := c.Param("eventId")
	if !eventID(id) {
		return registry.E(registry.CodeEventNotFound)
	}
	ev, ds, err := s.cfg.Registry.EventWithDeliveries(c.Request().Context(), tenantID(c), id)
	if registry.CodeOf(err) == registry.CodeNotFound {
		return registry.E(registry.CodeEventNotFound)
	}
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, eventView{Event: ev, Deliveries: ds})
}

// eventID reports whether s has the form of an event id: "evt_" and 32 lower-case hex digits.
func eventID(s string) bool { return prefixedHex(s, "evt_") }

func prefixedHex(s, prefix string) bool {
	hex, ok := strings.CutPrefix(s, prefix)
	return ok && len(hex) == 32 && strings.Trim(hex, "0123456789abcdef") == ""
}

// recover is POST /webhooks/{id}/recover {since, until?, include?}.
func (s *Server) recover(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	n, err := readRecovery(o, s.cfg.Registry.Now())
	if err != nil {
		return err
	}
	r, err := s.cfg.Deliveries.Recover(c.Request().Context(), tenantID(c), c.Param("id"), n)
	if err != nil {
		return err
	}
	return ok(c, http.StatusAccepted, r)
}

var recoverable = []string{registry.RecoverFailed, registry.RecoverMissing}

func readRecovery(o object, now time.Time) (registry.NewRecovery, error) {
	n := registry.NewRecovery{Until: now, Include: []string{registry.RecoverFailed}}
	if err := o.only("since", "until", "include"); err != nil {
		return n, err
	}
	var err error
	if n.Since, err = timeField(o, "since", true); err != nil {
		return n, err
	}
	if u, err := timeField(o, "until", false); err != nil {
		return n, err
	} else if !u.IsZero() {
		n.Until = u
	}
	include, has, err := o.strings("include", false)
	if err != nil {
		return n, err
	}
	if has {
		if len(include) == 0 || !allIn(include, recoverable) {
			return n, registry.E(registry.CodeInvalidFieldType, "include", `array of "failed" and "missing"`)
		}
		n.Include = dedupeStrings(include)
	}
	return n, checkRange(n.Since, n.Until)
}

// timeField reads an RFC 3339 string field; zero when absent and not required.
func timeField(o object, name string, required bool) (time.Time, error) {
	v, err := o.str(name, required)
	if err != nil || v == nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, registry.E(registry.CodeInvalidFieldType, name, rfc3339)
	}
	return t, nil
}

func allIn(vs, allowed []string) bool {
	for _, v := range vs {
		if !containsString(allowed, v) {
			return false
		}
	}
	return true
}

func dedupeStrings(vs []string) []string {
	var out []string
	for _, v := range vs {
		if !containsString(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func (s *Server) getRecovery(c echo.Context) error {
	rid := c.Param("recoveryId")
	if !prefixedHex(rid, "rcv_") {
		if _, err := s.cfg.Registry.Endpoint(c.Request().Context(), tenantID(c), c.Param("id")); err != nil {
			return err
		}
		return registry.E(registry.CodeRecoveryNotFound)
	}
	r, err := s.cfg.Registry.Recovery(c.Request().Context(), tenantID(c), c.Param("id"), rid)
	if registry.CodeOf(err) == registry.CodeRecoveryNotFound {
		if _, err := s.cfg.Registry.Endpoint(c.Request().Context(), tenantID(c), c.Param("id")); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, r)
}
