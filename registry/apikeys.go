package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyPrefix starts every plain API key.
const KeyPrefix = "cix_sk_"

const (
	keyIDLen     = 16
	keySecretLen = 32
	base62       = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// NewKeyParams describes a key to create.
type NewKeyParams struct {
	TenantID           string
	Name               string
	Scopes             []string
	AllowedScanTypes   []string
	AllowedIPAddresses []string
	ExpiresAt          *time.Time
	RateLimitPerMinute int
}

// Validate checks scopes, scan types and IP entries.
func (p NewKeyParams) Validate() error {
	if len(p.Scopes) == 0 {
		return errors.New("at least one scope is required")
	}
	for _, sc := range p.Scopes {
		if !contains(Scopes, sc) {
			return fmt.Errorf("unknown scope %q (valid: %s)", sc, strings.Join(Scopes, ", "))
		}
	}
	for _, st := range p.AllowedScanTypes {
		if !IsScanType(st) {
			return fmt.Errorf("unknown scan type %q", st)
		}
	}
	for _, ip := range p.AllowedIPAddresses {
		if _, err := ParseIPOrCIDR(ip); err != nil {
			return err
		}
	}
	if p.RateLimitPerMinute < 0 {
		return errors.New("rate limit per minute must be 0 (service default) or positive")
	}
	return nil
}

// ParseIPOrCIDR accepts "203.0.113.7" or "203.0.113.0/24" (and IPv6 forms).
func ParseIPOrCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid IP address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// CreateAPIKey stores a new key and returns it with the plain key, which is never stored
// and cannot be shown again. The plain key is "cix_sk_" + 16 base62 characters naming the
// key + 32 base62 secret characters (190 bits) from crypto/rand.
func (s *Store) CreateAPIKey(ctx context.Context, p NewKeyParams) (*APIKey, string, error) {
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	t, err := s.Tenant(ctx, p.TenantID)
	if err != nil {
		return nil, "", err
	}
	idPart, plain, err := newToken(KeyPrefix)
	if err != nil {
		return nil, "", err
	}
	now := s.now().UTC()
	k := &APIKey{
		ID: "key_" + idPart, TenantID: p.TenantID, Name: p.Name, Scopes: dedupe(p.Scopes),
		AllowedScanTypes: nonNil(dedupe(p.AllowedScanTypes)), AllowedIPAddresses: nonNil(p.AllowedIPAddresses),
		ExpiresAt: p.ExpiresAt, Status: StatusActive, RateLimitPerMinute: p.RateLimitPerMinute,
		CreatedAt: now, UpdatedAt: now, Hash: hashKey(plain), TenantStatus: t.Status, TenantQuota: t.MonthlyEventQuota, TenantVersion: t.Version,
	}
	if err := s.setJSON(ctx, apiKeyKey(k.ID), k); err != nil {
		return nil, "", storeErr("create api key", err)
	}
	if err := s.rdb.SAdd(ctx, tenantAPIKeysKey(p.TenantID), k.ID).Err(); err != nil {
		return nil, "", storeErr("index api key", err)
	}
	if err := s.recopyTenant(ctx, k); err != nil {
		return nil, "", err
	}
	return k, plain, nil
}

// recopyTenant reads the tenant again once the new key is in the tenant's set. A
// SetTenantStatus that ran after the first read did not find the key to copy its status into;
// either it finds the key now or this read sees its change, so a key made while its tenant
// was being suspended never carries "active".
func (s *Store) recopyTenant(ctx context.Context, k *APIKey) error {
	t, err := s.Tenant(ctx, k.TenantID)
	if err != nil {
		return err
	}
	if !k.copyTenant(t) {
		return nil
	}
	var cur APIKey
	err = s.updateJSON(ctx, apiKeyKey(k.ID), &cur, func() error {
		if !cur.copyTenant(t) {
			return errUnchanged
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return storeErr("update api key", err)
	}
	return nil
}

var authenticateScript = keyScript(mustRead("authenticate"))

// Authenticate resolves a plain key and counts the request against the key's per-minute limit
// (defaultPerMinute when the key sets none) in one round trip (lua/authenticate.lua), shared
// with the key's other requests of the moment (groups). It returns INVALID_API_KEY for a
// malformed or unknown key, or one whose secret is not the key's, and counts those against
// nothing; a request with the key's secret counts whatever the caller then answers it, even
// when ctx ends before the answer. Status and expiry are left to the caller, which must check
// them in the contract's order before it acts on the rate decision, and must not change the key.
func (s *Store) Authenticate(ctx context.Context, plain string, defaultPerMinute int) (*APIKey, RateResult, error) {
	id, ok := tokenID(plain, KeyPrefix)
	if !ok {
		return nil, RateResult{}, E(CodeInvalidAPIKey)
	}
	kid := "key_" + id
	c := &authCall{waiter: newWaiter(), hash: hashKey(plain)}
	err := s.auth.do(ctx, authSubject(kid, defaultPerMinute), c, func(ctx context.Context, calls []*authCall) error {
		return s.authenticate(ctx, kid, defaultPerMinute, calls)
	})
	if err != nil {
		return nil, RateResult{}, err
	}
	return c.key, c.rate, nil
}

// authSubject is what Authenticate's calls group by: the key and the default limit.
func authSubject(kid string, defaultPerMinute int) string {
	return kid + "/" + strconv.Itoa(defaultPerMinute)
}

// authCall is one request's authentication: its token's hash, then its answer.
type authCall struct {
	waiter
	hash string
	key  *APIKey
	rate RateResult
}

func (c *authCall) size() int { return 1 }

// authenticate runs one group of Authenticate's calls, all naming key kid with the same
// default limit.
func (s *Store) authenticate(ctx context.Context, kid string, defaultPerMinute int, calls []*authCall) error {
	args := make([]any, 0, 1+len(calls))
	args = append(args, defaultPerMinute)
	for _, c := range calls {
		args = append(args, c.hash)
	}
	v, err := authenticateScript.Run(ctx, s.rdb, []string{apiKeyKey(kid), apiKeyRateKey(kid)}, args...).Slice()
	if err != nil {
		err = storeErr("authenticate", err)
	} else {
		err = s.answerAuth(kid, v, calls)
	}
	for _, c := range calls {
		if err != nil {
			c.key, c.rate, c.err = nil, RateResult{}, err
		}
		c.answer(c.err)
	}
	return err
}

// answerAuth reads authenticate.lua's answer into each call of its group; an error is the
// group's.
func (s *Store) answerAuth(kid string, v []any, calls []*authCall) error {
	if len(v) == 0 {
		return E(CodeInvalidAPIKey)
	}
	rec, _ := v[0].(string)
	k, err := s.keys.decode(kid, rec)
	if err != nil {
		return storeErr("authenticate", err)
	}
	v = v[1:]
	for _, c := range calls {
		switch {
		case len(v) > 0 && v[0] == "0":
			c.err, v = E(CodeInvalidAPIKey), v[1:]
		case len(v) >= 5 && v[0] == "1":
			_, c.rate, c.err = rateResult(v[1:5])
			c.key, v = k, v[5:]
		default:
			return storeErr("authenticate", fmt.Errorf("answer of %d values for %d requests", len(v), len(calls)))
		}
	}
	return nil
}

// keyRecords remembers, for each key id, the last record Authenticate read and the key decoded
// from it: a request whose record is byte for byte the one before shares that key instead of
// decoding the record again (a few µs of an API request). The record is read every time, so a
// change to it applies to the very next request. Callers must not change a key it returns.
type keyRecords struct {
	mu sync.Mutex
	m  map[string]decodedKey
}

type decodedKey struct {
	rec string
	key *APIKey
}

// maxKeyRecords bounds keyRecords (a record is a few hundred bytes); past it, it starts again.
const maxKeyRecords = 10000

// last is the record of kid read last, and its key.
func (c *keyRecords) last(kid string) (decodedKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[kid]
	return d, ok
}

func (c *keyRecords) decode(kid, rec string) (*APIKey, error) {
	c.mu.Lock()
	d, ok := c.m[kid]
	c.mu.Unlock()
	if ok && d.rec == rec {
		return d.key, nil
	}
	k := new(APIKey)
	if err := json.Unmarshal([]byte(rec), k); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxKeyRecords {
		c.m = make(map[string]decodedKey)
	}
	c.m[kid] = decodedKey{rec: rec, key: k}
	c.mu.Unlock()
	return k, nil
}

// tokenID returns the id part of a plain key or token: prefix, then keyIDLen base62 characters
// naming it, then keySecretLen secret ones.
func tokenID(plain, prefix string) (string, bool) {
	body, ok := strings.CutPrefix(plain, prefix)
	if !ok || len(body) != keyIDLen+keySecretLen || !isBase62(body) {
		return "", false
	}
	return body[:keyIDLen], true
}

// newToken makes a token: prefix, keyIDLen random base62 characters that name its record
// (idPart), then keySecretLen secret ones.
func newToken(prefix string) (idPart, token string, err error) {
	if idPart, err = randomBase62(keyIDLen); err != nil {
		return "", "", err
	}
	secretPart, err := randomBase62(keySecretLen)
	if err != nil {
		return "", "", err
	}
	return idPart, prefix + idPart + secretPart, nil
}

// APIKey returns one key by id; ErrKeyNotFound when unknown.
func (s *Store) APIKey(ctx context.Context, id string) (*APIKey, error) {
	var k APIKey
	if err := s.getJSON(ctx, apiKeyKey(id), &k); err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, ErrKeyNotFound
		}
		return nil, storeErr("get api key", err)
	}
	return &k, nil
}

// SetAPIKeyStatus revokes, suspends or resumes a key. A revoked key stays revoked: resuming
// or suspending it is ErrKeyRevoked; an unknown id is ErrKeyNotFound.
func (s *Store) SetAPIKeyStatus(ctx context.Context, id, status string) (*APIKey, error) {
	if status != StatusActive && status != StatusSuspended && status != StatusRevoked {
		return nil, fmt.Errorf("invalid key status %q", status)
	}
	var k APIKey
	err := s.updateJSON(ctx, apiKeyKey(id), &k, func() error {
		if k.Status == StatusRevoked && status != StatusRevoked {
			return ErrKeyRevoked
		}
		k.Status = status
		k.UpdatedAt = s.now().UTC()
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil, ErrKeyNotFound
	}
	if errors.Is(err, ErrKeyRevoked) {
		return nil, ErrKeyRevoked
	}
	if err != nil {
		return nil, storeErr("update api key", err)
	}
	return &k, nil
}

// ListAPIKeys returns a tenant's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]*APIKey, error) {
	if _, err := s.Tenant(ctx, tenantID); err != nil {
		return nil, err
	}
	ids, err := s.rdb.SMembers(ctx, tenantAPIKeysKey(tenantID)).Result()
	if err != nil {
		return nil, storeErr("list api keys", err)
	}
	keys := make([]*APIKey, 0, len(ids))
	for _, id := range ids {
		k, err := s.APIKey(ctx, id)
		if errors.Is(err, ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sortKeys(keys)
	return keys, nil
}

func (s *Store) setJSON(ctx context.Context, key string, v any) error {
	b, err := jsonMarshal(v)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, key, b, 0).Err()
}

func hashKey(plain string) string {
	h := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(h[:])
}

// randomBase62 draws n characters by rejection sampling so each is uniform.
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out), nil
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
