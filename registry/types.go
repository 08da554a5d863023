package registry

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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

// Orderings of an endpoint's deliveries: none (attempts run concurrently in queue order), or
// by scan (the deliveries of one scan one at a time, in publish order).
const (
	OrderingNone = "none"
	OrderingScan = "scan"
)

// Reasons an endpoint is disabled.
const (
	ReasonConsecutiveFailures = "consecutive_failures"
	ReasonGone                = "gone"
	ReasonManual              = "manual"
	ReasonProbationFailed     = "probation_failed"
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
	// Probation is true from a re-enable until the first successful attempt: one attempt at a
	// time, and a failure disables the endpoint again (probation_failed).
	Probation bool `json:"probation"`
	// Degraded is true once the current failure streak reached half the disable threshold
	// (when webhook.degraded was emitted) until a success ends the streak or the endpoint is
	// disabled.
	Degraded bool `json:"degraded"`
	// RateLimitPerSecond caps the endpoint's attempts per second across all workers; nil: none.
	RateLimitPerSecond *int      `json:"rateLimitPerSecond"`
	Ordering           string    `json:"ordering"`
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`

	Secret string `json:"-"`
	// PrevSecret is the secret the last rotation replaced and OlderSecret the one before it;
	// each signs until its own rotation's grace period ends.
	PrevSecret           string    `json:"-"`
	PrevSecretExpiresAt  time.Time `json:"-"`
	OlderSecret          string    `json:"-"`
	OlderSecretExpiresAt time.Time `json:"-"`
	FailureStreakStart   time.Time `json:"-"`
	// concurrency is the stored effective concurrency; 0 when at its ceiling.
	concurrency int
}

// Concurrency is how many attempts the endpoint may have in flight, under a ceiling of max:
// 1 during probation, the value 429 and 503 answers lowered it to, else max.
func (e *Endpoint) Concurrency(max int) int {
	switch {
	case e.Probation:
		return 1
	case e.concurrency > 0:
		return min(e.concurrency, max)
	}
	return max
}

// PreviousSecret is a replaced secret that keeps signing until ExpiresAt.
type PreviousSecret struct {
	Secret    string
	ExpiresAt time.Time
}

// maxPreviousSecrets bounds the replaced secrets that still sign: with the current one, at
// most three signatures go with a delivery.
const maxPreviousSecrets = 2

// SigningSecrets returns the secrets that sign a delivery at now: the current one, then each
// replaced one whose rotation grace period lasts, newest first.
func (e *Endpoint) SigningSecrets(now time.Time) []string {
	out := make([]string, 1, 1+maxPreviousSecrets)
	out[0] = e.Secret
	if e.PrevSecret != "" && now.Before(e.PrevSecretExpiresAt) {
		out = append(out, e.PrevSecret)
	}
	if e.OlderSecret != "" && now.Before(e.OlderSecretExpiresAt) {
		out = append(out, e.OlderSecret)
	}
	return out
}

// PreviousSecrets returns the replaced secrets that still sign at now, newest rotation first.
func (e *Endpoint) PreviousSecrets(now time.Time) []PreviousSecret {
	var out []PreviousSecret
	for _, p := range []PreviousSecret{{e.PrevSecret, e.PrevSecretExpiresAt}, {e.OlderSecret, e.OlderSecretExpiresAt}} {
		if p.Secret != "" && now.Before(p.ExpiresAt) {
			out = append(out, p)
		}
	}
	return out
}

// afterRotation returns the replaced secrets that sign once a new secret replaces the current
// one at now: the current one joins them for grace (not at all for 0), those whose grace has
// ended leave, and past maxPreviousSecrets the one whose grace ends first is dropped early.
func (e *Endpoint) afterRotation(now time.Time, grace time.Duration) []PreviousSecret {
	var out []PreviousSecret
	if grace > 0 {
		out = append(out, PreviousSecret{e.Secret, now.Add(grace)})
	}
	out = append(out, e.PreviousSecrets(now)...)
	for len(out) > maxPreviousSecrets {
		first := 0
		for i, p := range out {
			if p.ExpiresAt.Before(out[first].ExpiresAt) {
				first = i
			}
		}
		out = append(out[:first], out[first+1:]...)
	}
	return out
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

	deliveries  int
	requestHash string
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
	// WaitingFor is the delivery ahead of this one in its scan's lane, while it waits.
	WaitingFor *string   `json:"waitingFor"`
	Attempts   []Attempt `json:"attempts,omitempty"`
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

// typeCodes are the event types that compact records (an event in its minute's hash, a kept
// delivery) name by a one-byte code: 'a' and on by their place here. Stored records name them:
// only append.
var typeCodes = []string{EventScanStarted, EventScanCompleted, EventScanFailed, EventScanCancelled,
	EventWebhookDegraded, EventWebhookDisabled, EventWebhookEnabled, EventDeliveryExhausted, EventWebhookTest}

// typeOfCode is the type a code names; false for none.
func typeOfCode(c byte) (string, bool) {
	i := int(c) - 'a'
	if i < 0 || i >= len(typeCodes) {
		return "", false
	}
	return typeCodes[i], true
}

// codeOfType is the code compact records name type typ by; false for a type without one.
func codeOfType(typ string) (byte, bool) {
	i := slices.Index(typeCodes, typ)
	return byte('a' + i), i >= 0
}

// luaTypeCodes gives the scripts the types of typeCodes' codes, CODE_TYPE[code]: they read
// compact records; Go writes them.
var luaTypeCodes = func() string {
	var typ strings.Builder
	for i, t := range typeCodes {
		fmt.Fprintf(&typ, "[%q]=%q,", string(rune('a'+i)), t)
	}
	return "local CODE_TYPE = {" + typ.String() + "}\n"
}()
