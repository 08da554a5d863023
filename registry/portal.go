package registry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// PortalTokenPrefix starts every portal session token.
const PortalTokenPrefix = "cix_ps_"

// PortalScopes are everything a portal session grants: its tenant's webhooks:read and
// webhooks:write.
var PortalScopes = []string{ScopeWebhooksRead, ScopeWebhooksWrite}

// MaxPortalSession is the longest a portal session may live.
const MaxPortalSession = 24 * time.Hour

// portalAfterlife is how long a session's record outlives its expiry. It grants nothing in that
// time; it lets a late request learn PORTAL_SESSION_EXPIRED rather than INVALID_PORTAL_SESSION,
// so the page can say "this link has expired".
const portalAfterlife = 24 * time.Hour

// PortalSession is a tenant portal login made by an API key. Only the SHA-256 of its token is
// stored; the token itself is shown once, in the portal link.
type PortalSession struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenantId"`
	KeyID     string    `json:"keyId"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	Hash      string    `json:"hash"`
}

// Expired reports whether the session has ended at now.
func (p *PortalSession) Expired(now time.Time) bool { return !now.Before(p.ExpiresAt) }

// CreatePortalSession stores a new session of k's tenant that lasts ttl (1 s to
// MaxPortalSession; the caller validated it), never past k's own expiry, and returns it with
// its token: "cix_ps_" + 16 base62 characters naming the session + 32 secret ones (190 bits).
func (s *Store) CreatePortalSession(ctx context.Context, k *APIKey, ttl time.Duration) (*PortalSession, string, error) {
	if ttl <= 0 || ttl > MaxPortalSession {
		return nil, "", errors.New("portal session lifetime must be between 1s and 24h")
	}
	idPart, token, err := newToken(PortalTokenPrefix)
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	p := &PortalSession{ID: "ps_" + idPart, TenantID: k.TenantID, KeyID: k.ID, CreatedAt: now,
		ExpiresAt: now.Add(ttl), Hash: hashKey(token)}
	if k.ExpiresAt != nil && k.ExpiresAt.Before(p.ExpiresAt) {
		p.ExpiresAt = k.ExpiresAt.UTC()
	}
	b, err := jsonMarshal(p)
	if err != nil {
		return nil, "", err
	}
	life := p.ExpiresAt.Sub(now) + portalAfterlife
	if err := s.rdb.Set(ctx, portalSessionKey(p.ID), b, life).Err(); err != nil {
		return nil, "", storeErr("create portal session", err)
	}
	return p, token, nil
}

// portalTokenScript reads a session's record when the token is the session's (lua/token.lua,
// the check Authenticate makes of a key).
var portalTokenScript = keyScript("return tokenRecord(KEYS[1], ARGV[1]) or false")

// LookupPortalSession resolves a token. It returns INVALID_PORTAL_SESSION for a malformed or
// unknown token (including one whose record Redis has already expired) or another secret.
// Expiry is left to the caller, which compares ExpiresAt with its clock.
func (s *Store) LookupPortalSession(ctx context.Context, token string) (*PortalSession, error) {
	id, ok := tokenID(token, PortalTokenPrefix)
	if !ok {
		return nil, E(CodeInvalidPortalSession)
	}
	rec, err := portalTokenScript.Run(ctx, s.rdb, []string{portalSessionKey("ps_" + id)}, hashKey(token)).Text()
	if errors.Is(err, redis.Nil) {
		return nil, E(CodeInvalidPortalSession)
	}
	if err != nil {
		return nil, storeErr("get portal session", err)
	}
	var p PortalSession
	if err := json.Unmarshal([]byte(rec), &p); err != nil {
		return nil, storeErr("get portal session", err)
	}
	return &p, nil
}
