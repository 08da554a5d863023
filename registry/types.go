package registry

import (
	"encoding/json"
	"time"
)

// Event types a tenant can subscribe to.
const (
	EventScanStarted   = "scan.started"
	EventScanCompleted = "scan.completed"
	EventScanFailed    = "scan.failed"
	EventScanCancelled = "scan.cancelled"
	// EventWebhookTest is the type of a test ping; it is never subscribed to.
	EventWebhookTest = "webhook.test"
)

// EventTypes lists the subscribable event types in the order the error reference names them.
var EventTypes = []string{EventScanCompleted, EventScanFailed, EventScanStarted, EventScanCancelled}

// IsEventType reports whether t is one of the four subscribable scan events.
func IsEventType(t string) bool {
	for _, e := range EventTypes {
		if e == t {
			return true
		}
	}
	return false
}

// API key scopes.
const (
	ScopeWebhooksRead  = "webhooks:read"
	ScopeWebhooksWrite = "webhooks:write"
	ScopeEventsWrite   = "events:write"
)

// Scopes lists every scope a key may hold.
var Scopes = []string{ScopeWebhooksRead, ScopeWebhooksWrite, ScopeEventsWrite}

// ScanTypes lists the scan engines the platform runs.
var ScanTypes = []string{"nmap", "zap", "trivy", "nuclei", "nikto", "sqlmap", "wapiti", "harvester", "sublist3r", "sentinel"}

// IsScanType reports whether s names a known scan engine.
func IsScanType(s string) bool {
	for _, t := range ScanTypes {
		if t == s {
			return true
		}
	}
	return false
}

// Status values of tenants and keys.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusRevoked   = "revoked"
	StatusDisabled  = "disabled"
)

// Reasons an endpoint is disabled.
const (
	ReasonConsecutiveFailures = "consecutive_failures"
	ReasonGone                = "gone"
	ReasonManual              = "manual"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryRetrying  = "retrying"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	DeliveryHeld      = "held"
)

// DeliveryStatuses lists every delivery status.
var DeliveryStatuses = []string{DeliveryPending, DeliveryRetrying, DeliverySucceeded, DeliveryFailed, DeliveryHeld}

