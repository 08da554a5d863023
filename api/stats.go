package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// statsView is GET /webhooks/{id}/stats: the window and its hours, oldest first.
type statsView struct {
	Window string               `json:"window"`
	Hours  []registry.HourStats `json:"hours"`
}

// Stats windows: whole hours from one hour to seven days.
const (
	minStatsWindow = time.Hour
	maxStatsWindow = 7 * 24 * time.Hour
)

func (s *Server) endpointStats(c echo.Context) error {
	window := 24 * time.Hour
	if v, present, err := queryParam(c, "window"); present {
		w, ok := statsWindow(v)
		if err != nil || !ok {
			return paramType("window", "whole hours from 1h to 7d", err)
		}
		window = w
	}
	ctx, tid, eid := c.Request().Context(), tenantID(c), c.Param("id")
	if _, err := s.cfg.Registry.Endpoint(ctx, tid, eid); err != nil {
		return err
	}
	hours, err := s.cfg.Registry.EndpointStats(ctx, tid, eid, int(window/time.Hour))
	if err != nil {
		return err
	}
	return ok(c, http.StatusOK, statsView{Window: formatWindow(window), Hours: hours})
}

// statsWindow reads a window: a Go duration of whole hours ("24h") or days ("7d").
func statsWindow(v string) (time.Duration, bool) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, false
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, false
		}
	}
	return d, d >= minStatsWindow && d <= maxStatsWindow && d%time.Hour == 0
}

func formatWindow(d time.Duration) string { return strconv.Itoa(int(d/time.Hour)) + "h" }
