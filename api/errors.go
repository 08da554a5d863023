package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/labstack/echo/v4"
)

// errorSpec is one row of the error table: the HTTP status and the message of the public
// error reference, with {placeholders} filled from registry.Error.Args in order.
type errorSpec struct {
	Status  int
	Message string
}

// errorTable is the only mapping from error code to HTTP status and message. Codes marked
// "extension" are not in the public reference; the README and OpenAPI document list them.
var errorTable = map[registry.Code]errorSpec{
	registry.CodeMissingAPIKey:        {401, "API key is required"},
	registry.CodeInvalidAPIKey:        {401, "Invalid API key"},
	registry.CodeKeyExpired:           {401, "API key has expired"},
	registry.CodeKeyRevoked:           {401, "API key has been revoked"},
	registry.CodeKeySuspended:         {401, "API key has been suspended"},
	registry.CodeInsufficientScope:    {403, "Insufficient scope: requires {scope}"},
	registry.CodeScanTypeNotAllowed:   {403, "Scan type {type} not allowed for this API key"},
	registry.CodeIPNotAllowed:         {403, "Source IP not in allowed list"},
	registry.CodeTenantSuspended:      {403, "Tenant account is suspended"},
	registry.CodeInvalidScanType:      {400, "Invalid scan type: {type}"},
	registry.CodeInvalidPriority:      {400, "Invalid priority: {value}"},
	registry.CodeWebhookNotFound:      {404, "Webhook not found"},
	registry.CodeInvalidWebhookURL:    {400, "Webhook URL must use HTTPS"},
	registry.CodeWebhookUnreachable:   {400, "Could not reach webhook URL"},
	registry.CodeInvalidWebhookEvent:  {400, "Invalid event type: {event}"},
	registry.CodeWebhookDisabled:      {409, "Webhook is disabled due to consecutive failures"},
	registry.CodeRateLimitExceeded:    {429, "Rate limit exceeded. Retry in {N} seconds."},
	registry.CodeQuotaExceeded:        {429, "Monthly scan quota exceeded"},
	registry.CodeInvalidJSON:          {400, "Request body is not valid JSON"},
	registry.CodeMissingRequiredField: {400, "Missing required field: {field}"},
	registry.CodeInvalidFieldType:     {400, "Field {field} must be of type {type}"},
	registry.CodeInvalidPage:          {400, "Page must be a positive integer"},
	registry.CodeInvalidLimit:         {400, "Limit must be between 1 and 100"},
	registry.CodeInternal:             {500, "An internal server error occurred"},
	registry.CodeServiceUnavailable:   {503, "Service temporarily unavailable"},
	registry.CodeDatabase:             {500, "Database operation failed"},
	registry.CodeQueue:                {503, "Message queue operation failed"},
	// Extensions.
	registry.CodeDeliveryNotFound:           {404, "Delivery not found"},
	registry.CodeEventNotFound:              {404, "Event not found"},
	registry.CodeRecoveryNotFound:           {404, "Recovery not found"},
	registry.CodeInvalidTimeRange:           {400, "Invalid time range: since must be before until"},
	registry.CodeInvalidHeader:              {400, "Invalid header: {name}"},
	registry.CodeNotFound:                   {404, "Resource not found"},
	registry.CodeMethodNotAllowed:           {405, "Method not allowed"},
	registry.CodePayloadTooLarge:            {413, "Request body too large"},
	registry.CodeUnknownField:               {400, "Unknown field: {field}"},
	registry.CodeIdempotencyKeyReused:       {409, "Idempotency key was used with a different request"},
	registry.CodeMalformedRequest:           {400, "Request is not valid HTTP"},
	registry.CodeHeadersTooLarge:            {431, "Request headers too large"},
	registry.CodeUnsupportedContentEncoding: {415, "Request body encoding not supported"},
	registry.CodeMissingAdminToken:          {401, "Admin token is required"},
	registry.CodeInvalidAdminToken:          {401, "Invalid admin token"},
	// Portal sessions: a portal link's token is unknown, or its session has ended.
	registry.CodeInvalidPortalSession: {401, "Invalid portal session"},
	registry.CodePortalSessionExpired: {401, "Portal session has expired"},
}

// ErrorBody is the error envelope.
type ErrorBody struct {
	Success   bool   `json:"success"`
	Error     string `json:"error"`
	Code      string `json:"code"`
	RequestID string `json:"requestId"`
}

// render fills the message template of code with args, in order of the placeholders.
func render(code registry.Code, args []string) (int, string) {
	spec, ok := errorTable[code]
	if !ok {
		spec = errorTable[registry.CodeInternal]
	}
	msg := spec.Message
	for _, a := range args {
		i := strings.IndexByte(msg, '{')
		j := strings.IndexByte(msg, '}')
		if i < 0 || j < i {
			break
		}
		msg = msg[:i] + a + msg[j+1:]
	}
	return spec.Status, msg
}

// toCoded maps any error a handler or Echo returns to a registry.Error.
func toCoded(err error) *registry.Error {
	var re *registry.Error
	if errors.As(err, &re) {
		if _, ok := errorTable[re.Code]; ok {
			return re
		}
		return registry.Wrap(registry.CodeInternal, err)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return registry.E(registry.CodePayloadTooLarge)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return registry.E(registry.CodeNotFound)
		case http.StatusMethodNotAllowed:
			return registry.E(registry.CodeMethodNotAllowed)
		case http.StatusRequestEntityTooLarge:
			return registry.E(registry.CodePayloadTooLarge)
		}
	}
	return registry.Wrap(registry.CodeInternal, err)
}

// handleError is the one Echo HTTPErrorHandler: it writes the envelope and logs what the
// client must not see.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ce := toCoded(err)
	status, msg := render(ce.Code, ce.Args)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed", "requestId", rid,
			"code", string(ce.Code), "error", err.Error(), "method", c.Request().Method, "route", c.Path())
	}
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(s.cfg.UnavailableRetryAfter))
	}
	if ce.Code == registry.CodeRateLimitExceeded && len(ce.Args) == 1 {
		c.Response().Header().Set("Retry-After", ce.Args[0])
	}
	if ce.Code == registry.CodeQuotaExceeded {
		c.Response().Header().Set("Retry-After", strconv.FormatInt(untilNextMonth(s.cfg.Registry.Now()), 10))
	}
	body := ErrorBody{Success: false, Error: msg, Code: string(ce.Code), RequestID: rid}
	if werr := c.JSON(status, body); werr != nil {
		s.log.WarnContext(c.Request().Context(), "writing error response", "requestId", rid, "error", werr.Error())
	}
}

// untilNextMonth is the whole seconds until the quota period (the UTC calendar month) ends.
func untilNextMonth(now time.Time) int64 {
	now = now.UTC()
	next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	return int64(math.Ceil(next.Sub(now).Seconds()))
}