// Tenant is an organisation using the API.
type Tenant struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Status            string    `json:"status"`
	MonthlyEventQuota int64     `json:"monthlyEventQuota"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	// Version grows by one with every status change; keys record the version they copied, so
	// a copy from an older change never overwrites a newer one.
	Version int64 `json:"version,omitempty"`
}

// APIKey is a tenant's credential. Only the SHA-256 hash of the plain key is stored.
type APIKey struct {
	ID                 string     `json:"id"`
	TenantID           string     `json:"tenantId"`
	Name               string     `json:"name"`
	Scopes             []string   `json:"scopes"`
	AllowedScanTypes   []string   `json:"allowedScanTypes"`
	AllowedIPAddresses []string   `json:"allowedIpAddresses"`
	ExpiresAt          *time.Time `json:"expiresAt"`
	Status             string     `json:"status"`
	RateLimitPerMinute int        `json:"rateLimitPerMinute"`
	CreatedAt          time.Time  `json:"createdAt"`
	UpdatedAt          time.Time  `json:"updatedAt"`
	Hash               string     `json:"hash,omitempty"`
	// TenantStatus and TenantQuota copy the tenant's status and monthly event quota so that one
	// read authenticates a request; SetTenantStatus rewrites them in every key of the tenant.
	TenantStatus  string `json:"tenantStatus,omitempty"`
	TenantQuota   int64  `json:"tenantQuota,omitempty"`
	TenantVersion int64  `json:"tenantVersion,omitempty"`
}

// copyTenant copies t's status and quota into k unless k already holds a newer version of
// them; it reports whether k changed.
func (k *APIKey) copyTenant(t *Tenant) bool {
	if t.Version < k.TenantVersion ||
		(t.Version == k.TenantVersion && t.Status == k.TenantStatus && t.MonthlyEventQuota == k.TenantQuota) {
		return false
	}
	k.TenantStatus, k.TenantQuota, k.TenantVersion = t.Status, t.MonthlyEventQuota, t.Version
	return true
}

// HasScope reports whether the key grants scope.
func (k *APIKey) HasScope(scope string) bool {
	for _, s := range k.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// AllowsScanType reports whether the key may publish events of the scan engine t.
func (k *APIKey) AllowsScanType(t string) bool {
	if len(k.AllowedScanTypes) == 0 {
		return true
	}
	for _, s := range k.AllowedScanTypes {
		if s == t {
			return true
		}
	}
	return false
}

// Endpoint is a registered webhook URL. Secrets are carried here but never serialised by the API.
type Endpoint struct {
	ID                  string            `json:"id"`
	TenantID            string            `json:"-"`
	URL                 string            `json:"url"`
	Events              []string          `json:"events"`
	Description         string            `json:"description"`
	Headers             map[string]string `json:"headers"`
	Enabled             bool              `json:"enabled"`
	Status              string            `json:"status"`
	DisabledReason      *string           `json:"disabledReason"`
	DisabledAt          *time.Time        `json:"disabledAt"`
	ConsecutiveFailures int               `json:"consecutiveFailures"`
	CreatedAt           time.Time         `json:"createdAt"`
	UpdatedAt           time.Time         `json:"updatedAt"`

	Secret              string    `json:"-"`
	PrevSecret          string    `json:"-"`
	PrevSecretExpiresAt time.Time `json:"-"`
	FailureStreakStart  time.Time `json:"-"`
}

// SigningSecrets returns the secrets that sign a delivery at now: the current one, and the
// previous one while its rotation grace period lasts.
func (e *Endpoint) SigningSecrets(now time.Time) []string {
	if e.PrevSecret != "" && now.Before(e.PrevSecretExpiresAt) {
		return []string{e.Secret, e.PrevSecret}
	}
	return []string{e.Secret}
}

// Subscribes reports whether the endpoint wants events of type t.
func (e *Endpoint) Subscribes(t string) bool {
	for _, s := range e.Events {
		if s == t {
			return true
		}
	}
	return false
}

// Event is one published scan event. Body is the exact JSON POSTed to receivers, stored once.
type Event struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"-"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	Body      []byte          `json:"-"`

	deliveries int
}

// Delivery is one event's journey to one endpoint.
type Delivery struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"-"`
	WebhookID     string     `json:"webhookId"`
	EventID       string     `json:"eventId"`
	EventType     string     `json:"eventType"`
	Status        string     `json:"status"`
	AttemptCount  int        `json:"attemptCount"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	Attempts      []Attempt  `json:"attempts,omitempty"`
	// Generation increases each time the delivery is queued again (manual retry, re-enable);
	// a queued task of an older generation is stale and does nothing.
	Generation int `json:"-"`
	// RunAttempts counts the attempts of the current run (generation).
	RunAttempts int `json:"-"`
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	Number       int       `json:"number"`
	StartedAt    time.Time `json:"startedAt"`
	DurationMs   int64     `json:"durationMs"`
	StatusCode   int       `json:"statusCode"`
	Error        string    `json:"error"`
	ResponseBody string    `json:"responseBody"`
}

// Page selects one page of a list: Page is 1-based.
type Page struct {
	Page  int
	Limit int
}

// bounds returns the slice of a list of total items that p selects; a page past the end (however
// large, without overflowing) or a non-positive page or limit selects nothing.
func (p Page) bounds(total int) (start, stop int) {
	if p.Page < 1 || p.Limit < 1 {
		return total, total
	}
	pages := total / p.Limit
	if total%p.Limit != 0 {
		pages++
	}
	if p.Page > pages {
		return total, total
	}
	start = (p.Page - 1) * p.Limit
	return start, min(start+p.Limit, total)
}
