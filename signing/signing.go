// Package signing signs and verifies webhooks as described by the Standard
// Webhooks specification (https://www.standardwebhooks.com): HMAC-SHA256 over
// "msgID.timestamp.body", sent as "v1,<base64>" in the webhook-signature header.
//
// The package depends on the standard library only so that receivers can copy
// it, and so that the signing code stays small enough to audit.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// SecretPrefix marks a serialized symmetric secret so that it can be told
	// apart from asymmetric keys (whsk_/whpk_) and from unrelated tokens.
	SecretPrefix = "whsec_"
	// HeaderID carries the message id; it is signed so that receivers can use
	// it as an idempotency key without trusting the transport.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the attempt time in Unix seconds; it is signed so
	// that a captured request cannot be replayed outside Tolerance.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries one or more space-separated "v1,<base64>"
	// entries, several of them while a secret is being rotated.
	HeaderSignature = "webhook-signature"
	// Tolerance bounds clock skew and replay age; it is the value the
	// specification's reference libraries use, so senders and receivers agree.
	Tolerance = 5 * time.Minute
)

// Limits on the decoded secret, from the specification: below 24 bytes the
// key is guessable, above 64 bytes HMAC-SHA256 would hash it down anyway.
const (
	minSecretLen = 24
	maxSecretLen = 64
)

// versionV1 names the HMAC-SHA256 scheme; other versions (v1a is ed25519) are
// skipped by Verify rather than rejected, so that senders may add them.
const versionV1 = "v1"

// sigLen is the length of a base64-encoded HMAC-SHA256 sum; entryLen adds the
// "v1," prefix. Both size stack buffers on the hot path.
const (
	sigLen   = (sha256.Size + 2) / 3 * 4
	entryLen = len(versionV1) + 1 + sigLen
)

var (
	// ErrInvalidSecret reports a secret that is not "whsec_" followed by
	// standard base64 of 24 to 64 bytes.
	ErrInvalidSecret = errors.New("signing: invalid secret")
	// ErrMissingHeaders reports a request lacking one of the three
	// webhook-* headers, or carrying one empty.
	ErrMissingHeaders = errors.New("signing: missing webhook headers")
	// ErrInvalidTimestamp reports a webhook-timestamp that is not a canonical
	// integer of Unix seconds.
	ErrInvalidTimestamp = errors.New("signing: invalid webhook timestamp")
	// ErrTimestampTooOld reports a timestamp more than Tolerance in the past,
	// which is how replays of captured requests are refused.
	ErrTimestampTooOld = errors.New("signing: webhook timestamp too old")
	// ErrTimestampTooNew reports a timestamp more than Tolerance in the
	// future, which would otherwise let a forged request outlive Tolerance.
	ErrTimestampTooNew = errors.New("signing: webhook timestamp too new")
	// ErrNoMatch reports that no v1 entry of webhook-signature matches.
	ErrNoMatch = errors.New("signing: no matching signature")
)

// NewSecret returns a fresh secret of 32 random bytes in the serialized form
// that ParseSecret and other Standard Webhooks libraries accept.
func NewSecret() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("signing: generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(raw[:]), nil
}

// Key is a parsed secret. It exists so that a sender signing many messages
// decodes the base64 once; the zero Key has an empty key and must not be used.
type Key struct {
	raw []byte
}

// ParseSecret decodes a "whsec_<base64>" secret. The prefix is required,
// unlike in the reference libraries, so that a key of another kind pasted in
// by mistake is refused instead of being used as HMAC key material.
func ParseSecret(secret string) (Key, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return Key{}, fmt.Errorf("%w: missing %q prefix", ErrInvalidSecret, SecretPrefix)
	}
	// The decoder silently skips line breaks; a secret containing them was
	// mangled on the way in and is refused rather than guessed at.
	if strings.ContainsAny(enc, "\r\n") {
		return Key{}, fmt.Errorf("%w: contains a line break", ErrInvalidSecret)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// The base64 error names only an offset, never the input.
		return Key{}, fmt.Errorf("%w: %v", ErrInvalidSecret, err)
	}
	if len(raw) < minSecretLen || len(raw) > maxSecretLen {
		return Key{}, fmt.Errorf("%w: decodes to %d bytes, want %d to %d",
			ErrInvalidSecret, len(raw), minSecretLen, maxSecretLen)
	}
	return Key{raw: raw}, nil
}

// Sign returns the "v1,<base64>" signature entry for one message. Only the
// whole seconds of ts are signed, because that is what the header carries.
func (k Key) Sign(msgID string, ts time.Time, body []byte) string {
	var buf [entryLen]byte
	return string(k.appendEntry(buf[:0], msgID, ts.Unix(), body))
}

// SignatureHeader returns the webhook-signature value for keys, in order.
// Signing with both the old and the new key during a rotation lets receivers
// switch secrets at any moment without dropping a delivery.
func SignatureHeader(keys []Key, msgID string, ts time.Time, body []byte) string {
	if len(keys) == 0 {
		return ""
	}
	unix := ts.Unix()
	out := make([]byte, 0, len(keys)*(entryLen+1))
	for i, k := range keys {
		if i > 0 {
			out = append(out, ' ')
		}
		out = k.appendEntry(out, msgID, unix, body)
	}
	return string(out)
}

// Headers returns the three headers a sender adds to a delivery, built from
// the same ts for the timestamp header and the signatures so they cannot
// disagree. With no keys the signature header is empty and receivers refuse it.
func Headers(keys []Key, msgID string, ts time.Time, body []byte) http.Header {
	return http.Header{
		canonicalID:        {msgID},
		canonicalTimestamp: {strconv.FormatInt(ts.Unix(), 10)},
		canonicalSignature: {SignatureHeader(keys, msgID, ts, body)},
	}
}

// The headers' keys as http.Header keeps them, found once instead of at every Set.
var (
	canonicalID        = http.CanonicalHeaderKey(HeaderID)
	canonicalTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonicalSignature = http.CanonicalHeaderKey(HeaderSignature)
)

// appendEntry appends "v1,<base64 sum>" to dst.
func (k Key) appendEntry(dst []byte, msgID string, unix int64, body []byte) []byte {
	dst = append(dst, versionV1...)
	dst = append(dst, ',')
	return base64.StdEncoding.AppendEncode(dst, k.sum(msgID, unix, body))
}

// maxUnixLen is the longest decimal int64, sign included.
const maxUnixLen = len("-9223372036854775808")

// sum returns HMAC-SHA256(key, msgID "." unix "." body). The body is written
// to the MAC straight from the caller's slice instead of being copied next to
// the prefix, so large payloads cost no extra memory; one allocation holds
// both the prefix and, after it, the MAC.
func (k Key) sum(msgID string, unix int64, body []byte) []byte {
	buf := make([]byte, 0, len(msgID)+maxUnixLen+2+sha256.Size)
	buf = append(buf, msgID...)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, unix, 10)
	buf = append(buf, '.')
	mac := hmac.New(sha256.New, k.raw)
	mac.Write(buf)
	mac.Write(body)
	return mac.Sum(buf[len(buf):])
}
