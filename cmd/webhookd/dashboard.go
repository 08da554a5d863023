package main

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/labstack/echo/v4"
)

const dashboardPath = "/admin/queues"

// mountDashboard serves asynqmon at /admin/queues behind HTTP Basic auth whose password is the
// admin token (any user name), so a browser can open it. Without a token it is not mounted.
// Refusals go through the API's error envelope with codes of their own (it is not an API
// key that is missing or wrong): MISSING_ADMIN_TOKEN without credentials, INVALID_ADMIN_TOKEN
// with a wrong token.
func mountDashboard(e *echo.Echo, token string, conn asynq.RedisConnOpt) {
	if token == "" {
		return
	}
	h := echo.WrapHandler(asynqmon.New(asynqmon.Options{RootPath: dashboardPath, RedisConnOpt: conn}))
	want := sha256.Sum256([]byte(token))
	guard := func(c echo.Context) error {
		_, pw, ok := c.Request().BasicAuth()
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="webhookd queues", charset="UTF-8"`)
			return registry.E(registry.CodeMissingAdminToken)
		}
		got := sha256.Sum256([]byte(pw))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="webhookd queues", charset="UTF-8"`)
			return registry.E(registry.CodeInvalidAdminToken)
		}
		return h(c)
	}
	e.Any(dashboardPath, guard)
	e.Any(dashboardPath+"/*", guard)
}
