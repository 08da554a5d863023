package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Code is a stable, machine-readable error code from the public error reference.
// The api package owns the one table that maps each code to an HTTP status and message.
type Code string

// Codes of the public error reference, plus the routing, header and portal codes the contract adds.
const (
	CodeMissingAPIKey        Code = "MISSING_API_KEY"
	CodeInvalidAPIKey        Code = "INVALID_API_KEY"
	CodeKeyExpired           Code = "KEY_EXPIRED"
	CodeKeyRevoked           Code = "KEY_REVOKED"
	CodeKeySuspended         Code = "KEY_SUSPENDED"
	CodeInvalidPortalSession Code = "INVALID_PORTAL_SESSION"
	CodePortalSessionExpired Code = "PORTAL_SESSION_EXPIRED"
	CodeInsufficientScope    Code = "INSUFFICIENT_SCOPE"
	CodeScanTypeNotAllowed   Code = "SCAN_TYPE_NOT_ALLOWED"
	CodeIPNotAllowed         Code = "IP_NOT_ALLOWED"
	CodeTenantSuspended      Code = "TENANT_SUSPENDED"
	CodeInvalidScanType      Code = "INVALID_SCAN_TYPE"
	CodeInvalidPriority      Code = "INVALID_PRIORITY"
	CodeWebhookNotFound      Code = "WEBHOOK_NOT_FOUND"
	CodeDeliveryNotFound     Code = "DELIVERY_NOT_FOUND"
	CodeEventNotFound        Code = "EVENT_NOT_FOUND"
	CodeRecoveryNotFound     Code = "RECOVERY_NOT_FOUND"
	CodeInvalidTimeRange     Code = "INVALID_TIME_RANGE"
	CodeInvalidWebhookURL    Code = "INVALID_WEBHOOK_URL"
	CodeWebhookUnreachable   Code = "WEBHOOK_URL_UNREACHABLE"
	CodeInvalidWebhookEvent  Code = "INVALID_WEBHOOK_EVENT"
	CodeWebhookDisabled      Code = "WEBHOOK_DISABLED"
	CodeInvalidHeader        Code = "INVALID_HEADER"
	CodeRateLimitExceeded    Code = "RATE_LIMIT_EXCEEDED"
	CodeQuotaExceeded        Code = "QUOTA_EXCEEDED"
	CodeInvalidJSON          Code = "INVALID_JSON"
	CodeMissingRequiredField Code = "MISSING_REQUIRED_FIELD"
	CodeInvalidFieldType     Code = "INVALID_FIELD_TYPE"
	CodeInvalidPage          Code = "INVALID_PAGE"
	CodeInvalidLimit         Code = "INVALID_LIMIT"
	CodeNotFound             Code = "NOT_FOUND"
	CodeMethodNotAllowed     Code = "METHOD_NOT_ALLOWED"
	CodePayloadTooLarge      Code = "PAYLOAD_TOO_LARGE"
	CodeUnknownField         Code = "UNKNOWN_FIELD"
	CodeIdempotencyKeyReused Code = "IDEMPOTENCY_KEY_REUSED"
	CodeMalformedRequest     Code = "MALFORMED_REQUEST"
	CodeHeadersTooLarge      Code = "HEADERS_TOO_LARGE"
	// CodeUnsupportedContentEncoding (415) refuses a body sent with a Content-Encoding other
	// than identity.
	CodeUnsupportedContentEncoding Code = "UNSUPPORTED_CONTENT_ENCODING"
	CodeMissingAdminToken          Code = "MISSING_ADMIN_TOKEN"
	CodeInvalidAdminToken          Code = "INVALID_ADMIN_TOKEN"
	CodeInternal                   Code = "INTERNAL_ERROR"
	CodeServiceUnavailable         Code = "SERVICE_UNAVAILABLE"
	CodeDatabase                   Code = "DATABASE_ERROR"
	CodeQueue                      Code = "KAFKA_ERROR"
)

// Error is the one error type that crosses package boundaries with a stable code.
// Args fill the message placeholders in order ({field}, {type}, {scope}, ...); Err is the
// cause, kept for logs and never shown to clients.
type Error struct {
	Code Code
	Args []string
	Err  error
}

// E builds an *Error with the given code and placeholder values.
func E(code Code, args ...string) *Error { return &Error{Code: code, Args: args} }

// Wrap builds an *Error with a cause.
func Wrap(code Code, err error, args ...string) *Error {
	return &Error{Code: code, Args: args, Err: err}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if len(e.Args) > 0 {
		fmt.Fprintf(&b, " %q", e.Args)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, E(code)) match on the code alone.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code && t.Err == nil && len(t.Args) == 0
}

// CodeOf returns the code of the first *Error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// storeErr turns a go-redis error into SERVICE_UNAVAILABLE when Redis cannot be reached
// and DATABASE_ERROR otherwise, so that callers never see raw driver errors.
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if IsUnavailable(err) {
		return Wrap(CodeServiceUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	return Wrap(CodeDatabase, fmt.Errorf("%s: %w", op, err))
}

// IsUnavailable reports whether err means the Redis server could not be reached at all.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "CLUSTERDOWN") ||
		strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN")
}
