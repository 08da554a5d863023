package registry

import (
	"crypto/subtle"
	"errors"
	"strconv"
)

// A publish can carry its request's authentication (KeyCheck) instead of making a round trip
// of its own for it: the API checks the key as Authenticate last read it (KnownKey), and the
// publish script, before it stores anything, makes sure that record is still the key's, byte
// for byte, and counts the request against the key's limit as authenticate.lua would. A
// change to the key (revoked, suspended, its tenant suspended, its scopes or addresses) thus
// applies to the very next request, as with Authenticate. In a Redis Cluster a key's records
// are in a slot of their own, which a tenant's script cannot reach, so there every request
// authenticates with Authenticate.

// KeyCheck is a publish's authentication: the key's record as last read, and its per-minute
// limit. PublishEvents sets Counted and Rate once its script counted the request.
type KeyCheck struct {
	KeyID   string
	Record  string
	Limit   int
	Counted bool
	Rate    RateResult
}

// ErrKeyChanged is a publish with a KeyCheck whose key's record has changed since: nothing was
// stored or counted, and the request must be authenticated again (Authenticate).
var ErrKeyChanged = errors.New("registry: the key changed since it was read")

// errKeyRefused is a publish whose KeyCheck's rate limit refused it: nothing was stored, and
// the check's Rate says why.
var errKeyRefused = errors.New("registry: the key's rate limit refused the request")

// KnownKey is the key of plain as Authenticate last read it in this process, with a check for
// a publish to carry; false when plain is not a key's token or has not been read here, and in
// a cluster.
func (s *Store) KnownKey(plain string) (*APIKey, *KeyCheck, bool) {
	id, ok := tokenID(plain, KeyPrefix)
	if !ok || s.clustered {
		return nil, nil, false
	}
	kid := "key_" + id
	d, ok := s.keys.last(kid)
	if !ok || subtle.ConstantTimeCompare([]byte(d.key.Hash), []byte(hashKey(plain))) != 1 {
		return nil, nil, false
	}
	return d.key, &KeyCheck{KeyID: kid, Record: d.rec}, true
}

// keyCheckArgs appends a batch's key check, if any, for lua/publish.lua: its two keys, and
// always its two arguments: the record (empty for none) and the limit.
func keyCheckArgs(c *KeyCheck, keys []string, args []any) ([]string, []any) {
	if c == nil {
		return keys, append(args, "", 0)
	}
	keys = append(keys, apiKeyKey(c.KeyID), apiKeyRateKey(c.KeyID))
	return keys, append(args, c.Record, c.Limit)
}

// readKeyCheck takes a key check's answer off the front of lua/publish.lua's: 'stale'
// (ErrKeyChanged), or 'counted' and the rate decision's four values (errKeyRefused when it
// refused).
func readKeyCheck(res []string) ([]string, bool, RateResult, error) {
	switch {
	case len(res) >= 1 && res[0] == "stale":
		return res[1:], false, RateResult{}, ErrKeyChanged
	case len(res) < 5 || res[0] != "counted":
		return nil, false, RateResult{}, storeErr("publish events", errors.New("no key check in the answer"))
	}
	taken, _ := strconv.Atoi(res[1])
	remaining, _ := strconv.Atoi(res[2])
	retry, err := secondsOf(res[3])
	if err != nil {
		return nil, false, RateResult{}, err
	}
	reset, err := secondsOf(res[4])
	if err != nil {
		return nil, false, RateResult{}, err
	}
	r := RateResult{Allowed: taken > 0, Remaining: remaining, RetryAfter: retry, ResetAfter: reset}
	if !r.Allowed {
		return res[5:], true, r, errKeyRefused
	}
	return res[5:], true, r, nil
}
